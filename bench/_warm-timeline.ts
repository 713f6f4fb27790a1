import { flow, task } from "@cairn/dsl";
const root = process.argv[2]!;
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
const t = performance.now(); const cpu0 = process.cpuUsage();
const marks: string[] = [];
const run = await f.run({ root, concurrency: 8, env: {} });
marks.push(`run() returned ${Math.round(performance.now() - t)}`);
let first = 0, last = 0, n = 0;
run.on((e) => {
  const now = performance.now() - t;
  if (e.type === "task" && (e.status === "cached" || e.status === "succeeded")) { if (!first) first = now; last = now; n++; if (n % 100 === 0) marks.push(`${n} done ${Math.round(now)}`); }
  if (e.type === "flow") marks.push(`flow ${e.status} ${Math.round(now)}`);
});
const r = await run.wait();
marks.push(`wait() ${Math.round(performance.now() - t)}`);
const c = process.cpuUsage(cpu0); console.log(marks.join("\n"), r.status, "cpu user", Math.round(c.user/1000), "sys", Math.round(c.system/1000));
