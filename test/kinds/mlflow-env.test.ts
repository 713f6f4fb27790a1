/**
 * A Python script's own mlflow.log_* calls land in the task's run: with a real MLflow
 * server (from .venv) and the MLflow tracker.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flow } from "@cairn/dsl";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { script } from "../../packages/process/src/index.ts";
import { readWithMlflow } from "../../packages/mlflow/test/mlflow-read.ts";
import { startMlflowServer, type MlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { fixture, hasVenv, runOptions, VENV_PYTHON } from "./helpers.ts";

let server: MlflowServer | undefined;

describe.skipIf(!hasVenv)("script() with MLflow tracking", () => {
  beforeAll(async () => {
    server = await startMlflowServer();
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
  });

  it.each([
    ["in a new interpreter", undefined],
    ["forked from a warm Python that preloaded mlflow", ["mlflow"]],
  ])("sets MLFLOW_RUN_ID, MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID so mlflow.log_* land in the task's run (%s)", async (_, preload) => {
    const uri = server!.uri;
    const tracker = MlflowTracker.fromEnv({}, uri);
    const log = script("log", { file: fixture("mlflow_log.py"), interpreter: VENV_PYTHON, ...(preload ? { preload } : {}) })
      .cache(false) // preload is not part of the key: the second case would be a hit on the first
      .output<{ mlflow_run_id: string; env: Record<string, string> }>();
    const run = await flow("mlflow-env").build(() => ({ out: log().$out })).run({ ...(await runOptions()), tracker });
    const result = await run.wait();
    expect(result.status).toBe("succeeded");
    const taskRunId = result.tasks.log!.runId!;
    const out = (result.outputs as { out: { mlflow_run_id: string; env: Record<string, string> } }).out;
    expect(out.mlflow_run_id).toBe(taskRunId);
    const record = (await tracker.getRun(taskRunId))!;
    expect(out.env).toEqual({ MLFLOW_RUN_ID: taskRunId, MLFLOW_TRACKING_URI: uri, MLFLOW_EXPERIMENT_ID: record.experimentId, CAIRN_RUN_ID: taskRunId });

    const history = await tracker.getMetricHistory(taskRunId, "loss");
    expect(history.map((m) => [m.step, m.value])).toEqual([[0, 0.9], [1, 0.5], [2, 0.25]]);
    expect(record.params).toMatchObject({ from_script: "yes" });
    expect(record.status).toBe("FINISHED");
    // The same, as MLflow's own MlflowClient reads it.
    const [run2, loss] = await readWithMlflow(uri, [
      { op: "get_run", run_id: taskRunId },
      { op: "metric_history", run_id: taskRunId, key: "loss" },
    ]);
    expect(run2).toMatchObject({ status: "FINISHED", params: { from_script: "yes" }, tags: { "mlflow.parentRunId": result.runId } });
    expect(loss.map((m: { step: number; value: number }) => [m.step, m.value])).toEqual([[0, 0.9], [1, 0.5], [2, 0.25]]);
  }, 60_000);
});
