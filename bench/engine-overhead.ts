/**
 * Engine overhead: N no-op function tasks in a layered DAG (each task depends on
 * two tasks of the layer before). Prints one JSON line: µs per task and peak RSS.
 *   tsx bench/engine-overhead.ts [tasks=10000] [tracking=off|local] [secrets=0]
 * With secrets > 0, that many secrets are known from the start (as from --secrets), so
 * every output is checked and every event passes the mask: the leak check's cost.
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
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
  }),
);
