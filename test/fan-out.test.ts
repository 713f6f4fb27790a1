import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  ConditionError,
  EmptySpaceError,
  MapItemsFailedError,
  MapOverError,
  MinSuccessError,
  OptionError,
  SelectorError,
  flow,
  grid,
  list,
  map,
  max,
  min,
  random,
  shell,
  sweep,
  task,
  when,
  type RunEvent,
  type TaskEvent,
} from "cairn-dag";
import { FlowValidationError, NotSerializableError, buildFlowGraph, openFlowCache, planFlow } from "@cairn/core";

const off = { tracker: false, cache: false } as const;

const listOf = task("listOf")
  .input<{ n: number }>()
  .run(({ n }) => ({ items: Array.from({ length: n }, (_, i) => i) }));
const square = task("square")
  .input<{ x: number; add: number }>()
  .run(({ x, add }) => ({ y: x * x + add }));
const sum = task("sum")
  .input<{ ys: Array<{ y: number }> }>()
  .run(({ ys }) => ({ total: ys.reduce((a, b) => a + b.y, 0) }));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-fanout-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("map over a list known at run time", () => {
  it("runs one node per item, named task[k], and outputs a typed array in item order", async () => {
    const f = flow("map-basic")
      .params(z.object({ n: z.number() }))
      .build(({ params }) => {
        const l = listOf({ n: params.n });
        const sq = map(square, { over: l.items, as: "x", with: { add: 1 } });
        const s = sum({ ys: sq.outputs });
        return { ys: sq.outputs, total: s.total };
      });
    const events: TaskEvent[] = [];
    const run = await f.run({ ...off, params: { n: 4 } });
    run.on((e: RunEvent) => void (e.type === "task" && events.push(e)));
    const result = await run.wait();
    expect(result.status).toBe("succeeded");
    expect(result.outputs).toEqual({ ys: [{ y: 1 }, { y: 2 }, { y: 5 }, { y: 10 }], total: 18 });
    expect(Object.keys(result.tasks)).toEqual(expect.arrayContaining(["square[0]", "square[3]", "square"]));
    const item = events.find((e) => e.task === "square[2]" && e.status === "succeeded")!;
    expect(item).toMatchObject({ parent: "square", item: 2 });
  });
});

const tracked = () => ({ root: dir, env: {} });

