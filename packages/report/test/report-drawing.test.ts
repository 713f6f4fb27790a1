/**
 * How the report draws what real runs recorded, where a reviewer who loaded it in Chromium found
 * it wrong: bars ended at their run record's closing rather than at the end of their task's work,
 * links that do nothing in MLflow's sandboxed artifact view, a flow of no tasks, a cancelled map's
 * duration and its count while it runs, a wide flow of distinct task names, a condition's edge,
 * and a table of a thousand rows.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalStore, type RunStatus } from "@cairn/core";
import { criticalPath, layoutTimeline, readReportData, renderReport, type ReportData } from "@cairn/report";
import { flow, map, task as defineTask } from "cairn-dag";

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
  override readonly capabilities = Object.freeze({ ...new LocalStore({ root: tmpdir() }).capabilities, remote: true });
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
