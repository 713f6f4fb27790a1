/**
 * Scheduling quality: sleeping tasks of known durations in a layered DAG under a
 * concurrency limit. Prints the makespan divided by the lower bound
 * max(critical path, total work / concurrency); 1.00 is perfect.
 * With `local`, the run records every task into the embedded store (a fresh folder; caching off,
 * as the tasks of this DAG share keys); `off` (the default) measures the scheduler alone.
 *   tsx bench/makespan.ts [tasks=400] [concurrency=8] [off|local]
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { flow, task } from "@cairn/dsl";

const total = Number(process.argv[2] ?? 400);
const concurrency = Number(process.argv[3] ?? 8);
const tracking = process.argv[4] === "local" ? "local" : "off";
const layers = 10;
const perLayer = Math.ceil(total / layers);

let seed = 12345;
const random = () => ((seed = (seed * 1664525 + 1013904223) % 2 ** 32) / 2 ** 32);

const sleep = task("sleep")
  .input<{ ms: number; deps: unknown[] }>()
  .run(async ({ ms }) => {
    await new Promise((r) => setTimeout(r, ms));
    return { done: true };
  });

const durations = new Map<string, number>();
const deps = new Map<string, string[]>();
const dag = flow("makespan").build(() => {
  let previous: Array<{ id: string; node: { done: unknown; $id: string } }> = [];
  let made = 0;
  for (let l = 0; l < layers; l++) {
    const layer: typeof previous = [];
    for (let i = 0; i < perLayer && made < total; i++, made++) {
      const ms = Math.round(20 + random() * 40);
      const picked = previous.length ? [...new Set([previous[Math.floor(random() * previous.length)]!, previous[Math.floor(random() * previous.length)]!])] : [];
      const node = sleep({ ms, deps: picked.map((p) => p.node.done) as never });
      durations.set(node.$id, ms);
      deps.set(node.$id, picked.map((p) => p.id));
      layer.push({ id: node.$id, node });
    }
    previous = layer;
  }
  return {};
});

// Lower bound: the longest path by duration, and the total work spread over all slots.
const finish = new Map<string, number>();
for (const [id, ms] of durations) finish.set(id, ms + Math.max(0, ...deps.get(id)!.map((d) => finish.get(d)!)));
const criticalPath = Math.max(...finish.values());
const work = [...durations.values()].reduce((a, b) => a + b, 0);
const bound = Math.max(criticalPath, work / concurrency);

const root = tracking === "local" ? await mkdtemp(join(tmpdir(), "cairn-bench-makespan-")) : undefined;
const started = performance.now();
const result = await (await dag.run(root ? { root, cache: false, concurrency, env: {} } : { tracker: false, cache: false, concurrency, env: {} })).wait();
const makespan = performance.now() - started;
if (result.status !== "succeeded") throw new Error(`bench flow ${result.status}`);
console.log(
  JSON.stringify({
    bench: "makespan",
    tasks: total,
    concurrency,
    tracking,
    makespanMs: Math.round(makespan),
    criticalPathMs: criticalPath,
    workOverConcurrencyMs: Math.round(work / concurrency),
    ratio: Math.round((makespan / bound) * 1000) / 1000,
  }),
);
