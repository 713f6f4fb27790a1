/**
 * How the report draws what real runs recorded, where a reviewer who loaded it in Chromium found
 * it wrong: bars ended at their run record's closing rather than at the end of their task's work,
 * links that do nothing in MLflow's sandboxed artifact view, a flow of no tasks, a cancelled map's
 * duration and its count while it runs, a map's counts line cut off by its node's edge, a wide
 * flow of distinct task names, a condition's edge, and a table of a thousand rows.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalStore, type RunStatus, type TrackerCapabilities } from "@cairn/core";
import { criticalPath, layoutTimeline, logReport, readReportData, renderReport, REPORT_ARTIFACT, type ReportData, type ReportTask } from "@cairn/report";
import { flow, map, task as defineTask } from "cairn-dag";
import { duration, runTime } from "../src/render.ts";
import { launchChromium } from "./chromium.ts";

const cairnBin = resolve(import.meta.dirname, "../../cli/bin/cairn.mjs");

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "cairn-report-drawing-"));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * The embedded store, closing each run `lateMs` after it is asked to, and said to be remote so that
 * a succeeded task's run is closed beside its dependants: as with an MLflow server, where a run is
 * closed once its outputs are uploaded and its cache entry stored.
 */
class LateClosingStore extends LocalStore {
  // Set after LocalStore's own, from it.
  override readonly capabilities: TrackerCapabilities = Object.freeze({ ...(this as LocalStore).capabilities, remote: true });
  constructor(
    options: { root: string },
    private readonly lateMs: number,
  ) {
    super(options);
  }
  override async endRun(runId: string, status: Exclude<RunStatus, "RUNNING" | "SCHEDULED">, endTime?: number): Promise<void> {
    await new Promise((done) => setTimeout(done, this.lateMs));
    return super.endRun(runId, status, endTime);
  }
}

describe("the timeline of tasks whose records closed after their work", () => {
  it("ends each bar where its task's work ended: a chain of 10 is one lane, each bar as long as its run time, and the critical path is the chain", async () => {
    const step = defineTask("step")
      .input<{ x: number }>()
      .run(async ({ x }) => {
        await new Promise((done) => setTimeout(done, 20));
        return { x: x + 1 };
      });
    const square = defineTask("square")
      .input<{ x: number }>()
      .run(async ({ x }) => {
        await new Promise((done) => setTimeout(done, 20));
        return { y: x * x };
      });
    const list = defineTask("list")
      .input<{ x: number }>()
      .run(async ({ x }) => ({ xs: [x, x + 1, x + 2] }));
    const f = flow("report-chain").build(() => {
      let out = step({ x: 0 });
      for (let i = 1; i < 10; i++) out = step({ x: out.x });
      const squares = map(square, { over: list({ x: out.x }).xs, as: "x" });
      return { squares: squares.outputs };
    });
    const dir = join(root, "chain");
    const tracker = new LateClosingStore({ root: dir }, 150);
    const result = await (await f.run({ root: dir, env: {}, cache: false, tracker })).wait();
    expect(result.status).toBe("succeeded");
    const data = await readReportData(new LocalStore({ root: dir }), result.runId);
    const steps = data.tasks.filter((t) => t.task === "step");
    expect(steps).toHaveLength(10);
    // The fault is there: each record closed well after its work, and after the next step began.
    for (const t of steps) expect(t.endTime! - t.startTime - t.durationMs!, t.id).toBeGreaterThanOrEqual(140);
    const timeline = layoutTimeline(data.tasks, data.flow.startTime, data.flow.endTime);
    const rows = new Set(timeline.bars.filter((b) => b.task.task === "step").map((b) => b.row));
    expect([...rows], "one lane: no step overlaps the one it depends on").toEqual([0]);
    // Back from the map, which ended with its last item, through the chain: graph nodes only, each ringed.
    expect(criticalPath(data.tasks)).toEqual([...steps.map((t) => t.id), "list", "square"]);
    // Each bar is drawn from its run's start to its start plus its run time, the figure its tooltip and the table give.
    const html = renderReport(data);
    const span = timeline.end - timeline.start;
    for (const t of steps) {
      const bar = new RegExp(`<g class="bar st-succeeded" data-task="${t.id}"[^>]*>.*?<rect class="r" data-attempt="1" x="[\\d.]+" y="\\d+" width="([\\d.]+)"`).exec(html);
      expect(bar, t.id).not.toBeNull();
      expect(Number(bar![1]), t.id).toBeCloseTo(Math.max((t.durationMs! / span) * 980, 1), 0);
    }
  }, 60_000);
});