describe("map: lists, failures and bad input", () => {
  it("gives [] for an empty list and runs no item", async () => {
    const f = flow("map-empty").build(() => {
      const l = listOf({ n: 0 });
      const sq = map(square, { over: l.items, as: "x", with: { add: 1 } });
      return { ys: sq.outputs };
    });
    const result = await (await f.run(off)).wait();
    expect(result.status).toBe("succeeded");
    expect(result.outputs).toEqual({ ys: [] });
    expect(Object.keys(result.tasks).sort()).toEqual(["listOf", "square"]);
  });

  it("fails the map with a clear error when `over` is not an array, naming node, input and what arrived", async () => {
    const notList = task("notList").run(() => ({ items: 42 as unknown as number[] }));
    const f = flow("map-not-array").build(() => {
      const l = notList();
      return { ys: map(square, { over: l.items, as: "x", with: { add: 1 } }).outputs };
    });
    const result = await (await f.run(off)).wait();
    expect(result.status).toBe("failed");
    expect(result.tasks.square!.error).toMatchObject({ name: "MapOverError" });
    expect(result.tasks.square!.error!.message).toBe(new MapOverError("square", "notList.items", 42).message);
    expect(result.tasks.square!.error!.message).toContain('Map "square" expected its input `over` (notList.items) to be an array, got `42` (number)');
  });

  it("refuses a literal list, or a condition, that is not JSON data when the flow is built, naming the place (a circular or over-deep one too: no stack overflow)", async () => {
    const refused = (build: () => Record<string, unknown>) => {
      try {
        flow("map-bad-literal").build(build).graph();
      } catch (error) {
        expect(FlowValidationError.is(error), String(error)).toBe(true);
        expect((error as Error).cause).toBeInstanceOf(NotSerializableError);
        return (error as Error).message;
      }
      throw new Error("the flow was not refused");
    };
    expect(refused(() => ({ ys: map(square, { over: [1, new Map() as unknown as number], as: "x", with: { add: 0 } }).outputs }))).toMatch(/^Map "square" `over` at "\[1\]" cannot be serialized: .*got a Map instance.* \(in flow "map-bad-literal"\)$/);
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    expect(refused(() => ({ ys: map(square, { over: [circular as never], as: "x", with: { add: 0 } }).outputs }))).toMatch(/^Map "square" `over` at "\[0\]\.self" cannot be serialized: .*got a circular reference/);
    let deep: unknown = 1;
    for (let i = 0; i < 20_000; i++) deep = [deep];
    expect(refused(() => ({ ys: map(square, { over: [deep as never], as: "x", with: { add: 0 } }).outputs }))).toMatch(/^Map "square" `over` at "\[0\]\[0\].*nested more than 1000 levels deep/);
    expect(refused(() => ({ best: sweep(square, { over: list([{ x: 1, add: circular as never }]), select: max("y") }).best.y }))).toMatch(/^Sweep "square" `over` at "\[0\]\.add\.self" cannot be serialized/);
    // A condition is a ref or a boolean in the DSL; one given as a circular literal through the
    // definition is refused the same way.
    const plain = flow("cond-literal")
      .params(z.object({ go: z.boolean() }))
      .build(({ params }) => ({ y: square({ x: 1, add: 0 }, { if: params.go }).y })).definition;
    const bad = { ...plain, nodes: plain.nodes.map((n) => ({ ...n, condition: circular as never })) };
    expect(() => buildFlowGraph(bad)).toThrow(/^Task "square" condition \(`if`\) at "self" cannot be serialized: .*got a circular reference/);
    // `cairn run` refuses it before anything runs.
    await expect(flow("map-circular-run").build(() => ({ ys: map(square, { over: [circular as never], as: "x", with: { add: 0 } }).outputs })).run(off)).rejects.toThrow(FlowValidationError);
  });

  it("fails when one item fails and lists it; with minSuccess it succeeds with the failed items listed", async () => {
    const picky = task("picky")
      .input<{ x: number }>()
      .run(({ x }) => {
        if (x === 2) throw new Error("two is bad");
        return { x };
      });
    const strict = flow("map-strict").build(() => ({ xs: map(picky, { over: [0, 1, 2, 3], as: "x" }).outputs }));
    const failed = await (await strict.run({ ...off, failurePolicy: "continue" })).wait();
    expect(failed.status).toBe("failed");
    expect(failed.tasks.picky!.error!.name).toBe("MapItemsFailedError");
    expect(failed.tasks.picky!.error!.message).toContain('"picky[2]": two is bad');
    expect(failed.tasks["picky[2]"]!.status).toBe("failed");

    const tolerant = flow("map-tolerant").build(() => {
      const m = map(picky, { over: [0, 1, 2, 3], as: "x", minSuccess: 0.75 });
      return { xs: m.outputs, failed: m.failed };
    });
    const ok = await (await tolerant.run(off)).wait();
    expect(ok.status).toBe("succeeded");
    expect(ok.outputs).toEqual({ xs: [{ x: 0 }, { x: 1 }, null, { x: 3 }], failed: ["picky[2]"] });
    // What a task fed the outputs receives: `null` in the failed item's slot, as on a queue worker
    // (test/worker/queue.test.ts), where its inputs pass through JSON.
    const seen = task("seen")
      .input<{ xs: Array<{ x: number } | null> }>()
      .run(({ xs }) => ({ slots: xs.map((x) => (x === null ? "null" : x === undefined ? "undefined" : "item")) }));
    const fed = flow("map-tolerant-fed").build(() => ({ slots: seen({ xs: map(picky, { over: [0, 1, 2, 3], as: "x", minSuccess: 0.75 }).outputs }).slots }));
    expect((await (await fed.run(off)).wait()).outputs).toEqual({ slots: ["item", "item", "null", "item"] });

    const tooFew = flow("map-too-few").build(() => ({ xs: map(picky, { over: [0, 1, 2, 3], as: "x", minSuccess: 4 }).outputs }));
    expect((await (await tooFew.run(off)).wait()).status).toBe("failed");
  });

  it("rejects minSuccess out of range when the flow is built, and a count larger than the list when it runs", async () => {
    for (const bad of [0, -1, 1.5, 2.5, Number.NaN]) {
      expect(() => flow("bad-min").build(() => ({ xs: map(square, { over: [1], as: "x", with: { add: 0 }, minSuccess: bad }).outputs }))).toThrow(OptionError);
    }
    expect(() => flow("bad-min").build(() => ({ xs: map(square, { over: [1], as: "x", with: { add: 0 }, minSuccess: 0 }).outputs }))).toThrow(
      /Expected `map\(square\) `minSuccess`` to be a fraction of the items in \(0, 1\) \(0.8: 80%\) or a count, an integer >= 1, got `0` \(number\)/,
    );
    const f = flow("min-count").build(() => ({ xs: map(square, { over: [1, 2], as: "x", with: { add: 0 }, minSuccess: 3 }).outputs }));
    const result = await (await f.run(off)).wait();
    expect(result.status).toBe("failed");
    expect(result.tasks.square!.error!.message).toBe(new MinSuccessError("square", 3, 2).message);
    // An empty list cannot give a count of items either; a fraction of none is none.
    const empty = flow("min-count-empty").build(() => ({ xs: map(square, { over: [] as number[], as: "x", with: { add: 0 }, minSuccess: 3 }).outputs }));
    expect((await (await empty.run(off)).wait()).tasks.square!.error!.message).toBe(new MinSuccessError("square", 3, 0).message);
    const fraction = flow("min-fraction-empty").build(() => ({ xs: map(square, { over: [] as number[], as: "x", with: { add: 0 }, minSuccess: 0.5 }).outputs }));
    expect((await (await fraction.run(off)).wait()).outputs).toEqual({ xs: [] });
  });

  it("caches each item by content: changing one item re-runs only it, adding items runs only the new ones", async () => {
    let runs = 0;
    const counted = task("counted")
      .input<{ x: number }>()
      .run(({ x }) => {
        runs++;
        return { y: x + 1 };
      });
    const f = flow("map-cache")
      .params(z.object({ xs: z.array(z.number()) }))
      .build(({ params }) => ({ ys: map(counted, { over: params.xs, as: "x" }).outputs }));
    const go = async (xs: number[]) => {
      runs = 0;
      const result = await (await f.run({ ...tracked(), params: { xs } })).wait();
      expect(result.status).toBe("succeeded");
      return result;
    };
    await go([1, 2, 3]);
    expect(runs).toBe(3);
    const again = await go([1, 2, 3]);
    expect(runs).toBe(0);
    expect(again.tasks["counted[1]"]!.status).toBe("cached");
    await go([1, 20, 3]);
    expect(runs).toBe(1);
    const widened = await go([1, 20, 3, 4, 5]);
    expect(runs).toBe(2);
    expect(widened.outputs).toEqual({ ys: [{ y: 2 }, { y: 21 }, { y: 4 }, { y: 5 }, { y: 6 }] });
  });

  it("--rerun of one item (square[1]) runs that item and what is downstream of the map, not its other items", async () => {
    let ran: number[] = [];
    const counted = task("counted")
      .input<{ x: number }>()
      .run(({ x }) => (ran.push(x), { y: x * x }));
    const f = flow("map-rerun-item").build(() => {
      const m = map(counted, { over: [1, 2, 3], as: "x" });
      return { total: sum({ ys: m.outputs }).total };
    });
    await (await f.run(tracked())).wait();
    ran = [];
    const again = await (await f.run({ ...tracked(), cache: { rerun: ["counted[1]"] } })).wait();
    expect(again.status).toBe("succeeded");
    expect(ran).toEqual([2]);
    expect(again.tasks["counted[0]"]!.status).toBe("cached");
    expect(again.tasks["counted[1]"]!.status).toBe("succeeded");
    expect(again.tasks.sum!.status).toBe("succeeded"); // downstream of the map runs, as with --rerun of any node
    expect(again.outputs).toEqual({ total: 14 });
    await expect(f.run({ ...tracked(), cache: { rerun: ["sum[0]"] } })).rejects.toThrow(/or an item of a map or sweep \(like "counted\[0\]"\), got "sum\[0\]"/);
    await expect(f.run({ ...tracked(), cache: { rerun: ["counted[01]"] } })).rejects.toThrow(/got "counted\[01\]"/);
    await expect(f.run({ ...tracked(), cache: { rerun: ["counted[3]"] } })).rejects.toThrow('Expected `rerun` to be an item of "counted", which has 3 (counted[0] to counted[2]), got "counted[3]"');
  });

  it("--rerun of an item past a list known only when the flow runs forces nothing, not what is downstream of the map either, and says so; plan agrees", async () => {
    const counted = task("counted-late")
      .input<{ x: number }>()
      .run(({ x }) => ({ y: x * x }));
    const list = task("list").run(() => ({ xs: [1, 2] }));
    const f = flow("map-rerun-late").build(() => {
      const m = map(counted, { over: list({}).xs, as: "x" });
      return { total: sum({ ys: m.outputs }).total };
    });
    await (await f.run(tracked())).wait();
    const run = await f.run({ ...tracked(), cache: { rerun: ["counted-late[5]"] } });
    const warnings: string[] = [];
    run.on((e) => void (e.type === "log" && e.level === "warn" && warnings.push(e.message)));
    const again = await run.wait();
    expect(again.tasks["counted-late[1]"]!.status).toBe("cached");
    expect(again.tasks.sum!.status).toBe("cached");
    expect(warnings).toEqual(['--rerun counted-late[5] forces nothing: "counted-late" has 2 items in this run (counted-late[0] to counted-late[1])']);
    const planned = async (rerun: string[]) => {
      const { tasks } = await openFlowCache(f.definition, { root: dir, env: {} });
      const plan = await planFlow(f.definition, { params: {}, cache: tasks, rerun }).finally(() => tasks.store.close());
      return Object.fromEntries(plan.map((p) => [p.task, p]));
    };
    const past = await planned(["counted-late[5]"]);
    expect(past.sum!.action).toBe("hit");
    expect(past["counted-late"]).toMatchObject({ action: "hit", reason: expect.stringContaining(warnings[0]!) });
    // An item the list has forces what is downstream of the map once the list is known, in the plan as in the run.
    const inList = await planned(["counted-late[1]"]);
    expect([inList["counted-late[1]"]!.action, inList.sum!.action]).toEqual(["run", "run"]);
    const forced = await (await f.run({ ...tracked(), cache: { rerun: ["counted-late[1]"] } })).wait();
    expect([forced.tasks["counted-late[0]"]!.status, forced.tasks["counted-late[1]"]!.status, forced.tasks.sum!.status]).toEqual(["cached", "succeeded", "succeeded"]);
  });

  it("--rerun of an item past a list a param gives is refused before the run, as for a literal list; plan refuses it too", async () => {
    const counted = task("counted-param")
      .input<{ x: number }>()
      .run(({ x }) => ({ y: x * x }));
    const f = flow("map-rerun-param")
      .params(z.object({ xs: z.array(z.number()) }))
      .build(({ params }) => ({ total: sum({ ys: map(counted, { over: params.xs, as: "x" }).outputs }).total }));
    const message = 'Expected `rerun` to be an item of "counted-param", which has 2 (counted-param[0] to counted-param[1], from params.xs), got "counted-param[5]"';
    await expect(f.run({ ...tracked(), params: { xs: [1, 2] }, cache: { rerun: ["counted-param[5]"] } })).rejects.toThrow(message);
    const { tasks } = await openFlowCache(f.definition, { root: dir, env: {}, params: { xs: [1, 2] } });
    await expect(planFlow(f.definition, { params: { xs: [1, 2] }, cache: tasks, rerun: ["counted-param[5]"] }).finally(() => tasks.store.close())).rejects.toThrow(message);
    const ok = await (await f.run({ ...tracked(), params: { xs: [1, 2] }, cache: { rerun: ["counted-param[1]"] } })).wait();
    expect(ok.status).toBe("succeeded");
  });

  it("retries an item on its own", async () => {
    const seen = new Map<number, number>();
    const flaky = task("flaky")
      .input<{ x: number }>()
      .retries(1, { minDelayMs: 1 })
      .run(({ x }) => {
        const n = (seen.get(x) ?? 0) + 1;
        seen.set(x, n);
        if (x === 1 && n === 1) throw new Error("once");
        return { x };
      });
    const f = flow("map-retry").build(() => ({ xs: map(flaky, { over: [0, 1, 2], as: "x" }).outputs }));
    const result = await (await f.run(off)).wait();
    expect(result.status).toBe("succeeded");
    expect(result.tasks["flaky[1]"]!.attempts).toBe(2);
    expect(result.tasks["flaky[0]"]!.attempts).toBe(1);
  });

  it("under continue, a failed item does not stop the map's other items: they run and are cached, then the map fails", async () => {
    let ran = 0;
    let fixed = false;
    const counted = task("counted")
      .input<{ x: number }>()
      .run(({ x }) => {
        ran++;
        if (x === 2 && !fixed) throw new Error("two is bad");
        return { x };
      });
    const f = flow("map-continue").build(() => ({ xs: map(counted, { over: Array.from({ length: 8 }, (_, i) => i), as: "x", concurrency: 1 }).outputs }));
    const options = { ...tracked(), failurePolicy: "continue" as const };
    const failed = await (await f.run(options)).wait();
    expect(failed.status).toBe("failed");
    expect(failed.tasks.counted!.error!.name).toBe("MapItemsFailedError");
    expect(ran).toBe(8);
    expect(Array.from({ length: 8 }, (_, i) => failed.tasks[`counted[${i}]`]?.status)).toEqual(["succeeded", "succeeded", "failed", ...Array(5).fill("succeeded")]);
    // The next run computes only the item that failed.
    ran = 0;
    fixed = true;
    const again = await (await f.run(options)).wait();
    expect(again.status).toBe("succeeded");
    expect(ran).toBe(1);
  });

  it("under fail-fast, a failed item stops the flow: items not started end cancelled, the map fails", async () => {
    const slowFail = task("slowFail")
      .input<{ x: number }>()
      .run(async ({ x }, ctx) => {
        if (x === 0) throw new Error("zero fails");
        await new Promise((r, j) => {
          const t = setTimeout(r, 5_000);
          ctx.signal.addEventListener("abort", () => (clearTimeout(t), j(ctx.signal.reason)));
        });
        return { x };
      });
    const after = task("after")
      .input<{ xs: unknown[] }>()
      .run(() => ({ ok: true }));
    const f = flow("map-fail-fast").build(() => {
      const m = map(slowFail, { over: Array.from({ length: 50 }, (_, i) => i), as: "x", concurrency: 4 });
      return { ok: after({ xs: m.outputs }).ok };
    });
    const result = await (await f.run(off)).wait();
    expect(result.status).toBe("failed");
    expect(result.tasks.slowFail!.status).toBe("failed");
    expect(result.tasks["slowFail[0]"]!.status).toBe("failed");
    expect(result.tasks["slowFail[1]"]!.status).toBe("cancelled");
    expect(result.tasks.after!.status).toBe("skipped");
    expect(Object.keys(result.tasks).length).toBeLessThan(50); // items past the window were never made
  });

  it("cancels with the run: running items end cancelled, and so do the map and the flow", async () => {
    const wait = task("wait")
      .input<{ x: number }>()
      .run(
        (_, ctx) =>
          new Promise((_r, j) => {
            ctx.signal.addEventListener("abort", () => j(ctx.signal.reason));
          }),
      );
    const f = flow("map-cancel").build(() => ({ xs: map(wait, { over: [1, 2, 3], as: "x" }).outputs }));
    const run = await f.run(off);
    run.on((e) => {
      if (e.type === "task" && e.task === "wait[2]" && e.status === "running") run.cancel();
    });
    const result = await run.wait();
    expect(result.status).toBe("cancelled");
    expect(result.tasks.wait!.status).toBe("cancelled");
    expect(result.tasks["wait[0]"]!.status).toBe("cancelled");
  });

  it("a map stopped with items left (fail-fast, a cancel) counts the items that never started, on its result and its run (cairn.not_started): they have no run of their own", async () => {
    const held = task("held")
      .input<{ x: number }>()
      .run(async ({ x }, ctx) => {
        if (x === 0) throw new Error("zero fails");
        await new Promise((_r, j) => ctx.signal.addEventListener("abort", () => j(ctx.signal.reason)));
        return { x };
      });
    const { LocalStore } = await import("@cairn/core");
    const store = new LocalStore({ root: dir });
    const runOf = async (result: { tasks: Record<string, { runId?: string } | undefined> }) => (await store.getRun(result.tasks.held!.runId!))!;

    const failing = flow("map-not-started").build(() => ({ xs: map(held, { over: Array.from({ length: 30 }, (_, i) => i), as: "x", concurrency: 2 }).outputs }));
    const failed = await (await failing.run({ ...tracked(), cache: false })).wait();
    expect(failed.status).toBe("failed");
    expect(Object.keys(failed.tasks).filter((id) => id.startsWith("held["))).toEqual(["held[0]", "held[1]"]);
    expect(failed.tasks.held!.notStarted).toBe(28);
    expect((await runOf(failed)).metrics).toMatchObject({ "cairn.items": 30, "cairn.failed": 1, "cairn.not_started": 28 });

    const cancelling = flow("map-not-started-cancel").build(() => ({ xs: map(held, { over: Array.from({ length: 10 }, (_, i) => i + 1), as: "x", concurrency: 2 }).outputs }));
    const run = await cancelling.run({ ...tracked(), cache: false });
    run.on((e) => {
      if (e.type === "task" && e.task === "held[1]" && e.status === "running") run.cancel();
    });
    const cancelled = await run.wait();
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled.tasks.held!.notStarted).toBe(8);
    expect((await runOf(cancelled)).metrics).toMatchObject({ "cairn.items": 10, "cairn.not_started": 8 });
  });

  it("a map's run counts every item once: succeeded, failed, cancelled, skipped and not started add up to its items, after a cancel and after fail-fast", async () => {
    const held = task("held")
      .input<{ x: number }>()
      .run(async ({ x }, ctx) => {
        if (x < 0) throw new Error("negative fails");
        if (x < 8) return { x };
        await new Promise((_r, j) => ctx.signal.addEventListener("abort", () => j(ctx.signal.reason)));
        return { x };
      });
    const { LocalStore } = await import("@cairn/core");
    const store = new LocalStore({ root: dir });
    const counts = async (result: { tasks: Record<string, { runId?: string } | undefined> }) => {
      const { metrics } = (await store.getRun(result.tasks.held!.runId!))!;
      const of = (key: string) => metrics[`cairn.${key}`];
      // Each item in exactly one of these: none is left out, whatever stopped the map.
      expect(of("succeeded")! + of("failed")! + of("cancelled")! + of("skipped")! + of("not_started")!, JSON.stringify(metrics)).toBe(of("items"));
      return { items: of("items"), succeeded: of("succeeded"), failed: of("failed"), cancelled: of("cancelled"), skipped: of("skipped"), not_started: of("not_started") };
    };

    // 20 items four at a time: the first 8 succeed, the next 4 are running at the cancel, 8 never start.
    const cancelling = flow("map-counts-cancel").build(() => ({ xs: map(held, { over: Array.from({ length: 20 }, (_, i) => i), as: "x", concurrency: 4 }).outputs }));
    const run = await cancelling.run({ ...tracked(), cache: false });
    run.on((e) => {
      if (e.type === "task" && e.task === "held[11]" && e.status === "running") run.cancel("SIGINT");
    });
    const cancelled = await run.wait();
    expect(cancelled.status).toBe("cancelled");
    expect(await counts(cancelled)).toEqual({ items: 20, succeeded: 8, failed: 0, cancelled: 4, skipped: 0, not_started: 8 });

    // Fail-fast with the map's window wider than the flow's slots: one item fails, the one running
    // is cancelled, those made and waiting for a slot are skipped.
    const failing = flow("map-counts-fail-fast").build(() => ({ xs: map(held, { over: [-1, ...Array.from({ length: 9 }, (_, i) => 100 + i)], as: "x" }).outputs }));
    const failed = await (await failing.run({ ...tracked(), cache: false, concurrency: 2 })).wait();
    expect(failed.status).toBe("failed");
    expect(await counts(failed)).toEqual({ items: 10, succeeded: 0, failed: 1, cancelled: 1, skipped: 8, not_started: 0 });
  });

  it("times an item out on its own", async () => {
    const sleepy = task("sleepy")
      .input<{ ms: number }>()
      .timeout(50)
      .run(
        ({ ms }, ctx) =>
          new Promise((r, j) => {
            const t = setTimeout(() => r({ ms }), ms);
            ctx.signal.addEventListener("abort", () => (clearTimeout(t), j(ctx.signal.reason)));
          }),
      );
    const f = flow("map-timeout").build(() => ({ xs: map(sleepy, { over: [1, 5_000, 2], as: "ms", minSuccess: 2 }).outputs }));
    const result = await (await f.run(off)).wait();
    expect(result.status).toBe("succeeded");
    expect(result.tasks["sleepy[1]"]!.error!.name).toBe("TaskTimeoutError");
    expect(result.outputs).toEqual({ xs: [{ ms: 1 }, null, { ms: 2 }] });
  });

  it("keeps at most its concurrency of items running at once", async () => {
    let running = 0;
    let most = 0;
    const slow = task("slow")
      .input<{ x: number }>()
      .run(async ({ x }) => {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 2));
        running--;
        return { x };
      });
    const f = flow("map-conc").build(() => ({ xs: map(slow, { over: Array.from({ length: 20 }, (_, i) => i), as: "x", concurrency: 3 }).outputs }));
    const result = await (await f.run({ ...off, concurrency: 8 })).wait();
    expect(result.status).toBe("succeeded");
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThan(0);
  });
});

