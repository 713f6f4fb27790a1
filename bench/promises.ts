/**
 * The engine's own promises a task: how many promises a flow run makes per task, counted by an
 * async hook, for a task whose function returns at once and for an async one. A figure the
 * machine's load does not move, beside engine-overhead.ts's time: each promise costs its
 * allocation, its reactions, and, while a run watches for crashes (the crash guard's async
 * context), its promise hooks.
 *   tsx bench/promises.ts [tasks=2000]
 */
import { createHook } from "node:async_hooks";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { flow, task } from "@cairn/dsl";

const total = Number(process.argv[2] ?? 2_000);
const returnsAtOnce = task("noop").input<{ deps: unknown[] }>().run(() => ({ ok: true }));
const isAsync = task("async-noop").input<{ deps: unknown[] }>().run(async () => ({ ok: true }));

/** A chain-of-layers DAG, 100 wide, each task after one of the layer before. */
const layered = (noop: typeof returnsAtOnce) =>
  flow("promises").build(() => {
    let previous: Array<{ ok: unknown }> = [];
    for (let made = 0; made < total; ) {
      const layer: Array<{ ok: unknown }> = [];
      for (let i = 0; i < 100 && made < total; i++, made++) layer.push(noop({ deps: (previous.length ? [previous[i % previous.length]!.ok] : []) as never }));
      previous = layer;
    }
    return {};
  });

const root = await mkdtemp(join(tmpdir(), "cairn-bench-"));
const perTask: Record<string, number> = {};
for (const [name, noop] of [["sync", returnsAtOnce], ["async", isAsync as typeof returnsAtOnce]] as const) {
  const definition = layered(noop);
  const options = { tracker: false as const, cache: false, root, concurrency: 8, env: {} };
  await (await definition.run(options)).wait(); // warm: what a first run loads is not the engine's per task
  let promises = 0;
  const hook = createHook({ init: (_id, type) => void (type === "PROMISE" && promises++) }).enable();
  const result = await (await definition.run(options)).wait();
  hook.disable();
  if (result.status !== "succeeded") throw new Error(`bench flow ${result.status}: ${result.error?.message}`);
  perTask[name] = Number((promises / total).toFixed(1));
}
await rm(root, { recursive: true, force: true });
console.log(JSON.stringify({ bench: "promises", tasks: total, syncTask: perTask.sync, asyncTask: perTask.async }));
