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
const t = performance.now();
const r = await (await f.run({ root, concurrency: 8, env: {} })).wait();
console.log(JSON.stringify({ ms: Math.round(performance.now() - t), status: r.status, cached: Object.values(r.tasks).filter((x) => x.status === "cached").length }));
