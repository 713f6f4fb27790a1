/**
 * Which ready task gets a slot that goes free: the one with the longest remaining path to a sink,
 * among equals the one queued first, whether it waits for a pool too, looks the cache up first,
 * or comes back from a retry's backoff. Real tasks with `concurrency: 1`; the tests assert the
 * order tasks start in, never durations, so a loaded machine does not change what they see.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { flow, task, type TaskEvent } from "cairn-dag";

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });

/** `promise`, or a rejection when it has not settled within `ms`: a run that hangs fails its test instead of timing it out. */
const settles = <T>(promise: Promise<T>, ms = 5000): Promise<T> =>
  Promise.race([promise, sleep(ms).then(() => Promise.reject(new Error(`did not settle within ${ms} ms`)))]);

const off = { tracker: false, cache: false } as const;

/** A task that notes its node's id as it starts (each attempt), then sleeps `ms`. */
function stepTask(name: string, started: string[], pool?: string) {
  const t = task(name)
    .input<{ ms: number; after?: unknown }>()
    .cache(false)
    .run(async ({ ms }, ctx) => {
      started.push(ctx.nodeId);
      await sleep(ms, ctx.signal);
      return { done: true };
    });
  return pool ? t.pool(pool) : t;
}

describe("the next task to start", () => {
  it("is the pooled task on the longest remaining path, not a lower one that waited only for the flow's slot", async () => {
    const started: string[] = [];
    const gpu = stepTask("gpu-step", started, "gpu");
    const cpu = stepTask("cpu-step", started);
    const f = flow("pooled-priority").build(() => {
      const x = cpu({ ms: 20 }, { id: "x" });
      gpu({ ms: 20 }, { id: "glow" });
      cpu({ ms: 20 }, { id: "L" });
      let p = gpu({ ms: 20, after: x.done }, { id: "ghigh" });
      for (let k = 1; k <= 3; k++) p = cpu({ ms: 20, after: p.done }, { id: `c${k}` });
      return {};
    });
    const r = await (await f.run({ ...off, concurrency: 1, pools: { gpu: 1 } })).wait();
    expect(r.status).toBe("succeeded");
    // Before: glow held the pool while it queued for the flow's slot, so ghigh (path 4) waited behind L (path 1).
    // c3 is a sink like glow and L: it comes after them, queued later.
    expect(started).toEqual(["x", "ghigh", "c1", "c2", "glow", "L", "c3"]);
  });

  it("among equal priorities, is the one queued first, pooled or not", async () => {
    const started: string[] = [];
    const gpu = stepTask("gpu-step", started, "gpu");
    const cpu = stepTask("cpu-step", started);
    const f = flow("pooled-fifo").build(() => {
      gpu({ ms: 20 }, { id: "g1" });
      gpu({ ms: 20 }, { id: "g2" });
      cpu({ ms: 20 }, { id: "n1" });
      cpu({ ms: 20 }, { id: "n2" });
      return {};
    });
    const r = await (await f.run({ ...off, concurrency: 1, pools: { gpu: 1 } })).wait();
    expect(r.status).toBe("succeeded");
    // Before: g1's end gave the flow's slot to n1 before its pool's slot to g2, which then queued behind n2.
    expect(started).toEqual(["g1", "g2", "n1", "n2"]);
  });

  describe("with the cache on", () => {
    let root: string | undefined;
    afterEach(async () => {
      if (root) await rm(root, { recursive: true, force: true });
      root = undefined;
    });

    it("is a dependant that just became ready (its lookup under way), not a lower-priority task", async () => {
      root = await mkdtemp(join(tmpdir(), "cairn-slot-order-"));
      const started: string[] = [];
      const step = task("cached-step")
        .input<{ id: string; after?: unknown }>()
        .run(async ({ id }) => {
          started.push(id);
          await sleep(20);
          return { done: true };
        });
      const f = flow("cached-chain").build(() => {
        for (let k = 1; k <= 4; k++) step({ id: `s${k}` }, { id: `s${k}` });
        let p = step({ id: "c1" }, { id: "c1" });
        for (let k = 2; k <= 3; k++) p = step({ id: `c${k}`, after: p.done }, { id: `c${k}` });
        return {};
      });
      const r = await (await f.run({ tracker: false, root, env: {}, concurrency: 1 })).wait();
      expect(r.status).toBe("succeeded");
      // Before: c1's slot went to s1 while c2 hashed its inputs: c1, s1, c2, s2, s3, s4, c3. (c3 is
      // a sink like s1-s4, queued after them: it comes last, as with the cache off.)
      expect(started).toEqual(["c1", "c2", "s1", "s2", "s3", "s4", "c3"]);
      // A second run: every task a hit, none waits for a slot or runs.
      started.length = 0;
      const again = await settles((await f.run({ tracker: false, root, env: {}, concurrency: 1 })).wait());
      expect(Object.values(again.tasks).map((t) => t.status)).toEqual(Array(7).fill("cached"));
      expect(started).toEqual([]);
    });

    it("gives its place up while its lookup waits for another task of the run computing its key", async () => {
      root = await mkdtemp(join(tmpdir(), "cairn-slot-order-"));
      const started: string[] = [];
      const step = stepTask("plain-step", started);
      const keyed = task("keyed")
        .input<{ n: number }>()
        .run(async ({ n }, ctx) => {
          started.push(ctx.nodeId);
          await sleep(20);
          return { v: n };
        });
      const f = flow("same-key").build(() => {
        const pre = step({ ms: 20 }, { id: "pre" });
        step({ ms: 20 }, { id: "blocker" });
        keyed({ n: 1 }, { id: "lead" }); // computes the key: queued behind blocker
        // Same key as lead, ready when pre ends, ahead of lead by priority: it gets pre's slot, then
        // finds lead computing its key. Kept, that slot was the one lead waited for.
        const follow = keyed({ n: 1 }, { id: "follow", after: [pre] });
        step({ ms: 20, after: follow.v }, { id: "z" });
        return {};
      });
      const r = await settles((await f.run({ tracker: false, root, env: {}, concurrency: 1 })).wait());
      expect(r.status).toBe("succeeded");
      expect(r.tasks.follow!.status).toBe("cached");
      expect(started).toEqual(["pre", "blocker", "lead", "z"]);
    });
  });

  describe("while a task waits out its retry's backoff", () => {
    /** Fails its first attempt, then sleeps `ms`; notes `<id>#<attempt>` as each attempt starts. */
    function flakyTask(started: string[], delayMs: number, pool?: string) {
      const t = task("flaky")
        .input<{ ms: number }>()
        .cache(false)
        .retries(1, { minDelayMs: delayMs, maxDelayMs: delayMs })
        .run(async ({ ms }, ctx) => {
          started.push(`${ctx.nodeId}#${ctx.attempt}`);
          if (ctx.attempt === 1) throw new Error("first attempt fails");
          await sleep(ms, ctx.signal);
          return { done: true };
        });
      return pool ? t.pool(pool) : t;
    }

    it("gives its slot to ready tasks, and takes it again in its turn", async () => {
      const started: string[] = [];
      const flaky = flakyTask(started, 300);
      const other = stepTask("other", started);
      const f = flow("backoff-frees-slot").build(() => {
        flaky({ ms: 10 }, { id: "flaky" });
        other({ ms: 10 }, { id: "o1" });
        other({ ms: 10 }, { id: "o2" });
        return {};
      });
      const r = await (await f.run({ ...off, concurrency: 1 })).wait();
      expect(r.status).toBe("succeeded");
      expect(r.tasks.flaky!.attempts).toBe(2);
      // Before: o1 and o2 sat idle through the backoff: flaky#1, flaky#2, o1, o2.
      expect(started).toEqual(["flaky#1", "o1", "o2", "flaky#2"]);
    });

    it("gives its pool's slot too", async () => {
      const started: string[] = [];
      const flaky = flakyTask(started, 300, "gpu");
      const other = stepTask("other", started, "gpu");
      const f = flow("backoff-frees-pool").build(() => {
        flaky({ ms: 10 }, { id: "flaky" });
        other({ ms: 10 }, { id: "g1" });
        return {};
      });
      const r = await (await f.run({ ...off, concurrency: 4, pools: { gpu: 1 } })).wait();
      expect(r.status).toBe("succeeded");
      expect(started).toEqual(["flaky#1", "g1", "flaky#2"]);
    });

    it("is cancelled at once by a cancel during the backoff, or while it waits for its slot again", async () => {
      const started: string[] = [];
      const flaky = flakyTask(started, 60_000);
      const f = flow("backoff-cancel").build(() => ({ done: flaky({ ms: 10 }, { id: "flaky" }).done }));
      const run = await f.run({ ...off, concurrency: 1 });
      run.on((e) => void (e.type === "task" && e.status === "retrying" && run.cancel("enough")));
      const r = await settles(run.wait());
      expect(r.status).toBe("cancelled");
      expect(r.tasks.flaky!.status).toBe("cancelled");
      expect(started).toEqual(["flaky#1"]);

      // Its backoff over, it waits for the slot o1 took meanwhile: the cancel ends that wait too.
      started.length = 0;
      const quick = flakyTask(started, 10);
      const long = stepTask("long", started);
      const g = flow("retake-cancel").build(() => {
        quick({ ms: 10 }, { id: "flaky" });
        long({ ms: 60_000 }, { id: "o1" });
        return {};
      });
      const second = await g.run({ ...off, concurrency: 1 });
      second.on((e) => void (e.type === "task" && e.status === "running" && (e as TaskEvent).task === "o1" && setTimeout(() => void second.cancel("enough"), 100)));
      const r2 = await settles(second.wait());
      expect(r2.status).toBe("cancelled");
      expect(r2.tasks.flaky!.status).toBe("cancelled");
      expect(r2.tasks.o1!.status).toBe("cancelled");
      expect(started).toEqual(["flaky#1", "o1"]);
    });
  });
});
