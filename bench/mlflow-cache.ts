/**
 * The caching workload tracked in a real mlflow server: a layered flow (10 wide) of N tasks of
 * ~5 ms CPU each, cache on, concurrency 8. Per phase (cold: empty cache; warm: nothing changed),
 * the wall time and the requests sent, by endpoint. Each round uses a fresh experiment.
 * With another checkout's root as the fourth argument, its code runs beside this one's in the
 * same process against the same server, the two alternating (order swapped every round), so
 * that old and new code meet the same server and the same machine load.
 *   tsx bench/mlflow-cache.ts [tasks=200] [rounds=3] [server workers=1] [other checkout]
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { serverCpuMs, startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";

const n = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 3);
const workers = Number(process.argv[4] ?? 1);
const other = process.argv[5];
const width = 10;

type Dsl = typeof import("@cairn/dsl");
type TrackerModule = typeof import("@cairn/mlflow/tracker");
interface Version {
  name: string;
  dsl: Dsl;
  tracker: TrackerModule;
}

const here = resolve(import.meta.dirname, "..");
const load = async (name: string, root: string): Promise<Version> => ({
  name,
  dsl: (await import(pathToFileURL(join(root, "packages/dsl/src/index.ts")).href)) as Dsl,
  tracker: (await import(pathToFileURL(join(root, "packages/mlflow/src/tracker/index.ts")).href)) as TrackerModule,
});
const versions = [await load("this", here), ...(other ? [await load("other", resolve(other))] : [])];

const spin = (ms: number) => {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x++;
  return x;
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};


const server = await startMlflowServer({ workers });
try {
  const results = new Map<string, number[]>();
  const requests = new Map<string, number>();
  for (let r = 0; r < rounds; r++) {
    for (const v of r % 2 ? [...versions].reverse() : versions) {
      const { flow, task } = v.dsl;
      const tracker = v.tracker.MlflowTracker.fromEnv({}, server.uri);
      const counts = new Map<string, number>();
      tracker.client.http.observe((e) => {
        if (e.phase !== "request") return;
        const path = new URL(e.url).pathname.replace(/^\/api\/2\.0\/mlflow(-artifacts)?\//, "").replace(/^artifacts\/.*/, "artifacts/*");
        const key = `${e.method} ${path}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      });
      const step = task(`step-${v.name}`)
        .input<{ i: number; prev: unknown[] }>()
        .run(({ i, prev }) => {
          spin(5);
          return { v: i + prev.length };
        });
      const f = flow(`mlflow-cache-bench-${v.name}-${r}-${Date.now()}`).build(() => {
        let layer: unknown[] = [];
        for (let l = 0; l < n / width; l++) {
          const next: unknown[] = [];
          for (let w = 0; w < width; w++) next.push((step({ i: l * width + w, prev: layer as never }) as unknown as { v: unknown }).v);
          layer = next;
        }
        return {};
      });
      const root = await mkdtemp(join(tmpdir(), "cairn-bench-mlflow-cache-"));
      for (const phase of ["cold", "warm"] as const) {
        counts.clear();
        const cpu0 = await serverCpuMs(server);
        const own0 = process.cpuUsage();
        const t = performance.now();
        const run = await (await f.run({ tracker, root, concurrency: 8, env: {} })).wait();
        const ms = performance.now() - t;
        const own = process.cpuUsage(own0);
        const serverCpu = (await serverCpuMs(server)) - cpu0;
        if (run.status !== "succeeded") throw new Error(run.error?.message);
        const total = [...counts.values()].reduce((a, b) => a + b, 0);
        const key = `${v.name} ${phase}`;
        results.set(key, [...(results.get(key) ?? []), ms]);
        requests.set(key, total);
        console.log(JSON.stringify({ version: v.name, round: r, phase, ms: Math.round(ms), requests: total, perTask: Math.round((total / n) * 100) / 100, serverCpuMsPerRequest: Math.round((serverCpu / total) * 10) / 10, serverCpuMsPerTask: Math.round((serverCpu / n) * 10) / 10, clientCpuMsPerTask: Math.round(((own.user + own.system) / 1000 / n) * 10) / 10, recordsInFlight: (tracker as { recordsInFlight?: number }).recordsInFlight ?? "3 (fixed)", byEndpoint: Object.fromEntries(counts) }));
      }
    }
  }
  const medians = Object.fromEntries([...results].map(([k, xs]) => [k, { medianMs: Math.round(median(xs)), all: xs.map(Math.round), requests: requests.get(k) }]));
  console.log(JSON.stringify({ bench: "mlflow-cache", tasks: n, workers, rounds, ...medians }));
} finally {
  await server.stop();
}
