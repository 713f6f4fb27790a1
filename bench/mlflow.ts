/**
 * Tracking cost against a real mlflow server: HTTP requests per task and the
 * added time per task, for N no-op tasks each logging two params, a metric
 * and its outputs manifest. Prints one JSON line.
 *   tsx bench/mlflow.ts [tasks=200]
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { flow, task } from "@cairn/dsl";
import { startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";

const n = Number(process.argv[2] ?? 200);
const step = task("step")
  .input<{ i: number; label: string }>()
  .run(({ i }, ctx) => {
    ctx.log.metric("i", i);
    return { i };
  });
const f = flow("mlflow-bench").build(() => {
  for (let i = 0; i < n; i++) step({ i, label: `task-${i}` });
  return {};
});

const empty = flow("mlflow-bench").build(() => ({}));

const server = await startMlflowServer();
try {
  const tracker = MlflowTracker.fromEnv({}, server.uri);
  let requests = 0;
  tracker.client.http.observe((e) => {
    if (e.phase === "request") requests++;
  });
  const root = await mkdtemp(join(tmpdir(), "cairn-bench-mlflow-"));
  const timeRun = async (tracking: boolean, which = f) => {
    const t = performance.now();
    const r = await (await which.run({ tracker: tracking ? tracker : false, cache: false, root, concurrency: 8, env: {} })).wait();
    if (r.status !== "succeeded") throw new Error(r.error?.message);
    return performance.now() - t;
  };
  await timeRun(true); // warm-up: experiment creation, connections
  const before = requests;
  const tracked = await timeRun(true);
  const flowRequests = requests - before;
  const untracked = await timeRun(false);
  const beforeEmpty = requests;
  await timeRun(true, empty);
  const flowOnly = requests - beforeEmpty;
  console.log(
    JSON.stringify({
      bench: "mlflow-tracking",
      tasks: n,
      requestsPerTask: Math.round(((flowRequests - flowOnly) / n) * 100) / 100,
      flowRequests,
      requestsOfTheFlowRunItself: flowOnly,
      trackedMs: Math.round(tracked),
      untrackedMs: Math.round(untracked),
      overheadMsPerTask: Math.round(((tracked - untracked) / n) * 100) / 100,
    }),
  );
} finally {
  await server.stop();
}
