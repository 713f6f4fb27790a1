/**
 * Reports rendered in a real headless Chromium, with JavaScript off: two `cairn run`s of the demo
 * flow (a success, cache hits, a failure with a log tail, a skip, a retry) log their reports, and
 * `cairn report` writes one for a past run. The DOM has one graph node per task with its state,
 * the timeline's bars (the retried task's two attempts), the cache hits, the reasons and the log
 * tail as text; a screenshot is taken; and no request leaves the file.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrowserContext, Page } from "playwright-core";
import type { ReportData, ReportTask } from "../src/report-data.ts";
import { duration, renderReport } from "../src/render.ts";
import { launchChromium } from "./chromium.ts";

const repo = resolve(import.meta.dirname, "../../..");
const cairnBin = join(repo, "packages/cli/bin/cairn.mjs");
const flowFile = join(import.meta.dirname, "fixtures/demo.flow.ts");

let dir: string;
let browser: { context: BrowserContext; close(): Promise<void> };
let logged: string;
let stdout: string;

async function cairn(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [cairnBin, ...args], { cwd: dir, env: { ...process.env, NO_COLOR: "1", MLFLOW_TRACKING_URI: "", ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Opens `file`, recording every request the page makes. */
async function open(file: string): Promise<{ page: Page; requests: string[] }> {
  const page = await browser.context.newPage();
  const requests: string[] = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
  return { page, requests };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-report-browser-"));
  const root = join(dir, ".cairn");
  const runs = [await cairn(["run", flowFile, "--root", root, "--failure-policy", "continue", "-p", "n=1"])];
  runs.push(await cairn(["run", flowFile, "--root", root, "--failure-policy", "continue", "-p", "n=2"]));
  for (const r of runs) expect(r.code, r.stderr).toBe(1); // boom fails
  stdout = runs[1]!.stdout;
  logged = /^Report: (.+)$/m.exec(stdout)?.[1] ?? "";
  browser = await launchChromium({ javaScriptEnabled: false });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("a run's report in headless Chromium", () => {
  it("is logged by cairn run as the flow run's cairn/report.html, and the CLI says where", async () => {
    expect(logged).toMatch(/\.cairn\/artifacts\/[0-9a-f]{32}\/cairn\/report\.html$/);
    expect((await stat(logged)).size).toBeGreaterThan(1000);
  });

  it("shows one graph node per task with its state, the critical path, and the edges' outputs", async () => {
    const { page } = await open(logged);
    const nodes = await page.locator("svg.graph g.node").evaluateAll((els) => els.map((el) => [el.getAttribute("data-task"), el.getAttribute("data-state")]));
    expect(Object.fromEntries(nodes as [string, string][])).toEqual({
      prepare: "succeeded",
      steady: "cached",
      flaky: "succeeded",
      boom: "failed",
      after: "skipped",
      echo: "cached",
    });
    expect(await page.locator("svg.graph g.node.crit").count()).toBeGreaterThan(0);
    const labels = await page.locator("svg.graph g.edge text").allTextContents();
    expect(labels).toEqual(expect.arrayContaining(["value", "constant", "stdout"]));
    const box = await page.locator("svg.graph").boundingBox();
    expect(box!.width).toBeGreaterThan(200);
    await page.close();
  });

  it("draws the timeline: a bar per task that ran, the retry's two attempts, a mark per cache hit", async () => {
    const { page } = await open(logged);
    const bars = await page.locator("svg.timeline g.bar").evaluateAll((els) => els.map((el) => el.getAttribute("data-task")));
    expect(bars.sort()).toEqual(["boom", "flaky", "prepare"]);
    expect(await page.locator('svg.timeline g.bar[data-task="flaky"] rect.r').count()).toBe(2);
    expect(await page.locator('svg.timeline g.bar[data-task="flaky"] rect.rt').count()).toBe(1);
    expect(await page.locator('svg.timeline g.bar[data-task="flaky"]').getAttribute("data-attempts")).toBe("2");
    expect(await page.locator("svg.timeline g.hit").count()).toBe(2);
    // Its legend has a key of each colour a run is drawn in, as Chromium paints them: it said green was "running" while
    // the bars are coloured by how their tasks ended (the failed boom is red).
    // As the page's own script (this test's types have no DOM).
    const drawn = await page.evaluate<string[][]>(`[...document.querySelectorAll("svg.timeline g.bar")].map((el) => [el.getAttribute("data-state"), getComputedStyle(el.querySelector("rect.r:not(.rt)")).fill])`);
    const keys = await page.evaluate<string[][]>(`[...document.querySelectorAll("#timeline .note .key.r")].map((el) => [el.getAttribute("data-state"), getComputedStyle(el).backgroundColor, el.nextSibling.textContent.split("·")[0].trim()])`);
    expect(Object.fromEntries(keys.map(([state, colour]) => [state, colour]))).toEqual(Object.fromEntries(drawn));
    expect(keys.map(([state, , words]) => [state, words])).toEqual([
      ["succeeded", "succeeded"],
      ["failed", "failed"],
    ]);
    expect(new Set(drawn.map(([, colour]) => colour)).size).toBe(2);
    await page.close();
  });

  it("says why each task ran, and shows the failure's error and log tail as text", async () => {
    const { page } = await open(logged);
    expect(await page.locator('details[data-task="prepare"] .why-text').textContent()).toContain("input `n` changed from 1 to 2");
    expect(await page.locator('details[data-task="steady"] .why-text').textContent()).toMatch(/^cached: a cache entry for these inputs and code exists, from run [0-9a-f]{32}/);
    expect(await page.locator('details[data-task="after"] .why-text').textContent()).toBe('skipped: upstream task "boom" failed');
    const boom = page.locator('details[data-task="boom"]');
    expect(await boom.getAttribute("open")).not.toBeNull();
    expect(await boom.locator(".log-tail").textContent()).toContain("disk <b>full</b> & more");
    expect(await boom.locator(".log-tail b").count()).toBe(0);
    expect(await page.locator('details[data-task="echo"]').textContent()).toContain("label=<script>alert(1)</script>");
    expect(await page.locator("script").count()).toBe(0);
    await page.close();
  });

  it("lists the task runs in a table linked to their sections", async () => {
    const { page } = await open(logged);
    const rows = page.locator("#tasks tbody tr");
    expect(await rows.count()).toBe(6);
    expect(await page.locator('#tasks tr[data-task="flaky"] td').nth(4).textContent()).toBe("2");
    const href = await page.locator('#tasks tr[data-task="boom"] a').first().getAttribute("href");
    expect(await page.locator(`${href} > summary`).textContent()).toContain("boom");
    await page.close();
  });

  it("gives each task the run time cairn show gives it: a cache hit its lookup's, a skipped task none", async () => {
    const runId = /cairn\/artifacts\/([0-9a-f]{32})\//.exec(logged)![1]!;
    const shown = await cairn(["show", runId, "--root", join(dir, ".cairn"), "--json"]);
    expect(shown.code, shown.stderr).toBe(0);
    const records = (JSON.parse(shown.stdout) as { tasks: Array<{ name: string; startTime: number; endTime: number; tags: Record<string, string> }> }).tasks;
    const { page } = await open(logged);
    for (const task of ["prepare", "steady", "flaky", "boom", "echo"]) {
      const record = records.find((r) => r.name === task)!;
      // A task's own work as its run recorded it (cairn.duration_ms); a hit's, its run's span: it
      // starts at its lookup (the report once said 0 for every hit).
      const own = record.tags["cairn.duration_ms"];
      const said = duration(own === undefined ? record.endTime - record.startTime : Number(own));
      expect(await page.locator(`#tasks tr[data-task="${task}"] td`).nth(2).textContent(), task).toBe(said);
      expect(await page.locator(`details[data-task="${task}"] > p.meta`).textContent(), task).toMatch(new RegExp(`^run time ${said} · `));
    }
    expect(await page.locator('#tasks tr[data-task="after"] td').nth(2).textContent()).toBe("");
    expect(await page.locator('details[data-task="after"] > p.meta').textContent()).toMatch(/^0 attempts · /);
    await page.close();
  });

  it("takes a screenshot, and no request leaves the file", async () => {
    const { page, requests } = await open(logged);
    const png = await page.screenshot({ fullPage: true, path: join(dir, "report.png") });
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect(png.length).toBeGreaterThan(10_000);
    expect(requests).toEqual([pathToFileURL(logged).href]);
    await page.close();
  });

  it("is written again for a past run by cairn report, from the record alone", async () => {
    const runId = /cairn\/artifacts\/([0-9a-f]{32})\//.exec(logged)![1]!;
    const out = join(dir, "again.html");
    const r = await cairn(["report", runId.slice(0, 8), "--root", join(dir, ".cairn"), "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Wrote the report of flow run ${runId} (report-demo, FAILED) to ${out}`);
    const html = await readFile(out, "utf8");
    const strip = (s: string) => s.replace(/Written by cairn report at [^<]*/, "");
    expect(strip(html)).toBe(strip(await readFile(logged, "utf8")));
    const latest = await cairn(["report", "latest", "--root", join(dir, ".cairn"), "--out", join(dir, "latest.html")]);
    expect(latest.stdout).toContain(runId);
  });

  it("opens the report with the desktop's opener when asked (--open)", async () => {
    // A stand-in for xdg-open that writes down what it was asked to open.
    const bin = join(dir, "bin");
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, "xdg-open"), `#!/bin/sh\nprintf '%s' "$1" > "${join(dir, "opened.txt")}"\n`, { mode: 0o755 });
    const out = join(dir, "opened.html");
    const r = await cairn(["report", "--root", join(dir, ".cairn"), "--out", out, "--open"], { PATH: `${bin}:${process.env.PATH}` });
    expect(r.code, r.stderr).toBe(0);
    let opened = "";
    for (let i = 0; i < 50 && !opened; i++) {
      opened = await readFile(join(dir, "opened.txt"), "utf8").catch(() => "");
      if (!opened) await new Promise((done) => setTimeout(done, 100));
    }
    expect(opened).toBe(out);
  });
});

describe("every text from the run, in the page", () => {
  /** Quotes to leave an attribute, an attribute of its own, and an element: what a field must not add to the page. */
  const MARK = `"' x-attr="1" <x-mark>&amp;</x-mark>`;
  const m = (text: string) => `${MARK}${text}`;
  const T0 = Date.UTC(2026, 0, 1);
  /** A task whose every text field (names, ids, params, metrics, why, run links, kind, pool, key) carries MARK. */
  const marked = (id: string, start: number, end: number, more: Partial<ReportTask> = {}): ReportTask => ({
    id: m(id),
    task: m(id.replace(/\[\d+\]$/, "")),
    kind: m("kind"),
    state: "succeeded",
    runId: m(id.padEnd(32, "0")),
    url: m("http://run"),
    queuedAt: T0 + start - 5,
    startTime: T0 + start,
    endTime: T0 + end,
    attempts: 1,
    attemptStarts: [],
    pool: m("pool"),
    cacheKey: m("key"),
    why: [m("why"), `  - ${m("change")}`],
    metrics: { [m("metric")]: 1 },
    params: { [m("param")]: m("value") },
    dependsOn: [],
    inputs: [],
    ...more,
  });
  const data: ReportData = {
    flow: {
      runId: m("flow".padEnd(32, "0")),
      name: m("flow"),
      status: m("FAILED"),
      cancelReason: m("cancelled"),
      experimentId: m("0"),
      startTime: T0,
      endTime: T0 + 100,
      url: m("http://flow"),
      params: { [m("param")]: m("value") },
      metrics: { [m("metric")]: 2 },
      trackerUri: m("http://server"),
      host: m("host"),
      user: m("user"),
      source: m("flow.ts"),
      commit: m("commit"),
    },
    tasks: [
      marked("prep", 0, 10),
      marked("hit", 10, 12, { state: "cached", dependsOn: [m("prep")], inputs: [{ input: m("in"), from: `${m("prep")}.${m("out")}`, node: m("prep") }], cachedFrom: { runId: m("source"), name: m("source run"), url: m("http://source") } }),
      marked("boom", 12, 30, {
        state: "failed",
        dependsOn: [m("hit")],
        attempts: 2,
        attemptStarts: [T0 + 12, T0 + 20],
        error: { name: m("Error"), message: m("message"), source: m("flow.ts:3:1") },
        logTail: m("log line"),
        errorText: m("stack"),
      }),
      marked("fit", 30, 60, { group: { kind: "sweep", best: m("fit[0]"), select: { order: "max", metric: m("score") }, stoppedAt: m("fit[0]"), unread: 1 } }),
      ...[0, 1, 2].map((i) => marked(`fit[${i}]`, 30 + i, 40 + i, { item: { node: m("fit"), index: i, key: m(`lr=${i}`) }, ...(i === 0 ? { score: 1 } : {}) })),
    ],
    generatedAt: T0 + 200,
  };

  it.each([
    ["a node per task", {}],
    ["a graph grouped by task name", { maxGraphNodes: 1 }],
  ])("makes no element and no attribute of its own, and shows as the text it is (%s)", async (_, options) => {
    const file = join(dir, `marked-${Object.keys(options).length}.html`);
    await writeFile(file, renderReport(data, options));
    const { page, requests } = await open(file);
    expect(await page.locator("x-mark").count()).toBe(0);
    expect(await page.locator("[x-attr]").count()).toBe(0);
    const text = (await page.locator("body").textContent()) ?? "";
    for (const field of ["flow", "cancelled", "message", "log line", "stack", "why", "param=", "value", "source run", "lr=0", "Error"]) {
      expect(text, field).toContain(`${MARK}${field}`);
    }
    expect(requests).toEqual([pathToFileURL(file).href]);
    await page.close();
  });
});

describe("cairn run --no-report", () => {
  it("logs no report and says none", async () => {
    const root = join(dir, "no-report");
    const r = await cairn(["run", flowFile, "--root", root, "--failure-policy", "continue", "--no-report"]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).not.toContain("Report:");
    const runId = /run ([0-9a-f]{32})$/m.exec(r.stdout)![1]!;
    await expect(stat(join(root, "artifacts", runId, "cairn", "report.html"))).rejects.toThrow(/ENOENT/);
  });
});

describe("cairn report's errors", () => {
  it("refuses a task run, naming its flow run, and says when there is no run at all", async () => {
    const runId = /cairn\/artifacts\/([0-9a-f]{32})\//.exec(logged)![1]!;
    const taskRunId = /^boom\s+failed\s+\S+\s+([0-9a-f]{32})/m.exec(stdout)![1]!;
    const r = await cairn(["report", taskRunId, "--root", join(dir, ".cairn")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`Expected a flow run, got task run ${taskRunId} ("boom") of flow run ${runId}. Run \`cairn report ${runId}\`.`);
    const empty = await cairn(["report", "--root", join(dir, "nothing-here")]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/Expected --root to name the folder a run used .*nothing-here.* does not exist, so there are no runs there\. cd to the project folder/);
    // A root that is there but holds no run yet.
    await mkdir(join(dir, "no-runs-yet"));
    const none = await cairn(["report", "--root", join(dir, "no-runs-yet")]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/Expected a flow run to report on, found none in .*no-runs-yet.*Run a flow first/);
    const bad = await cairn(["report", "--root", join(dir, ".cairn"), "--out", join(dir, "no", "such", "folder", "r.html")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Cannot write the report to .*r\.html: ENOENT.*Pass --out FILE in a folder you can write to/);
  });
});