describe("conditions", () => {
  const check = task("check")
    .input<{ v: number }>()
    .run(({ v }) => ({ passed: v > 0, v }));
  const train = task("train")
    .input<{ v: number }>()
    .run(({ v }) => ({ model: `m${v}` }));
  const register = task("register")
    .input<{ model: string }>()
    .run(({ model }) => ({ name: `reg-${model}` }));
  const build = flow("cond")
    .params(z.object({ v: z.number() }))
    .build(({ params }) => {
      const c = check({ v: params.v });
      const t = train({ v: c.v }, { if: c.passed });
      const r = register({ model: t.model });
      return { model: t.model, name: r.name };
    });

  it("runs the node when the condition holds", async () => {
    const result = await (await build.run({ ...off, params: { v: 1 } })).wait();
    expect(result.status).toBe("succeeded");
    expect(result.outputs).toEqual({ model: "m1", name: "reg-m1" });
  });

  it("skips the node and its dependants with reason condition false; the flow succeeds with the outputs missing", async () => {
    const result = await (await build.run({ ...off, params: { v: -1 } })).wait();
    expect(result.status).toBe("succeeded");
    expect(result.tasks.train).toMatchObject({ status: "skipped", error: { name: "ConditionFalse" } });
    expect(result.tasks.train!.error!.message).toContain("condition (check.passed) is false");
    expect(result.tasks.register).toMatchObject({ status: "skipped", error: { name: "ConditionFalse" } });
    expect(result.outputs).toEqual({ model: undefined, name: undefined });
  });

  it("records the skip reason on the skipped node's run", async () => {
    const run = await build.run({ ...tracked(), cache: false, params: { v: -1 } });
    const result = await run.wait();
    const { LocalStore } = await import("@cairn/core");
    const store = new LocalStore({ root: dir });
    const rec = await store.getRun(result.tasks.train!.runId!);
    expect(rec!.tags["cairn.skipped.reason"]).toBe("condition-false");
    expect(rec!.tags["cairn.status"]).toBe("skipped");
  });

  it("takes a predicate over an upstream output with when()", async () => {
    const f = flow("cond-when")
      .params(z.object({ v: z.number() }))
      .build(({ params }) => {
        const c = check({ v: params.v });
        const t = train({ v: c.v }, { if: when(c.v, (v) => v >= 10) });
        return { model: t.model };
      });
    expect((await (await f.run({ ...off, params: { v: 12 } })).wait()).outputs).toEqual({ model: "m12" });
    const low = await (await f.run({ ...off, params: { v: 3 } })).wait();
    expect(low.status).toBe("succeeded");
    expect(low.tasks.train).toMatchObject({ status: "skipped", error: { name: "ConditionFalse" } });
    const broken = flow("cond-when-bad").build(() => ({ model: train({ v: 1 }, { if: when(check({ v: 1 }).v, (v) => (v > 0 ? ("yes" as unknown as boolean) : false)) }).model }));
    const bad = await (await broken.run(off)).wait();
    expect(bad.tasks.train!.error!.message).toContain("which must be a boolean, got \"yes\" (string)");
    expect(() => when(3 as never, () => true)).toThrow(OptionError);
  });

  it("fails with a clear error when the condition is not a boolean", async () => {
    const notBool = task("notBool").run(() => ({ flag: "yes" as unknown as boolean }));
    const f = flow("cond-bad").build(() => ({ model: train({ v: 1 }, { if: notBool().flag }).model }));
    const result = await (await f.run(off)).wait();
    expect(result.status).toBe("failed");
    expect(result.tasks.train!.error!.name).toBe("ConditionError");
    expect(result.tasks.train!.error!.message).toBe(new ConditionError("train", "notBool.flag", "yes").message);
  });
});

