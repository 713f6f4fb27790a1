/**
 * Caching benchmarks. Prints JSON lines:
 *  - warm/cold: a 1,000-task layered flow whose tasks each do 20 ms of work, run cold
 *    then warm (everything cached), with the embedded store and tracker;
 *  - lookup vs prior runs: the MLflow tag lookup of a key (empty local cache) in an
 *    experiment holding 100 and then 10,000 prior runs, against a real mlflow server.
 *   tsx bench/cache.ts [warm|lookup|all]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import PQueue from "p-queue";
import { CacheStore } from "@cairn/cache";
import { TaskCache } from "@cairn/core";
import { MlflowTracker } from "@cairn/core/mlflow";
import { flow, task } from "@cairn/dsl";
import { startMlflowServer } from "../packages/core/test/mlflow-server.ts";

const which = process.argv[2] ?? "all";

async function warmCold(): Promise<void> {
  const work = task("work")
    .input<{ i: number; deps: unknown[] }>()
    .run(async ({ i }) => {
      await new Promise((r) => setTimeout(r, 20));
      return { v: i };
    });
  const f = flow("cache-bench").build(() => {
    let previous: Array<{ v: unknown }> = [];
    for (let layer = 0, i = 0; layer < 10; layer++) {
      const current: Array<{ v: unknown }> = [];
      for (let k = 0; k < 100; k++, i++) {
        const deps = previous.length ? [previous[k]!.v, previous[(k * 7 + 3) % 100]!.v] : [];
        current.push(work({ i, deps: deps as never }));
      }
      previous = current;
    }
    return {};
  });
  const root = await mkdtemp(join(tmpdir(), "cairn-bench-cache-"));
  const time = async () => {
    const t = performance.now();
    const r = await (await f.run({ root, concurrency: 8, env: {} })).wait();
    if (r.status !== "succeeded") throw new Error(r.error?.message);
    return { ms: performance.now() - t, cached: Object.values(r.tasks).filter((x) => x.status === "cached").length };
  };
  const cold = await time();
  const warm = await time();
  await rm(root, { recursive: true, force: true });
  console.log(JSON.stringify({ bench: "warm-vs-cold", tasks: 1000, coldMs: Math.round(cold.ms), warmMs: Math.round(warm.ms), warmCached: warm.cached, ratio: Math.round((warm.ms / cold.ms) * 1000) / 1000 }));
}

async function lookupVsRuns(): Promise<void> {
  const server = await startMlflowServer();
  try {
    const tracker = MlflowTracker.fromEnv({}, server.uri);
    const experimentId = await tracker.ensureExperiment("lookup-bench");
    const queue = new PQueue({ concurrency: 16 });
    let made = 0;
    const makeRuns = async (upTo: number) => {
      const jobs: Promise<void>[] = [];
      for (; made < upTo; made++) {
        const i = made;
        jobs.push(queue.add(async () => {
          // One request per prior run (left RUNNING): the server's throughput, not Cairn, bounds this set-up.
          await tracker.createRun({ experimentId, name: `prior-${i}`, tags: { "cairn.cache_key": `prior-key-${i}`, "cairn.task": "t" } });
        }));
      }
      await Promise.all(jobs);
    };
    for (const runs of [100, 10_000]) {
      await makeRuns(runs);
      const root = await mkdtemp(join(tmpdir(), "cairn-bench-lookup-"));
      const cache = new TaskCache(await CacheStore.fromUrl(undefined, { root }), tracker, experimentId, root, {});
      const samples: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t = performance.now();
        await cache.lookup(`missing-key-${i}`); // local miss, then one tag search in MLflow
        samples.push(performance.now() - t);
      }
      samples.sort((a, b) => a - b);
      console.log(JSON.stringify({ bench: "mlflow-lookup", priorRuns: runs, medianMs: Math.round(samples[10]! * 10) / 10, p90Ms: Math.round(samples[18]! * 10) / 10 }));
      await rm(root, { recursive: true, force: true });
    }
  } finally {
    await server.stop();
  }
}

if (which === "warm" || which === "all") await warmCold();
if (which === "lookup" || which === "all") await lookupVsRuns();
