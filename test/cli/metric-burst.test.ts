/**
 * A task that logs many metric points at once (a training loop's loss per step, in one
 * synchronous loop), recorded in a real `mlflow server`: the points go in batches MLflow takes,
 * the run is recorded and cached, and the server has the last point. The points were spread
 * into one call (`push(...points)`): a burst above what the stack holds (~125,000 points on
 * Node's default stack) failed the run's record, so the task ran again every time. The CLI runs
 * here with a smaller stack (`--stack-size=200`: ~30,000), to show that with a tenth of the points.
 */
import { describe, expect, it } from "vitest";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { fixture, tmp, useMlflowServer } from "./helpers.ts";

const server = useMlflowServer();
const POINTS = 40_000;

async function run(cwd: string) {
  const env = childEnv({ MLFLOW_TRACKING_URI: server.uri, MLFLOW_EXPERIMENT_NAME: "metric-burst", POINTS: String(POINTS) });
  return start(process.execPath, ["--stack-size=200", cairnBin, "run", fixture("metric-burst.flow.ts"), "--json"], { cwd, env }).done;
}

describe("a burst of metric points", () => {
  it(`records ${POINTS.toLocaleString("en")} points logged in one synchronous loop, and caches the task`, async () => {
    const cwd = await tmp("cairn-metric-burst-");
    const first = await run(cwd);
    expect(first.code, first.stderr + first.stdout).toBe(0);
    const done = first.json.find((e) => e.type === "task" && e.task === "train" && e.status === "succeeded");
    expect(done, first.stdout).toBeDefined();
    expect(done!.recorded).toBeUndefined();
    const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: server.uri });
    const recorded = await tracker.client.getRun(done!.taskRunId as string);
    expect(recorded?.info.status).toBe("FINISHED");
    // The last point arrived: the server's latest value of the metric is the last step's.
    expect(recorded?.metrics.loss).toBe(1 / POINTS);
    const second = await run(cwd);
    expect(second.code, second.stderr).toBe(0);
    expect(second.json.find((e) => e.type === "task" && e.task === "train" && e.status === "cached"), second.stdout).toBeDefined();
  }, 180_000);
});