describe("sweep", () => {
  let trials = 0;
  const fit = task("fit")
    .input<{ data: string; lr: number; depth: number }>()
    .run(({ lr, depth }) => {
      trials++;
      return { score: Math.round((1 - Math.abs(lr - 0.1)) * depth * 100) / 100, loss: lr };
    });
  const make = (lrs: number[], depths: number[]) =>
    flow("sweep-grid").build(() => {
      const best = sweep(fit, { with: { data: "d" }, over: grid({ lr: lrs, depth: depths }), select: max("score") });
      return { best: best.outputs, params: best.params, trial: best.trial, trials: best.trials };
    });

  it("runs every trial, picks the best by the selector, caches trials, and widening runs only the new points", async () => {
    trials = 0;
    const cold = await (await make([0.01, 0.1, 1], [3, 5]).run(tracked())).wait();
    expect(cold.status).toBe("succeeded");
    expect(trials).toBe(6);
    expect(cold.outputs!.params).toEqual({ lr: 0.1, depth: 5 });
    expect(cold.outputs!.best).toEqual({ score: 5, loss: 0.1 });
    expect(cold.outputs!.trial).toBe("fit[3]");
    expect(cold.outputs!.trials).toHaveLength(6);
    expect(cold.outputs!.trials[0]).toEqual({ trial: "fit[0]", params: { lr: 0.01, depth: 3 }, metric: 2.73, status: "succeeded" });

    trials = 0;
    const warm = await (await make([0.01, 0.1, 1], [3, 5]).run(tracked())).wait();
    expect(trials).toBe(0);
    expect(warm.outputs!.params).toEqual(cold.outputs!.params);
    expect(warm.outputs!.trials.every((t) => warm.tasks[t.trial]!.status === "cached")).toBe(true);
    // The leaderboard is what the trials gave, not how this run got it: a task fed it hits the cache.
    expect(warm.outputs!.trials).toEqual(cold.outputs!.trials);

    trials = 0;
    const wide = await (await make([0.01, 0.1, 1], [3, 5, 8]).run(tracked())).wait();
    expect(trials).toBe(3);
    expect(wide.outputs!.params).toEqual({ lr: 0.1, depth: 8 });
    expect(wide.outputs!.trials.filter((t) => wide.tasks[t.trial]!.status !== "cached").map((t) => t.params)).toEqual([{ lr: 0.01, depth: 8 }, { lr: 0.1, depth: 8 }, { lr: 1, depth: 8 }]);
  });

  it("s.params.lr, s.outputs.score and s.trials.length read one step into the best trial's point, outputs and trials", async () => {
    const use = task("use")
      .input<{ lr: number; score: number; count: number; first: string }>()
      .run((inputs) => inputs);
    const f = flow("sweep-deep").build(() => {
      const s = sweep(fit, { with: { data: "d" }, over: grid({ lr: [0.01, 0.1, 1], depth: [3] }), select: max("score") });
      // As an Optuna user writes study.best_params["lr"]: the types allow only whole refs, plain JavaScript any read.
      const deep = s as unknown as { params: { lr: number }; outputs: { score: number }; trials: { length: number; 0: { trial: string } } };
      return { used: use({ lr: deep.params.lr, score: deep.outputs.score, count: deep.trials.length, first: deep.trials[0].trial }).lr, params: s.params };
    });
    const result = await (await f.run(off)).wait();
    expect(result.status).toBe("succeeded");
    expect(result.tasks.use!.outputs).toEqual({ lr: 0.1, score: 3, count: 3, first: "fit[0]" });
    expect(result.outputs).toEqual({ used: 0.1, params: { lr: 0.1, depth: 3 } });

    // Names a ref has fields of its own by (path, source, target) are the values' too.
    const named = task("named")
      .input<{ target: number }>()
      .run(({ target }) => ({ path: `/models/${target}`, source: "trained", score: target }));
    const echo = task("echo")
      .input<{ path: string; source: string; target: number }>()
      .run((inputs) => inputs);
    const g = flow("sweep-deep-names").build(() => {
      const s = sweep(named, { over: list([{ target: 1 }, { target: 2 }]), select: max("score") });
      const deep = s as unknown as { params: { target: number }; outputs: { path: string; source: string } };
      return { echoed: echo({ path: deep.outputs.path, source: deep.outputs.source, target: deep.params.target }).path };
    });
    const named2 = await (await g.run(off)).wait();
    expect(named2.status).toBe("succeeded");
    expect(named2.tasks.echo!.outputs).toEqual({ path: "/models/2", source: "trained", target: 2 });
  });

  it("a task fed the leaderboard (trials) is a cache hit when the trials' results are the same", async () => {
    let boards = 0;
    const board = task("board")
      .input<{ rows: Array<{ trial: string; metric?: number }> }>()
      .run(({ rows }) => (boards++, { lines: rows.length }));
    const f = flow("sweep-board").build(() => {
      const s = sweep(fit, { with: { data: "d" }, over: grid({ lr: [0.1, 0.2], depth: [2] }), select: max("score") });
      return { lines: board({ rows: s.trials }).lines };
    });
    const cold = await (await f.run(tracked())).wait();
    const warm = await (await f.run(tracked())).wait();
    expect(cold.status).toBe("succeeded");
    expect(warm.tasks.board!.status).toBe("cached");
    expect(boards).toBe(1);
  });

  it("nests trial runs under a sweep run that carries the best trial's params, metrics and name", async () => {
    const result = await (await make([0.01, 0.1], [3]).run({ ...tracked(), cache: false })).wait();
    const { LocalStore } = await import("@cairn/core");
    const store = new LocalStore({ root: dir });
    const parent = (await store.getRun(result.tasks.fit!.runId!))!;
    expect(parent.tags["cairn.sweep.best"]).toBe("fit[1]");
    expect(parent.params).toMatchObject({ lr: "0.1", depth: "3" });
    expect(parent.metrics.score).toBe(3);
    expect(parent.tags["mlflow.parentRunId"]).toBe(result.runId);
    const child = (await store.getRun(result.tasks["fit[0]"]!.runId!))!;
    expect(child.tags["mlflow.parentRunId"]).toBe(result.tasks.fit!.runId);
    expect(child.tags["cairn.parent_node"]).toBe("fit");
  });

  it("a trial of a process kind logs its selected output after what its run's history holds of that name, and tags it", async () => {
    const sh = shell("shtrial", `printf '{"score": %s}' {x} > "$CAIRN_OUTPUTS"`).input<{ x: number }>().output<{ score: number }>();
    const f = flow("sweep-shell").build(() => ({ trial: sweep(sh, { over: grid({ x: [1, 2] }), select: max("score") }).trial }));
    const result = await (await f.run({ ...tracked(), cache: false })).wait();
    expect(result.status, JSON.stringify(result.tasks.shtrial?.error)).toBe("succeeded");
    expect(result.outputs!.trial).toBe("shtrial[1]");
    const { LocalStore } = await import("@cairn/core");
    const store = new LocalStore({ root: dir });
    const runId = result.tasks["shtrial[1]"]!.runId!;
    expect((await store.getMetricHistory(runId, "score")).map((p) => [p.step, p.value])).toEqual([[0, 2]]);
    expect((await store.getRun(runId))!.tags["cairn.sweep.value"]).toBe("2");
  });

  it("a trial that logged its selected output's name at step 2^53 - 1 succeeds: the output is logged at that step, and tagged", async () => {
    const last = Number.MAX_SAFE_INTEGER;
    const late = task("late")
      .input<{ x: number }>()
      .run(({ x }, ctx) => {
        ctx.log.metric("score", 0, last);
        return { score: x };
      });
    const f = flow("sweep-late-step").build(() => ({ trial: sweep(late, { over: grid({ x: [1, 2] }), select: max("score") }).trial }));
    const result = await (await f.run({ ...tracked(), cache: false })).wait();
    // Before, its step last + 1 was refused with a MetricError after the trial had succeeded.
    expect(result.status, JSON.stringify(result.tasks["late[1]"]?.error)).toBe("succeeded");
    expect(result.outputs!.trial).toBe("late[1]");
    const { LocalStore } = await import("@cairn/core");
    const store = new LocalStore({ root: dir });
    const runId = result.tasks["late[1]"]!.runId!;
    expect((await store.getMetricHistory(runId, "score")).map((p) => [p.step, p.value])).toContainEqual([last, 2]);
    expect((await store.getRun(runId))!.tags["cairn.sweep.value"]).toBe("2");
  });

  it("picks min, takes list and seeded random spaces (same seed, same points), and stops at stopWhen", async () => {
    const f = flow("sweep-min").build(() => {
      const a = sweep(fit, { with: { data: "d", depth: 1 }, over: list([{ lr: 0.5 }, { lr: 0.2 }, { lr: 0.9 }]), select: min("loss") });
      const b = sweep(fit, { id: "rand", with: { data: "d" }, over: random({ n: 4, seed: 7, space: { lr: { min: 0.01, max: 1, log: true }, depth: [2, 4] } }), select: max("score") });
      const c = sweep(fit, { id: "early", with: { data: "d", depth: 1 }, over: list([{ lr: 0.1 }, { lr: 0.2 }, { lr: 0.3 }]), select: max("score"), stopWhen: (o) => o.score >= 1, concurrency: 1 });
      return { a: a.params, b: b.trials, c: c.trials, loss: a.best.loss };
    });
    const result = await (await f.run(off)).wait();
    expect(result.status).toBe("succeeded");
    expect(result.outputs!.a).toEqual({ lr: 0.2 });
    expect(result.outputs!.loss).toBe(0.2);
    expect(result.outputs!.b).toHaveLength(4);
    expect(random({ n: 4, seed: 7, space: { lr: { min: 0.01, max: 1, log: true }, depth: [2, 4] } }).points).toEqual(result.outputs!.b.map((t) => t.params));
    expect(result.outputs!.c).toHaveLength(1);
  });

  it("with stopWhen, a trial past the cut still waiting for its slot does not start: it is skipped, naming the trial that met stopWhen", async () => {
    const started: string[] = [];
    const probe = task("slotted")
      .input<{ i: number }>()
      .cache(false)
      .run(async ({ i }) => {
        started.push(`slotted[${i}]`);
        await new Promise((r) => setTimeout(r, 20));
        return { score: i === 0 ? 1 : 0 };
      });
    const { LocalStore } = await import("@cairn/core");
    const store = new LocalStore({ root: dir });
    const f = flow("sweep-stop-queued").build(() => {
      const s = sweep(probe, { over: list(Array.from({ length: 8 }, (_, i) => ({ i }))), select: max("score"), stopWhen: (o) => o.score >= 1, concurrency: 4 });
      return { trial: s.trial };
    });
    // One slot for the flow: trials 1-3 are made (the sweep's window is 4) and wait for it while trial 0 runs.
    const result = await (await f.run({ ...tracked(), cache: false, concurrency: 1 })).wait();
    expect(result.status, JSON.stringify(result.tasks.slotted)).toBe("succeeded");
    expect(result.outputs!.trial).toBe("slotted[0]");
    // Before, trials 1-3 each started once the slot was free: wasted work (a GPU pool's).
    expect(started).toEqual(["slotted[0]"]);
    for (const i of [1, 2, 3]) {
      const item = result.tasks[`slotted[${i}]`]!;
      expect(item.status).toBe("skipped");
      expect(item.error?.message).toBe('Skipped because trial "slotted[0]" met the sweep\'s stopWhen before it started.');
      const run = (await store.getRun(item.runId!))!;
      expect(run.tags["cairn.skipped.reason"]).toBe("sweep-stopped");
      expect(run.tags["cairn.skipped.because"]).toBe("slotted[0]");
    }
    // Never made: counted by the sweep's run.
    expect(result.tasks["slotted[4]"]).toBeUndefined();
    expect(result.tasks.slotted!.notStarted).toBe(4);
  });

  it("with stopWhen and trials side by side, a re-run (all hits, ending at once) picks the same best and trials", async () => {
    // Trial 0 is slow and satisfies stopWhen; trial 5 is better and ends long before it. Which
    // trials had started when the stop came depends on the order they ended; the cut does not.
    const scored = task("scored")
      .input<{ i: number }>()
      .run(async ({ i }) => {
        await new Promise((r) => setTimeout(r, i === 0 ? 300 : 10));
        return { score: i === 0 ? 0.6 : i === 5 ? 0.9 : 0.1 };
      });
    const f = flow("sweep-stop-rerun").build(() => {
      const s = sweep(scored, { over: list(Array.from({ length: 10 }, (_, i) => ({ i }))), select: max("score"), stopWhen: (o) => o.score >= 0.6, concurrency: 2 });
      return { trial: s.trial, metric: s.metric, trials: s.trials };
    });
    const first = await (await f.run(tracked())).wait();
    const again = await (await f.run(tracked())).wait();
    expect(first.status).toBe("succeeded");
    // The trials up to the first, in the space's order, that satisfied stopWhen.
    expect(first.outputs!.trial).toBe("scored[0]");
    expect(first.outputs!.trials.map((t) => t.trial)).toEqual(["scored[0]"]);
    expect(first.tasks["scored[5]"]!.status).toBe("succeeded"); // ran, and cached, but past the cut
    expect(again.outputs!.trial).toBe(first.outputs!.trial);
    expect(again.outputs!.metric).toBe(first.outputs!.metric);
    expect(again.outputs!.trials.map((t) => [t.trial, t.metric])).toEqual(first.outputs!.trials.map((t) => [t.trial, t.metric]));
    expect(again.outputs!.trials.every((t) => again.tasks[t.trial]!.status === "cached")).toBe(true);
  });

  it("cairn plan of a sweep whose cached trial meets stopWhen: the trials after it would not run, and the sweep comes from the cache", async () => {
    const calls: number[] = [];
    const probe = task("probe")
      .input<{ i: number }>()
      .run(({ i }) => (calls.push(i), { score: i === 1 ? 1 : 0.5 }));
    const f = flow("sweep-stop-plan").build(() => ({
      trial: sweep(probe, { over: list([0, 1, 2, 3].map((i) => ({ i }))), select: max("score"), stopWhen: (o) => o.score >= 1, concurrency: 1 }).trial,
    }));
    expect((await (await f.run(tracked())).wait()).outputs!.trial).toBe("probe[1]");
    expect(calls).toEqual([0, 1]); // one at a time: the stop came before probe[2] started
    const { tasks } = await openFlowCache(f.definition, { root: dir, env: {} });
    const plan = await planFlow(f.definition, { params: {}, cache: tasks }).finally(() => tasks.store.close());
    const rows = Object.fromEntries(plan.map((p) => [p.task, p]));
    expect(rows.probe).toMatchObject({ action: "hit", reason: "the trials up to probe[1] (the first to meet stopWhen) are in the cache" });
    expect(rows["probe[1]"]!.action).toBe("hit");
    for (const past of ["probe[2]", "probe[3]"]) expect(rows[past]).toMatchObject({ action: "skip", reason: expect.stringContaining("stopWhen is met by probe[1]") });
    const again = await (await f.run(tracked())).wait();
    expect(again.outputs!.trial).toBe("probe[1]");
    expect(calls).toEqual([0, 1]); // as planned: nothing ran
  });

  it("with stopWhen, a trial past the cut that fails, or that stopWhen would throw on, does not fail the sweep", async () => {
    const risky = task("risky")
      .input<{ i: number }>()
      .run(async ({ i }) => {
        await new Promise((r) => setTimeout(r, i === 0 ? 5 : 100));
        if (i === 1) throw new Error("one fails");
        return { score: i === 0 ? 1 : 0.5 };
      });
    const f = flow("sweep-past-cut").build(() => {
      const s = sweep(risky, {
        over: list([{ i: 0 }, { i: 1 }, { i: 2 }]),
        select: max("score"),
        stopWhen: (o) => {
          if (o.score === 0.5) throw new Error("stopWhen is asked only of trials before the cut");
          return o.score >= 1;
        },
        concurrency: 3,
      });
      return { trial: s.trial, trials: s.trials };
    });
    const result = await (await f.run(off)).wait(); // fail-fast, the default
    expect(result.status, JSON.stringify(result.tasks.risky?.error)).toBe("succeeded");
    expect(result.outputs!.trial).toBe("risky[0]");
    expect(result.outputs!.trials.map((t) => t.trial)).toEqual(["risky[0]"]);
    expect(result.tasks["risky[1]"]!.status).toBe("failed");
  });

  it("fails with a clear error when the selected output is not a number (an untyped task)", async () => {
    const untyped = task("untyped")
      .input<{ lr: number }>()
      .output<Record<string, unknown>>()
      .run(({ lr }) => ({ score: `high-${lr}` }));
    const f = flow("sweep-bad-sel").build(() => ({ p: sweep(untyped, { over: grid({ lr: [0.1] }), select: max("scor") }).params }));
    const result = await (await f.run(off)).wait();
    expect(result.status).toBe("failed");
    expect(result.tasks.untyped!.error!.message).toBe(new SelectorError("untyped", "untyped[0]", "scor", undefined, ["score"]).message);
    const g = flow("sweep-bad-sel2").build(() => ({ p: sweep(untyped, { over: grid({ lr: [0.1] }), select: max("score") }).params }));
    const r2 = await (await g.run(off)).wait();
    expect(r2.tasks.untyped!.error!.message).toContain('returned "high-0.1" (string)');
    expect(r2.tasks.untyped!.error!.message).toContain('Make the task return "score" as a number (it returned no numeric output to select on).');
    // A numeric output to suggest: that one, never the failing one or a string.
    const mixed = task("mixed")
      .input<{ lr: number }>()
      .output<Record<string, unknown>>()
      .run(({ lr }) => ({ note: "n", score: "s", loss: lr }));
    const h = flow("sweep-bad-sel3").build(() => ({ p: sweep(mixed, { over: grid({ lr: [0.1] }), select: max("score") }).params }));
    expect((await (await h.run(off)).wait()).tasks.mixed!.error!.message).toContain('e.g. max("loss")');
  });

  it("a stopWhen that throws fails the sweep with an error that says it was stopWhen's", async () => {
    const t = task("stopper").input<{ lr: number }>().run(({ lr }) => ({ score: lr }));
    const f = flow("sweep-stop-throws").build(() => ({
      p: sweep(t, {
        over: grid({ lr: [0.1] }),
        select: max("score"),
        stopWhen: () => {
          throw new TypeError("bad stop");
        },
      }).params,
    }));
    const result = await (await f.run(off)).wait();
    expect(result.tasks.stopper!.error!.message).toBe('Sweep "stopper": its stopWhen threw TypeError: bad stop (at the outputs of trial "stopper[0]"). Fix stopWhen, or catch inside it.');
  });

  it("rejects an empty search space and a bad selector when the flow is built", () => {
    expect(() => grid({})).toThrow(EmptySpaceError);
    expect(() => grid({ lr: [] })).toThrow(/The search space of grid\(\) `lr` is empty: it has no values/);
    expect(() => list([])).toThrow(EmptySpaceError);
    expect(() => random({ n: 3, seed: 1, space: { lr: [] } })).toThrow(EmptySpaceError);
    expect(() => random({ n: 0, seed: 1, space: { lr: [1] } })).toThrow(OptionError);
    // Past the bound, the points (built at declaration) ran the process out of memory: 1e308 is an integer.
    for (const n of [1e308, 2 ** 53 + 1, 100_001]) {
      expect(() => random({ n, seed: 1, space: { lr: [1] } })).toThrow(
        `Expected \`random() \`n\`\` to be an integer from 1 to 100000 (the number of points, each a trial with its own run and cache entry), got \`${n}\` (number).`,
      );
    }
    expect(random({ n: 100_000, seed: 1, space: { lr: [1] } }).points).toHaveLength(100_000);
    const axis = Array.from({ length: 400 }, (_, i) => i);
    expect(() => grid({ a: axis, b: axis, c: axis })).toThrow(
      "Expected grid() to hold at most 100000 points (each a trial with its own run and cache entry), got 160000. Give its axes fewer values, or draw a sample of the combinations with random({ n, seed, space }).",
    );
    expect(() => list(Array.from({ length: 100_001 }, () => ({ lr: 1 })))).toThrow("Expected list() to hold at most 100000 points");
    expect(() =>
      flow("bad-sweep").build(() => ({ p: sweep(fit, { with: { data: "d", depth: 1 }, over: { kind: "grid", points: [] } as never, select: max("score") }).params })),
    ).toThrow(OptionError);
    expect(() => flow("bad-sweep").build(() => ({ p: sweep(fit, { with: { data: "d", depth: 1 }, over: grid({ lr: [1] }), select: "score" as never }).params }))).toThrow(
      /Expected `sweep\(fit\) `select`` to be max\("metric"\) or min\("metric"\)/,
    );
    expect(() => flow("bad-sweep").build(() => ({ p: sweep(fit, { with: { data: "d", depth: 1 }, over: grid({ lr: [1] }), select: max("score"), minSuccess: 7.5 }).params }))).toThrow(OptionError);
    // A list's points need not share keys: a clash with `with` in any of them is refused.
    expect(() => flow("bad-sweep").build(() => ({ p: sweep(fit, { with: { data: "d" }, over: list([{ lr: 1, depth: 1 }, { lr: 2, depth: 1, data: "e" }]), select: max("score") }).params }))).toThrow(
      /`sweep\(fit\) `with.data`` to be absent: "data" is swept/,
    );
  });
});

