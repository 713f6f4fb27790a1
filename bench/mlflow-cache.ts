/**
 * The caching workload tracked in a real mlflow server (one worker, SQLite): a layered flow of
 * N tasks of ~5 ms CPU each, cache on, concurrency 8. Per phase (cold: empty cache; warm:
 * nothing changed), the wall time and the requests sent, by endpoint. Rounds alternate phases
 * on fresh experiments. Prints one JSON line per phase per round, then the medians.
 *   tsx bench/mlflow-cache.ts [tasks=200] [rounds=3] [server workers=1]
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { flow, task } from "@cairn/dsl";
import { startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";

const n = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 3);
const workers = Number(process.argv[4] ?? 1);
const width = 10;

const spin = (ms: number) => {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x++;
  return x;
};
const step = task("step")
  .input<{ i: number; prev: number[] }>()
  .run(({ i, prev }) => {
    spin(5);
    return { v: i + prev.length };
  });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

const server = await startMlflowServer({ workers });
try {
  const tracker = MlflowTracker.fromEnv({}, server.uri);
  const counts = new Map<string, number>();
  tracker.client.http.observe((e) => {
    if (e.phase !== "request") return;
    const path = new URL(e.url).pathname.replace(/^\/api\/2\.0\/mlflow(-artifacts)?\//, "").replace(/^artifacts\/.*/, "artifacts/*");
    const key = `${e.method} ${path}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  });
  const results: Record<string, number[]> = { cold: [], warm: [] };
  for (let r = 0; r < rounds; r++) {
    const name = `mlflow-cache-bench-${r}-${Date.now()}`;
    const f = flow(name).build(() => {
      let layer: { v: unknown }[] = [];
      for (let l = 0; l < n / width; l++) {
        const next: { v: unknown }[] = [];
        for (let w = 0; w < width; w++) next.push(step({ i: l * width + w, prev: layer.map((t) => t.v) as never }) as never);
        layer = next;
      }
      return {};
    });
    const root = await mkdtemp(join(tmpdir(), "cairn-bench-mlflow-cache-"));
    for (const phase of ["cold", "warm"] as const) {
      counts.clear();
      const t = performance.now();
      const run = await (await f.run({ tracker, root, concurrency: 8, env: {} })).wait();
      const ms = performance.now() - t;
      if (run.status !== "succeeded") throw new Error(run.error?.message);
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      results[phase]!.push(ms);
      console.log(JSON.stringify({ round: r, phase, ms: Math.round(ms), requests: total, perTask: Math.round((total / n) * 100) / 100, byEndpoint: Object.fromEntries(counts) }));
    }
  }
  console.log(JSON.stringify({ bench: "mlflow-cache", tasks: n, workers, rounds, coldMs: Math.round(median(results.cold!)), warmMs: Math.round(median(results.warm!)) }));
} finally {
  await server.stop();
}
