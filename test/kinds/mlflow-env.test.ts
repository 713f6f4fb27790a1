/**
 * A Python script's own mlflow.log_* calls land in the task's run: with a real MLflow
 * server (from .venv) and the MLflow tracker.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "cairn-dag";
import { flow } from "@cairn/dsl";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { script } from "../../packages/process/src/index.ts";
import { readWithMlflow } from "../../packages/mlflow/test/mlflow-read.ts";
import { startMlflowServer, type MlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { fixture, hasVenv, runOptions, tempRoot, VENV_PYTHON } from "./helpers.ts";
import { startProxy } from "../reliability/helpers.ts";

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

  it("a script that logs its own inputs with mlflow.log_param, as Python spells them, succeeds: its values stand, and the inputs it did not log are Cairn's", async () => {
    const tracker = MlflowTracker.fromEnv({}, server!.uri);
    const file = join(await tempRoot(), "log_inputs.py");
    await writeFile(file, [`import mlflow, cairn_task`, `i = cairn_task.inputs()`, `mlflow.log_param("flag", i["flag"])`, `mlflow.log_param("ratio", i["ratio"])`, `cairn_task.set_outputs(ok=True)`].join("\n"));
    const logs = script("log-inputs", { file, interpreter: VENV_PYTHON }).cache(false).input<{ flag: boolean; ratio: number; label: string }>().output<{ ok: boolean }>();
    const result = await (await flow("mlflow-own-params").build(() => ({ ok: logs({ flag: true, ratio: 1e-7, label: "a" }).ok })).run({ ...(await runOptions()), tracker })).wait();
    expect(result.status, JSON.stringify(result.tasks["log-inputs"]?.error)).toBe("succeeded");
    const record = (await tracker.getRun(result.tasks["log-inputs"]!.runId!))!;
    // `label`, which the script did not log, is still on the run (it was dropped with the batch).
    expect(record).toMatchObject({ status: "FINISHED", params: { flag: "True", ratio: "1e-07", label: "a" } });
  }, 60_000);

  it("a password given in the tracking URI reaches the script's own MLflow client (MLFLOW_TRACKING_USERNAME/PASSWORD), masked in what it prints", async () => {
    const password = "pa:ss/w@rd-9";
    const expected = `Basic ${Buffer.from(`alice:${password}`).toString("base64")}`;
    const proxy = await startProxy(server!.uri, (req, res) => {
      if (req.headers.authorization === expected) return false;
      req.resume();
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="mlflow"' }).end("You are not authenticated.");
      return true;
    });
    try {
      const dir = await tempRoot();
      const file = join(dir, "logs_itself.py");
      await writeFile(file, "import os, mlflow\nprint('password:', os.environ.get('MLFLOW_TRACKING_PASSWORD'))\nmlflow.log_metric('from_script', 1.5)\n");
      const uri = `http://alice:${encodeURIComponent(password)}@${new URL(proxy.uri).host}`;
      const t = script("logs-itself", { file, interpreter: VENV_PYTHON }).cache(false);
      const run = await flow("mlflow-auth").build(() => ({ out: t().$out })).run({ ...(await runOptions()), tracker: undefined, env: { ...process.env, MLFLOW_TRACKING_URI: uri } });
      const events: RunEvent[] = [];
      run.on((e) => events.push(e));
      const result = await run.wait();
      expect(result.status, JSON.stringify(result.tasks["logs-itself"]?.error)).toBe("succeeded");
      const record = (await MlflowTracker.fromEnv({}, server!.uri).getRun(result.tasks["logs-itself"]!.runId!))!;
      expect(record.metrics).toMatchObject({ from_script: 1.5 });
      const printed = JSON.stringify(events);
      expect(printed).toContain("password: ***");
      expect(printed).not.toContain(password);
    } finally {
      await proxy.close();
    }
  }, 60_000);
});
