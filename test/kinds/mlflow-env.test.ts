/**
 * A Python script's own mlflow.log_* calls land in the task's run: with a real MLflow
 * server (from .venv) and a minimal tracker over its REST API.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flow, type Tracker } from "@cairn/dsl";
import { script } from "../../packages/dsl/src/kinds/index.ts";
import { fixture, hasVenv, runOptions, tempRoot, VENV_PYTHON } from "./helpers.ts";

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

/** Just enough of a tracker for the executor: real experiments and runs on the server, the rest no-ops. */
class RestTracker implements Tracker {
  readonly kind = "mlflow";
  experimentId = "0";
  constructor(readonly uri: string) {}
  async api<T>(path: string, body?: unknown): Promise<T> {
    const init = body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
    const res = await fetch(`${this.uri}/api/2.0/mlflow/${path}`, init);
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }
  async ensureExperiment(name: string) {
    const found = await fetch(`${this.uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`);
    if (found.ok) return ((await found.json()) as { experiment: { experiment_id: string } }).experiment.experiment_id;
    return (await this.api<{ experiment_id: string }>("experiments/create", { name })).experiment_id;
  }
  async createRun(o: { experimentId: string; name?: string }) {
    this.experimentId = o.experimentId;
    const r = await this.api<{ run: { info: { run_id: string } } }>("runs/create", { experiment_id: o.experimentId, run_name: o.name, start_time: Date.now() });
    return r.run.info.run_id;
  }
  async endRun(runId: string, status: string) {
    await this.api("runs/update", { run_id: runId, status, end_time: Date.now() });
  }
  async ping() {}
  async getExperiment(experimentId: string) {
    return { experimentId, name: "?" };
  }
  async logBatch() {}
  async logArtifact() {}
  async getRun() {
    return undefined;
  }
  async searchRuns() {
    return [];
  }
  async getMetricHistory() {
    return [];
  }
  async listArtifacts() {
    return [];
  }
  async downloadArtifact(): Promise<string> {
    throw new Error("not needed here");
  }
  async flush() {}
}

let server: ChildProcess | undefined;
let uri = "";

describe.skipIf(!hasVenv)("script() with MLflow tracking", () => {
  beforeAll(async () => {
    const dir = await tempRoot();
    const port = await freePort();
    uri = `http://127.0.0.1:${port}`;
    server = spawn(join(VENV_PYTHON, "..", "mlflow"), ["server", "--backend-store-uri", `sqlite:///${dir}/mlflow.db`, "--default-artifact-root", join(dir, "artifacts"), "--host", "127.0.0.1", "--port", String(port)], {
      stdio: "ignore",
      detached: true,
    });
    const deadline = Date.now() + 170_000;
    for (;;) {
      const ok = await fetch(`${uri}/health`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error("mlflow server did not start");
      await new Promise((r) => setTimeout(r, 300));
    }
  }, 180_000);
  afterAll(() => {
    if (server?.pid) process.kill(-server.pid, "SIGTERM");
  });

  it("sets MLFLOW_RUN_ID, MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID so mlflow.log_* land in the task's run", async () => {
    const tracker = new RestTracker(uri);
    const log = script("log", { file: fixture("mlflow_log.py"), interpreter: VENV_PYTHON }).output<{ mlflow_run_id: string; env: Record<string, string> }>();
    const run = await flow("mlflow-env").build(() => ({ out: log().$out })).run({ ...(await runOptions()), tracker });
    const result = await run.wait();
    expect(result.status).toBe("succeeded");
    const taskRunId = result.tasks.log!.runId!;
    const out = (result.outputs as { out: { mlflow_run_id: string; env: Record<string, string> } }).out;
    expect(out.mlflow_run_id).toBe(taskRunId);
    expect(out.env).toEqual({ MLFLOW_RUN_ID: taskRunId, MLFLOW_TRACKING_URI: uri, MLFLOW_EXPERIMENT_ID: tracker.experimentId, CAIRN_RUN_ID: taskRunId });

    const history = await tracker.api<{ metrics: Array<{ value: number; step: number }> }>(`metrics/get-history?run_id=${taskRunId}&metric_key=loss`);
    expect(history.metrics.map((m) => [m.step, m.value])).toEqual([[0, 0.9], [1, 0.5], [2, 0.25]]);
    const { run: record } = await tracker.api<{ run: { info: { status: string }; data: { params?: Array<{ key: string; value: string }> } } }>(`runs/get?run_id=${taskRunId}`);
    expect(record.data.params).toContainEqual({ key: "from_script", value: "yes" });
    expect(record.info.status).toBe("FINISHED");
  }, 60_000);
});