/** A flow run of three tasks as read from a server whose UI is at `ui`: every run linked to its page. */
function linkedRun(ui: string): ReportData {
  const T0 = Date.UTC(2026, 0, 1);
  const run = (id: string, start: number, more: Partial<ReportTask> = {}): ReportTask => ({
    id,
    task: id,
    state: "succeeded",
    runId: id.padEnd(32, "0"),
    url: `${ui}/#/experiments/1/runs/${id.padEnd(32, "0")}`,
    startTime: T0 + start,
    endTime: T0 + start + 10,
    durationMs: 10,
    attempts: 1,
    attemptStarts: [],
    why: [],
    metrics: {},
    params: {},
    dependsOn: [],
    inputs: [],
    ...more,
  });
  return {
    flow: { runId: "f".repeat(32), name: "linked", status: "FINISHED", experimentId: "1", startTime: T0, endTime: T0 + 40, url: `${ui}/#/experiments/1/runs/${"f".repeat(32)}`, params: {}, metrics: {}, trackerUri: ui },
    tasks: [run("load", 0), run("hit", 10, { state: "cached", dependsOn: ["load"], cachedFrom: { runId: "s".repeat(32), url: `${ui}/#/experiments/1/runs/${"s".repeat(32)}` } }), run("fit", 20, { dependsOn: ["hit"] })],
    generatedAt: T0 + 50,
  };
}

describe("the report in MLflow's artifact view", () => {
  it("opens a run's page in a new tab; in MLflow's sandboxed frame the click is refused and the report stays, instead of MLflow's UI loading inside the frame", async () => {
    const ui = "http://mlflow.test";
    const html = renderReport(linkedRun(ui));
    const links = [...html.matchAll(/<a href="http:\/\/mlflow\.test[^"]*"[^>]*>/g)].map((m) => m[0]);
    expect(links.length).toBeGreaterThanOrEqual(5); // the flow run, each task's in the table and its section, the hit's source run
    for (const link of links) expect(link).toMatch(/ target="_blank" rel="noopener" /);
    // MLflow's artifact view: the file in an iframe from a blob: URL, sandbox="allow-scripts" (its 930.*.chunk.js).
    const browser = await launchChromium({ javaScriptEnabled: true });
    try {
      const requests: string[] = [];
      await browser.context.route(`${ui}/**`, (route) => {
        requests.push(route.request().url());
        return route.fulfill({ contentType: "text/html", body: "<title>MLflow</title><h1>MLflow UI</h1>" });
      });
      const page = await browser.context.newPage();
      await page.goto(`${ui}/artifact-view`);
      requests.length = 0;
      // As the page's own script (this test's types have no DOM).
      await page.evaluate(`new Promise((done) => {
        const frame = document.createElement("iframe");
        frame.setAttribute("sandbox", "allow-scripts");
        frame.src = URL.createObjectURL(new Blob([${JSON.stringify(html)}], { type: "text/html" }));
        frame.addEventListener("load", done, { once: true });
        document.body.append(frame);
      })`);
      const report = page.frames().find((f) => f.url().startsWith("blob:"))!;
      expect(await report.locator("h1").textContent()).toContain("linked");
      await report.locator('header .meta a[target="_blank"]').click();
      await page.waitForTimeout(500);
      expect(requests, "nothing loaded in place of the report").toEqual([]);
      expect(page.frames().find((f) => f !== page.mainFrame())!.url()).toMatch(/^blob:/);
      expect(await report.locator("h1").textContent()).toContain("linked");
      await page.close();

      // Opened on its own (downloaded, or written by cairn report), the run's page opens beside it.
      const direct = await browser.context.newPage();
      await direct.setContent(html);
      const [opened] = await Promise.all([browser.context.waitForEvent("page"), direct.locator('#tasks tr[data-task="fit"] a[target="_blank"]').click()]);
      await opened.waitForLoadState();
      expect(opened.url()).toBe(`${ui}/#/experiments/1/runs/${"fit".padEnd(32, "0")}`);
      expect(await direct.locator("h1").textContent()).toContain("linked");
    } finally {
      await browser.close();
    }
  }, 120_000);
});

describe("a flow of no tasks", () => {
  it("has no graph drawn, not one of infinite size, in its first run's report or the next's (whose layout would be the kept one)", async () => {
    const f = flow("report-empty").build(() => ({}));
    const dir = join(root, "empty");
    for (const run of [1, 2]) {
      const result = await (await f.run({ root: dir, env: {}, beforeEnd: logReport })).wait();
      expect(result.status, `run ${run}`).toBe("succeeded");
      const html = await readFile(join(dir, "artifacts", result.runId, ...REPORT_ARTIFACT.split("/")), "utf8");
      expect(html, `run ${run}`).not.toMatch(/(width|height|viewBox)="[^"]*(Infinity|null|NaN)/);
      expect(html, `run ${run}`).not.toContain('class="graph');
      expect(html, `run ${run}`).toContain('<p class="note">The flow has no task.</p>');
    }
  }, 60_000);
});

