/**
 * A warm run of 200 cached tasks with one artifact each, on the embedded store: what a hit costs
 * to check its artifact file. Run it once to fill ROOT (cold), then again for the warm time; to
 * compare two versions of the code, give each its own ROOT and alternate them. Prints one JSON line.
 *   tsx bench/artifact-hits.ts ROOT BYTES
 */
import { flow, task } from "@cairn/dsl";

const [root, bytesArg] = process.argv.slice(2);
const bytes = Number(bytesArg);
if (!root || !Number.isSafeInteger(bytes) || bytes < 0) throw new Error("usage: tsx bench/artifact-hits.ts ROOT BYTES");
const make = task("make")
  .input<{ i: number }>()
  .run(async ({ i }, ctx) => ({ file: await ctx.artifacts.write("data.bin", Buffer.alloc(bytes, i % 251)) }));
const f = flow("artifact-hits").build(() => {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < 200; i++) out[`t${i}`] = make({ i }).file;
  return out;
});
const t = performance.now();
const r = await (await f.run({ root, env: {} })).wait();
const ms = performance.now() - t;
const cached = Object.values(r.tasks).filter((x) => x.status === "cached").length;
console.log(JSON.stringify({ bench: "artifact-hits", tasks: 200, bytes, ms: Math.round(ms), cached, status: r.status }));
