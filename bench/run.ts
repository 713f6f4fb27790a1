/**
 * `pnpm bench`: runs each benchmark in its own process (clean peak RSS) and prints
 * a markdown table; BENCHMARKS.md records the figures with the machine they ran on.
 */
import { execFileSync } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";

const here = import.meta.dirname;
const tsx = join(here, "..", "node_modules", ".bin", "tsx");
const runBench = (file: string, ...args: string[]) =>
  JSON.parse(execFileSync(tsx, [join(here, file), ...args], { encoding: "utf8", env: { ...process.env, MLFLOW_TRACKING_URI: "" } }).trim().split("\n").at(-1)!) as Record<string, number | string>;

const rows: string[][] = [];
for (const tracking of ["off", "local"]) {
  const r = runBench("engine-overhead.ts", "10000", tracking);
  const goal = tracking === "off" ? "<= 25 µs, <= 150 MB" : "<= 1000 µs";
  const floor = r.floorUsPerTask === undefined ? "" : `; the floor (bare promises, same DAG) ${r.floorUsPerTask} µs/task, engine/floor ${r.ratioToFloor}`;
  rows.push([`10,000 no-op tasks, tracking ${tracking}`, `${r.usPerTask} µs/task, peak RSS ${r.peakRssMb} MB (total ${r.totalMs} ms)${floor}`, goal]);
}
const perTask = Number(rows[0]![1]!.split(" ")[0]);
const pr = runBench("promises.ts");
rows.push(["promises the engine makes a task (2,000 no-op tasks, tracking and cache off, counted by an async hook)", `${pr.syncTask} for a task that returns at once, ${pr.asyncTask} for an async one`, "fewer is better: each costs its promise hooks while a run watches for crashes"]);
const mp = runBench("fan-out.ts", "map", "10000");
rows.push(["map of 10,000 no-op items, tracking off", `${mp.usPerItem} µs/item (${(Number(mp.usPerItem) / perTask).toFixed(1)}× the per-task overhead above), peak RSS ${mp.peakRssMb} MB (total ${mp.totalMs} ms)`, "<= 2× per task, bounded memory"]);
const sw = runBench("fan-out.ts", "sweep", "100");
rows.push([`sweep of ${sw.trials} trials (no-op, embedded store), warm / cold`, `${sw.warmMs} ms / ${sw.coldMs} ms = ${sw.ratio}`, "warm: all hits, same best"]);
const m = runBench("makespan.ts", "400", "8");
rows.push([
  "400 sleeping tasks (20-60 ms), concurrency 8",
  `makespan ${m.makespanMs} ms / bound ${Math.max(Number(m.criticalPathMs), Number(m.workOverConcurrencyMs))} ms = ${m.ratio}`,
  "<= 1.05",
]);

const w = runBench("cache.ts", "warm");
rows.push(["1,000-task flow (20 ms of work each, embedded store), warm / cold", `${w.warmMs} ms / ${w.coldMs} ms = ${w.ratio}`, "<= 0.05"]);
type Timing = { medianMs: number; p90Ms: number };
const lookups = execFileSync(tsx, [join(here, "cache.ts"), "lookup"], { encoding: "utf8" })
  .trim()
  .split("\n")
  .map((l) => JSON.parse(l) as { priorRuns: number; missingKey: Timing; indexRead: Timing; tagSearch: Timing });
const show = (t: Timing) => `median ${t.medianMs} ms, p90 ${t.p90Ms} ms`;
for (const l of lookups) {
  rows.push([`MLflow lookup of a key in no store (local miss; the run's one listing of the index answers it), ${l.priorRuns} prior runs`, show(l.missingKey), "flat as runs grow"]);
  rows.push([`MLflow index read of a key that is there, ${l.priorRuns} prior runs`, show(l.indexRead), "flat as runs grow"]);
  rows.push([`(for comparison) MLflow search by tag, ${l.priorRuns} prior runs`, show(l.tagSearch), ""]);
}
const t = runBench("mlflow.ts", "200");
rows.push(["200 tasks tracked in a real mlflow server", `${t.requestsPerTask} requests per task (+${t.requestsOfTheFlowRunItself} for the flow run); +${t.overheadMsPerTask} ms per task at concurrency 8`, "<= 4 requests per task + 1 per artifact"]);

const q = runBench("queue.ts", "30", "5") as unknown as { overheadMsPerTask: number; localChainMs: number; queuedChainMs: number; throughput: Record<string, { tasksPerS: number; ratio: number }> };
rows.push(["dispatch through a Redis queue (`--queue`, 1 worker), a chain of 30 no-op tasks against in process, both tracked in MLflow", `+${q.overheadMsPerTask} ms per task (${q.queuedChainMs} ms / ${q.localChainMs} ms)`, "<= 5 ms per task"]);
rows.push([
  "throughput of 1 s tasks through the queue, 1 / 2 / 4 / 8 workers (4 tasks per worker)",
  Object.values(q.throughput).map((t) => `${t.tasksPerS}/s (${t.ratio})`).join(", "),
  ">= 0.8 × N of one worker",
]);

const st = runBench("start.ts", "9");
rows.push([
  "start to first task, `cairn run` (whole process, median of 9 alternating rounds)",
  `installed from the packed tarballs ${st.installedFirstTaskMs} ms, in the workspace ${st.workspaceFirstTaskMs} ms, installed through tsx ${st["installed-tsxFirstTaskMs"]} ms`,
  "installed no slower than the workspace",
]);
const packed = Object.values(st.packedKb as unknown as Record<string, number>);
const packedKb = packed.reduce((a, b) => a + b, 0);
rows.push(["size of Cairn as installed", `packed ${packedKb} KB (${packed.length} tarballs); installed: Cairn's packages ${st.cairnPackagesInstalledKb} KB, node_modules with every dependency ${st.installedNodeModulesKb} KB`, ""]);

console.log(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}\n`);
console.log("| benchmark | result | goal |\n| --- | --- | --- |");
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