describe("sweep with stopWhen: the verdict does not depend on which trial ends first", () => {
  // Each trial waits on its gate (when it has one); a listener opens a gate on another trial's
  // end, so the order trials end in is set by the test, not by timers.
  const gates = new Map<number, { promise: Promise<void>; open: () => void }>();
  const gate = (i: number) => {
    let open!: () => void;
    const promise = new Promise<void>((r) => (open = r));
    gates.set(i, { promise, open });
    return gates.get(i)!;
  };
  let scores: number[] = [];
  const race = task("race")
    .input<{ i: number }>()
    .run(async ({ i }) => {
      await gates.get(i)?.promise;
      if (i === 1) throw new Error("trial 1 diverged");
      return { score: scores[i]! };
    });
  const f = flow("sweep-race").build(() => {
    const s = sweep(race, { over: list([0, 1, 2, 3].map((i) => ({ i }))), select: max("score"), stopWhen: (o) => o.score >= 1, concurrency: 2 });
    return { trial: s.trial, trials: s.trials };
  });
  /** Runs the sweep (fail-fast, the default), opening `gated`'s gate once `after` has ended with `status`. */
  const runOrdered = async (gated: number, after: string, status: string) => {
    gates.clear();
    const g = gate(gated);
    const run = await f.run(off);
    run.on((e: RunEvent) => void (e.type === "task" && e.task === after && e.status === status && g.open()));
    return run.wait();
  };

  it("a failure after the trial that meets stopWhen does not count, whether it ends before that trial or after it", async () => {
    scores = [1, 0, 0.5, 0.5];
    const failedFirst = await runOrdered(0, "race[1]", "failed"); // the reviewer's D0=400
    const stoppedFirst = await runOrdered(1, "race[0]", "succeeded"); // D0=10
    for (const result of [failedFirst, stoppedFirst]) {
      expect(result.status, JSON.stringify(result.tasks.race?.error)).toBe("succeeded");
      expect(result.outputs!.trial).toBe("race[0]");
      expect(result.outputs!.trials.map((t) => t.trial)).toEqual(["race[0]"]);
      expect(result.tasks["race[1]"]!.status).toBe("failed");
    }
  });

  it("a failure counts once every trial before it has ended without meeting stopWhen: then fail-fast stops the flow", async () => {
    scores = [0.5, 0, 0.5, 0.5];
    const result = await runOrdered(0, "race[1]", "failed");
    expect(result.status).toBe("failed");
    expect(result.tasks.race!.error!.name).toBe("MapItemsFailedError");
    expect(result.tasks.race!.error!.message).toContain('"race[1]": trial 1 diverged');
  });
});

