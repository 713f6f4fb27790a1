/**
 * Caching benchmarks. Prints JSON lines:
 *  - warm/cold: a 1,000-task layered flow whose tasks each do 20 ms of work, run cold
 *    then warm (everything cached), with the embedded store and tracker;
 *  - lookup vs prior runs: the MLflow lookup of a key (empty local cache) in an experiment
 *    holding 100 and then 10,000 prior runs, each with its cache key tag and its entry in
 *    the experiment's index, against a real mlflow server: a key that is nowhere (the
 *    cold path of every task), a key that is in the index, and, for comparison, the
 *    search by tag that the index replaced.
 *   tsx bench/cache.ts [warm|lookup|all]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import PQueue from "p-queue";
import { CacheStore } from "@cairn/cache";
import { TaskCache } from "@cairn/core";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { flow, task } from "@cairn/dsl";
import { startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";

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
    const queue = new PQueue({ concurrency: 8 });
    let made = 0;
    const makeRuns = async (upTo: number) => {
      const jobs: Promise<void>[] = [];
      for (; made < upTo; made++) {
        const i = made;
        jobs.push(queue.add(async () => {
          // One request per prior run (left RUNNING): the server's throughput, not Cairn, bounds this set-up.
          const runId = await tracker.createRun({ experimentId, name: `prior-${i}`, tags: { "cairn.cache_key": `prior-key-${i}`, "cairn.task": "t" } });
          await tracker.writeIndexEntry(experimentId, `prior-key-${i}.json`, JSON.stringify({ key: `prior-key-${i}`, sourceRunId: runId }));
        }));
      }
      await Promise.all(jobs);
    };
    for (const runs of [100, 10_000]) {
      await makeRuns(runs);
      const root = await mkdtemp(join(tmpdir(), "cairn-bench-lookup-"));
      const cache = new TaskCache(await CacheStore.fromUrl(undefined, { root }), tracker, experimentId, root, {});
      const time = async (op: (i: number) => Promise<unknown>) => {
        const samples: number[] = [];
        for (let i = 0; i < 20; i++) {
          const t = performance.now();
          await op(i);
          samples.push(performance.now() - t);
        }
        samples.sort((a, b) => a - b);
        return { medianMs: Math.round(samples[10]! * 10) / 10, p90Ms: Math.round(samples[18]! * 10) / 10 };
      };
      // Local miss, answered by the run's listing of the experiment's index (one request for the run, listed again after 10 s).
      const missing = await time((i) => cache.lookup(`missing-key-${i}`));
      // One read of an index document that is there.
      const present = await time((i) => tracker.readIndexEntry(experimentId, `prior-key-${(i * 37) % runs}.json`));
      // What the index replaced: one search by tag.
      const byTag = await time((i) => tracker.searchRuns({ experimentIds: [experimentId], tags: { "cairn.cache_key": `missing-key-${i}` }, status: "FINISHED", maxResults: 1 }));
      console.log(JSON.stringify({ bench: "mlflow-lookup", priorRuns: runs, missingKey: missing, indexRead: present, tagSearch: byTag }));
      await rm(root, { recursive: true, force: true });
    }
  } finally {
    await server.stop();
  }
}

if (which === "warm" || which === "all") await warmCold();
if (which === "lookup" || which === "all") await lookupVsRuns();
