/**
 * Maps and sweeps. Prints one JSON line.
 *   tsx bench/fan-out.ts map [items=10000]   a map of no-op function items (tracking and cache
 *                                             off, concurrency 8): µs per item and peak RSS, to
 *                                             set beside engine-overhead.ts's µs per task
 *   tsx bench/fan-out.ts sweep [trials=100]  a sweep over a grid of `trials` points on the
 *                                             embedded store and cache: the cold run, then the
 *                                             same run again (every trial a hit), in ms
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { flow, grid, map, max, sweep, task } from "@cairn/dsl";

const mode = process.argv[2] ?? "map";
const n = Number(process.argv[3] ?? (mode === "map" ? 10_000 : 100));

if (mode === "map") {
  const noop = task("noop")
    .input<{ i: number }>()
    .run(({ i }) => ({ i }));
  const f = flow("map-bench").build(() => ({ n: map(noop, { over: Array.from({ length: n }, (_, i) => i), as: "i" }).$id }));
  const root = await mkdtemp(join(tmpdir(), "cairn-bench-"));
  const started = performance.now();
  const result = await (await f.run({ tracker: false, cache: false, root, concurrency: 8, env: {} })).wait();
  const ms = performance.now() - started;
  if (result.status !== "succeeded") throw new Error(`bench flow ${result.status}: ${result.error?.message}`);
  await rm(root, { recursive: true, force: true });
  console.log(JSON.stringify({ bench: "fan-out-map", items: n, totalMs: Math.round(ms), usPerItem: Math.round((ms * 1000) / n), peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) }));
} else {
  const fit = task("fit")
    .input<{ a: number; b: number }>()
    .run(({ a, b }) => ({ score: -((a - 3) ** 2) - (b - 7) ** 2 }));
  const side = Math.ceil(Math.sqrt(n));
  const f = flow("sweep-bench").build(() => {
    const best = sweep(fit, { over: grid({ a: Array.from({ length: side }, (_, i) => i), b: Array.from({ length: Math.ceil(n / side) }, (_, i) => i) }), select: max("score") });
    return { params: best.params };
  });
  const root = await mkdtemp(join(tmpdir(), "cairn-bench-"));
  const once = async () => {
    const started = performance.now();
    const result = await (await f.run({ root, concurrency: 8, env: {} })).wait();
    if (result.status !== "succeeded") throw new Error(`bench flow ${result.status}: ${result.error?.message}`);
    return { ms: performance.now() - started, best: JSON.stringify(result.outputs) };
  };
  const cold = await once();
  const warm = await once();
  await rm(root, { recursive: true, force: true });
  if (warm.best !== cold.best) throw new Error(`the warm run picked ${warm.best}, the cold one ${cold.best}`);
  console.log(JSON.stringify({ bench: "fan-out-sweep", trials: side * Math.ceil(n / side), coldMs: Math.round(cold.ms), warmMs: Math.round(warm.ms), ratio: Number((warm.ms / cold.ms).toFixed(2)) }));
}
