import { execFileSync } from "node:child_process";
import { getEventListeners } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { LocalStore, NO_RETRY, type Tracker, TrackingError } from "@cairn/core";
import { kindTask } from "@cairn/dsl/kind";
import { z } from "zod";
import {
  CycleError,
  DuplicateNodeError,
  FlowValidationError,
  MissingInputError,
  NotSerializableError,
  OptionError,
  ParamError,
  UnknownNodeError,
  flow,
  http,
  grid,
  map,
  max,
  sweep,
  task,
  type RunEvent,
  type TaskEvent,
} from "cairn-dag";

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

const add = task("add")
  .input<{ a: number; b: number }>()
  .run(({ a, b }) => ({ sum: a + b }));

const off = { tracker: false, cache: false } as const;

describe("running a flow", () => {
  it("passes outputs along references and returns typed flow outputs", async () => {
    const f = flow("math")
      .params(z.object({ x: z.number().default(2) }))
      .build(({ params }) => {
        const one = add({ a: params.x, b: 1 });
        const two = add({ a: one.sum, b: 10 });
        return { total: two.sum };
      });
    const run = await f.run({ ...off, params: { x: 5 } });
    const result = await run.wait();
    expect(result.status).toBe("succeeded");
    expect(result.outputs).toEqual({ total: 16 });
    expect(await run.outputs()).toEqual({ total: 16 });
    expect(Object.keys(result.tasks).sort()).toEqual(["add", "add-2"]);
    expect(result.tasks["add-2"]!.attempts).toBe(1);
  });

  it("applies param defaults from the schema", async () => {
    const f = flow("defaults")
      .params(z.object({ x: z.number().default(2) }))
      .build(({ params }) => ({ s: add({ a: params.x, b: params.x }).sum }));
    expect(await (await f.run(off)).outputs()).toEqual({ s: 4 });
  });

  it("reuses one task definition in several flows", async () => {
    const f1 = flow("f1").build(() => ({ s: add({ a: 1, b: 1 }).sum }));
    const f2 = flow("f2").build(() => ({ s: add({ a: 2, b: 2 }, { id: "custom" }).sum }));
    expect(await (await f1.run(off)).outputs()).toEqual({ s: 2 });
    const r2 = await (await f2.run(off)).wait();
    expect(r2.outputs).toEqual({ s: 4 });
    expect(Object.keys(r2.tasks)).toEqual(["custom"]);
  });

  it("starts a task the moment its inputs are ready, not level by level", async () => {
    const order: string[] = [];
    const slow = task("slow").run(async () => {
      await sleep(150);
      order.push("slow");
      return { v: 1 };
    });
    const fast = task("fast").run(async () => {
      await sleep(10);
      order.push("fast");
      return { v: 2 };
    });
    const after = task("after")
      .input<{ v: number }>()
      .run(({ v }) => {
        order.push(`after-${v}`);
        return {};
      });
    const f = flow("ready").build(() => {
      const s = slow();
      const q = fast();
      after({ v: q.v }, { id: "after-fast" });
      after({ v: s.v }, { id: "after-slow" });
      return {};
    });
    await (await f.run({ ...off, concurrency: 4 })).wait();
    expect(order).toEqual(["fast", "after-2", "slow", "after-1"]);
  });

  it("never runs more tasks at once than the concurrency, nor than a pool's limit", async () => {
    let running = 0;
    let peak = 0;
    let gpu = 0;
    let gpuPeak = 0;
    const work = task("work")
      .input<{ i: number }>()
      .run(async () => {
        peak = Math.max(peak, ++running);
        await sleep(20);
        running--;
        return {};
      });
    const gpuWork = task("gpu")
      .pool("gpu")
      .input<{ i: number }>()
      .run(async () => {
        gpuPeak = Math.max(gpuPeak, ++gpu);
        await sleep(20);
        gpu--;
        return {};
      });
    const f = flow("limits").build(() => {
      for (let i = 0; i < 12; i++) work({ i });
      for (let i = 0; i < 6; i++) gpuWork({ i });
      return {};
    });
    const r = await (await f.run({ ...off, concurrency: 3, pools: { gpu: 1 } })).wait();
    expect(r.status).toBe("succeeded");
    expect(peak).toBe(3);
    expect(gpuPeak).toBe(1);
  });

  it("holds a pool named as a key of Object.prototype (constructor, toString, __proto__) to its limit, given or not", async () => {
    for (const [name, pools] of [
      ["constructor", undefined],
      ["toString", undefined],
      ["__proto__", undefined],
      ["constructor", { constructor: 2 }],
      ["__proto__", JSON.parse('{"__proto__": 2}') as Record<string, number>],
    ] as const) {
      let inPool = 0;
      let peak = 0;
      const pooled = task(`pooled-${name}`)
        .pool(name)
        .input<{ i: number }>()
        .run(async () => {
          peak = Math.max(peak, ++inPool);
          await sleep(20);
          inPool--;
          return {};
        });
      const f = flow("proto-pools").build(() => {
        for (let i = 0; i < 4; i++) pooled({ i });
        return {};
      });
      const r = await (await f.run({ ...off, concurrency: 4, ...(pools ? { pools } : {}) })).wait();
      expect(r.status).toBe("succeeded");
      // Before, `in` found these names on Object.prototype: the pool was never made and its tasks ran 4 at once.
      expect(peak, `${name} ${JSON.stringify(pools)}`).toBe(pools ? 2 : 1);
    }
  });

  it("runs the task on the longest remaining path first", async () => {
    const started: string[] = [];
    const step = task("step")
      .input<{ after?: unknown }>()
      .run(async (_, ctx) => {
        started.push(ctx.nodeId);
        await sleep(5);
        return { done: true };
      });
    const f = flow("critical").build(() => {
      step({}, { id: "short" });
      const a = step({}, { id: "long-1" });
      const b = step({ after: a.done }, { id: "long-2" });
      step({ after: b.done }, { id: "long-3" });
      return {};
    });
    await (await f.run({ ...off, concurrency: 1 })).wait();
    expect(started[0]).toBe("long-1");
  });

  it("emits queued, running, succeeded and flow events in order, with durations", async () => {
    const f = flow("events").build(() => ({ s: add({ a: 1, b: 2 }).sum }));
    const run = await f.run(off);
    const seen: RunEvent[] = [];
    run.on((e) => seen.push(e));
    await run.wait();
    const replay: RunEvent[] = [];
    for await (const e of run.events()) replay.push(e);
    expect(replay).toEqual(seen);
    expect(seen.map((e) => `${e.type}:${"status" in e ? e.status : e.level}`)).toEqual([
      "flow:running",
      "task:queued",
      "task:running",
      "task:succeeded",
      "flow:succeeded",
    ]);
    const done = seen[3] as TaskEvent;
    expect(done.task).toBe("add");
    expect(done.runId).toBe(run.runId);
    expect(typeof done.durationMs).toBe("number");
  });

  it("tags the flow run with MLflow's source tags, the git commit of the working directory included", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-engine-"));
    try {
      const f = flow("source-tags").build(() => ({ s: add({ a: 1, b: 2 }).sum }));
      const run = await f.run({ root, cache: false, env: {} });
      await run.wait();
      const recorded = await new LocalStore({ root }).getRun(run.runId);
      // The tests run from the repository's checkout.
      const head = execFileSync("git", ["rev-parse", "HEAD"], { encoding: "utf8" }).trim();
      expect(recorded?.tags).toMatchObject({ "mlflow.source.type": "LOCAL", "mlflow.source.git.commit": head, "cairn.flow": "source-tags" });
      expect(recorded?.tags["mlflow.user"]).toBeTruthy();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("beforeEnd", () => {
  it("a hook that throws at once is a warning, as one that rejects; one that returns no promise is simply done", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-before-end-"));
    try {
      const f = flow("before-end").build(() => ({ s: add({ a: 1, b: 2 }).sum }));
      const syncThrow = () => {
        throw new TypeError("sync boom");
      };
      const rejection = async () => {
        throw new Error("async boom");
      };
      const hooks: Array<[string, () => unknown]> = [
        ["sync throw", syncThrow],
        ["sync return", () => undefined],
        ["rejection", rejection],
      ];
      const outcomes: Record<string, { status: string; warnings: string[]; recorded?: string }> = {};
      for (const [label, hook] of hooks) {
        const run = await f.run({ root, cache: false, env: {}, beforeEnd: hook });
        const warnings: string[] = [];
        run.on((e) => void (e.type === "log" && e.level === "warn" && warnings.push(e.message)));
        const r = await run.wait();
        outcomes[label] = { status: r.status, warnings, recorded: (await new LocalStore({ root }).getRun(run.runId))?.status };
      }
      expect(outcomes).toEqual({
        "sync throw": { status: "succeeded", warnings: ["beforeEnd: TypeError: sync boom"], recorded: "FINISHED" },
        "sync return": { status: "succeeded", warnings: [], recorded: "FINISHED" },
        rejection: { status: "succeeded", warnings: ["beforeEnd: async boom"], recorded: "FINISHED" },
      });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("a hook that never settles does not hold the run open past a cancel: it sees its signal abort, and the run ends", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-before-end-"));
    try {
      const f = flow("before-end-hangs").build(() => ({ s: add({ a: 1, b: 2 }).sum }));
      let entered!: () => void;
      const inHook = new Promise<void>((resolve) => (entered = resolve));
      let hookSignal: AbortSignal | undefined;
      const run = await f.run({ root, cache: false, env: {}, beforeEnd: ({ signal }) => ((hookSignal = signal), entered(), new Promise(() => {})) });
      const warnings: string[] = [];
      run.on((e) => void (e.type === "log" && e.level === "warn" && warnings.push(e.message)));
      await inHook;
      const r = await run.cancel("enough");
      expect(hookSignal?.aborted).toBe(true);
      expect(r.status).toBe("succeeded");
      expect(warnings).toEqual([expect.stringMatching(/^beforeEnd: the run was cancelled before the hook had finished/)]);
      expect((await new LocalStore({ root }).getRun(run.runId))?.status).toBe("FINISHED");
      // The same through the run's own signal, aborted while the hook runs.
      const controller = new AbortController();
      let enteredAgain!: () => void;
      const inHookAgain = new Promise<void>((resolve) => (enteredAgain = resolve));
      const again = await f.run({ root, cache: false, env: {}, signal: controller.signal, beforeEnd: () => (enteredAgain(), new Promise(() => {})) });
      await inHookAgain;
      controller.abort("enough");
      expect((await again.wait()).status).toBe("succeeded");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("failures", () => {
  it("a failure or a false condition at the head of a 20,000-task chain skips the chain: no stack overflow, the run ends", async () => {
    const one = task("one").input<{ n: number }>().run(({ n }) => ({ n: n + 1 }));
    const gate = task("gate").run(() => ({ ok: false }));
    const bad = task("bad").run((): { n: number } => {
      throw new Error("head fails");
    });
    const chain = (head: { n: number }) => {
      let last = one({ n: head.n });
      for (let i = 1; i < 20_000; i++) last = one({ n: last.n });
      return { n: last.n };
    };
    const conditional = flow("long-condition").build(() => chain(one({ n: 0 }, { if: gate({}).ok }) as unknown as { n: number }));
    const failing = flow("long-failure").build(() => chain(bad({}) as unknown as { n: number }));
    const skipped = await (await conditional.run(off)).wait();
    expect(skipped.status).toBe("succeeded");
    expect(skipped.tasks["one-20001"]!.status).toBe("skipped");
    const failed = await (await failing.run({ ...off, failurePolicy: "continue" })).wait();
    expect(failed.status).toBe("failed");
    expect(failed.tasks["one-20000"]!.status).toBe("skipped");
  }, 120_000);

  it("a failed flow's error names the first failed tasks in node order, each map's items after it by index, each message clipped, and counts the rest", async () => {
    const items = 60;
    const bad = task("bad")
      .input<{ i: number }>()
      .run(async ({ i }) => {
        // Later items end first: the message must not follow the order they ended in.
        await sleep((items - i) * 2);
        throw new Error(`item ${i} broke: ${"x".repeat(2000)}`);
      });
    const before = task("before").run(() => {
      throw new Error("first node broke");
    });
    const f = flow("many-failed").build(() => {
      before({});
      return { vs: map(bad, { over: Array.from({ length: items }, (_, i) => i), as: "i" }).outputs };
    });
    const r = await (await f.run({ ...off, failurePolicy: "continue", concurrency: items })).wait();
    expect(r.status).toBe("failed");
    const message = r.error!.message;
    expect(message.length).toBeLessThan(3000);
    const named = [...message.matchAll(/task "([^"]+)" failed: /g)].map((m) => m[1]);
    expect(named).toEqual(["before", "bad", "bad[0]", "bad[1]", "bad[2]"]);
    // Both ends of each kept: what failed, and how it ended.
    expect(message).toMatch(/; task "bad\[0\]" failed: item 0 broke: x{200,} … \(\d+ characters left out\) … x{200,}; /);
    expect(message).toMatch(/; and 57 more failed tasks$/);
    // The map's own error lists its items by index too.
    expect(r.tasks.bad!.error!.message).toMatch(/^Map "bad": 60 of 60 items failed, and 60 had to succeed \("bad\[0\]": item 0 broke: .*; "bad\[1\]": item 1 broke/);
  });

  const boom = task("boom").run(() => {
    throw new Error("kaboom");
  });

  it("fail-fast cancels running tasks and skips the rest", async () => {
    let sawAbort = false;
    const long = task("long").run(async (_, ctx) => {
      try {
        await sleep(5000, ctx.signal);
      } catch (e) {
        sawAbort = true;
        throw e;
      }
      return {};
    });
    const f = flow("ff").build(() => {
      long();
      const b = boom();
      add({ a: 1, b: 1 }, { after: [b] });
      return {};
    });
    const r = await (await f.run({ ...off, concurrency: 2 })).wait();
    expect(r.status).toBe("failed");
    expect(r.tasks.boom!.status).toBe("failed");
    expect(r.tasks.boom!.error?.message).toBe("kaboom");
    expect(r.tasks.long!.status).toBe("cancelled");
    expect(r.tasks.add!.status).toBe("skipped");
    expect(sawAbort).toBe(true);
    expect(r.error?.message).toContain('task "boom" failed: kaboom');
  });

  it("continue lets independent branches finish and skips dependants", async () => {
    const f = flow("cont").build(() => {
      const b = boom();
      add({ a: 1, b: 1 }, { id: "dependant", after: [b] });
      const ok = add({ a: 2, b: 2 }, { id: "independent" });
      add({ a: ok.sum, b: 1 }, { id: "downstream-ok" });
      return {};
    });
    const r = await (await f.run({ ...off, failurePolicy: "continue" })).wait();
    expect(r.status).toBe("failed");
    expect(r.tasks.dependant!.status).toBe("skipped");
    expect(r.tasks.dependant!.error?.message).toContain('"boom"');
    expect(r.tasks.independent!.status).toBe("succeeded");
    expect(r.tasks["downstream-ok"]!.status).toBe("succeeded");
    await expect((await f.run({ ...off, failurePolicy: "continue" })).outputs()).rejects.toThrow(/boom/);
  });

  it("retries with backoff and reports each retry", async () => {
    let calls = 0;
    const flaky = task("flaky")
      .retries(2, { minDelayMs: 10 })
      .run(() => {
        if (++calls < 3) throw new TypeError(`try ${calls}`);
        return { ok: true };
      });
    const run = await flow("retry").build(() => ({ ok: flaky().ok })).run(off);
    const retries: TaskEvent[] = [];
    run.on((e) => e.type === "task" && e.status === "retrying" && retries.push(e));
    const r = await run.wait();
    expect(r.status).toBe("succeeded");
    expect(r.tasks.flaky!.attempts).toBe(3);
    expect(retries.map((e) => e.error?.message)).toEqual(["try 1", "try 2"]);
  });

  it("times out an attempt, aborts its signal, and says which task and how long", async () => {
    let aborted = false;
    const stuck = task("stuck")
      .timeout(50)
      .run(async (_, ctx) => {
        ctx.signal.addEventListener("abort", () => (aborted = true));
        await sleep(5000);
        return {};
      });
    const r = await (await flow("to").build(() => (stuck(), {})).run(off)).wait();
    expect(r.tasks.stuck!.status).toBe("failed");
    expect(r.tasks.stuck!.error).toMatchObject({ name: "TaskTimeoutError" });
    expect(r.tasks.stuck!.error?.message).toMatch(/"stuck" attempt 1 timed out after 50 ms/);
    expect(aborted).toBe(true);
  });

  it("turns a thrown non-Error into a clear error", async () => {
    const weird = task("weird").run(() => {
      throw "just a string";
    });
    const r = await (await flow("nonerr").build(() => (weird(), {})).run(off)).wait();
    expect(r.tasks.weird!.error).toEqual({
      name: "NonErrorThrownError",
      message: expect.stringContaining('threw a non-Error value: "just a string" (string)'),
    });
  });

  it("shows the beginning of a thrown object in the error, its secrets masked before it is cut", async () => {
    const obj = task("obj").run(() => {
      throw { code: 42, msg: "obj" };
    });
    const big = task("big").run(() => {
      throw { items: Array.from({ length: 1000 }, (_, i) => i), text: "y".repeat(100_000) };
    });
    // The secret straddles the preview's cut: masked first, none of it is left.
    const leaky = task("leaky").run(() => {
      throw { pad: "x".repeat(175), token: "s3cr3t-value-of-some-length" };
    });
    const r = await (
      await flow("nonerr-obj").build(() => (obj(), big(), leaky(), {})).run({ ...off, failurePolicy: "continue", secrets: { API_TOKEN: "s3cr3t-value-of-some-length" } })
    ).wait();
    expect(r.tasks.obj!.error?.message).toContain("threw a non-Error value: an object: { code: 42, msg: 'obj' }. Throw an Error");
    const preview = r.tasks.big!.error!.message.match(/an object: (.*)\. Throw an Error/)![1]!;
    expect(preview.length).toBeLessThanOrEqual(200);
    expect(preview).toMatch(/^\{ items: \[ 0, 1, 2,.*…$/);
    expect(r.tasks.leaky!.error?.message).toMatch(/an object: \{ pad: 'x+', token: '\*\*\*'/);
    expect(JSON.stringify(r)).not.toContain("s3cr3t");
  });

  it("turns a thrown Proxy whose getPrototypeOf trap throws into NonErrorThrownError, not the trap's error; with retries and an interceptor too", async () => {
    const trapped = () =>
      new Proxy(
        { what: "proxy" },
        {
          getPrototypeOf() {
            throw new Error("the trap's own error");
          },
        },
      );
    const plain = task("plain").run(() => {
      throw trapped();
    });
    const retried = task("retried")
      .retries(1, { minDelayMs: 0, maxDelayMs: 0 })
      .run(() => {
        throw trapped();
      });
    const r = await (
      await flow("nonerr-proxy")
        .build(() => (plain(), retried(), {}))
        .run({ ...off, failurePolicy: "continue", interceptors: [(_, next) => next()] })
    ).wait();
    for (const name of ["plain", "retried"]) {
      expect(r.tasks[name]!.error?.name, name).toBe("NonErrorThrownError");
      expect(r.tasks[name]!.error?.message, name).toContain(`Task "${name}" threw a non-Error value`);
    }
    expect(r.tasks.retried!.attempts).toBe(2);
  });

  it("keeps the message and stack of an Error made in another realm", async () => {
    const realm = task("realm").run(() => {
      throw runInNewContext("new TypeError('from another realm')");
    });
    const r = await (await flow("realm").build(() => (realm(), {})).run(off)).wait();
    expect(r.tasks.realm!.error).toEqual({ name: "TypeError", message: "from another realm" });
    // The place in the user's code is read from its stack, as for an Error of this realm.
    expect(r.tasks.realm!.error?.at).toMatch(/engine\.test\.ts:\d+:\d+$/);
  });

  it("reports an Error whose message getter throws, and the run still ends", async () => {
    const broken = task("broken").run(() => {
      const e = new Error("hidden");
      Object.defineProperty(e, "message", {
        get() {
          throw new Error("message getter broke");
        },
      });
      throw e;
    });
    const run = await flow("badmsg").build(() => (broken(), {})).run(off);
    const r = await settles(run.wait());
    expect(r.status).toBe("failed");
    expect(r.tasks.broken!.error).toEqual({
      name: "Error",
      message: "an Error that could not be read (reading it threw Error: message getter broke)",
    });
  });

  it("refuses outputs that cannot be serialized: a function, a circular object", async () => {
    const fn = task("fn").run(() => ({ f: () => 1 }) as unknown as { f: number });
    const circ = task("circ").run(() => {
      const o: Record<string, unknown> = { a: 1 };
      o.self = o;
      return o;
    });
    const r = await (await flow("ser").build(() => (fn(), circ(), {})).run({ ...off, failurePolicy: "continue" })).wait();
    expect(r.tasks.fn!.error?.name).toBe("NotSerializableError");
    expect(r.tasks.fn!.error?.message).toMatch(/Task "fn" output at "f" cannot be serialized.*got a function/);
    expect(r.tasks.circ!.error?.message).toMatch(/at "self".*circular reference/);
  });

  // Its task runs said `cancelled` when nothing was cancelled. (On an MLflow server this was an
  // experiment by MLFLOW_EXPERIMENT_ID whose artifacts are not proxied, now refused when opened.)
  it("a flow whose own record (its graph) cannot be made fails, its tasks skipped by the failure, not cancelled", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-own-record-"));
    const store = new LocalStore({ root: join(root, "store") });
    // The store as a server's tracker (files go through logArtifact), refusing the flow run's graph files.
    const capabilities = { ...store.capabilities, localArtifacts: false };
    const tracker = new Proxy(store, {
      get(target, key) {
        if (key === "capabilities") return capabilities;
        if (key === "artifactDir" || key === "logText") return undefined;
        const value = Reflect.get(target, key, target);
        if (key === "logArtifact") {
          return async (runId: string, path: string, artifactPath?: string) => {
            if (/[/\\]graph\.(mmd|json)$/.test(path)) throw new TrackingError("the graph's upload was refused");
            return (value as Tracker["logArtifact"]).call(target, runId, path, artifactPath);
          };
        }
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const slow = task("slow").run(async (_: unknown, ctx) => {
      await sleep(10_000, ctx.signal);
      return { n: 1 };
    });
    const after = task("after").input<{ n: number }>().run(({ n }) => ({ n }));
    const run = await flow("own-record").build(() => ({ n: after({ n: slow({}).n }).n })).run({ tracker, cache: false, root });
    const r = await settles(run.wait(), 8000);
    expect(r.status).toBe("failed");
    expect(r.error).toMatchObject({ name: "TrackingError", message: "the graph's upload was refused" });
    // The record is made before the first task starts: the tasks are skipped by the failure, not cancelled.
    expect(r.tasks.slow).toMatchObject({ status: "skipped", error: { name: "FlowFailed", message: "Skipped because the flow failed before this task started (the flow's error says why)." } });
    for (const t of Object.values(r.tasks)) expect(t.error?.name).not.toBe("CancelledError");
    // The flow run says why it failed, for a search, not only the caller.
    expect(await store.getRun(run.runId)).toMatchObject({ status: "FAILED", tags: { "cairn.error.name": "TrackingError" } });
    await rm(root, { recursive: true, force: true });
  });

  it("validates inputs with the task's schema at run time", async () => {
    const positive = task("positive")
      .input(z.object({ n: z.number().positive() }))
      .run(({ n }) => ({ n }));
    const neg = task("neg").run(() => ({ n: -1 }));
    const r = await (await flow("val").build(() => (positive({ n: neg().n }), {})).run(off)).wait();
    expect(r.tasks.positive!.error?.name).toBe("InputValidationError");
    expect(r.tasks.positive!.error?.message).toMatch(/"positive".*\n.*n:/);
  });
});

describe("cancellation", () => {
  it("run.cancel() reaches the running task's signal and ends the flow cancelled", async () => {
    let reason: unknown;
    const wait = task("wait").run(async (_, ctx) => {
      await sleep(10_000, ctx.signal).catch((e) => {
        reason = e;
        throw e;
      });
      return {};
    });
    const run = await flow("cancel").build(() => (wait(), add({ a: 1, b: 2 }, { after: ["wait"] }), {})).run(off);
    await new Promise((r) => setTimeout(r, 50));
    const r = await run.cancel("user asked");
    expect(r.status).toBe("cancelled");
    expect(r.error).toEqual({ name: "CancelledError", message: "The flow run was cancelled: user asked." });
    expect(run.status()).toBe("cancelled");
    expect(r.tasks.wait!.status).toBe("cancelled");
    expect(r.tasks.add!.status).toBe("cancelled");
    expect(reason).toBeDefined();
  });

  it("a run cancelled through its signal says the reason it was aborted with", async () => {
    const wait = task("wait").run(async (_, ctx) => (await sleep(10_000, ctx.signal), {}));
    const controller = new AbortController();
    const run = await flow("abort-reason").build(() => (wait(), {})).run({ ...off, signal: controller.signal });
    await new Promise((r) => setTimeout(r, 50));
    controller.abort(new Error("the deploy window closed"));
    const r = await run.wait();
    expect(r.status).toBe("cancelled");
    expect(r.error?.message).toBe("The flow run was cancelled: the deploy window closed.");
  });

  it("a run cancelled with an object for its reason says what it holds, not [object Object]", async () => {
    const wait = task("wait").run(async (_, ctx) => (await sleep(10_000, ctx.signal), {}));
    for (const [reason, said] of [
      [{ code: "deploy", by: "ops" }, "The flow run was cancelled: { code: 'deploy', by: 'ops' }."],
      [{ message: "the window closed" }, "The flow run was cancelled: the window closed."],
    ] as const) {
      const controller = new AbortController();
      const run = await flow("abort-object").build(() => (wait(), {})).run({ ...off, signal: controller.signal });
      await new Promise((r) => setTimeout(r, 50));
      controller.abort(reason);
      const r = await run.wait();
      expect(r.status).toBe("cancelled");
      expect(r.error?.message).toBe(said);
    }
  });

  it("a task cancelled while its run was being opened never starts its code", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-cancel-"));
    try {
      const started: string[] = [];
      const effect = task("effect").run(() => (started.push("effect"), { ok: 1 }));
      const run = await flow("cancel-early").build(() => (effect(), {})).run({ root, cache: false });
      // "running" is told once the task's run is open, before its code is called: the stop lands in between.
      run.on((e) => void (e.type === "task" && e.status === "running" && run.cancel("stop now")));
      const r = await run.wait();
      expect(r.status).toBe("cancelled");
      expect(r.tasks.effect!.status).toBe("cancelled");
      expect(started).toEqual([]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("a cancel before the flow's `running` event (while its warnings are gathered): `running` still comes first, then the tasks' `cancelled`", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-cancel-"));
    try {
      const effect = task("effect").run(() => ({ ok: 1 }));
      // A misspelt variable is warned of before the flow's `running`: the cancel comes there, at a known point.
      const env = { CAIRN_CACHE_STIRCT: "1" };
      const run = await flow("cancel-before-running").build(() => (effect(), {})).run({ root, cache: false, env });
      const events: string[] = [];
      run.on((e) => {
        events.push(e.type === "log" ? `log ${e.level}` : `${e.type} ${e.status}${e.type === "task" ? ` ${e.task}` : ""}`);
        if (e.type === "log" && e.message.startsWith("CAIRN_CACHE_STIRCT")) void run.cancel("SIGINT");
      });
      const r = await run.wait();
      expect(r.status).toBe("cancelled");
      expect(events).toEqual(["log warn", "flow running", "task cancelled effect", "flow cancelled"]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("an external AbortSignal cancels the run", async () => {
    const ac = new AbortController();
    const wait = task("wait").run(async (_, ctx) => {
      await sleep(10_000, ctx.signal);
      return {};
    });
    const run = await flow("signal").build(() => (wait(), {})).run({ ...off, signal: ac.signal });
    setTimeout(() => ac.abort(), 30);
    expect((await run.wait()).status).toBe("cancelled");
  });

  it("one AbortSignal given to many runs at once holds one listener of Cairn's: no MaxListenersExceededWarning; aborting it cancels every run, and runs that end leave none", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => void warnings.push(w);
    process.on("warning", onWarning);
    try {
      const wait = task("wait").run(async (_, ctx) => {
        await sleep(10_000, ctx.signal);
        return {};
      });
      const waiting = flow("shared-signal").build(() => (wait(), {}));
      const quick = flow("shared-signal-quick").build(() => ({ s: add({ a: 1, b: 2 }).sum }));
      const app = new AbortController();
      // Runs that end by themselves take theirs away.
      const done = await Promise.all(Array.from({ length: 15 }, () => quick.run({ ...off, signal: app.signal })));
      expect((await Promise.all(done.map((r) => r.wait()))).map((r) => r.status)).toEqual(Array(15).fill("succeeded"));
      expect(getEventListeners(app.signal, "abort")).toHaveLength(0);

      const runs = await Promise.all(Array.from({ length: 15 }, () => waiting.run({ ...off, signal: app.signal })));
      await sleep(100);
      expect(getEventListeners(app.signal, "abort")).toHaveLength(1);
      app.abort(new Error("app shutting down"));
      const results = await Promise.all(runs.map((r) => r.wait()));
      expect(results.map((r) => r.status)).toEqual(Array(15).fill("cancelled"));
      expect(results[0]!.error?.message).toContain("app shutting down");
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("refuses a signal that is not an AbortSignal where it enters", async () => {
    const f = flow("badsignal").build(() => ({ s: add({ a: 1, b: 2 }).sum }));
    for (const signal of [{}, "x"]) {
      const started = f.run({ ...off, signal: signal as unknown as AbortSignal });
      await expect(started).rejects.toThrow(OptionError);
      await expect(started).rejects.toThrow(/Expected `signal` to be an AbortSignal .*, got /);
    }
  });

  it("a run whose own code fails still ends: failed, its flow run closed FAILED, events() over", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-broken-"));
    try {
      // Passes the check (it has an AbortSignal's members), then throws when the run uses it.
      const signal = {
        aborted: false,
        addEventListener: () => {
          throw new Error("broken signal");
        },
        removeEventListener: () => {},
      };
      const f = flow("broken").build(() => ({ s: add({ a: 1, b: 2 }).sum }));
      const run = await f.run({ root, cache: false, env: {}, signal: signal as unknown as AbortSignal });
      const events: RunEvent[] = [];
      const reading = (async () => {
        for await (const e of run.events()) events.push(e);
      })();
      const r = await settles(run.wait());
      await settles(reading);
      expect(r.status).toBe("failed");
      expect(r.error?.message).toMatch(/stopped on an error outside its tasks: broken signal\. The flow run is recorded FAILED/);
      expect(r.tasks.add!.status).toBe("cancelled");
      expect(run.status()).toBe("failed");
      expect(events.at(-1)).toMatchObject({ type: "flow", status: "failed", error: r.error });
      expect((await new LocalStore({ root }).getRun(run.runId))?.status).toBe("FAILED");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("bad definitions are caught before anything runs", () => {
  it("names the cycle", () => {
    const f = flow("cyc").build(() => {
      add({ a: 1, b: 1 }, { id: "a", after: ["c"] });
      add({ a: 1, b: 1 }, { id: "b", after: ["a"] });
      add({ a: 1, b: 1 }, { id: "c", after: ["b"] });
      return {};
    });
    expect(() => f.graph()).toThrow(CycleError);
    expect(() => f.graph()).toThrow(/Flow "cyc" has a cycle: a -> b -> c -> a/);
  });

  it("names a cycle through thousands of nodes as it names a short one, not as a stack overflow", () => {
    const n = 5000;
    const f = flow("long-cyc").build(() => {
      let prev = add({ a: 0, b: 1 }, { after: [`add-${n}`] });
      for (let i = 1; i < n; i++) prev = add({ a: prev.sum, b: 1 });
      return {};
    });
    let error: unknown;
    try {
      f.graph();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CycleError);
    const cycle = (error as CycleError).cycle;
    expect(cycle).toHaveLength(n);
    // In edge order, from the smallest id: add -> add-2 -> ... -> add-5000 -> add.
    expect(cycle.slice(0, 3)).toEqual(["add", "add-2", "add-3"]);
    expect(cycle.at(-1)).toBe(`add-${n}`);
    expect((error as Error).message).toMatch(/^Flow "long-cyc" has a cycle: add -> add-2 -> add-3 -> .* -> add-5000 -> add\. /);
  });

  it("rejects an input wired to a node of another flow", async () => {
    let leaked: unknown;
    flow("one").build(() => {
      leaked = add({ a: 1, b: 1 }).sum;
      return {};
    });
    const two = flow("two").build(() => (add({ a: leaked as number, b: 1 }), {}));
    await expect(two.run(off)).rejects.toThrow(UnknownNodeError);
    await expect(two.run(off)).rejects.toThrow(/Task "add" input "a" is wired to node "add", which is not part of flow "two"/);
  });

  it("rejects an input or output wired to a param of another flow, which would bind to this flow's param of that name", async () => {
    let leaked: unknown;
    flow("one").params(z.object({ a: z.number().default(1) })).build(({ params }) => {
      leaked = params.a;
      return {};
    });
    // Flow "two" has a param `a` too, of another type: the leaked ref must not read it.
    const two = flow("two").params(z.object({ a: z.string().default("text") })).build(() => (add({ a: leaked as number, b: 1 }), {}));
    await expect(two.run(off)).rejects.toThrow(UnknownNodeError);
    await expect(two.run(off)).rejects.toThrow(/Task "add" input "a" is wired to param "a" from another flow's build function, not flow "two"'s own/);
    expect(() => two.graph()).toThrow(expect.objectContaining({ source: "param", target: "a" }));
    const out = flow("out").params(z.object({ a: z.number() })).build(() => ({ a: leaked as number }));
    expect(() => out.graph()).toThrow(/Task "\(flow outputs\)" input "a" is wired to param "a" from another flow's build function/);
  });

  it("rejects a missing required input", () => {
    const need = task("need")
      .input(z.object({ n: z.number(), opt: z.string().optional() }))
      .run(({ n }) => ({ n }));
    const f = flow("miss").build(() => (need({} as { n: number }), {}));
    expect(() => f.graph()).toThrow(MissingInputError);
    expect(() => f.graph()).toThrow(/Task "need" in flow "miss" is missing its required input "n"/);
    // An input named as an Object.prototype member is missing too when not given.
    const proto = task("proto").input(z.object({ constructor: z.number() })).run(() => ({}));
    expect(() => flow("miss-proto").build(() => (proto({} as { constructor: number }), {})).graph()).toThrow(/Task "proto" in flow "miss-proto" is missing its required input "constructor"/);
    // A sweep's points that do not hold it do not supply it.
    const swept = (space: Record<string, unknown[]>) => flow("miss-proto-sweep").build(() => (sweep(proto as never, { over: grid(space as never), select: max("x") } as never), {}));
    expect(() => swept({ other: [1] }).graph()).toThrow(/is missing its required input "constructor"/);
    // Points and `as` that do hold it supply it, and clash with no `with` input.
    expect(() => swept({ constructor: [1] }).graph()).not.toThrow();
    expect(() => flow("proto-map").build(() => (map(proto, { over: [1], as: "constructor" }), {})).graph()).not.toThrow();
  });

  // "Pass it when calling the task in build()" was a call's fix: a map's item gets its inputs from `as` and `with`.
  it("says a map's or sweep's missing input is given by `as`, the points or `with`", () => {
    const pair = task("pair")
      .input(z.object({ x: z.number(), y: z.number() }))
      .run(({ x, y }) => ({ s: x + y }));
    const mapped = flow("miss-map").build(() => (map(pair, { over: [1, 2], as: "x" } as never), {}));
    expect(() => mapped.graph()).toThrow(
      'Map "pair" in flow "miss-map" is missing its required input "y": each item is passed as "x" (`as: "x"`), and `with` does not give "y". ' +
        'Pass the items as "y" (`as: "y"`), or give "y" in `with`, as a literal or a reference to another task\'s output.',
    );
    expect(() => mapped.graph()).toThrow(expect.objectContaining({ name: "MissingInputError", nodeId: "pair", input: "y", fanOut: { kind: "map", as: "x" } }));
    const swept = flow("miss-sweep").build(() => (sweep(pair, { over: grid({ x: [1, 2] }), select: max("s") } as never), {}));
    expect(() => swept.graph()).toThrow(
      'Sweep "pair" in flow "miss-sweep" is missing its required input "y": no point of its search space (`over`) holds "y", and `with` does not give it. ' +
        'Add "y" to the search space, or give it in `with`, as a literal or a reference to another task\'s output.',
    );
    expect(() => flow("ok-map").build(() => (map(pair, { over: [1, 2], as: "x", with: { y: 1 } }), {})).graph()).not.toThrow();
  });

  it("rejects duplicate node ids, at the second one's call", () => {
    const build = () => flow("dup").build(() => (add({ a: 1, b: 1 }, { id: "x" }), add({ a: 1, b: 1 }, { id: "x" }), {}));
    expect(build).toThrow(DuplicateNodeError);
    expect(build).toThrow(/two nodes named "x"/);
  });

  it("rejects an explicit id that is not a name: a map item's `[0]`, a slash, NUL, empty", () => {
    for (const id of ["fit[0]", "a/b", "x\0y", "", ".hidden", "with space"]) {
      const build = () => flow("ids").build(() => (add({ a: 1, b: 1 }, { id }), {}));
      expect(build, id).toThrow(OptionError);
      expect(build, id).toThrow(`Expected \`task "add" option \`id\`\` to be a non-empty string of ASCII letters, digits, \`_\`, \`.\` and \`-\`, not starting with \`.\` or \`-\``);
    }
    expect([...flow("ids").build(() => (add({ a: 1, b: 1 }, { id: "add_2.v-1" }), {})).graph().nodes.keys()]).toEqual(["add_2.v-1"]);
  });

  it("rejects literal inputs that cannot be serialized", () => {
    const f = flow("lit").build(() => (add({ a: (() => 1) as unknown as number, b: 1 }), {}));
    expect(() => f.graph()).toThrow(/Task "add" input "a".*cannot be serialized.*got a function/);
  });

  it("rejects a literal input that is not JSON data before anything runs, naming the task, the input, the flow and the place in it (the README's FlowValidationError, its cause a NotSerializableError)", async () => {
    const nan = flow("nan").build(() => (add({ a: NaN, b: 1 }), {}));
    const error = await nan.run(off).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(FlowValidationError.is(error)).toBe(true);
    expect(NotSerializableError.is((error as Error).cause)).toBe(true);
    // The literal itself has no path inside it: not `at ""`.
    expect((error as Error).message).toMatch(/^Task "add" input "a" at "\(the whole input\)" cannot be serialized: .*got NaN \(number\).* \(in flow "nan"\)$/);
    const nested = flow("nested").build(() => (add({ a: { deep: [1, Infinity] } as unknown as number, b: 1 }), {}));
    expect(() => nested.graph()).toThrow(/^Task "add" input "a" at "deep\[1\]" cannot be serialized: .*got Infinity \(number\).* \(in flow "nested"\)$/);
  });

  it("rejects a bad concurrency with what was expected and what arrived", async () => {
    const f = flow("conc").build(() => ({}));
    await expect(f.run({ ...off, concurrency: 0 })).rejects.toThrow(OptionError);
    await expect(f.run({ ...off, concurrency: 0 })).rejects.toThrow("Expected `concurrency` to be an integer >= 1, got `0` (number).");
  });

  it("refuses a misspelt option, naming the one it likely meant, and options of the wrong type, before anything is recorded", async () => {
    const f = flow("opts").build(() => ({}));
    const bad = (options: unknown) => f.run(options as never);
    // Before, the message ended `got "concurency" (string)`: the key quoted where a value is.
    const typo = await bad({ ...off, concurency: 2 }).then(() => undefined, (error: unknown) => error as OptionError);
    expect(typo).toBeInstanceOf(OptionError);
    expect(typo!.message).toMatch(/^run\(\) has no option `concurency` \(did you mean `concurrency`\?\)\. Its options: params, concurrency, .*, beforeEnd\. Rename it to `concurrency`, or remove it\.$/);
    expect(typo!.message).not.toContain("got");
    expect(typo).toMatchObject({ option: "run().concurency", got: "concurency" });
    await expect(bad({ ...off, cache: { refesh: true } })).rejects.toThrow(/^cache has no option `refesh` \(did you mean `refresh`\?\)\. Its options: url, store, refresh, rerun, strict\./);
    await expect(bad({ ...off, cache: { refresh: "yes" } })).rejects.toThrow("Expected `cache.refresh` to be a boolean");
    await expect(bad({ ...off, cache: { store: {} } })).rejects.toThrow("Expected `cache.store` to be a CacheStore");
    await expect(bad("x")).rejects.toThrow("Expected `run() options` to be an object");
    await expect(bad(null)).rejects.toThrow("Expected `run() options` to be an object");
    await expect(bad({ tracker: "mlflow" })).rejects.toThrow("Expected `tracker` to be false (tracking off) or a Tracker");
    await expect(bad({ ...off, root: 1 })).rejects.toThrow("Expected `root` to be the path of Cairn's state folder");
    await expect(bad({ ...off, env: "PATH=/bin" })).rejects.toThrow("Expected `env` to be an object of environment variables");
    await expect(bad({ ...off, secrets: "s3cret" })).rejects.toThrow("Expected `secrets` to be an object of secret values by name");
    await expect(bad({ ...off, secrets: { A: 1 } })).rejects.toThrow("Expected `secrets.A` to be a string");
    await expect(bad({ ...off, params: "rows=1" })).rejects.toThrow("Expected `params` to be an object of param values by name");
    // A flow without a params schema still gets only params a run can record and hash.
    await expect(bad({ ...off, params: { n: 1n } })).rejects.toThrow(/Flow "opts" params/);
    await expect(bad({ ...off, params: { fn: () => 1 } })).rejects.toThrow(/Flow "opts" params/);
  });

  it("refuses pools that are not an object, and warns of a limit given to a pool no task is in, naming the likely one", async () => {
    const gpu = task("gpu-task").pool("gpu").run(() => ({ ok: true }));
    const f = flow("pools").build(() => ({ ok: gpu({}).ok }));
    for (const pools of [5, "gpu=2", new Map([["gpu", 2]])]) {
      await expect(f.run({ ...off, pools } as never)).rejects.toThrow("Expected `pools` to be an object of limits by pool name, such as { gpu: 2 }");
    }
    const run = await f.run({ ...off, pools: { gpuu: 3 } });
    const warnings: string[] = [];
    run.on((e) => void (e.type === "log" && e.level === "warn" && warnings.push(e.message)));
    expect((await run.wait()).status).toBe("succeeded");
    expect(warnings).toEqual([
      'No task of flow "pools" is in pool "gpuu" (did you mean "gpu"?): its limit is not used. Its tasks\' pools: "gpu" (a pool given no limit has 1).',
    ]);
  });

  // Only `cairn` said it: an app that embeds the engine ran on the embedded store, or a lenient cache, without a word.
  it("says a variable a typo away from one Cairn reads as a warning of the run, once per process", async () => {
    const f = flow("typo").build(() => ({}));
    const env = { ...process.env, CAIRN_CACHE_STRCT: "1" };
    const warningsOf = async () => {
      const run = await f.run({ ...off, env });
      const warnings: string[] = [];
      run.on((e) => void (e.type === "log" && e.level === "warn" && warnings.push(e.message)));
      expect((await run.wait()).status).toBe("succeeded");
      return warnings.filter((w) => w.includes("CAIRN_CACHE_STRCT"));
    };
    expect(await warningsOf()).toEqual(["CAIRN_CACHE_STRCT is not a variable Cairn or MLflow reads (did you mean CAIRN_CACHE_STRICT?): it is ignored."]);
    expect(await warningsOf()).toEqual([]);
  });

  it("refuses timeouts and retry delays a timer cannot wait, and retry options it does not know", () => {
    const t = task("t");
    const at = (make: () => unknown) => {
      try {
        make();
      } catch (error) {
        return error instanceof OptionError ? error.message : `not an OptionError: ${String(error)}`;
      }
      return "accepted";
    };
    expect(at(() => t.timeout(3e9))).toMatch(/^Expected `task "t" \.timeout\(\)` to be a number of milliseconds > 0 and at most 2147483647 \(about 24\.8 days.*leave \.timeout\(\) out for no limit/);
    expect(at(() => t.retries(2, { minDelayMs: Infinity }))).toMatch(/minDelayMs` to be a number of milliseconds from 0 to 2147483647/);
    expect(at(() => t.retries(2, { maxDelayMs: 3e9 }))).toMatch(/maxDelayMs` to be a number of milliseconds from minDelayMs \(1000\) to 2147483647/);
    // An unknown option's name, not a bad value: before, "Expected `task "t" .retries() delayMs` to be minDelayMs or maxDelayMs ..., got "delayMs" (string)".
    expect(at(() => t.retries(2, { delayMs: 100 } as never))).toBe(
      'task "t" .retries() has no option `delayMs` (did you mean `minDelayMs`?). Its options: minDelayMs, maxDelayMs. Rename it to `minDelayMs`, or remove it.',
    );
    expect(at(() => t.retries(2, { minDelay: 5 } as never))).toMatch(/^task "t" \.retries\(\) has no option `minDelay` \(did you mean `minDelayMs`\?\)/);
    expect(at(() => t.retries(2, { factor: 2 } as never))).toBe('task "t" .retries() has no option `factor`. Its options: minDelayMs, maxDelayMs. Remove it, or use one of those.');
    expect(at(() => t.retries(2, 500 as never))).toMatch(/\.retries\(\) second argument` to be \{ minDelayMs\?, maxDelayMs\? \} or nothing/);
    expect(at(() => t.retries(2, null as never))).toMatch(/\.retries\(\) second argument/);
    expect(at(() => t.timeout(2_147_483_647))).toBe("accepted");
    expect(at(() => http("h", { url: "http://127.0.0.1:1/", timeoutMs: 3e9 }))).toMatch(/timeoutMs`` to be a number of milliseconds > 0 and at most 2147483647/);
    // .cache() keys it does not know were ignored: `{ ttlMs: 1 }`, as the README once spelt it, kept entries for good.
    expect(at(() => t.cache({ ttlMs: 1 } as never))).toBe('task "t" .cache() has no option `ttlMs` (did you mean `ttl`?). Its options: ttl, key. Rename it to `ttl`, or remove it.');
    expect(at(() => t.cache({ kye: "v2" } as never))).toMatch(/^task "t" \.cache\(\) has no option `kye` \(did you mean `key`\?\)/);
    expect(at(() => t.cache({ ttl: "7d", key: "v2" }))).toBe("accepted");
    // A ttl the store cannot keep (not a whole number of ms) was accepted, then no entry was ever stored.
    // And a duration it could not read ("10mss", a bare "7", "1M" meant as a month, "") was taken for no ttl: entries never expired.
    for (const [ttl, got] of [
      [Infinity, "`Infinity` (number)"],
      [1.5, "`1.5` (number)"],
      ["2.5ms", '"2.5ms" (string)'],
      [0, "`0` (number)"],
      ["10mss", '"10mss" (string)'],
      ["one day", '"one day" (string)'],
      ["7", '"7" (string)'],
      ["1M", '"1M" (string)'],
      ["", '"" (string)'],
    ] as const) {
      expect(at(() => t.cache({ ttl }))).toBe(
        `Expected \`task "t" .cache() ttl\` to be a whole number of milliseconds >= 1 or a duration of whole milliseconds such as "12h" or "7d" ` +
          `(leave ttl out for entries that never expire), got ${got}.`,
      );
    }
    expect(at(() => t.cache({ ttl: "1.5h" }))).toBe("accepted");
    for (const ttl of ["12h", "7d", "90 s", "2 weeks", "1m", " 30m "]) expect(at(() => t.cache({ ttl })), ttl).toBe("accepted");
  });

  it("a kind's definition is checked where the kind makes it, naming the field: no TypeError mid-run, no key over the text \"undefined\"", () => {
    const good = { name: "q", kind: "sql", code: "select 1", run: () => ({}), retry: NO_RETRY, cache: {}, env: [] };
    const made = (definition: object) => {
      try {
        kindTask({ definition: definition as never });
        return "accepted";
      } catch (error) {
        return error instanceof OptionError ? error.message : `not an OptionError: ${String(error)}`;
      }
    };
    expect(made(good)).toBe("accepted");
    const { code: _code, ...noCode } = good;
    expect(made(noCode)).toMatch(/^Expected `task definition `code` of "q"` to be a string: the fingerprint of what the task does/);
    const { env: _env, ...noEnv } = good;
    expect(made(noEnv)).toMatch(/`env` of "q"` to be an array of environment variable names/);
    const { retry: _retry, ...noRetry } = good;
    expect(made(noRetry)).toMatch(/`retry` of "q"` to be \{ retries, minDelayMs, maxDelayMs \} \(NO_RETRY for none\)/);
    expect(made({ ...good, kind: undefined })).toMatch(/`kind` of "q"` to be a non-empty string/);
    expect(made({ ...good, run: undefined })).toMatch(/`run` of "q"` to be a function/);
    expect(made({ ...good, cache: undefined })).toMatch(/`cache` of "q"` to be false or an object/);
    expect(made({ ...good, name: "../../evil name" })).toMatch(/`task definition `name` of "..\/..\/evil name"` to be a non-empty string of ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, got/);
    expect(made({ ...good, name: "fit[0]" })).toMatch(/`task definition `name` of "fit\[0\]"`/);
  });

  it("a node handle inside an array or object (an input, a map's `over`, a flow output) is wired as the node's whole output, with its edge", async () => {
    const a = task("a").run(async () => (await sleep(30), { acc: 1 }));
    const b = task("b").run(() => ({ acc: 2 }));
    const summarize = task("summarize")
      .input<{ rs: { acc: number }[]; named: { first: { acc: number } } }>()
      .run(({ rs, named }) => ({ total: rs.reduce((sum, r) => sum + r.acc, 0), first: named.first.acc }));
    const acc = task("acc").input<{ r: { acc: number } }>().run(({ r }) => ({ v: r.acc * 10 }));
    const f = flow("nested-handles").build(() => {
      const x = a({});
      const y = b({});
      const s = summarize({ rs: [x, y], named: { first: x } });
      return { s, pair: { first: x }, tens: map(acc, { over: [x, y], as: "r" }).outputs };
    });
    const graph = f.graph();
    expect([...graph.dependencies.get("summarize")!].sort()).toEqual(["a", "b"]);
    expect(await (await f.run(off)).outputs()).toEqual({ s: { total: 3, first: 1 }, pair: { first: { acc: 1 } }, tens: [{ v: 10 }, { v: 20 }] });
  });

  it("refuses a build that returns a node or the params whole, and `params` itself as an input: they read as objects with nothing in them", () => {
    const one = task("one").run(() => ({ v: 1 }));
    const echo = task("echo").input<{ p: unknown }>().run(({ p }) => ({ p }));
    expect(() => flow("whole-node").build(() => one({}) as never)).toThrow(/build function's return` to be an object of outputs by name.*got the node "one" \(a task's node\)\. Return \{ name: node \}/);
    expect(() => flow("whole-params").build(({ params }) => params as never)).toThrow(/got the flow's params\. Return the params/);
    expect(() => flow("params-input").build(({ params }) => (echo({ p: { all: params } }), {}))).toThrow(
      /^Expected `task "echo" input `p`` to be a value, a task's output or one param \(`params\.rows`\); the flow's `params` as a whole is not a value/,
    );
    expect(() => flow("params-if").build(({ params }) => (echo({ p: 1 }, { if: params as never }), {}))).toThrow(/^Expected `task "echo" option `if`` to be a value/);
    // A literal deeper than any value may nest is refused by the check that names it, not a stack overflow.
    let deep: unknown = 1;
    for (let i = 0; i < 20_000; i++) deep = [deep];
    expect(() => flow("deep-literal").build(() => (echo({ p: deep }), {})).graph()).toThrow(/1000/);
  });

  it("rejects unknown and ill-typed params", async () => {
    const f = flow("params")
      .params(z.object({ rows: z.number() }))
      .build(() => ({}));
    await expect(f.run({ ...off, params: { rows: 1, colums: 2 } as never })).rejects.toThrow(ParamError);
    await expect(f.run({ ...off, params: { rows: 1, colums: 2 } as never })).rejects.toThrow(/no param "colums".*Its params are: rows/);
    await expect(f.run({ ...off, params: { rows: "many" } as never })).rejects.toThrow(/rows: .*expected number/i);
  });

  it("says clearly when a task is called outside build", () => {
    expect(() => add({ a: 1, b: 2 })).toThrow(/called outside a flow's build function/);
  });
});

describe("secrets", () => {
  it("hands out secrets and refuses outputs that contain them", async () => {
    const leak = task("leak").run((_, ctx) => ({ token: ctx.secret("API_TOKEN") }));
    const use = task("use").run((_, ctx) => ({ length: ctx.secret("API_TOKEN").length }));
    const r = await (
      await flow("sec").build(() => (leak(), use(), {})).run({ ...off, failurePolicy: "continue", secrets: { API_TOKEN: "s3cr3t-value" } })
    ).wait();
    expect(r.tasks.use!.outputs).toEqual({ length: 12 });
    expect(r.tasks.leak!.error?.name).toBe("SecretLeakError");
    expect(JSON.stringify(r)).not.toContain("s3cr3t-value");
  });

  it("says which secret is missing and how to set it", async () => {
    const need = task("need").run((_, ctx) => ({ v: ctx.secret("CAIRN_TEST_MISSING_SECRET").length }));
    const r = await (await flow("nosec").build(() => (need(), {})).run(off)).wait();
    expect(r.tasks.need!.error?.message).toMatch(/secret "CAIRN_TEST_MISSING_SECRET", which is not set.*--secrets FILE/);
  });
});
