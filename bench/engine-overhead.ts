/**
 * Engine overhead: N no-op function tasks in a layered DAG (each task depends on
 * two tasks of the layer before). Prints one JSON line: µs per task and peak RSS.
 *   tsx bench/engine-overhead.ts [tasks=10000] [tracking=off|local] [secrets=0]
 * With secrets > 0, that many secrets are known from the start (as from --secrets), so
 * every output is checked and every event passes the mask: the leak check's cost.
 * With tracking off it also times the floor, in the same process and first: a bare
 * topological runner of the same DAG on promises (each task starts when its dependencies'
 * promises resolve, at most 8 at once), with no validation, no events, no cache or tracker.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { flow, task } from "@cairn/dsl";

const total = Number(process.argv[2] ?? 10_000);
const tracking = process.argv[3] ?? "off";
const secretCount = Number(process.argv[4] ?? 0);
const secrets = Object.fromEntries(Array.from({ length: secretCount }, (_, i) => [`BENCH_SECRET_${i}`, `bench-secret-value-${i}-"quoted"\\-é`]));
const width = 100;

const noop = task("noop")
  .input<{ deps: unknown[] }>()
  .run(() => ({ ok: true }));

const layered = flow("overhead").build(() => {
  let previous: Array<{ ok: unknown }> = [];
  for (let made = 0; made < total; ) {
    const layer: Array<{ ok: unknown }> = [];
    for (let i = 0; i < width && made < total; i++, made++) {
      const deps = previous.length ? [previous[i % previous.length]!.ok, previous[(i * 7 + 3) % previous.length]!.ok] : [];
      layer.push(noop({ deps: deps as never }));
    }
    previous = layer;
  }
  return {};
});

/** The floor: the same layered DAG as bare promises, 8 at once. Returns µs per task. */
async function floor(): Promise<number> {
  const started = performance.now();
  let running = 0;
  const waiting: Array<() => void> = [];
  const slot = async () => {
    if (running < 8) return void running++;
    await new Promise<void>((r) => waiting.push(r));
  };
  const done = () => {
    const next = waiting.shift();
    if (next) next();
    else running--;
  };
  const run = async (deps: Array<Promise<{ ok: boolean }>>) => {
    await Promise.all(deps);
    await slot();
    try {
      return { ok: true };
    } finally {
      done();
    }
  };
  let previous: Array<Promise<{ ok: boolean }>> = [];
  const all: Array<Promise<{ ok: boolean }>> = [];
  for (let made = 0; made < total; ) {
    const layer: Array<Promise<{ ok: boolean }>> = [];
    for (let i = 0; i < width && made < total; i++, made++) {
      const deps = previous.length ? [previous[i % previous.length]!, previous[(i * 7 + 3) % previous.length]!] : [];
      layer.push(run(deps));
    }
    all.push(...layer);
    previous = layer;
  }
  await Promise.all(all);
  return ((performance.now() - started) * 1000) / total;
}
const floorUsPerTask = tracking === "off" ? await floor() : undefined;

const root = await mkdtemp(join(tmpdir(), "cairn-bench-"));
const started = performance.now();
const run = await layered.run({ tracker: tracking === "off" ? false : undefined, cache: false, root, concurrency: 8, env: {}, secrets });
const result = await run.wait();
const ms = performance.now() - started;
if (result.status !== "succeeded") throw new Error(`bench flow ${result.status}: ${result.error?.message}`);
await rm(root, { recursive: true, force: true });
console.log(
  JSON.stringify({
    bench: "engine-overhead",
    tracking,
    ...(secretCount ? { secrets: secretCount } : {}),
    tasks: total,
    totalMs: Math.round(ms),
    usPerTask: Math.round((ms * 1000) / total),
    ...(floorUsPerTask === undefined ? {} : { floorUsPerTask: Number(floorUsPerTask.toFixed(2)), ratioToFloor: Number(((ms * 1000) / total / floorUsPerTask).toFixed(1)) }),
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
  }),
);