describe("sweep: minSuccess once stopWhen cut the sweep", () => {
  const cut = task("cut")
    .input<{ i: number; bad: number }>()
    .run(({ i, bad }) => {
      if (i < bad) throw new Error(`trial ${i} failed`);
      return { score: i };
    });
  const make = (bad: number, minSuccess: number, stopAt: number) =>
    flow(`sweep-cut-${bad}-${minSuccess}-${stopAt}`).build(() => {
      const s = sweep(cut, { with: { bad }, over: list(Array.from({ length: 10 }, (_, i) => ({ i }))), select: max("score"), stopWhen: (o) => o.score >= stopAt, concurrency: 1, minSuccess });
      return { trial: s.trial, trials: s.trials };
    });

  it("a fraction is of the trials up to the cut: 0.8 with 2 of the 3 counted failed fails the sweep", async () => {
    const result = await (await make(2, 0.8, 2).run(off)).wait();
    expect(result.status).toBe("failed");
    expect(result.tasks.cut!.error!.message).toBe(
      new MapItemsFailedError("cut", [{ item: "cut[0]", message: "trial 0 failed" }, { item: "cut[1]", message: "trial 1 failed" }], 3, 3, "cut[2]").message,
    );
    expect(result.tasks.cut!.error!.message).toContain('2 of the 3 trials up to "cut[2]" (the first to meet stopWhen; those after it do not count) failed, and 3 had to succeed');
    // 0.5 of the 2 counted is 1: one failure is allowed.
    const half = await (await make(1, 0.5, 1).run(off)).wait();
    expect(half.status).toBe("succeeded");
    expect(half.outputs!.trials.map((t) => [t.trial, t.status])).toEqual([["cut[0]", "failed"], ["cut[1]", "succeeded"]]);
  });

  it("a count is capped at the trials up to the cut", async () => {
    // 5 must succeed, but the first trial meets stopWhen: 1 of 1 counted is enough.
    expect((await (await make(0, 5, 0).run(off)).wait()).outputs!.trial).toBe("cut[0]");
    // 5 of 10 allows 5 failures over the list; cut at cut[1], min(5, 2) = 2 must succeed, and cut[0] failed.
    const two = await (await make(1, 5, 1).run(off)).wait();
    expect(two.status).toBe("failed");
    expect(two.tasks.cut!.error!.message).toContain("1 of the 2 trials up to \"cut[1]\"");
  });
});

