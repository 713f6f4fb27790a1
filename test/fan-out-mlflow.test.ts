/**
 * A sweep as MLflow's users expect it, read back from a real server with MLflow's own
 * MlflowClient: a run nested under the flow's run (`mlflow.parentRunId`) with one child run per
 * trial, and the best trial's params and metrics on the sweep's run, tagged with its name.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flow, grid, map, max, min, sweep, task } from "cairn-dag";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { readReportData, renderReport } from "@cairn/report";
import { readWithMlflow } from "../packages/mlflow/test/mlflow-read.ts";
import { type MlflowServer, startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";

let server: MlflowServer;
let root: string;
beforeAll(async () => {
  server = await startMlflowServer();
  root = await mkdtemp(join(tmpdir(), "cairn-sweep-mlflow-"));
}, 120_000);
afterAll(async () => {
  await server?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

const fit = task("fit")
  .input<{ data: string; lr: number; depth: number }>()
  .run(({ lr, depth }) => ({ score: Math.round((1 - Math.abs(lr - 0.1)) * depth * 100) / 100, loss: lr }));

describe("a sweep recorded in MLflow", () => {
  it("is a parent run under the flow run, with one child run per trial and the best trial on it", async () => {
    const f = flow("sweep-mlflow").build(() => {
      const best = sweep(fit, { with: { data: "d" }, over: grid({ lr: [0.01, 0.1, 1], depth: [3, 5] }), select: max("score") });
      return { params: best.params, trial: best.trial };
    });
    const result = await (await f.run({ root, env: { MLFLOW_TRACKING_URI: server.uri } })).wait();
    expect(result.status).toBe("succeeded");
    expect(result.outputs).toEqual({ params: { lr: 0.1, depth: 5 }, trial: "fit[3]" });
    const sweepRunId = result.tasks.fit!.runId!;
    const [parent, flowRun, children] = await readWithMlflow(server.uri, [
      { op: "get_run", run_id: sweepRunId },
      { op: "get_run", run_id: result.runId },
      { op: "search_runs", experiment_of_run: result.runId, filter: `tags.mlflow.parentRunId = '${sweepRunId}'` },
    ]);
    expect(parent.tags["mlflow.parentRunId"]).toBe(result.runId);
    expect(parent.tags["cairn.sweep.best"]).toBe("fit[3]");
    expect(parent.tags["cairn.sweep.best_run"]).toBe(result.tasks["fit[3]"]!.runId);
    expect(parent.params).toEqual({ lr: "0.1", depth: "5" });
    expect(parent.metrics).toMatchObject({ score: 5, loss: 0.1, "cairn.items": 6, "cairn.succeeded": 6, "cairn.not_started": 0 });
    expect(parent.status).toBe("FINISHED");
    expect(children.map((c: { run_name: string }) => c.run_name).sort()).toEqual(["fit[0]", "fit[1]", "fit[2]", "fit[3]", "fit[4]", "fit[5]"]);
    const best = children.find((c: { run_name: string }) => c.run_name === "fit[3]");
    expect(best.params).toMatchObject({ lr: "0.1", depth: "5" });
    expect(best.tags["cairn.item_key"]).toBe("depth=5,lr=0.1");

    // A re-run: every trial a hit, the same best, the hits nested under the new sweep run.
    const again = await (await f.run({ root, env: { MLFLOW_TRACKING_URI: server.uri } })).wait();
    expect(again.outputs).toEqual(result.outputs);
    expect(Object.values(again.tasks).filter((t) => t.parent === "fit").every((t) => t.status === "cached")).toBe(true);
    const [hits, againParent] = await readWithMlflow(server.uri, [
      { op: "search_runs", experiment_ids: [flowRun.experiment_id], filter: `tags.mlflow.parentRunId = '${again.tasks.fit!.runId}'` },
      { op: "get_run", run_id: again.tasks.fit!.runId! },
    ]);
    expect(hits).toHaveLength(6);
    expect(hits.every((h: { tags: Record<string, string> }) => h.tags["cairn.status"] === "cached")).toBe(true);
    // The best trial was a hit whose run is recorded in the background: the sweep run still names it.
    expect(againParent.tags["cairn.sweep.best"]).toBe("fit[3]");
    expect(againParent.tags["cairn.sweep.best_run"]).toBe(again.tasks["fit[3]"]!.runId);
    // That run is a hit's (no params, no metrics): the run that computed the best trial is named too.
    expect(againParent.tags["cairn.sweep.best_source_run"]).toBe(result.tasks["fit[3]"]!.runId);
    expect(parent.tags["cairn.sweep.best_source_run"]).toBeUndefined();
  }, 120_000);

  it("a map stopped by a failed item counts on its run the items that never started, which have no run of their own", async () => {
    const held = task("held")
      .input<{ x: number }>()
      .run(async ({ x }, ctx) => {
        if (x === 0) throw new Error("zero fails");
        await new Promise((_r, j) => ctx.signal.addEventListener("abort", () => j(ctx.signal.reason)));
        return { x };
      });
    const f = flow("map-not-started-mlflow").build(() => ({ xs: map(held, { over: Array.from({ length: 30 }, (_, i) => i), as: "x", concurrency: 2 }).outputs }));
    const result = await (await f.run({ root, cache: false, env: { MLFLOW_TRACKING_URI: server.uri } })).wait();
    expect(result.status).toBe("failed");
    const mapRunId = result.tasks.held!.runId!;
    const [mapRun, items] = await readWithMlflow(server.uri, [
      { op: "get_run", run_id: mapRunId },
      { op: "search_runs", experiment_of_run: mapRunId, filter: `tags.mlflow.parentRunId = '${mapRunId}'` },
    ]);
    expect(mapRun.metrics).toMatchObject({ "cairn.items": 30, "cairn.failed": 1, "cairn.not_started": 28 });
    expect(items.map((r: { run_name: string }) => r.run_name).sort()).toEqual(["held[0]", "held[1]"]);
  }, 120_000);

  it("a map's run ends after every item's run, and before the flow run: MLflow never shows a map shorter than its items", async () => {
    const proc = task("proc")
      .input<{ x: number }>()
      .run(({ x }) => ({ y: x * 2 }));
    const after = task("after")
      .input<{ ys: unknown[] }>()
      .run(({ ys }) => ({ n: ys.length }));
    const f = flow("map-end-order-mlflow").build(() => ({ n: after({ ys: map(proc, { over: Array.from({ length: 60 }, (_, i) => i), as: "x" }).outputs }).n }));
    // Cold: each item's run is closed beside the flow (log-batch, outputs.json, update, index entry) after the item ended.
    const result = await (await f.run({ root, env: { MLFLOW_TRACKING_URI: server.uri } })).wait();
    expect(result.status).toBe("succeeded");
    const mapRunId = result.tasks.proc!.runId!;
    const [mapRun, flowRun] = await readWithMlflow(server.uri, [
      { op: "get_run", run_id: mapRunId },
      { op: "get_run", run_id: result.runId },
    ]);
    const [items] = await readWithMlflow(server.uri, [{ op: "search_runs", experiment_ids: [mapRun.experiment_id], filter: `tags.mlflow.parentRunId = '${mapRunId}'` }]);
    expect(items).toHaveLength(60);
    const late = items
      .filter((r: { end_time: number }) => r.end_time > mapRun.end_time)
      .map((r: { run_name: string; end_time: number }) => `${r.run_name} ends ${r.end_time - mapRun.end_time} ms after its map`);
    expect(late).toEqual([]);
    for (const item of items) expect(item.status).toBe("FINISHED");
    expect(mapRun.end_time).toBeLessThanOrEqual(flowRun.end_time);
    expect(mapRun.metrics).toMatchObject({ "cairn.items": 60, "cairn.succeeded": 60 });
  }, 120_000);

  it("logs each trial's selected output as a metric on its run, in the log-batch its closing sends anyway", async () => {
    const tracker = MlflowTracker.fromEnv({}, server.uri);
    let batches = 0;
    tracker.client.http.observe((e) => void (e.phase === "request" && e.url.endsWith("/runs/log-batch") && batches++));
    const make = (depths: number[]) =>
      flow("sweep-mlflow-metrics").build(() => ({ trial: sweep(fit, { with: { data: "d" }, over: grid({ lr: [0.01, 0.1, 1], depth: depths }), select: max("score") }).trial }));
    const countBatches = async (depths: number[]) => {
      batches = 0;
      const result = await (await make(depths).run({ tracker, root, cache: false, env: {} })).wait();
      expect(result.status).toBe("succeeded");
      return { result, batches };
    };
    const six = await countBatches([3, 5]);
    const nine = await countBatches([3, 5, 8]);
    // One log-batch a trial, as before: the metric rides in it.
    expect(nine.batches - six.batches).toBe(3);
    const [children] = await readWithMlflow(server.uri, [{ op: "search_runs", experiment_of_run: six.result.runId, filter: `tags.mlflow.parentRunId = '${six.result.tasks.fit!.runId}'` }]);
    expect(Object.fromEntries(children.map((c: { run_name: string; metrics: Record<string, number> }) => [c.run_name, c.metrics]))).toEqual({
      "fit[0]": { score: 2.73 },
      "fit[1]": { score: 4.55 },
      "fit[2]": { score: 3 },
      "fit[3]": { score: 5 },
      "fit[4]": { score: 0.3 },
      "fit[5]": { score: 0.5 },
    });
  }, 120_000);

  it("logs a trial's selected output after its per-epoch points of the same name: MLflow's latest value, its sort and the report rank by the output", async () => {
    // Each trial's val_loss per epoch, the output its best: by the last epoch's value epochs[1] (0.5) would beat epochs[0] (0.8).
    const curves = [
      [0.9, 0.5, 0.2, 0.6, 0.8],
      [0.9, 0.6, 0.4, 0.45, 0.5],
    ];
    const epochs = task("epochs")
      .input<{ k: number }>()
      .run(({ k }, ctx) => {
        const curve = curves[k]!;
        curve.forEach((v, epoch) => ctx.log.metric("val_loss", v, epoch));
        return { val_loss: Math.min(...curve) };
      });
    const f = flow("sweep-mlflow-epochs").build(() => ({ trial: sweep(epochs, { over: grid({ k: [0, 1] }), select: min("val_loss") }).trial }));
    const result = await (await f.run({ root, cache: false, env: { MLFLOW_TRACKING_URI: server.uri } })).wait();
    expect(result.status).toBe("succeeded");
    expect(result.outputs!.trial).toBe("epochs[0]");
    const [sorted, history] = await readWithMlflow(server.uri, [
      { op: "search_runs", experiment_of_run: result.runId, filter: `tags.mlflow.parentRunId = '${result.tasks.epochs!.runId}'`, order_by: ["metrics.val_loss ASC"] },
      { op: "metric_history", run_id: result.tasks["epochs[0]"]!.runId, key: "val_loss" },
    ]);
    expect(sorted.map((r: { run_name: string; metrics: Record<string, number>; tags: Record<string, string> }) => [r.run_name, r.metrics.val_loss, r.tags["cairn.sweep.value"]])).toEqual([
      ["epochs[0]", 0.2, "0.2"],
      ["epochs[1]", 0.4, "0.4"],
    ]);
    // The epochs' points stand; the output follows them.
    expect(history.map((p: { step: number; value: number }) => [p.step, p.value])).toEqual([...curves[0]!.map((v, i) => [i, v]), [5, 0.2]]);
    // The report's leaderboard: the starred best first, with its output.
    const data = await readReportData(MlflowTracker.fromEnv({}, server.uri), result.runId);
    expect(data.tasks.filter((t) => t.item?.node === "epochs").map((t) => [t.id, t.score])).toEqual([
      ["epochs[0]", 0.2],
      ["epochs[1]", 0.4],
    ]);
    const board = renderReport(data).split('data-sweep="epochs"')[1]!;
    expect([...board.matchAll(/data-trial="([^"]+)"/g)].map((m) => m[1])).toEqual(["epochs[0]", "epochs[1]"]);
    expect(board).toMatch(/<tr data-trial="epochs\[0\]" class="best">.*★/);
  }, 120_000);
});
