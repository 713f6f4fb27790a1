/**
 * The data a report is built from, read back from what two real runs of the demo flow recorded
 * in the embedded store (and its cache entries): every state, why each task ran, queue and run
 * times, retries, the failed task's error and log tail, the edges and what flows along them;
 * then the layout computed from it (critical path, timeline lanes, grouping of large flows) and
 * the HTML (escaped, self-contained), also for synthetic flows of 10,000 tasks.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CacheStore } from "@cairn/cache";
import { LocalStore, MISS_REASON_TAG, type RunFilter, type RunRecord } from "@cairn/core";
import {
  buildReport,
  criticalPath,
  layoutGraph,
  layoutTimeline,
  logReport,
  readReportData,
  renderReport,
  REPORT_ARTIFACT,
  ReportRunError,
  type ReportData,
  type ReportTask,
} from "@cairn/report";
import { z } from "zod";
import { flow, grid, map, max, min, shell, sweep, task as defineTask, when } from "cairn-dag";
import { readArtifact, tail } from "../src/report-data.ts";
import { renderReportInTurns } from "../src/render.ts";
import { reportFlow } from "./report-flow.ts";

let root: string;
let first: ReportData;
let second: ReportData;
let firstRunId: string;
let secondRunId: string;

const byId = (data: ReportData, id: string) => data.tasks.find((t) => t.id === id)!;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "cairn-report-data-"));
  // As `cairn run` does: the report is logged on the flow run before it ends.
  const run = async (n: number) => (await reportFlow.run({ params: { n }, root, env: {}, failurePolicy: "continue", beforeEnd: logReport })).wait();
  firstRunId = (await run(1)).runId;
  secondRunId = (await run(2)).runId;
  const tracker = new LocalStore({ root });
  const store = await CacheStore.fromUrl(undefined, { root });
  try {
    first = await readReportData(tracker, firstRunId, { store });
    second = await readReportData(tracker, secondRunId, { store });
  } finally {
    await store.close();
  }
}, 120_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("the report's data, read from the record", () => {
  it("has one task per node, in the flow's order, with the state each ended in", () => {
    expect(Object.fromEntries(second.tasks.map((t) => [t.id, t.state]))).toEqual({
      prepare: "succeeded",
      steady: "cached",
      flaky: "succeeded",
      boom: "failed",
      after: "skipped",
      echo: "cached",
    });
    expect(second.tasks).toHaveLength(6);
    // Topological: every task comes after the ones it depends on.
    const at = new Map(second.tasks.map((t, i) => [t.id, i]));
    for (const t of second.tasks) for (const dep of t.dependsOn) expect(at.get(dep)!).toBeLessThan(at.get(t.id)!);
    expect(second.flow).toMatchObject({ runId: secondRunId, name: "report-demo", status: "FAILED", params: { n: "2" } });
  });

  it("says why each task ran, in cairn explain's words", () => {
    expect(byId(first, "prepare").why).toEqual([
      `no earlier cache entry of task "prepare" was in the cache store at ${join(root, "cache")} when it ran: it had not succeeded there with caching on, or its entries had expired or been removed`,
    ]);
    expect(byId(second, "prepare").why).toEqual([expect.stringMatching(/^nearest earlier entry: run [0-9a-f]{32}, from /), "  - input `n` changed from 1 to 2"]);
    expect(byId(second, "flaky").why).toContain("  - input `value` changed from 2 to 4");
    expect(byId(second, "steady").why[0]).toMatch(/^cached: a cache entry for these inputs and code exists, from run [0-9a-f]{32}/);
    expect(byId(second, "boom").why).toEqual([expect.stringMatching(/^no earlier cache entry of task "boom" was in the cache store at /)]);
    expect(byId(second, "after").why).toEqual(['skipped: upstream task "boom" failed']);
  });

  it("says a task skipped by a false condition, its own or one above it, was skipped for that, not for a failure", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-condition-"));
    const source = defineTask("source").run(async () => ({ score: 0.5 }));
    const load = defineTask("load").run(async () => ({ rows: 3 }));
    const train = defineTask("train").input<{ rows: number }>().run(async ({ rows }) => ({ model: rows }));
    const deploy = defineTask("deploy").input<{ score: number }>().run(async () => ({}));
    const f = flow("report-condition")
      .params(z.object({ go: z.boolean().default(false) }))
      .build(({ params }) => {
        const s = source();
        train({ rows: load({}, { if: params.go }).rows });
        deploy({ score: s.score }, { if: when(s.score, (v) => v > 0.9) });
        return {};
      });
    try {
      const { runId } = await (await f.run({ root: dir, env: {}, cache: false })).wait();
      const data = await readReportData(new LocalStore({ root: dir }), runId);
      expect(byId(data, "load").why).toEqual(["skipped: its condition (params.go) is false"]);
      expect(byId(data, "train").why).toEqual(['skipped: the condition of upstream task "load" (params.go) is false']);
      expect(byId(data, "deploy").why).toEqual(["skipped: its condition (source.score tested by when()) is false"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("says why a task missed as its lookup saw it, not as the store reads later: an unusable entry, evicted and replaced, is named, and an old run's report keeps its story", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-why-"));
    const make = defineTask("make")
      .input<{ p: number }>()
      .run(async ({ p }, ctx) => ({ out: await ctx.artifacts.write("out.txt", `p=${p}`) }));
    const f = flow("report-why")
      .params(z.object({ p: z.number().default(1) }))
      .build(({ params }) => ({ out: make({ p: params.p }).out }));
    const run = async (p: number, cache: object = {}) => (await f.run({ params: { p }, root: dir, env: {}, cache })).wait();
    const tracker = new LocalStore({ root: dir });
    const store = await CacheStore.fromUrl(undefined, { root: dir });
    const why = async (runId: string) => (await readReportData(tracker, runId, { store })).tasks.find((t) => t.id === "make")!.why;
    try {
      const one = await run(1);
      const two = await run(2);
      expect(await why(two.runId)).toEqual([expect.stringMatching(/^nearest earlier entry: run /), "  - input `p` changed from 1 to 2"]);
      // The entry of p=1 loses its artifact: the next run of p=1 cannot use it, evicts it and stores its own.
      await rm(join(tracker.artifactDir(one.tasks.make!.runId!), "out.txt"));
      const three = await run(1);
      expect(three.tasks.make!.status).toBe("succeeded");
      const told = await why(three.runId);
      expect(told).toEqual([expect.stringMatching(/^its cache entry for these inputs and code was there but unusable: .*out\.txt.*; it was evicted$/)]);
      // A later forced run replaces the entry of that key again: the report of run three tells the same.
      await run(1, { rerun: ["make"] });
      expect(await why(three.runId)).toEqual(told);
      // And run two's, whose nearest entry has since been replaced twice.
      expect(await why(two.runId)).toEqual([expect.stringMatching(/^nearest earlier entry: run /), "  - input `p` changed from 1 to 2"]);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("says of an entry past its ttl that it expired: its run, how long before the lookup, its ttl", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-expired-"));
    const short = defineTask("short").cache({ ttl: 200 }).run(() => ({ v: 1 }));
    const f = flow("report-expired").build(() => ({ v: short({}).v }));
    const tracker = new LocalStore({ root: dir });
    try {
      const one = await (await f.run({ root: dir, env: {} })).wait();
      await new Promise((r) => setTimeout(r, 400));
      const two = await (await f.run({ root: dir, env: {} })).wait();
      expect(two.tasks.short!.status).toBe("succeeded");
      // Before: "no earlier cache entry ... or its entries had expired or been removed".
      expect((await readReportData(tracker, two.runId, {})).tasks.find((t) => t.id === "short")!.why).toEqual([
        expect.stringMatching(new RegExp(`^its cache entry for these inputs and code from run ${one.tasks.short!.runId} expired \\d+ ms before this run looked it up \\(ttl 2\\d\\d ms, at \\S+Z\\)$`)),
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("says of an entry another process computed while the run waited on its lease, and that was unusable, that it was that entry", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-waited-"));
    const once = defineTask("once").run(() => ({ v: 1 }));
    const f = flow("report-waited").build(() => ({ v: once({}).v }));
    const tracker = new LocalStore({ root: dir });
    // As a run records it when the entry it waited for (another process's lease) is unusable.
    const waited = JSON.stringify({ kind: "unusable", reason: "artifact out.txt of run abc is missing", evicted: true, waited: true });
    const retagged = (r: RunRecord | undefined) => r && (r.tags[MISS_REASON_TAG] ? { ...r, tags: { ...r.tags, [MISS_REASON_TAG]: waited } } : r);
    const reading = new Proxy(tracker, {
      get(target, name, receiver) {
        if (name === "searchRuns") return async (filter: RunFilter) => (await target.searchRuns(filter)).map((r) => retagged(r)!);
        if (name === "getRun") return async (runId: string) => retagged(await target.getRun(runId));
        const value = Reflect.get(target, name, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    try {
      const run = await (await f.run({ root: dir, env: {} })).wait();
      expect((await readReportData(reading, run.runId, {})).tasks.find((t) => t.id === "once")!.why).toEqual([
        "the cache entry for these inputs and code that another process computed while this run waited for it was there but unusable: artifact out.txt of run abc is missing; it was evicted",
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a store that does not answer its listing holds no task back: dependants run, and the miss is recorded as unlisted", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-unlisted-"));
    const first = defineTask("first").input<{ p: number }>().run(({ p }) => ({ v: p + 1 }));
    const second = defineTask("second").input<{ v: number }>().run(({ v }) => ({ w: v * 2 }));
    const f = flow("report-unlisted")
      .params(z.object({ p: z.number().default(1) }))
      .build(({ params }) => ({ w: second({ v: first({ p: params.p }).v }).w }));
    // A shared store that never answers a listing (a fault a real one shows only when huge or stuck).
    const list = vi.spyOn(CacheStore.prototype, "list").mockImplementation(() => new Promise(() => {}));
    try {
      const result = await (await f.run({ root: dir, env: {} })).wait();
      expect(result.status).toBe("succeeded");
      expect(result.outputs).toEqual({ w: 4 });
      const tracker = new LocalStore({ root: dir });
      const tags = (await tracker.getRun(result.tasks.first!.runId!))!.tags;
      expect(JSON.parse(tags["cairn.miss_reason"]!)).toEqual({ kind: "unlisted", error: expect.stringMatching(/took longer than 5 s to list/) });
    } finally {
      list.mockRestore();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("rebuilds the miss reasons of runs recorded without them from one indexed listing: a map's misses each read their own entry and at most 25 earlier ones, not the whole store", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-misses-"));
    const item = defineTask("item")
      .input<{ i: number }>()
      .run(({ i }) => ({ v: i * 2 }));
    const list = defineTask("list")
      .input<{ n: number }>()
      .run(({ n }) => ({ xs: Array.from({ length: n }, (_, i) => i) }));
    const f = flow("report-misses")
      .params(z.object({ n: z.number() }))
      .build(({ params }) => ({ vs: map(item, { over: list({ n: params.n }).xs, as: "i" }).outputs }));
    const run = async (n: number) => (await f.run({ params: { n }, root: dir, env: {} })).wait();
    // A run recorded before the miss reason was a tag: its tasks carry none.
    const local = new LocalStore({ root: dir });
    const untagged = (r: RunRecord | undefined) => r && { ...r, tags: Object.fromEntries(Object.entries(r.tags).filter(([k]) => k !== MISS_REASON_TAG)) };
    const tracker = new Proxy(local, {
      get(target, name, receiver) {
        if (name === "searchRuns") return async (filter: RunFilter) => (await target.searchRuns(filter)).map((r) => untagged(r)!);
        if (name === "getRun") return async (runId: string) => untagged(await target.getRun(runId));
        const value = Reflect.get(target, name, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const store = await CacheStore.fromUrl(undefined, { root: dir });
    try {
      await run(200);
      const two = await run(600);
      // Every read of an entry's key or time counted: the old scan read them misses x entries times.
      let reads = 0;
      const entries = (await store.list()).map((e) => {
        const counted = { ...e };
        for (const field of ["key", "createdAt"] as const) Object.defineProperty(counted, field, { get: () => (reads++, e[field]) });
        return counted;
      });
      const counting = { list: async () => entries } as unknown as CacheStore;
      const data = await readReportData(tracker, two.runId, { store: counting });
      const items = data.tasks.filter((t) => t.item?.node === "item");
      expect(items).toHaveLength(600);
      expect(items.find((t) => t.item!.index === 10)!.state).toBe("cached");
      const missed = items.find((t) => t.item!.index === 300)!;
      expect(missed.state).toBe("succeeded");
      expect(missed.why).toEqual([expect.stringMatching(/^nearest earlier entry: run [0-9a-f]{32}, from /), expect.stringMatching(/^  - input `i` changed from \d+ to 300$/)]);
      expect(entries.length).toBeGreaterThan(600);
      expect(reads).toBeLessThan(10 * entries.length);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("links a cache hit to the run it came from, and shows that run's metrics", () => {
    const hit = byId(second, "steady");
    expect(hit.cachedFrom?.runId).toBe(byId(first, "steady").runId);
    expect(hit.cacheKey).toMatch(/^[0-9a-f]{64}$/);
    expect(hit.cacheKey).toBe(byId(first, "steady").cacheKey);
  });

  it("tells queue wait from run time, and when each attempt of a retried task began", () => {
    for (const t of second.tasks.filter((t) => t.state === "succeeded" || t.state === "failed")) {
      expect(t.queuedAt, t.id).toBeTypeOf("number");
      expect(t.queuedAt!, t.id).toBeLessThanOrEqual(t.startTime);
      expect(t.endTime!, t.id).toBeGreaterThanOrEqual(t.startTime);
    }
    const flaky = byId(second, "flaky");
    expect(flaky.attempts).toBe(2);
    expect(flaky.attemptStarts).toHaveLength(2);
    expect(flaky.attemptStarts[1]!).toBeGreaterThan(flaky.attemptStarts[0]!);
    expect(flaky.metrics).toEqual({ score: 46 });
    expect(byId(second, "prepare").attemptStarts).toEqual([]);
  });

  it("keeps the failed task's error, the tail of its log and its error text", () => {
    const boom = byId(second, "boom");
    expect(boom.error?.name).toBe("ProcessFailedError");
    expect(boom.logTail).toContain("disk <b>full</b> & more");
    expect(boom.errorText).toMatch(/^ProcessFailedError: /);
  });

  it("reads only the end of a long log for its tail", async () => {
    // A failed task's stderr of one 20 MB line and then a few short ones: the report reads 64 KB of it.
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-log-"));
    await mkdir(join(dir, "run", "logs"), { recursive: true });
    await writeFile(join(dir, "run", "logs", "stderr.txt"), `${"x".repeat(20_000_000)}\nTraceback (most recent call last):\nValueError: bad\n`);
    const tracker = { artifactDir: (runId: string) => join(dir, runId) } as unknown as Parameters<typeof readArtifact>[0];
    const text = (await readArtifact(tracker, "run", "logs/stderr.txt", 64 * 1024))!;
    expect(text.length).toBeLessThanOrEqual(64 * 1024 + 40);
    expect(text).toBe("… (20000001 bytes before)\nTraceback (most recent call last):\nValueError: bad\n"); // from the first whole line
    expect(tail(text)).toBe("… (20000001 bytes before)\nTraceback (most recent call last):\nValueError: bad");
    // A log whose end is one long line is shown from where the read began.
    await writeFile(join(dir, "run", "logs", "stdout.txt"), "y".repeat(1_000_000));
    const long = tail((await readArtifact(tracker, "run", "logs/stdout.txt", 64 * 1024))!);
    expect(long).toMatch(/^… \(934464 bytes before\)\n…y{6000}$/);
    expect(await readArtifact(tracker, "run", "logs/missing.txt", 64 * 1024)).toBeUndefined();
    await rm(dir, { recursive: true, force: true });
  });

  it("shows a retried task's last attempt as its log tail: stdout's, when its stderr holds only the attempt line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-retried-"));
    const fails = shell("fails", 'echo "Traceback: the real error (attempt $CAIRN_ATTEMPT)"; exit 2').retries(1, { minDelayMs: 10 });
    const run = await flow("retried-log").build(() => ({ out: fails().stdout })).run({ root: dir, cache: false, env: {} });
    expect((await run.wait()).status).toBe("failed");
    const data = await readReportData(new LocalStore({ root: dir }), run.runId);
    expect(data.tasks.find((t) => t.id === "fails")!.logTail).toBe("Traceback: the real error (attempt 2)");
    await rm(dir, { recursive: true, force: true });
  });

  it("has the edges and the outputs that flow along them", () => {
    expect(byId(second, "flaky").dependsOn.sort()).toEqual(["prepare", "steady"]);
    expect(byId(second, "flaky").inputs).toEqual(
      expect.arrayContaining([
        { input: "value", from: "prepare.value", node: "prepare" },
        { input: "constant", from: "steady.constant", node: "steady" },
      ]),
    );
    expect(byId(second, "after").inputs).toEqual([{ input: "out", from: "boom.stdout", node: "boom" }]);
  });

  it("refuses a task run and a run that does not exist, saying which flow run to ask for", async () => {
    const tracker = new LocalStore({ root });
    const taskRun = byId(second, "prepare").runId;
    await expect(readReportData(tracker, taskRun)).rejects.toSatisfy((e: unknown) => ReportRunError.is(e) && (e as Error).message.includes(`Expected a flow run, got task run ${taskRun} ("prepare") of flow run ${secondRunId}: a report is of a flow run. Run \`cairn report ${secondRunId}\``));
    await expect(readReportData(tracker, "0".repeat(32))).rejects.toThrow(/No run 0{32} in .*cairn runs/);
  });

  it("is logged by beforeEnd as the flow run's cairn/report.html, with the status the run ends with", async () => {
    const html = await readFile(join(root, "artifacts", secondRunId, ...REPORT_ARTIFACT.split("/")), "utf8");
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('data-flow-status="FAILED"');
    expect(html).toContain('data-task="after" data-state="skipped"');
  });
});

describe("the report's layout", () => {
  it("marks the critical path: back from the task that ended last through the dependency that ended last", () => {
    const tasks = [task("a", 0, 10), task("b", 0, 30), task("c", 30, 40, ["a", "b"]), task("d", 0, 45)];
    expect(criticalPath(tasks)).toEqual(["d"]);
    tasks.push(task("e", 40, 60, ["c"]));
    expect(criticalPath(tasks)).toEqual(["b", "c", "e"]);
  });

  it("packs the timeline into lanes per pool where no two bars overlap, queue wait included", () => {
    const tasks = [task("a", 0, 10), task("b", 0, 10), task("c", 10, 20), { ...task("d", 5, 20), queuedAt: 2 }, { ...task("g", 0, 5), pool: "gpu" }];
    const t = layoutTimeline(tasks, 0, 20);
    const rowOf = (id: string) => t.bars.find((b) => b.task.id === id)!.row;
    expect(t.groups.map((g) => g.name)).toEqual(["", "gpu"]);
    expect(rowOf("c")).toBe(rowOf("a"));
    expect(new Set([rowOf("a"), rowOf("b"), rowOf("d")]).size).toBe(3);
    expect(rowOf("g")).toBe(t.groups[1]!.firstRow);
  });

  it("gives a pool as many lanes as it had tasks running at once, however many waited: 999 tasks queued at once, 4 slots", () => {
    // Each task queued at 0 and ran in its turn, four at a time, 10 ms each.
    const tasks = Array.from({ length: 999 }, (_, i) => ({ ...task(`t-${i}`, Math.floor(i / 4) * 10, Math.floor(i / 4) * 10 + 10), queuedAt: 0 }));
    const t = layoutTimeline(tasks, 0, 2500);
    expect(t.rows).toBe(4);
    // A wait is drawn from when its lane was free, never over the bar before it in the lane.
    const byRow = new Map<number, typeof t.bars>();
    for (const b of t.bars) byRow.set(b.row, [...(byRow.get(b.row) ?? []), b]);
    for (const bars of byRow.values()) {
      for (let i = 1; i < bars.length; i++) expect(bars[i]!.queueFrom).toBeGreaterThanOrEqual(bars[i - 1]!.task.endTime!);
    }
    expect(t.bars[0]!.queueFrom).toBe(0);
  });

  it("draws one node per task name, with counts, for a flow larger than maxNodes", () => {
    const tasks: ReportTask[] = Array.from({ length: 50 }, (_, i) => ({ ...task(`item-${i}`, 0, 1, ["load"]), task: "item", state: i < 3 ? "failed" : "succeeded" }));
    tasks.unshift(task("load", 0, 1));
    const g = layoutGraph(tasks, new Set(), { maxNodes: 20 })!;
    expect(g.grouped).toBe(true);
    expect(g.nodes.map((n) => [n.label, n.state, n.counts])).toEqual([
      ["load", "succeeded", { succeeded: 1 }],
      ["item ×50", "failed", { failed: 3, succeeded: 47 }],
    ]);
    expect(g.edges).toHaveLength(1);
  });

  it("colours a map's node by how the map ended, not by its worst item, grouped by task name too", () => {
    const map: ReportTask = { ...task("sq", 0, 20), group: { kind: "map", items: 30 } };
    const items = Array.from({ length: 30 }, (_, i): ReportTask => ({ ...task(`sq[${i}]`, i, i + 1), task: "sq", item: { node: "sq", index: i }, ...(i % 10 === 0 ? { state: "failed" as const } : {}) }));
    const one = layoutGraph([map, ...items], new Set())!;
    expect(one.nodes.map((n) => [n.key, n.state, n.counts])).toEqual([["sq", "succeeded", { failed: 3, succeeded: 27 }]]);
    // Above maxNodes, one node per task name: the map's run and its items are one node, coloured by the map; a plain task that failed still makes its node failed.
    const plain = Array.from({ length: 5 }, (_, i): ReportTask => ({ ...task(`p-${i}`, 0, 1), task: "p", ...(i === 0 ? { state: "failed" as const } : {}) }));
    const grouped = layoutGraph([{ ...map, task: "sq" }, ...items, ...plain], new Set(), { maxNodes: 3 })!;
    expect(grouped.grouped).toBe(true);
    expect(grouped.nodes.map((n) => [n.key, n.state])).toEqual([["g:sq", "succeeded"], ["g:p", "failed"]]);
  });
});

describe("the report's HTML", () => {
  it("shows every text from the run as text: a param that holds <script> is no script", () => {
    expect(byId(second, "echo").params).toEqual({ label: "<script>alert(1)</script>" });
    const html = renderReport(second);
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).toContain("disk &lt;b&gt;full&lt;/b&gt; &amp; more");
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`);
    // Nothing is loaded from anywhere: no src or stylesheet link, and the only URLs are links.
    expect(html).not.toMatch(/\ssrc=|<link|@import|url\((?!#)/);
  });

  it("leaves a task's cell empty for a metric named constructor or toString that only another task logged", () => {
    const tasks = [{ ...task("a", 0, 5), metrics: { constructor: 2, toString: 3 } }, task("b", 5, 10)];
    const html = renderReport({ ...second, tasks, flow: { ...second.flow, startTime: 0, endTime: 10 } });
    expect(html).not.toContain("native code");
    const rows = html.split("</tr>").filter((r) => /<tr data-task="[ab]">/.test(r));
    // The metric cells: after the (empty) cache key's, before the run's.
    expect(rows.map((r) => r.split("<td><code></code></td>")[1]!.split("<td><code>")[0])).toEqual([
      '<td class="num">2</td><td class="num">3</td>',
      '<td class="num"></td><td class="num"></td>',
    ]);
  });

  it("shows a bidi override in a run's text as its escape, so the text reads as recorded", () => {
    const tasks = [{ ...task("t", 0, 5), state: "failed" as const, error: { name: "Error", message: "\u202eevil RTL\u202c ok" } }];
    const html = renderReport({ ...second, tasks, flow: { ...second.flow, startTime: 0, endTime: 10 } });
    expect(html).not.toMatch(/[\u202a-\u202e\u2066-\u2069]/);
    expect(html).toContain("\\u202eevil RTL\\u202c ok");
  });

  it("holds no secret: what the run recorded is masked, and the report holds only that", async () => {
    const SECRET = "s3cr3t-report-token-4711";
    const leaky = shell("leaky", `echo "using ${SECRET}" >&2; exit 1`);
    const thrower = defineTask("thrower").run(async (_, ctx) => {
      throw new Error(`bad token ${ctx.secret("CAIRN_TOKEN")}`);
    });
    const f = flow("report-secrets").build(() => {
      leaky();
      thrower();
      return {};
    });
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-secret-"));
    try {
      const result = await (await f.run({ root: dir, env: {}, secrets: { CAIRN_TOKEN: SECRET }, failurePolicy: "continue", beforeEnd: logReport })).wait();
      const html = await readFile(join(dir, "artifacts", result.runId, "cairn", "report.html"), "utf8");
      expect(html).toContain("using ***");
      expect(html).toContain("bad token ***");
      expect(html).not.toContain(SECRET);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  /** The page's tags, in order, by name: what a mask must leave as it is. */
  const tagNames = (html: string) => [...html.matchAll(/<\/?([a-z][a-z0-9-]*)/gi)].map((m) => m[1]);
  /** What `EndingFlowRun.mask` does with these secrets. */
  const masking = (...secrets: string[]) => (text: string) => secrets.reduce((t, s) => t.replaceAll(s, "***"), text);

  it("masks the run's texts, not the page: a secret that is a word of the markup leaves every tag whole", async () => {
    const tracker = new LocalStore({ root });
    const plain = await buildReport(tracker, secondRunId);
    const html = await buildReport(tracker, secondRunId, { mask: masking("span", "full", "cached") });
    expect(plain).toContain('<span class="badge');
    expect(tagNames(html)).toEqual(tagNames(plain));
    expect(html).not.toContain("<***");
    // A task's state is the report's word, not the run's: its classes and counts stay.
    expect(html).toMatch(/class="chip st-cached" data-count="cached"[^>]*>2 cached</);
    // The run's texts are masked still: the failed task's stderr.
    expect(html).toContain("disk &lt;b&gt;***&lt;/b&gt; &amp; more");
    expect(html).not.toContain("full</b>");
  });

  it("masks the run's texts, not the page: a numeric secret leaves dates, times and the drawing as they are", async () => {
    const tracker = new LocalStore({ root });
    const data = await readReportData(tracker, secondRunId);
    const year = String(new Date(data.flow.startTime).getUTCFullYear());
    const plain = await buildReport(tracker, secondRunId);
    const html = await buildReport(tracker, secondRunId, { mask: masking(year) });
    expect(tagNames(html)).toEqual(tagNames(plain));
    const started = new Date(data.flow.startTime).toISOString().slice(0, 10);
    expect(html).toContain(`started ${started} `);
    expect(html).toMatch(new RegExp(`Written by cairn report at ${year}-`));
    // The drawing's coordinates are numbers of the page, not texts of the run.
    const coordinates = (page: string) => [...page.matchAll(/\s(x|y|x1|x2|y1|y2|width|height|d|points|viewBox|transform)="([^"]*)"/g)].map((m) => m[2]);
    expect(coordinates(html)).toEqual(coordinates(plain));
    // A text of the run that holds the number is masked: the nearest entry's date in a why.
    expect(html).toContain(`from ***-`);
  });

  it("a cancelled run says why in its record (cairn.cancel_reason) and its report's header, masked as errors are", async () => {
    const SECRET = "s3cr3t-cancel-token-0815";
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const hold = defineTask("hold").run(async (_, ctx) => {
      started();
      await new Promise((_r, fail) => ctx.signal.addEventListener("abort", () => fail(ctx.signal.reason), { once: true }));
      return {};
    });
    const f = flow("report-cancelled").build(() => (hold(), {}));
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-cancel-"));
    try {
      const run = await f.run({ root: dir, env: {}, cache: false, secrets: { CAIRN_TOKEN: SECRET }, beforeEnd: logReport });
      await running;
      const result = await run.cancel(`the deploy window closed (token ${SECRET})`);
      expect(result.status).toBe("cancelled");
      const record = await new LocalStore({ root: dir }).getRun(result.runId);
      expect(record?.status).toBe("KILLED");
      expect(record?.tags["cairn.cancel_reason"]).toBe("the deploy window closed (token ***)");
      const html = await readFile(join(dir, "artifacts", result.runId, "cairn", "report.html"), "utf8");
      expect(html).toContain('<p class="cancel-reason" data-cancel-reason>Cancelled: the deploy window closed (token ***)</p>');
      expect(html).not.toContain(SECRET);
      // Cancelled with no reason: no tag, and the header says nothing more than its status.
      const again = await f.run({ root: dir, env: {}, cache: false, beforeEnd: logReport });
      await running;
      const bare = await again.cancel();
      expect((await new LocalStore({ root: dir }).getRun(bare.runId))?.tags["cairn.cancel_reason"]).toBeUndefined();
      expect(await readFile(join(dir, "artifacts", bare.runId, "cairn", "report.html"), "utf8")).not.toContain("data-cancel-reason");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  /** A flow of 10,000 tasks in chains of 100, with a failure every 997. */
  const tenThousand = (): ReportData => {
    const tasks: ReportTask[] = [];
    for (let i = 0; i < 10_000; i++) tasks.push({ ...task(`t-${i}`, i, i + 50, i % 100 ? [`t-${i - (i % 100)}`] : []), task: `step-${i % 7}`, state: i % 997 === 0 ? "failed" : "succeeded" });
    return { ...second, tasks, flow: { ...second.flow, startTime: 0, endTime: 10_050 } };
  };

  it("stays useful and bounded for 10,000 tasks: grouped graph, kept rows, every bar", () => {
    const html = renderReport(tenThousand());
    expect(html).toContain("one node per task name");
    expect(html).toContain("Showing 1000 of 10000 tasks");
    expect((html.match(/<g class="node /g) ?? []).length).toBe(7);
    expect((html.match(/<details class="task /g) ?? []).length).toBe(1000);
    expect(html.length).toBeLessThan(6_000_000);
  });

  it("renders 10,000 tasks between turns of the event loop (~200 ms of CPU in one block once), to the same HTML", async () => {
    const data = tenThousand();
    // Turns the event loop makes while the report renders: each one something else of the process could run in.
    let turns = 0;
    let rendering = true;
    const turn = () => {
      if (!rendering) return;
      turns++;
      setImmediate(turn);
    };
    setImmediate(turn);
    const html = await renderReportInTurns(data);
    rendering = false;
    expect(html).toBe(renderReport(data));
    // Between its steps, and every 250 of its 5000 bars, 1000 rows and 1000 sections.
    expect(turns).toBeGreaterThanOrEqual(20);
  });
});

describe("finding what failed, and a flow still running", () => {
  const wide = (n: number, failedAt: number): ReportTask[] => {
    const tasks = Array.from({ length: n }, (_, i): ReportTask => ({ ...task(`leaf-${i}`, i, i + 5), task: "leaf", ...(i === failedAt ? { state: "failed" as const, error: { name: "Error", message: "leaf broke" } } : {}) }));
    tasks.push({ ...task("sum", n, n + 5, tasks.map((t) => t.id)), state: "skipped" });
    return tasks;
  };

  it("links each state's count and names the failed tasks at the top; a grouped node links to its failed task", () => {
    const tasks = wide(999, 777);
    const html = renderReport({ ...second, tasks, flow: { ...second.flow, startTime: 0, endTime: 2000, status: "FAILED" } });
    const anchorOf = (id: string) => new RegExp(`<details class="task st-\\w+" id="(t-\\d+)" data-task="${id}"`).exec(html)![1];
    const failedAnchor = anchorOf("leaf-777");
    expect(html).toContain(`<a class="chip st-failed" data-count="failed" href="#${failedAnchor}">1 failed</a>`);
    expect(html).toContain(`<p class="failed-list">Failed: <a href="#${failedAnchor}" data-failed="leaf-777">leaf-777</a></p>`);
    expect(html).toContain(`<a class="chip st-succeeded" data-count="succeeded" href="#${anchorOf("leaf-0")}">998 succeeded</a>`);
    // The graph groups the leaves into one red node: it leads to the failed leaf, not to the first.
    expect(html).toMatch(new RegExp(`<g class="node st-failed" data-task="g:leaf"[^>]*><a href="#${failedAnchor}">`));
    // The header comes before the graph: the failed task is reached from the top of the page.
    expect(html.indexOf('class="failed-list"')).toBeLessThan(html.indexOf('id="graph"'));
  });

  it("above the rows kept, lists the failed tasks first in the table", () => {
    const tasks = wide(1500, 1200);
    const html = renderReport({ ...second, tasks, flow: { ...second.flow, startTime: 0, endTime: 3000, status: "FAILED" } });
    expect(html).toContain("Showing 1000 of 1501 tasks: the failed ones first");
    const firstRow = /<tbody>\n<tr data-task="([^"]+)"/.exec(html)![1];
    expect(firstRow).toBe("leaf-1200");
  });

  it("read while the flow runs: a task that has not started is waiting, the one running is running", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const slow = defineTask("slow").run(async () => {
      started();
      await gate;
      return { v: 1 };
    });
    const after = defineTask("after").input<{ v: number }>().run(async ({ v }) => ({ v }));
    const f = flow("report-live").build(() => ({ v: after({ v: slow().v }).v }));
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-live-"));
    try {
      const run = await f.run({ root: dir, env: {}, cache: false });
      await running;
      // The flow's and the task's runs are written as they start: read until both are there.
      const read = async (): Promise<ReportData> => {
        for (;;) {
          const data = await readReportData(new LocalStore({ root: dir }), run.runId).catch((error: unknown) => (ReportRunError.is(error) ? undefined : Promise.reject(error)));
          if (data && byId(data, "slow")?.state === "running") return data;
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      const live = await read().finally(release);
      expect((await run.wait()).status).toBe("succeeded");
      expect(live.flow.status).toBe("RUNNING");
      expect(live.tasks.map((t) => [t.id, t.state])).toEqual([["slow", "running"], ["after", "waiting"]]);
      expect(byId(live, "after").why).toEqual(["not started yet: it had no run when the report was written"]);
    } finally {
      release();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a flow still running: tasks without a run are waiting, not running, and running bars end at the report's time", () => {
    const tasks: ReportTask[] = [
      { ...task("quick", 0, 100) },
      { ...task("slow", 100, 0), endTime: undefined, state: "running" },
      { ...task("after", 0, 0, ["slow"]), runId: "", endTime: undefined, attempts: 0, state: "waiting", why: ["not started yet: it had no run when the report was written"] },
    ];
    const { endTime: _, ...running } = second.flow;
    const html = renderReport({ ...second, generatedAt: 3100, tasks, flow: { ...running, startTime: 0, status: "RUNNING" } });
    expect(html).toContain(`<span class="chip st-waiting" data-count="waiting">1 waiting</span>`.replace("<span", "<a").replace("</span>", "</a>").replace(' data-count="waiting">', ` data-count="waiting" href="#t-2">`));
    expect(html).toContain("slow: running, ran 3.00 s");
    expect(html).not.toContain(`<g class="bar st-waiting" data-task="after"`);
    expect(html).toContain(`<g class="node st-waiting" data-task="after" data-state="waiting">`);
  });
});

function task(id: string, start: number, end: number, dependsOn: string[] = []): ReportTask {
  return { id, task: id, state: "succeeded", runId: id.padEnd(32, "0"), startTime: start, endTime: end, attempts: 1, attemptStarts: [], why: [], metrics: {}, params: {}, dependsOn, inputs: [] };
}

describe("maps and sweeps in the report", () => {
  it("collapses a map's items into its node with their counts, and ranks a sweep's trials by its selector", async () => {
    const square = defineTask("square")
      .input<{ x: number }>()
      .run(async ({ x }) => {
        if (x === 3) throw new Error("three is bad");
        return { y: x * x };
      });
    const fit = defineTask("fit")
      .input<{ lr: number; depth: number }>()
      .run(async ({ lr, depth }) => ({ score: depth * 10 + (lr === 0.1 ? 5 : 0) }));
    const f = flow("report-fanout").build(() => {
      const squares = map(square, { over: [1, 2, 3, 4], as: "x", minSuccess: 2 });
      const best = sweep(fit, { over: grid({ lr: [0.01, 0.1], depth: [1, 2] }), select: max("score") });
      return { squares: squares.outputs, best: best.params };
    });
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-fanout-"));
    try {
      const result = await (await f.run({ root: dir, env: {}, beforeEnd: logReport })).wait();
      expect(result.status).toBe("succeeded");
      const data = await readReportData(new LocalStore({ root: dir }), result.runId);
      const squares = data.tasks.find((t) => t.id === "square")!;
      expect(squares.group).toEqual({ kind: "map", items: 4 });
      const items = data.tasks.filter((t) => t.item?.node === "square");
      expect(items.map((t) => [t.id, t.item!.index, t.state])).toEqual([
        ["square[0]", 0, "succeeded"],
        ["square[1]", 1, "succeeded"],
        ["square[2]", 2, "failed"],
        ["square[3]", 3, "succeeded"],
      ]);
      const fitGroup = data.tasks.find((t) => t.id === "fit")!;
      expect(fitGroup.group).toMatchObject({ kind: "sweep", select: { order: "max", metric: "score" } });
      expect(data.tasks.filter((t) => t.item?.node === "fit").map((t) => [t.item!.key, t.score])).toEqual([
        ["depth=1,lr=0.01", 10],
        ["depth=2,lr=0.01", 20],
        ["depth=1,lr=0.1", 15],
        ["depth=2,lr=0.1", 25],
      ]);

      const html = renderReport(data);
      // One graph node per map, with its items' counts; none per item. Coloured by how the map
      // ended: it met minSuccess, so it succeeded (it was drawn failed, by its worst item); its
      // failed item is in its counts, marked red, and what the node links to.
      const node = /<g class="node st-succeeded[^"]*" data-task="square" data-state="succeeded" data-count="4">.*?<\/g>/.exec(html)?.[0] ?? "";
      expect(node).toContain(`<a href="#t-${data.tasks.findIndex((t) => t.id === "square[2]")}">`);
      expect(node).toContain(">3 succeeded · 1 failed</text>");
      expect(node).toContain('<circle class="failed-mark"');
      expect(node).toContain("<title>square (map) ×4: 3 succeeded · 1 failed</title>");
      // The sweep, whose trials all succeeded, has no mark.
      expect(/<g class="node st-succeeded[^"]*" data-task="fit"[^>]*>.*?<\/g>/.exec(html)?.[0]).not.toContain("failed-mark");
      expect(html).not.toMatch(/<g class="node [^"]*" data-task="square\[/);
      // A map's own run makes no attempt (its items do), as README says: its row and section say none, not 1.
      expect([squares.attempts, fitGroup.attempts]).toEqual([0, 0]);
      for (const id of ["square", "fit"]) {
        expect(new RegExp(`<tr data-task="${id}">(?:<td[^>]*>.*?</td>){4}<td class="num">([^<]*)</td>`).exec(html)?.[1], id).toBe("-");
        expect(new RegExp(`<details class="task st-succeeded" id="t-\\d+" data-task="${id}" data-state="succeeded">[^]*?<p class="meta">([^<]*)`).exec(html)?.[1], id).toMatch(/ · no attempt of its own \(its items make them\) · /);
      }
      expect(/<tr data-task="square\[0\]">(?:<td[^>]*>.*?<\/td>){4}<td class="num">([^<]*)<\/td>/.exec(html)?.[1]).toBe("1");
      // The leaderboard: best first, the best starred.
      const board = html.slice(html.indexOf('data-sweep="fit"'));
      const order = [...board.matchAll(/data-trial="([^"]+)"/g)].map((m) => m[1]);
      expect(order).toEqual(["fit[3]", "fit[1]", "fit[2]", "fit[0]"]);
      expect(fitGroup.group!.best).toBe("fit[3]");
      expect(board).toMatch(/<tr data-trial="fit\[3\]" class="best">.*★.*depth=2,lr=0\.1.*>25</);
      // Items have bars; the map's own run does not.
      expect(html).toContain('<g class="bar st-failed" data-task="square[2]"');
      expect(html).not.toContain('<g class="bar st-succeeded" data-task="square" ');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("ranks every trial of a sweep over 500 trials by the value each trial's run recorded, the real best first; without those values it does not claim the best", async () => {
    const big = defineTask("big")
      .input<{ a: number; b: number }>()
      .run(({ a, b }) => ({ score: a * 100 + b }));
    const f = flow("report-big-sweep").build(() => ({ trial: sweep(big, { over: grid({ a: Array.from({ length: 30 }, (_, i) => i), b: Array.from({ length: 20 }, (_, i) => i) }), select: max("score") }).trial }));
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-big-"));
    try {
      const result = await (await f.run({ root: dir, env: {}, cache: false })).wait();
      expect(result.outputs!.trial).toBe("big[599]");
      const store = new LocalStore({ root: dir });
      const data = await readReportData(store, result.runId);
      expect(data.tasks.filter((t) => t.item?.node === "big" && t.score === undefined)).toEqual([]);
      const board = (html: string) => html.slice(html.indexOf('data-sweep="big"'));
      const html = board(renderReport(data));
      expect([...html.matchAll(/data-trial="([^"]+)"/g)].slice(0, 3).map((m) => m[1])).toEqual(["big[599]", "big[598]", "big[597]"]);
      expect(html).toMatch(/<tr data-trial="big\[599\]" class="best">.*★/);
      expect(html).toContain("The best 100 of 600 trials.");

      // Runs recorded before trials logged their metric or tag: the report reads 500 trials' outputs, the best first, and says the rest were not read.
      const before = new Proxy(store, {
        get(target, key) {
          if (key === "searchRuns") return async (filter: Parameters<LocalStore["searchRuns"]>[0]) => (await target.searchRuns(filter)).map((r) => (r.tags["cairn.parent_node"] ? { ...r, metrics: {}, tags: withoutValue(r.tags) } : r));
          const value = Reflect.get(target, key) as unknown;
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const old = await readReportData(before, result.runId);
      expect(old.tasks.find((t) => t.id === "big")!.group!.unread).toBe(100);
      expect(old.tasks.find((t) => t.id === "big[599]")!.score).toBe(2919);
      const oldHtml = board(renderReport(old));
      expect(oldHtml).toMatch(/<tr data-trial="big\[599\]" class="best">.*★/);
      expect(oldHtml).not.toContain("The best");
      expect(oldHtml).toContain("Ranked by the 500 trials whose value was read, of 600; the value of 100 was not");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("says how many trials were ranked by their own value: not those ranked by their metric, nor those without a value", async () => {
    const fit = defineTask("fit")
      .input<{ k: number }>()
      .run(async ({ k }) => {
        if (k === 2) throw new Error("two is bad");
        return { score: k };
      });
    const f = flow("report-scored").build(() => ({ trial: sweep(fit, { over: grid({ k: [0, 1, 2] }), select: max("score"), minSuccess: 1 }).trial }));
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-scored-"));
    try {
      const result = await (await f.run({ root: dir, env: {}, cache: false })).wait();
      const data = await readReportData(new LocalStore({ root: dir }), result.runId);
      const trials = data.tasks.filter((t) => t.item?.node === "fit");
      expect(trials.map((t) => [t.id, t.score, t.scoreFrom])).toEqual([
        ["fit[0]", 0, "value"],
        ["fit[1]", 1, "value"],
        ["fit[2]", undefined, undefined],
      ]);
      // fit[0] as a trial past the 500 whose outputs a report reads: ranked by its metric, its value not read.
      const past = trials[0]!;
      past.scoreFrom = "metric";
      data.tasks.find((t) => t.id === "fit")!.group!.unread = 1;
      const html = renderReport(data);
      // Before: "Ranked by the 2 trials", the failed trial and the one ranked by its metric counted as read.
      expect(html).toContain("Ranked by the 1 trial whose value was read, of 3; the value of 1 was not");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("ranks trials by their selected output, not a per-epoch metric of the same name; a run recorded before trials were tagged with it, by its outputs", async () => {
    // val_loss per epoch, the output its best: by the last epoch's value, curve[1]'s trial (0.5) would beat curve[0]'s (0.8).
    const curves = [
      [0.9, 0.2, 0.8],
      [0.9, 0.4, 0.5],
    ];
    const epochs = defineTask("epochs")
      .input<{ k: number }>()
      .run(({ k }, ctx) => {
        curves[k]!.forEach((v, epoch) => ctx.log.metric("val_loss", v, epoch));
        return { val_loss: Math.min(...curves[k]!) };
      });
    const f = flow("report-epochs").build(() => ({ trial: sweep(epochs, { over: grid({ k: [0, 1] }), select: min("val_loss") }).trial }));
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-epochs-"));
    try {
      const result = await (await f.run({ root: dir, env: {}, cache: false })).wait();
      expect(result.outputs!.trial).toBe("epochs[0]");
      const store = new LocalStore({ root: dir });
      const order = async (tracker: LocalStore) => {
        const data = await readReportData(tracker, result.runId);
        const board = renderReport(data).split('data-sweep="epochs"')[1]!;
        return { scores: data.tasks.filter((t) => t.item).map((t) => [t.id, t.score]), rows: [...board.matchAll(/data-trial="([^"]+)"/g)].map((m) => m[1]) };
      };
      expect(await order(store)).toEqual({ scores: [["epochs[0]", 0.2], ["epochs[1]", 0.4]], rows: ["epochs[0]", "epochs[1]"] });
      // As such a run was recorded before: no tag, and the output at step 0 under the epochs' points, so its latest value the last epoch's.
      const before = new Proxy(store, {
        get(target, key) {
          if (key === "searchRuns") {
            return async (filter: Parameters<LocalStore["searchRuns"]>[0]) =>
              (await target.searchRuns(filter)).map((r) => (r.tags["cairn.parent_node"] ? { ...r, metrics: { val_loss: curves[Number(r.tags["cairn.item"])]!.at(-1)! }, tags: withoutValue(r.tags) } : r));
          }
          const value = Reflect.get(target, key) as unknown;
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      expect(await order(before)).toEqual({ scores: [["epochs[0]", 0.2], ["epochs[1]", 0.4]], rows: ["epochs[0]", "epochs[1]"] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a sweep stopped by stopWhen ranks the trials up to the one that stopped it, and names the ones started meanwhile as not counted", async () => {
    // probe[0] meets stopWhen but ends last; probe[1] and probe[2] score higher and end first.
    const probe = defineTask("probe")
      .input<{ i: number }>()
      .run(async ({ i }) => (await new Promise((r) => setTimeout(r, i === 0 ? 200 : 5)), { score: i === 0 ? 1 : 5 + i }));
    const f = flow("report-stopped").build(() => ({
      trial: sweep(probe, { over: grid({ i: [0, 1, 2] }), select: max("score"), stopWhen: (o) => o.score <= 1, concurrency: 3 }).trial,
    }));
    const dir = await mkdtemp(join(tmpdir(), "cairn-report-stopped-"));
    try {
      const result = await (await f.run({ root: dir, env: {}, beforeEnd: logReport })).wait();
      expect(result.outputs!.trial).toBe("probe[0]");
      const data = await readReportData(new LocalStore({ root: dir }), result.runId);
      expect(data.tasks.find((t) => t.id === "probe")!.group).toMatchObject({ best: "probe[0]", stoppedAt: "probe[0]" });
      const html = renderReport(data);
      const board = html.slice(html.indexOf('data-sweep="probe"'));
      expect([...board.matchAll(/data-trial="([^"]+)"/g)].map((m) => m[1])).toEqual(["probe[0]"]);
      expect(board).toContain("Sweep probe: 1 trial<");
      expect([...board.matchAll(/data-past-trial="([^"]+)"/g)].map((m) => m[1])).toEqual(["probe[1]", "probe[2]"]);
      expect(board).toContain("Stopped at probe[0], the first trial to meet stopWhen.");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** A trial run's tags as a run recorded before trials were tagged with their value. */
function withoutValue(tags: Record<string, string>): Record<string, string> {
  const { "cairn.sweep.value": _, ...rest } = tags;
  return rest;
}
