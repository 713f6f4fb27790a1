/**
 * What one request costs the MLflow server, by endpoint: N requests of each kind, 3 at a time,
 * against a real `mlflow server` (SQLite, proxied artifacts), and the CPU time its process group
 * spent on them (from /proc, Linux), with the wall time per request. Says which of a task's
 * requests are worth saving (BENCHMARKS.md, issue 16).
 *   tsx bench/mlflow-endpoints.ts [requests per endpoint=300] [server workers=4]
 */
import { serverCpuMs, startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";
import { MlflowTracker } from "../packages/mlflow/src/tracker/index.ts";

const N = Number(process.argv[2] ?? 300);
const server = await startMlflowServer({ workers: Number(process.argv[3] ?? 4) });
try {
  const tracker = MlflowTracker.fromEnv({}, server.uri);
  const c = tracker.client;
  const exp = await c.ensureExperiment(`endpoints-${Date.now()}`);
  const loc = (await c.getExperiment(exp))!.artifactLocation!;
  const tags = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`cairn.tag${i}`, `value-${i}`]));
  const measure = async (name: string, fn: (i: number) => Promise<unknown>, inFlight = 3) => {
    const cpu0 = await serverCpuMs(server);
    const t = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < N) await fn(next++);
      }),
    );
    const ms = performance.now() - t;
    const cpu = (await serverCpuMs(server)) - cpu0;
    console.log(`${name.padEnd(34)} cpu ${(cpu / N).toFixed(2)} ms/req  wall ${(ms / N).toFixed(2)} ms/req`);
  };
  // Each kind of request a task's run makes, in the order a run makes them (one run per request).
  await measure("runs/create, no tags", () => c.createRun({ experimentId: exp }));
  const ids: string[] = [];
  await measure("runs/create, 12 tags", async () => void ids.push((await c.createRun({ experimentId: exp, runName: "x", tags })).runId));
  const params = Array.from({ length: 5 }, (_, k) => ({ key: `p${k}`, value: String(k) }));
  await measure("runs/log-batch, 5 params 2 tags", (i) => c.logBatch(ids[i]!, { params, tags: [{ key: "a", value: "b" }, { key: "c", value: "d" }] }));
  await measure("runs/log-batch, one 3 KB tag", (i) => c.logBatch(ids[i]!, { tags: [{ key: "cairn.outputs", value: "x".repeat(3000) }] }));
  await measure("artifact PUT, 0.5 KB (index entry)", (i) => c.writeArtifactText(loc, `cairn-index/k${i}.json`, JSON.stringify({ i, x: "y".repeat(500) })));
  await measure("runs/update FINISHED", (i) => c.updateRun(ids[i]!, { status: "FINISHED", endTime: Date.now() }));
  await measure("artifact GET of a missing file", (i) => c.readArtifactText(loc, `cairn-index/missing${i}.json`));
  await measure("runs/get", (i) => c.getRun(ids[i]!));
} finally {
  await server.stop();
}