describe("a cancelled map", () => {
  it("has the run time the run's summary gave it, in the report and in cairn show, as a map that finished has: its run makes no attempt of its own", async () => {
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const hold = defineTask("hold")
      .input<{ x: number }>()
      .run(async (_, ctx) => {
        started();
        await new Promise((_r, fail) => ctx.signal.addEventListener("abort", () => fail(ctx.signal.reason), { once: true }));
        return {};
      });
    const f = flow("report-cancelled-map").build(() => ({ held: map(hold, { over: [1, 2, 3, 4], as: "x" }).outputs }));
    const dir = join(root, "cancelled-map");
    const run = await f.run({ root: dir, env: {}, cache: false });
    await running;
    await new Promise((done) => setTimeout(done, 200));
    const result = await run.cancel();
    expect(result.status).toBe("cancelled");
    const data = await readReportData(new LocalStore({ root: dir }), result.runId);
    const group = data.tasks.find((t) => t.id === "hold")!;
    expect(group).toMatchObject({ state: "cancelled", attempts: 0, group: { kind: "map" } });
    // The figure of the run's summary (its result's), from its list to its last item's end, which its run records.
    const said = result.tasks["hold"]!.durationMs!;
    expect(said).toBeGreaterThanOrEqual(150);
    expect(group.durationMs).toBeCloseTo(said, 1);
    expect(runTime(group)).toBe(group.durationMs);
    const html = renderReport(data);
    expect(html).toContain(`<tr data-task="hold"><td><a href="#t-0">hold</a></td><td><span class="chip st-cancelled">cancelled</span></td><td class="num">${duration(said)}</td>`);
    // cairn show's row of the map: the same, not "-".
    const { stdout } = await promisify(execFile)(process.execPath, [cairnBin, "show", result.runId, "--root", dir], { env: { ...process.env, NO_COLOR: "1", MLFLOW_TRACKING_URI: "" } });
    const row = stdout.split("\n").find((line) => /^hold\s/.test(line));
    expect(row, stdout).toMatch(new RegExp(`^hold\\s+KILLED\\s+${Math.round(said)}ms\\s`));
  }, 60_000);
});

describe("a map read while it runs", () => {
  it("counts its whole list from its run's start: a map of 8, four at a time, is ×8 with 4 running and 4 waiting, not ×4", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const hold = defineTask("hold")
      .input<{ x: number }>()
      .run(async ({ x }) => {
        await gate;
        return { x };
      });
    const f = flow("report-live-map").build(() => ({ held: map(hold, { over: [1, 2, 3, 4, 5, 6, 7, 8], as: "x" }).outputs }));
    const dir = join(root, "live-map");
    const run = await f.run({ root: dir, env: {}, cache: false, concurrency: 4 });
    try {
      // The runs are written as they start: read until the four items are running.
      let live: ReportData | undefined;
      for (let i = 0; i < 200 && !live; i++) {
        const data = await readReportData(new LocalStore({ root: dir }), run.runId).catch(() => undefined);
        if (data && data.tasks.filter((t) => t.item && t.state === "running").length === 4) live = data;
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(live, "four items running").toBeDefined();
      expect(live!.tasks.find((t) => t.id === "hold")).toMatchObject({ state: "running", group: { kind: "map", items: 8 } });
      const html = renderReport(live!);
      const node = /<g class="node st-running[^"]*" data-task="hold"[^>]*>.*?<\/g>/.exec(html)?.[0] ?? "";
      expect(node).toContain(">hold (map) ×8</text>");
      expect(node).toContain(">4 running · 4 waiting</text>");
    } finally {
      release();
    }
    expect((await run.wait()).status).toBe("succeeded");
  }, 60_000);
});

/**
 * Where each graph node's counts line ends, and its box's right edge, measured by Chromium in the
 * report as written: a line that runs past its box is cut off by the next node or the edge of the graph.
 */
