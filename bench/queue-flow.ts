/**
 * The flow of bench/queue.ts, for its coordinator and its `cairn worker` processes alike:
 * BENCH_SHAPE=chain, BENCH_N no-op tasks one after another (dispatch latency per task), or
 * BENCH_SHAPE=wide, BENCH_N independent tasks that each sleep BENCH_SLEEP_MS (throughput).
 */
import { flow, task } from "cairn-dag";

const n = Number(process.env.BENCH_N ?? 30);
const sleepMs = Number(process.env.BENCH_SLEEP_MS ?? 0);
const step = task("step")
  .input<{ i: number; prev: number }>()
  .run(async ({ i, prev }) => {
    if (sleepMs) await new Promise((r) => setTimeout(r, sleepMs));
    return { v: prev + i };
  });

export default flow(process.env.BENCH_FLOW ?? "queue-bench").build(() => {
  if (process.env.BENCH_SHAPE === "wide") {
    for (let i = 0; i < n; i++) step({ i, prev: 0 }, { id: `t${i}` });
    return {};
  }
  let last = step({ i: 0, prev: 0 }, { id: "t0" }).v;
  for (let i = 1; i < n; i++) last = step({ i, prev: last }, { id: `t${i}` }).v;
  return { last };
});