describe("sweep: a trial with no number under the selected output", () => {
  const fito = task("fito")
    .input<{ i: number }>()
    .output<{ score?: number; loss: number | null }>()
    .run(async ({ i }) => (i === 1 ? { loss: null } : { score: i, loss: i }));
  const make = (minSuccess?: number) =>
    flow(`sweep-opt-${minSuccess}`).build(() => {
      const s = sweep(fito, { over: list([0, 1, 2].map((i) => ({ i }))), select: max("score"), ...(minSuccess !== undefined ? { minSuccess } : {}) });
      return { trial: s.trial, trials: s.trials };
    });

  it("counts as failed for minSuccess: the sweep picks the best of the others", async () => {
    const result = await (await make(0.5).run(off)).wait();
    expect(result.status, JSON.stringify(result.tasks.fito?.error)).toBe("succeeded");
    expect(result.outputs!.trial).toBe("fito[2]");
    expect(result.outputs!.trials.map((t) => [t.trial, t.metric])).toEqual([["fito[0]", 0], ["fito[1]", undefined], ["fito[2]", 2]]);
    expect(result.tasks["fito[1]"]!.status).toBe("succeeded"); // the task itself did not fail
  });

  it("without minSuccess it fails the sweep as a failed trial would, naming it; SelectorError only when no trial has a value", async () => {
    const result = await (await make().run(off)).wait();
    expect(result.status).toBe("failed");
    expect(result.tasks.fito!.error!.name).toBe("MapItemsFailedError");
    expect(result.tasks.fito!.error!.message).toContain('"fito[1]": its output "score" is missing, not a finite number for max("score") to rank');
    // Said as a sweep's, of trials: the flow has no map of that name.
    expect(result.tasks.fito!.error!.message).toMatch(/^Sweep "fito": 1 of 3 trials failed, and 3 had to succeed .*Fix the failing trials, or let the sweep tolerate failures with minSuccess/);
    const none = task("none")
      .input<{ i: number }>()
      .output<{ score?: number; loss: number }>()
      .run(({ i }) => ({ loss: i }));
    const g = flow("sweep-opt-none").build(() => ({ t: sweep(none, { over: list([0, 1].map((i) => ({ i }))), select: max("score"), minSuccess: 0.5 }).trial }));
    const r = await (await g.run(off)).wait();
    expect(r.tasks.none!.error!.message).toBe(new SelectorError("none", "none[0]", "score", undefined, ["loss"], ["loss"]).message);
  });
});

