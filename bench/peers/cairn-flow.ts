/**
 * The Cairn side of `pnpm bench:peers` that runs as users run it, whole `cairn run` processes
 * (bench/peers/run.ts): CAIRN_PEERS_WORKLOAD=cache is GROUPS groups of LAYERS layers of WIDTH
 * tasks of WORK_MS ms of CPU, each on two tasks of the layer before in its group, the first
 * layer of group g on the param `g<g>` (`-p g3=1` changes one input: group 3 runs again);
 * CAIRN_PEERS_WORKLOAD=start is one task that writes the epoch ms it started to $PEERS_MARK.
 * Every task that runs appends its id to $PEERS_LOG (the harness checks which tasks ran).
 */
import { appendFileSync, writeFileSync } from "node:fs";
import { z } from "zod";
import { flow, task } from "@cairn/dsl";

const env = process.env;
const [groups, layers, width, workMs] = (env.CAIRN_PEERS_SHAPE ?? "10,10,10,20").split(",").map(Number) as [number, number, number, number];

const work = task("work")
  .input<{ id: string; l: number; seed: number; deps: number[] }>()
  .run(({ id, l, seed, deps }) => {
    const end = performance.now() + workMs;
    while (performance.now() < end);
    if (env.PEERS_LOG) appendFileSync(env.PEERS_LOG, `${id}\n`);
    return { v: (deps.reduce((a, b) => a + b, 0) + seed + l) % 1000003 };
  });

const first = task("first").run(() => {
  writeFileSync(env.PEERS_MARK!, String(performance.timeOrigin + performance.now()));
  return { ok: true };
});

const seeds = z.object(Object.fromEntries(Array.from({ length: groups }, (_, g) => [`g${g}`, z.number().default(0)])));

const cached = flow("peers-cache")
  .params(seeds)
  .build(({ params }) => {
    const p = params as Record<string, unknown>;
    for (let g = 0; g < groups; g++) {
      let previous: Array<{ v: unknown }> = [];
      for (let l = 0; l < layers; l++) {
        const current: Array<{ v: unknown }> = [];
        for (let k = 0; k < width; k++) {
          const deps = l ? [...new Set([previous[k]!, previous[(k * 7 + 3) % width]!])].map((d) => d.v) : [];
          current.push(work({ id: `w${g}_${l}_${k}`, l, seed: (l ? 0 : p[`g${g}`]) as never, deps: deps as never }));
        }
        previous = current;
      }
    }
    return {};
  });

export default env.CAIRN_PEERS_WORKLOAD === "start" ? flow("peers-start").build(() => ({ ok: first({}).ok })) : cached;