async function countsInNodes(html: string): Promise<Array<{ task: string; state: string; counts: string; textRight: number; boxRight: number; failedMark: boolean }>> {
  const browser = await launchChromium({ javaScriptEnabled: true });
  try {
    const page = await browser.context.newPage();
    await page.setContent(html);
    // As the page's own script (this test's types have no DOM).
    return await page.evaluate(`[...document.querySelectorAll("svg.graph g.node")].filter((g) => g.querySelector("text.counts")).map((g) => {
      const text = g.querySelector("text.counts").getBBox();
      const box = g.querySelector("rect:not(.ring)").getBBox();
      return { task: g.getAttribute("data-task"), state: g.getAttribute("data-state"), counts: g.querySelector("text.counts").textContent, textRight: text.x + text.width, boxRight: box.x + box.width, failedMark: !!g.querySelector("circle.failed-mark") };
    })`);
  } finally {
    await browser.close();
  }
}

describe("a map's counts under its node", () => {
  it("are read whole: a map of 200 items, 19 cached, 12 failed and 169 succeeded, has a node as wide as its counts line, as Chromium draws it", async () => {
    const square = defineTask("square")
      .input<{ x: number }>()
      .run(async ({ x }) => {
        if (x >= 19 && x % 15 === 0) throw new Error(`${x} is refused`);
        return { y: x * x };
      });
    const squares = (n: number) => flow("report-counts").build(() => ({ ys: map(square, { over: Array.from({ length: n }, (_, i) => i), as: "x", minSuccess: 0.5 }).outputs }));
    const dir = join(root, "counts");
    // The first 19 items, cached by a run before.
    expect((await (await squares(19).run({ root: dir, env: {} })).wait()).status).toBe("succeeded");
    const result = await (await squares(200).run({ root: dir, env: {}, beforeEnd: logReport })).wait();
    expect(result.status).toBe("succeeded");
    const html = await readFile(join(dir, "artifacts", result.runId, ...REPORT_ARTIFACT.split("/")), "utf8");
    const [node, ...others] = await countsInNodes(html);
    expect(others).toEqual([]);
    expect(node!.task).toBe("square");
    // It met minSuccess: drawn as succeeded (it was drawn failed, by its worst item), its failed items marked.
    expect(node).toMatchObject({ state: "succeeded", failedMark: true });
    expect(node!.counts.split(" · ").sort()).toEqual(["12 failed", "169 succeeded", "19 cached"]);
    // Before, the box was sized by the label only, and the line ran 30 px past it: "19 cached · 12 failed · 169 succe".
    expect(node!.textRight, `${node!.counts}: its line ends at ${node!.textRight}, its box at ${node!.boxRight}`).toBeLessThanOrEqual(node!.boxRight - 4);
  }, 120_000);

  it("are said in short words when in full they would make a node wider than 400 px, and are read whole then too; the tooltip says them in full", async () => {
    const T0 = Date.UTC(2026, 0, 1);
    const at = (id: string, more: Partial<ReportTask>): ReportTask => ({ id, task: "fit", state: "succeeded", runId: id.padEnd(32, "0"), startTime: T0, endTime: T0 + 10, durationMs: 10, attempts: 1, attemptStarts: [], why: [], metrics: {}, params: {}, dependsOn: [], inputs: [], ...more });
    // A map stopped by a SIGINT, and one of 12,000 items stopped by a failure with items in five states and some never begun.
    const stopped = [at("small", { state: "cancelled", attempts: 0, group: { kind: "map", items: 20 } })];
    for (let i = 0; i < 12; i++) stopped.push(at(`small[${i}]`, { item: { node: "small", index: i }, ...(i >= 8 ? { state: "cancelled" } : {}) }));
    const states = ["succeeded", "cached", "failed", "skipped", "cancelled"] as const;
    const big = [at("big", { state: "failed", attempts: 0, group: { kind: "map", items: 12_000 } })];
    for (let i = 0; i < 10_000; i++) big.push(at(`big[${i}]`, { item: { node: "big", index: i }, state: states[i % 5]!, ...(i % 5 === 3 ? { attempts: 0 } : {}) }));
    const data: ReportData = { ...linkedRun("http://mlflow.test"), tasks: [...stopped, ...big] };
    const html = renderReport(data);
    const nodes = Object.fromEntries((await countsInNodes(html)).map((n) => [n.task, n]));
    expect(nodes["small"]!.counts).toBe("8 succeeded · 4 cancelled · 8 not started");
    expect(nodes["big"]!.counts).toBe("2000 ok · 2000 hit · 2000 fail · 2000 skip · 2000 cancel · 2000 unstarted");
    for (const n of Object.values(nodes)) expect(n.textRight, `${n.counts}: its line ends at ${n.textRight}, its box at ${n.boxRight}`).toBeLessThanOrEqual(n.boxRight - 4);
    expect(html).toContain("<title>big (map) ×12000: 2000 succeeded · 2000 cached · 2000 failed · 2000 skipped · 2000 cancelled · 2000 not started</title>");
  }, 120_000);
});

