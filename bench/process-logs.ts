/**
 * A process task's logs with an MLflow server: the peak RSS of Cairn's Node process while a
 * script writes MB megabytes to stdout and stderr (both streamed to disk, then uploaded from
 * it), and the requests a process task's logs add (the PUTs of logs/*.txt). Prints one JSON line.
 *   tsx bench/process-logs.ts [MB=20]
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { flow } from "@cairn/dsl";
import { script, shell } from "@cairn/process";
import { startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";

const mb = Number(process.argv[2] ?? 20);
// Lines of 100 bytes; half the output on each stream.
const lines = Math.round((mb * 1024 * 1024) / 100 / 2);
const line = "x".repeat(99);
// A script, not a shell task: a shell task's stdout is its output, so it is kept by design.
const dir = await mkdtemp(join(tmpdir(), "cairn-bench-logs-"));
const file = join(dir, "loud.py");
await writeFile(file, `import sys\nfor i in range(${lines}):\n    sys.stdout.write("${line}\\n"); sys.stderr.write("${line}\\n")\n`);
const loud = script("loud", { file, interpreter: "python3" });
const quiet = shell("quiet", "true");
const quietFlow = flow("logs-bench").build(() => ({ q: quiet().$out }));
const loudFlow = flow("logs-bench").build(() => ({ l: loud().$out }));

const server = await startMlflowServer();
try {
  const tracker = MlflowTracker.fromEnv({}, server.uri);
  const requests: string[] = [];
  tracker.client.http.observe((e) => {
    if (e.phase === "request") requests.push(`${e.method} ${new URL(e.url).pathname}`);
  });
  const root = join(dir, "root");
  const run = async (f: typeof quietFlow | typeof loudFlow) => {
    const r = await (await f.run({ tracker, cache: false, root, env: {} })).wait();
    if (r.status !== "succeeded") throw new Error(r.error?.message);
  };
  await run(quietFlow); // warm-up: experiment, connections
  requests.length = 0;
  await run(quietFlow);
  const quietRequests = requests.length;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  requests.length = 0;
  await run(loudFlow);
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  const logPuts = requests.filter((r) => r.startsWith("PUT") && r.includes("/logs/")).length;
  console.log(
    JSON.stringify({
      bench: "process-logs",
      outputMB: mb,
      baselineRssMB: Math.round(baseline / 2 ** 20),
      peakRssMB: Math.round(peak / 2 ** 20),
      peakGrowthMB: Math.round((peak - baseline) / 2 ** 20),
      requestsQuietShellFlow: quietRequests,
      requestsLoudShellFlow: requests.length,
      logUploadRequests: logPuts,
    }),
  );
} finally {
  await server.stop();
}