describe("sweep: stopWhen's answer and the trials' keys", () => {
  const t = task("keyed")
    .input<{ x: unknown }>()
    .run(({ x }) => ({ score: typeof x === "number" ? x : 0 }));

  it("a stopWhen that returns no boolean (a truthy number, a Promise) fails the sweep saying so", async () => {
    for (const [said, words] of [
      [() => 1, "its stopWhen returned `1` (number), not a boolean (at the outputs of trial \"keyed[0]\"). Return true to stop the sweep or false to go on"],
      [async () => true, "its stopWhen returned a Promise, not a boolean (at the outputs of trial \"keyed[0]\"). stopWhen cannot be async"],
    ] as const) {
      const f = flow("sweep-stop-said").build(() => ({ p: sweep(t, { over: list([{ x: 1 }, { x: 2 }]), select: max("score"), stopWhen: said as never, concurrency: 1 }).trial }));
      const result = await (await f.run(off)).wait();
      expect(result.status).toBe("failed");
      expect(result.tasks.keyed!.error!.message).toContain(words);
    }
  });

  it("quotes a string that could read as another value in cairn.item_key, and leaves out a key with no value", async () => {
    const f = flow("sweep-keys").build(() => ({ trials: sweep(t, { over: list([{ x: "1" }, { x: 1 }, { x: "a,k=v" }, { x: "adam" }, { x: "true" }]), select: max("score") }).trials }));
    const result = await (await f.run(off)).wait();
    expect([0, 1, 2, 3, 4].map((k) => result.tasks[`keyed[${k}]`]!.itemKey)).toEqual(['x="1"', "x=1", 'x="a,k=v"', "x=adam", 'x="true"']);

    // One point whatever the order of its keys (one cache entry): one key, its keys sorted.
    const o = task("ordered")
      .input<{ lr: number; depth: number }>()
      .run(({ lr, depth }) => ({ score: lr * depth }));
    const h = flow("sweep-key-order").build(() => ({ trials: sweep(o, { over: list([{ lr: 0.1, depth: 3 }, { depth: 3, lr: 0.1 }]), select: max("score") }).trials }));
    const ordered = await (await h.run(off)).wait();
    expect([ordered.tasks["ordered[0]"]!.itemKey, ordered.tasks["ordered[1]"]!.itemKey]).toEqual(["depth=3,lr=0.1", "depth=3,lr=0.1"]);

    const g = flow("sweep-undefined").build(() => {
      const s = sweep(t, { over: grid({ x: [undefined, 1] }), select: min("score") });
      return { trials: s.trials, params: s.params };
    });
    const r = await (await g.run({ root: dir, env: {}, cache: false })).wait();
    expect(r.tasks["keyed[0]"]!.itemKey).toBe("");
    // The point keeps its undefined (the trial's cache key is as before); what is recorded and shown leaves it out.
    expect(r.outputs!.trials[0]!.params).toEqual({});
    const { LocalStore } = await import("@cairn/core");
    const sweepRun = (await new LocalStore({ root: dir }).getRun(r.tasks.keyed!.runId!))!;
    expect(sweepRun.tags["cairn.sweep.best"]).toBe("keyed[0]");
    expect(sweepRun.params).toEqual({});
  });
});

describe("random() float ranges", () => {
  it("draws distinct values inside a narrow range or one far from 0, the same for the same seed", () => {
    const narrow = random({ n: 100, seed: 7, space: { beta2: { min: 0.9999, max: 0.99999 } } }).points.map((p) => p.beta2);
    expect(new Set(narrow).size).toBe(100);
    expect(narrow.every((v) => v >= 0.9999 && v <= 0.99999)).toBe(true);
    const far = random({ n: 100, seed: 7, space: { x: { min: 1_000_000, max: 1_000_009 } } }).points.map((p) => p.x);
    expect(new Set(far).size).toBe(100);
    expect(far.every((v) => v >= 1_000_000 && v <= 1_000_009)).toBe(true);
    const logged = random({ n: 1000, seed: 7, space: { lr: { min: 1e-5, max: 1e-4, log: true } } }).points.map((p) => p.lr);
    expect(logged.every((v) => v >= 1e-5 && v <= 1e-4)).toBe(true);
    expect(random({ n: 100, seed: 7, space: { beta2: { min: 0.9999, max: 0.99999 } } }).points.map((p) => p.beta2)).toEqual(narrow);
  });
});

describe("random() integer ranges", () => {
  it("with int and log draws log-uniform integers inside the range", () => {
    const ks = random({ n: 2000, seed: 1, space: { k: { min: 1, max: 1000, int: true, log: true } } }).points.map((p) => p.k);
    expect(ks.every((k) => Number.isInteger(k) && k >= 1 && k <= 1000)).toBe(true);
    // Log-uniform over [0.5, 1000.5]: log(10.5/0.5) / log(1000.5/0.5), 40%, are 10 or less (uniform integers: 1%).
    const small = ks.filter((k) => k <= 10).length / ks.length;
    expect(small).toBeGreaterThan(0.35);
    expect(small).toBeLessThan(0.45);
  });

  it("with int draws integers of ceil(min)..floor(max), and refuses a range that holds none", () => {
    const ks = new Set(random({ n: 500, seed: 1, space: { k: { min: 0.5, max: 2.5, int: true } } }).points.map((p) => p.k));
    expect([...ks].sort()).toEqual([1, 2]);
    // Integer bounds draw what they drew before (the same trials, the same cache keys).
    expect(random({ n: 5, seed: 3, space: { k: { min: 2, max: 9, int: true } } }).points.map((p) => p.k)).toEqual([7, 2, 5, 2, 8]);
    expect(() => random({ n: 3, seed: 1, space: { k: { min: 0.2, max: 0.8, int: true } } })).toThrow(
      "Expected `random() `space.k`` to be a range that holds an integer with int: true (0.2..0.8 holds none), got an object.",
    );
  });
});

describe("cairn plan of a sweep whose stopWhen fails on a cached trial", () => {
  it("plans the sweep as failing with stopWhen's error, and the trials after that one as not started", async () => {
    const ran: number[] = [];
    const probe = task("probe7")
      .input<{ i: number }>()
      .run(({ i }) => (ran.push(i), { score: i }));
    const make = (throwing: boolean) =>
      flow("sweep-plan-throw").build(() => ({
        t: sweep(probe, {
          over: list([0, 1, 2, 3].map((i) => ({ i }))),
          select: max("score"),
          concurrency: 1,
          stopWhen: (o) => {
            if (throwing && o.score === 1) throw new Error("boom in stopWhen");
            return o.score >= 2;
          },
        }).trial,
      }));
    expect((await (await make(false).run(tracked())).wait()).outputs!.t).toBe("probe7[2]"); // caches probe7[0..2]
    const f = make(true);
    const { tasks } = await openFlowCache(f.definition, { root: dir, env: {} });
    const plan = await planFlow(f.definition, { params: {}, cache: tasks }).finally(() => tasks.store.close());
    const rows = Object.fromEntries(plan.map((p) => [p.task, p]));
    expect(rows.probe7).toMatchObject({ action: "run", reason: expect.stringContaining('fails, from what the cache holds: Sweep "probe7": its stopWhen threw Error: boom in stopWhen (at the outputs of trial "probe7[1]")') });
    expect(rows["probe7[3]"]).toMatchObject({ action: "skip", reason: "not started: the sweep fails at probe7[1], which comes from the cache" });
    ran.length = 0;
    const result = await (await f.run(tracked())).wait();
    expect(result.status).toBe("failed");
    expect(ran).toEqual([]); // as planned
  });
});

describe("a map of 10,000 items", () => {
  it("succeeds with every output in order, with no more items in flight than its window", async () => {
    let running = 0;
    let most = 0;
    const noop = task("noop")
      .input<{ i: number }>()
      .run(async ({ i }) => {
        most = Math.max(most, ++running);
        await Promise.resolve();
        running--;
        return { i };
      });
    const n = 10_000;
    const f = flow("map-10k").build(() => ({ xs: map(noop, { over: Array.from({ length: n }, (_, i) => i), as: "i" }).outputs }));
    const result = await (await f.run({ ...off, concurrency: 4 })).wait();
    expect(result.status).toBe("succeeded");
    const xs = result.outputs!.xs;
    expect(xs).toHaveLength(n);
    expect(xs.every((x, i) => x.i === i)).toBe(true);
    expect(most).toBeLessThanOrEqual(4);
  });
});