describe("a wide flow of distinct task names", () => {
  it("draws no graph of 350 independent tasks, each its own name (one column 17,500 px tall), and says why; 300 are drawn", async () => {
    const dir = join(root, "wide");
    const wide = (n: number) =>
      flow(`report-wide-${n}`).build(() => {
        for (let i = 0; i < n; i++) defineTask(`job-${i}`).run(async () => ({ i }))();
        return {};
      });
    for (const [n, drawn] of [[350, false], [300, true]] as const) {
      const result = await (await wide(n).run({ root: dir, env: {}, cache: false, beforeEnd: logReport })).wait();
      expect(result.status).toBe("succeeded");
      const html = await readFile(join(dir, "artifacts", result.runId, ...REPORT_ARTIFACT.split("/")), "utf8");
      if (drawn) {
        expect(html).toContain('<svg class="graph');
        expect((html.match(/<g class="node /g) ?? []).length).toBe(300);
      } else {
        expect(html).not.toContain('class="graph');
        expect(html).toContain(`<p class="note">350 tasks in 350 task names: too many to draw; the timeline and the table below have them all.</p>`);
        expect((html.match(/<g class="bar /g) ?? []).length).toBe(350);
      }
    }
  }, 120_000);
});

describe("the task table of a thousand rows", () => {
  it("scrolls in a box no taller than the window, its header kept in sight, its horizontal scrollbar reached without scrolling the page 25,000 px", async () => {
    const T0 = Date.UTC(2026, 0, 1);
    const metrics = Object.fromEntries(Array.from({ length: 8 }, (_, k) => [`a-rather-long-metric-name-${k}`, 1234.5678]));
    const data = linkedRun("http://mlflow.test");
    data.tasks = Array.from({ length: 1000 }, (_, i): ReportTask => ({ ...data.tasks[0]!, id: `step-${i}`, task: "step", runId: String(i).padStart(32, "0"), startTime: T0 + i, endTime: T0 + i + 5, metrics }));
    const browser = await launchChromium({ javaScriptEnabled: false });
    try {
      const page = await browser.context.newPage();
      await page.setContent(renderReport(data));
      const box = page.locator("#tasks .scroll");
      const viewport = page.viewportSize()!;
      const size = await box.boundingBox();
      expect(size!.height).toBeLessThanOrEqual(viewport.height);
      // Wider than the page: it scrolls sideways, and the scrollbar is at the box's bottom, on screen with it.
      expect(await box.evaluate((el) => [el.scrollWidth > el.clientWidth, el.scrollHeight > el.clientHeight])).toEqual([true, true]);
      await box.evaluate((el) => el.scrollTo(el.scrollWidth, el.scrollHeight / 2));
      const head = await page.locator("#tasks th").last().boundingBox();
      const after = await box.boundingBox();
      expect(Math.abs(head!.y - after!.y)).toBeLessThanOrEqual(2); // the header stays at the box's top
      expect(await page.locator("#tasks th").last().textContent()).toBe("run");
    } finally {
      await browser.close();
    }
  }, 120_000);
});

describe("edges of a condition and of a map's list", () => {
  it("are labelled by what they carry, `if go` and `over xs`, not `(after)` as an edge of .after() alone is", async () => {
    const check = defineTask("check").run(async () => ({ go: true }));
    const list = defineTask("list").run(async () => ({ xs: [1, 2] }));
    const deploy = defineTask("deploy").run(async () => ({ done: true }));
    const square = defineTask("square")
      .input<{ x: number }>()
      .run(async ({ x }) => ({ y: x * x }));
    const tidy = defineTask("tidy").run(async () => ({}));
    const f = flow("report-edges").build(() => {
      const c = check();
      const d = deploy({}, { if: c.go });
      tidy({}, { after: [d] });
      return { squares: map(square, { over: list().xs, as: "x" }).outputs };
    });
    const dir = join(root, "edges");
    const result = await (await f.run({ root: dir, env: {}, cache: false, beforeEnd: logReport })).wait();
    expect(result.status).toBe("succeeded");
    const html = await readFile(join(dir, "artifacts", result.runId, ...REPORT_ARTIFACT.split("/")), "utf8");
    const label = (from: string, to: string) => new RegExp(`<g class="edge[^"]*" data-from="${from}" data-to="${to}">.*?<text [^>]*>([^<]*)</text>`).exec(html)?.[1];
    expect(label("check", "deploy")).toBe("if go");
    expect(label("list", "square")).toBe("over xs");
    expect(label("deploy", "tidy")).toBe("(after)");
  }, 60_000);
});
