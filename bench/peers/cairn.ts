/**
 * The Cairn side of `pnpm bench:peers` timed inside one process (bench/peers/run.ts), the
 * same DAGs as bench/peers/peer.py: `overhead TASKS` (no-op tasks, 100 wide, each on two of the
 * layer before; tracking and cache off, concurrency 8) and `makespan TASKS CONCURRENCY SLEEP_MS`
 * (bench/makespan.ts's seeded shape, every task sleeping SLEEP_MS). Prints one JSON line:
 * the time from `flow.run()` to the end of `wait()`.
 *   tsx bench/peers/cairn.ts overhead 10000
 */
import { flow, task } from "@cairn/dsl";

const [workload, ...args] = process.argv.slice(2);
const width = 100;

/** [id, dep indices] of the layered DAG of peer.py's layered(). */
function layered(total: number): number[][] {
  const deps: number[][] = [];
  let previous: number[] = [];
  for (let made = 0; made < total; ) {
    const layer: number[] = [];
    for (let i = 0; i < width && made < total; i++, made++) {
      deps.push(previous.length ? [...new Set([previous[i % previous.length]!, previous[(i * 7 + 3) % previous.length]!])] : []);
      layer.push(made);
    }
    previous = layer;
  }
  return deps;
}

/** peer.py's makespan_dag(): 10 layers, two deps drawn by the same LCG. */
function makespanDag(total: number): number[][] {
  let seed = 12345;
  const random = () => (seed = (seed * 1664525 + 1013904223) % 2 ** 32) / 2 ** 32;
  const per = Math.ceil(total / 10);
  const deps: number[][] = [];
  let previous: number[] = [];
  for (let l = 0, made = 0; l < 10; l++) {
    const layer: number[] = [];
    for (let i = 0; i < per && made < total; i++, made++) {
      deps.push(previous.length ? [...new Set([previous[Math.floor(random() * previous.length)]!, previous[Math.floor(random() * previous.length)]!])] : []);
      layer.push(made);
    }
    previous = layer;
  }
  return deps;
}

const total = Number(args[0]);
const concurrency = workload === "makespan" ? Number(args[1]) : 8;
const sleepMs = workload === "makespan" ? Number(args[2]) : 0;
const dag = workload === "makespan" ? makespanDag(total) : layered(total);

const step = task("step")
  .input<{ deps: unknown[] }>()
  .run(async () => {
    if (sleepMs) await new Promise((r) => setTimeout(r, sleepMs));
    return { ok: true };
  });
const f = flow(`peers-${workload}`).build(() => {
  const nodes: Array<{ ok: unknown }> = [];
  for (const deps of dag) nodes.push(step({ deps: deps.map((d) => nodes[d]!.ok) as never }));
  return {};
});

const started = performance.now();
const result = await (await f.run({ tracker: false, cache: false, concurrency, env: {} })).wait();
const insideMs = performance.now() - started;
if (result.status !== "succeeded") throw new Error(`bench flow ${result.status}: ${result.error?.message}`);
console.log(JSON.stringify({ engine: "cairn", workload, tasks: total, insideMs }));
