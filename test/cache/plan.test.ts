/**
 * `planFlow` and `explainTask` against what a run then does, on the embedded store: every test
 * plans, then runs, and compares the plan's actions with the run's statuses.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, describe, expect, it, vi } from "vitest";
import { cancelledRunWhy, explainTask, openFlowCache, planFlow, type PlannedTask } from "@cairn/core";
import { readReportData } from "@cairn/report";
import { flow, LocalStore, map, task } from "@cairn/dsl";
import { kindTask, NO_RETRY } from "@cairn/dsl/kind";
import { z } from "zod";
import { UNSTARTED_ITEM_KEYS } from "../../packages/core/src/pipeline/task-pipeline.ts";
import { cairnBin, childEnv, entryFiles, filesIn, repo, runCollect, sleep, start, statuses, tmp } from "./helpers.ts";

type Definable = { definition: Parameters<typeof planFlow>[0] };

/** The plan of `f` over the store at `root`. */
async function planOf(f: Definable, root: string, params: Record<string, unknown> = {}, more: { rerun?: string[]; refresh?: boolean } = {}): Promise<PlannedTask[]> {
  const { tasks, params: parsed } = await openFlowCache(f.definition, { root, params, env: {} });
  return planFlow(f.definition, { params: parsed, cache: tasks, ...more }).finally(() => tasks.store.close());
}

const actions = (plan: PlannedTask[]) => Object.fromEntries(plan.map((p) => [p.task, p.action]));

describe("plan's memory", () => {
  it("lets a hit's outputs go once the last node that reads them is planned, not at the plan's end", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const root = await tmp();
    const size = 4 * 1024 * 1024;
    const big = task("big")
      .input<{ i: number; after: number }>()
      .run(({ i }) => ({ text: String(i).padEnd(size, "x"), n: i }));
    /** Heap in use while the last node is planned (its input schema is checked then), once the plan measures. */
    let heldAtEnd: number | undefined;
    let measuring = false;
    const probeSchema = {
      "~standard": {
        version: 1 as const,
        vendor: "test",
        types: undefined as unknown as { input: { n: number }; output: { n: number } },
        validate: (value: unknown) => {
          if (measuring) {
            gc();
            heldAtEnd = process.memoryUsage().heapUsed;
          }
          return { value: value as { n: number } };
        },
      },
    };
    const probe = task("probe")
      .input(probeSchema)
      .run(({ n }) => ({ n }));
    const f = flow("plan-memory").build(() => {
      // A chain: each node reads the one before, so each hit's outputs are needed for one step only.
      let last = big({ i: 0, after: -1 });
      for (let i = 1; i < 20; i++) last = big({ i, after: last.n });
      probe({ n: last.n });
      return {};
    });
    await runCollect(f, { root });
    measuring = true;
    const plan = await planOf(f, root);
    measuring = false;
    expect(plan.every((p) => p.action === "hit")).toBe(true);
    gc();
    const after = process.memoryUsage().heapUsed;
    // Twenty hits of 4 MB: all of them were held at the end (80 MB more than once the plan is
    // over); now the last one's alone.
    expect(heldAtEnd! - after).toBeLessThan(30 * 1024 * 1024);
  });
});

describe("plan predicts what the run does", () => {
  it("a condition that reads params only is tested even when an upstream task runs", async () => {
    const root = await tmp();
    const a = task("a").input<{ n: number }>().run(({ n }) => ({ y: n + 1 }));
    const b = task("b").input<{ y: number }>().run(({ y }) => ({ z: y * 2 }));
    const c = task("c").input<{ z: number }>().run(({ z }) => ({ w: z + 1 }));
    const f = flow("cond-known")
      .params<{ n: number; publish: boolean }>()
      .build(({ params }) => {
        const x = a({ n: params.n });
        const y = b({ y: x.y }, { if: params.publish });
        return { w: c({ z: y.z }).w };
      });
    const params = { n: 1, publish: false };
    const plan = await planOf(f, root, params);
    // Before, b and c were planned "run" ("it may still hit"), as a ran.
    expect(actions(plan)).toEqual({ a: "run", b: "skip", c: "skip" });
    expect(plan.find((p) => p.task === "b")!.reason).toMatch(/its condition \(params\.publish\) is false/);
    const { result } = await runCollect(f, { root, params });
    expect(statuses(result)).toEqual({ a: "succeeded", b: "skipped", c: "skipped" });
  });
});

describe("a key that appears twice in one flow", () => {
  it("is planned to run once, the other node as taking its entry, as the run does", async () => {
    const root = await tmp();
    const sq = task("sq").input<{ x: number }>().run(({ x }) => ({ y: x * x }));
    const add = task("add").input<{ a: number; b: number }>().run(({ a, b }) => ({ s: a + b }));
    const f = flow("twice").build(() => {
      const a = sq({ x: 3 });
      const b = sq({ x: 3 });
      return { s: add({ a: a.y, b: b.y }).s };
    });
    const plan = await planOf(f, root);
    // Before, sq-2 was planned "run" too.
    expect(actions(plan)).toEqual({ sq: "run", "sq-2": "hit", add: "run" });
    expect(plan.find((p) => p.task === "sq-2")!.reason).toBe('same key as "sq", computed once in this run');
    expect(plan.find((p) => p.task === "add")!.reason).toBe('no cache entry of this task yet, whatever upstream task "sq" hands it');
    const { result } = await runCollect(f, { root });
    expect(statuses(result)).toEqual({ sq: "succeeded", "sq-2": "cached", add: "succeeded" });
  });

  it("in a map's items: the first computes it, the others take its entry", async () => {
    const root = await tmp();
    const sq = task("sq").input<{ x: number }>().run(({ x }) => ({ y: x * x }));
    const f = flow("twice-map")
      .params<{ items: number[] }>()
      .build(({ params }) => ({ ys: map(sq, { over: params.items, as: "x" }).outputs }));
    const params = { items: [7, 7, 7] };
    const plan = await planOf(f, root, params);
    expect(actions(plan)).toEqual({ sq: "run", "sq[0]": "run", "sq[1]": "hit", "sq[2]": "hit" });
    expect(plan.find((p) => p.task === "sq")!.reason).toBe("1 of its 3 items run");
    const { result } = await runCollect(f, { root, params });
    expect(statuses(result)).toMatchObject({ "sq[0]": "succeeded", "sq[1]": "cached", "sq[2]": "cached" });
  });
});

describe("forced tasks", () => {
  it("a dependant of a --rerun task, or any task under --refresh, is planned forced, never 'may still hit'", async () => {
    const root = await tmp();
    const load = task("load").run(() => ({ n: 1 }));
    const helped = task("helped").input<{ n: number }>().run(({ n }) => ({ m: n + 1 }));
    const down = task("down").input<{ m: number }>().run(({ m }) => ({ k: m + 1 }));
    const f = flow("forced").build(() => ({ k: down({ m: helped({ n: load({}).n }).m }).k }));
    await runCollect(f, { root });
    const rerun = await planOf(f, root, {}, { rerun: ["load"] });
    // Before, helped and down said "upstream task ... runs first (it may still hit ...)".
    expect(rerun.map((p) => [p.task, p.action, p.reason])).toEqual([
      ["load", "run", "--rerun"],
      ["helped", "run", "--rerun load (a dependant of it)"],
      ["down", "run", "--rerun load (a dependant of it)"],
    ]);
    const refresh = await planOf(f, root, {}, { refresh: true });
    expect(refresh.map((p) => p.reason)).toEqual(["--refresh", "--refresh", "--refresh"]);
    const { result } = await runCollect(f, { root, cache: { rerun: ["load"] } });
    expect(statuses(result)).toEqual({ load: "succeeded", helped: "succeeded", down: "succeeded" });
  });
});

describe("a task below one that runs", () => {
  it("whose own code no entry has runs whatever it is handed, and plan and explain say what changed; with its code unchanged it may still hit", async () => {
    const root = await tmp();
    const a1 = task("a").input<{ n: number }>().run(({ n }) => ({ v: n + 1 }));
    const a2 = task("a").input<{ n: number }>().run(({ n }) => ({ v: n + 2 }));
    const b1 = task("b").input<{ v: number }>().run(({ v }) => ({ w: v * 2 }));
    const b2 = task("b").input<{ v: number }>().run(({ v }) => ({ w: v * 3 }));
    const make = (a: typeof a1, b: typeof b1) => flow("below").build(() => ({ w: b({ v: a({ n: 1 }).v }).w }));
    await runCollect(make(a1, b1), { root });

    const onlyUpstream = await planOf(make(a2, b1), root);
    expect(onlyUpstream.find((p) => p.task === "b")!.reason).toBe('upstream task "a" runs first (it may still hit if that task\'s outputs come out unchanged)');

    const both = make(a2, b2);
    const plan = await planOf(both, root);
    // Before: 'upstream task "a" runs first (it may still hit ...)', though b's own code changed.
    const reason = plan.find((p) => p.task === "b")!.reason!;
    expect(reason).toMatch(/^no cache entry matches it, whatever upstream task "a" hands it: /);
    expect(reason).toMatch(/changed/);
    expect(reason).not.toMatch(/input/);
    const { tasks, params } = await openFlowCache(both.definition, { root, params: {}, env: {} });
    const explained = await explainTask(both.definition, "b", { params, cache: tasks }).finally(() => tasks.store.close());
    expect(explained.nearest?.changes.map((c) => c.path)).toEqual(["code"]);
    const { result } = await runCollect(both, { root });
    expect(statuses(result)).toEqual({ a: "succeeded", b: "succeeded" });
  });

  it("whose code resolves to something else (a model alias that moved) is said in the task's own words, as explain and the run say it", async () => {
    const root = await tmp();
    let version = 1;
    // A kind whose code resolves when the flow runs, worded by the task as mlflowModel's alias is.
    const score = kindTask<{ v: number }, { s: number }>({
      definition: {
        name: "score",
        kind: "alias-model",
        code: "alias-model:champion",
        retry: NO_RETRY,
        cache: {},
        env: [],
        resolveCode: async () => `version=${version}`,
        describeResolved: (before, after) => `model alias \`champion\` moved from ${before.replace("=", " ")} to ${after.replace("=", " ")}`,
        run: (inputs) => ({ s: (inputs as { v: number }).v * version }),
      },
    });
    const a1 = task("a").input<{ n: number }>().run(({ n }) => ({ v: n + 1 }));
    const a2 = task("a").input<{ n: number }>().run(({ n }) => ({ v: n + 2 }));
    const make = (a: typeof a1) => flow("below-alias").build(() => ({ s: score({ v: a({ n: 1 }).v }).s }));
    await runCollect(make(a1), { root });
    version = 2;
    const moved = make(a2);
    const plan = await planOf(moved, root);
    // Before: the generic words, `what the task's code resolves to (a model alias now naming another version, say) changed from "version=1" to "version=2"`.
    expect(plan.find((p) => p.task === "score")!.reason).toBe('no cache entry matches it, whatever upstream task "a" hands it: model alias `champion` moved from version 1 to version 2');
    const { tasks, params } = await openFlowCache(moved.definition, { root, params: {}, env: {} });
    const explained = await explainTask(moved.definition, "score", { params, cache: tasks }).finally(() => tasks.store.close());
    expect(explained.nearest?.changes.map((c) => c.message)).toContain("model alias `champion` moved from version 1 to version 2");
  });
});

describe("a task whose inputs its schema refuses", () => {
  it("is planned to fail, with the rest of the flow, instead of failing the whole plan", async () => {
    const root = await tmp();
    const other = task("other").run(() => ({ v: 1 }));
    const positive = task("positive")
      .input(z.object({ n: z.number().positive() }))
      .run(({ n }) => ({ m: n * 2 }));
    const after = task("after").input<{ m: number }>().run(({ m }) => ({ k: m + 1 }));
    const f = flow("bad-inputs")
      .params<{ n: number }>()
      .build(({ params }) => ({ v: other({}).v, k: after({ m: positive({ n: params.n }).m }).k }));
    // Before, planFlow threw the task's InputValidationError.
    const plan = await planOf(f, root, { n: -1 });
    expect(plan.map((p) => [p.task, p.action])).toEqual([["other", "run"], ["positive", "run"], ["after", "skip"]]);
    expect(plan.find((p) => p.task === "positive")!.reason).toMatch(/^fails before it starts: its inputs do not match its input schema \(.*n.*\)$/);
    expect(plan.find((p) => p.task === "after")!.reason).toBe('not started: upstream task "positive" fails');
    const { result } = await runCollect(f, { root, params: { n: -1 } });
    expect(statuses(result)).toMatchObject({ positive: "failed", after: "skipped" });
  });

  it("masks the run's secrets in the row's reason when the schema's message quotes the value, a task's as a map item's", async () => {
    const root = await tmp();
    const secret = "lit-eral-secret-value";
    const token = z.string().refine((t) => t.startsWith("tok_"), { error: (issue) => `not a token: ${String(issue.input)}` });
    const use = task("use").input(z.object({ token })).run(({ token }) => ({ n: token.length }));
    const f = flow("secret-inputs")
      .params<{ token: string; tokens: string[] }>()
      .build(({ params }) => ({ n: use({ token: params.token }).n, ns: map(use, { over: params.tokens, as: "token" }).outputs }));
    const params = { token: secret, tokens: [secret] };
    const { tasks, params: parsed } = await openFlowCache(f.definition, { root, params, env: {}, secrets: { API_TOKEN: secret } });
    const plan = await planFlow(f.definition, { params: parsed, cache: tasks }).finally(() => tasks.store.close());
    const reasons = plan.filter((p) => p.reason?.startsWith("fails before it starts")).map((p) => p.reason);
    expect(plan.filter((p) => p.reason?.startsWith("fails before it starts")).map((p) => p.item)).toEqual([undefined, 0]);
    for (const reason of reasons) {
      // Before, the reason held the secret as zod's message quoted it.
      expect(reason).toMatch(/^fails before it starts: its inputs do not match its input schema \(.*not a token: .*\)$/);
      expect(reason).not.toContain(secret);
    }
  });
});

describe("plan and explain only read", () => {
  it("an expired entry is said to have expired (which run made it, how long ago, its ttl), and stays in the store (keyv's get and iterator deleted it)", async () => {
    const root = await tmp();
    const short = task("short").cache({ ttl: 200 }).run(() => ({ ok: true }));
    const gone = task("gone").cache({ ttl: 200 }).run(() => ({ n: 1 }));
    const f = flow("ttl-read").build(() => ({ ok: short({}).ok, n: gone({}).n }));
    const first = await runCollect(f, { root });
    await sleep(400);
    const before = await snapshot(root);
    expect(before.size).toBe(2);
    const plan = await planOf(f, root);
    const sourceRun = first.result.tasks.short!.runId;
    expect(plan.find((p) => p.task === "short")).toMatchObject({
      action: "run",
      reason: expect.stringMatching(new RegExp(`^its entry from run ${sourceRun} expired \\d+ ms ago \\(ttl 2\\d\\d ms, at \\S+Z\\)$`)),
      expired: { at: expect.any(Number), sourceRunId: sourceRun, createdAt: expect.any(Number) },
    });
    const { tasks } = await openFlowCache(f.definition, { root, env: {} });
    const why = await explainTask(f.definition, "short", { params: {}, cache: tasks }).finally(() => tasks.store.close());
    expect(why.planned.reason).toMatch(/expired \d+ ms ago/);
    // Nothing is compared: the entry of these very ingredients is there, past its ttl.
    expect(why.nearest).toBeUndefined();
    // Before, the plan deleted both entry files.
    expect(await snapshot(root)).toEqual(before);
    const again = await runCollect(f, { root });
    expect(statuses(again.result)).toEqual({ short: "succeeded", gone: "succeeded" });
    // The run's lookup deletes it, and records why the task missed: it expired (before, "new": no earlier entry).
    const recorded = await new LocalStore({ root }).getRun(again.result.tasks.short!.runId!);
    expect(JSON.parse(recorded!.tags["cairn.miss_reason"]!)).toEqual({ kind: "expired", at: expect.any(Number), seenAt: expect.any(Number), runId: sourceRun, createdAt: expect.any(Number) });
  });
});

describe("plan and explain create no experiment", () => {
  it("on a fresh folder, the embedded store is left without the experiment, and everything is planned from the store", async () => {
    const root = await tmp();
    const t = task("t").run(() => ({ v: 1 }));
    const f = flow("never-ran").build(() => ({ v: t({}).v }));
    const plan = await planOf(f, root);
    expect(plan).toMatchObject([{ task: "t", action: "run", reason: 'no cache entry for these inputs and code (experiment "never-ran" does not exist yet)' }]);
    const { tasks } = await openFlowCache(f.definition, { root, env: {} });
    await explainTask(f.definition, "t", { params: {}, cache: tasks }).finally(() => tasks.store.close());
    // Before, plan wrote experiments/<id>/meta.json.
    expect(await filesIn(join(root, "experiments"))).toEqual([]);
    const { result } = await runCollect(f, { root });
    expect(result.status).toBe("succeeded");
    expect(await filesIn(join(root, "experiments"))).toHaveLength(1);
    expect(actions(await planOf(f, root))).toEqual({ t: "hit" });
  });
});

describe("why a miss runs", () => {
  it("plan gives the first change since the nearest earlier entry, as explain does", async () => {
    const root = await tmp();
    const fit = task("fit").input<{ lr: number; depth: number }>().run(({ lr, depth }) => ({ score: lr * depth }));
    const f = flow("why-plan")
      .params<{ lr: number; depth: number }>()
      .build(({ params }) => ({ score: fit({ lr: params.lr, depth: params.depth }).score }));
    await runCollect(f, { root, params: { lr: 0.1, depth: 3 } });
    // Before, every miss said only "no cache entry for these inputs and code".
    expect((await planOf(f, root, { lr: 0.2, depth: 3 }))[0]!.reason).toBe("no cache entry for these inputs and code: input `lr` changed from 0.1 to 0.2");
    expect((await planOf(f, root, { lr: 0.2, depth: 4 }))[0]!.reason).toBe("no cache entry for these inputs and code: input `depth` changed from 3 to 4 (+1 more)");
    const { result } = await runCollect(f, { root, params: { lr: 0.2, depth: 3 } });
    expect(statuses(result)).toEqual({ fit: "succeeded" });
  });

  it("a new item of a map is said to be new, not explained by another item's entry", async () => {
    const root = await tmp();
    const sq = task("sq").input<{ x: number }>().run(({ x }) => ({ y: x * x }));
    const f = flow("new-item")
      .params<{ items: number[] }>()
      .build(({ params }) => ({ ys: map(sq, { over: params.items, as: "x" }).outputs }));
    await runCollect(f, { root, params: { items: [1, 2, 3] } });
    const params = { items: [1, 2, 3, 4] };
    const plan = await planOf(f, root, params);
    expect(plan.find((p) => p.task === "sq[3]")).toMatchObject({ action: "run", reason: "no cache entry for these inputs and code: a new item of sq (x = 4): no entry for it yet" });
    const { tasks } = await openFlowCache(f.definition, { root, params, env: {} });
    const why = await explainTask(f.definition, "sq[3]", { params, cache: tasks }).finally(() => tasks.store.close());
    // Before: "input `x` changed from 2 to 4", from sq[1]'s entry.
    expect(why.nearest).toBeUndefined();
    expect(why.newItem).toBe("a new item of sq (x = 4): no entry for it yet");
  });
});

describe("explain of a name no node has", () => {
  it("is refused before the flow is planned, with the closest ids and how many there are, not every id; a map's item is still explained", async () => {
    const root = await tmp();
    const step = task("step").input<{ x: number }>().run(({ x }) => ({ x: x + 1 }));
    const square = task("square").input<{ x: number }>().run(({ x }) => ({ y: x * x }));
    const f = flow("long-chain")
      .params<{ items: number[] }>()
      .build(({ params }) => {
        let last = step({ x: 0 });
        for (let i = 1; i < 30; i++) last = step({ x: last.x });
        return { x: last.x, ys: map(square, { over: params.items, as: "x" }).outputs };
      });
    const params = { items: [1, 2, 3] };
    const { tasks } = await openFlowCache(f.definition, { root, params, env: {} });
    try {
      const keyFor = vi.spyOn(tasks, "keyFor");
      // Before: every task's key was made (a 20,000-task chain: 33 s), then every id listed.
      await expect(explainTask(f.definition, "stpe", { params, cache: tasks })).rejects.toThrow(
        'Expected `TASK` to be a task name or node id of flow "long-chain", which has 31 nodes (did you mean "step"?), got "stpe" (string).',
      );
      expect(keyFor).not.toHaveBeenCalled();
      // A name a map gives its items when its list is known is still one to explain.
      expect((await explainTask(f.definition, "square[2]", { params, cache: tasks })).task).toBe("square[2]");
      await expect(explainTask(f.definition, "square[3]", { params, cache: tasks })).rejects.toThrow('an item of "square", which has 3 (square[0] to square[2])');
    } finally {
      await tasks.store.close();
    }
  });
});

describe("a key a run failed for, with no entry", () => {
  it("is said to have failed, naming its run and error, not new: an item of a map and explain", async () => {
    const root = await tmp();
    const flaky = task("flaky")
      .input<{ x: number }>()
      .run(({ x }) => {
        if (x === 3) throw new Error(`cannot square ${x}`);
        return { y: x * x };
      });
    const f = flow("failed-item")
      .params<{ items: number[] }>()
      .build(({ params }) => ({ ys: map(flaky, { over: params.items, as: "x" }).outputs }));
    const params = { items: [1, 2, 3, 4] };
    const first = await runCollect(f, { root, params, failurePolicy: "continue" });
    expect(statuses(first.result)).toMatchObject({ "flaky[0]": "succeeded", "flaky[2]": "failed" });
    const failedRun = first.result.tasks["flaky[2]"]!.runId!;
    // A list with one more item: the new one is new, the failed one is not.
    const more = { items: [1, 2, 3, 4, 5] };
    const plan = await planOf(f, root, more);
    // Before: "no cache entry for these inputs and code: a new item of flaky (x = 3): no entry for it yet".
    expect(plan.find((p) => p.task === "flaky[2]")).toMatchObject({
      action: "run",
      reason: expect.stringMatching(new RegExp(`^no cache entry for these inputs and code: a run with this key failed \\(run ${failedRun}, \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\); no entry is stored for it$`)),
      failed: { runId: failedRun, error: "Error: cannot square 3" },
    });
    expect(plan.find((p) => p.task === "flaky[4]")).toMatchObject({ action: "run", reason: "no cache entry for these inputs and code: a new item of flaky (x = 5): no entry for it yet" });
    expect(plan.find((p) => p.task === "flaky[4]")!.failed).toBeUndefined();
    const { tasks } = await openFlowCache(f.definition, { root, params: more, env: {} });
    const why = await explainTask(f.definition, "flaky[2]", { params: more, cache: tasks }).finally(() => tasks.store.close());
    expect(why.planned.failed).toMatchObject({ runId: failedRun, error: "Error: cannot square 3" });
  });
});

describe("a key whose run was cancelled, with no entry", () => {
  /** A map whose item x = 3 fails once the others are running: with fail-fast, they are cancelled. */
  const slow = task("slow-sq")
    .input<{ x: number }>()
    .run(async ({ x }, ctx) => {
      if (x === 3) {
        await sleep(100);
        throw new Error(`cannot square ${x}`);
      }
      await new Promise((_r, j) => ctx.signal.addEventListener("abort", () => j(ctx.signal.reason)));
      return { y: x * x };
    });
  const f = flow("cancelled-items")
    .params<{ items: number[] }>()
    .build(({ params }) => ({ ys: map(slow, { over: params.items, as: "x" }).outputs }));

  it("is said to have been cancelled when task X failed (fail-fast), naming its run, not new: plan and explain", async () => {
    const root = await tmp();
    const params = { items: [3, 4, 5] };
    const first = await runCollect(f, { root, params, concurrency: 3 });
    expect(statuses(first.result)).toMatchObject({ "slow-sq[0]": "failed", "slow-sq[1]": "cancelled", "slow-sq[2]": "cancelled" });
    const cancelledRun = first.result.tasks["slow-sq[1]"]!.runId!;
    const plan = await planOf(f, root, params);
    const why = 'stopped because task "slow-sq[0]" failed and the failure policy is fail-fast';
    // Before: "no cache entry for these inputs and code: a new item of slow-sq (x = 4): no entry for it yet".
    expect(plan.find((p) => p.task === "slow-sq[1]")).toMatchObject({
      action: "run",
      reason: expect.stringMatching(new RegExp(`^no cache entry for these inputs and code: a run with this key was cancelled \\(run ${cancelledRun}, \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\): ${why.replace(/[[\]]/g, "\\$&")}; no entry is stored for it$`)),
      cancelled: { runId: cancelledRun, why },
    });
    expect(plan.find((p) => p.task === "slow-sq[1]")!.failed).toBeUndefined();
    expect(plan.find((p) => p.task === "slow-sq[0]")).toMatchObject({ failed: { error: "Error: cannot square 3" } });
    const { tasks } = await openFlowCache(f.definition, { root, params, env: {} });
    const explained = await explainTask(f.definition, "slow-sq[2]", { params, cache: tasks }).finally(() => tasks.store.close());
    expect(explained.planned.cancelled).toMatchObject({ runId: first.result.tasks["slow-sq[2]"]!.runId, why });
    // The report words it as plan does (one function): it said "cancelled: Stopped because ... fail-fast." in other words.
    const report = await readReportData(new LocalStore({ root }), first.result.runId);
    expect(report.tasks.find((t) => t.id === "slow-sq[1]")?.why).toContain(`cancelled: ${why}`);
  });

  it("is said to have been cancelled with the reason the flow run was cancelled for", async () => {
    const root = await tmp();
    const params = { items: [4, 5] };
    const run = await f.run({ env: {}, root, params });
    run.on((e) => {
      if (e.type === "task" && e.status === "running" && e.task === "slow-sq[1]") setTimeout(() => run.cancel("SIGINT"), 50);
    });
    const result = await run.wait();
    expect(statuses(result)).toMatchObject({ "slow-sq[0]": "cancelled", "slow-sq[1]": "cancelled" });
    const plan = await planOf(f, root, params);
    expect(plan.find((p) => p.task === "slow-sq[0]")).toMatchObject({ action: "run", cancelled: { runId: result.tasks["slow-sq[0]"]!.runId, why: "the flow run was cancelled: SIGINT" } });
    expect(plan.find((p) => p.task === "slow-sq[0]")!.reason).toMatch(/: a run with this key was cancelled \(run \w+, [^)]+\): the flow run was cancelled: SIGINT; no entry is stored for it$/);
    // The report says it in the same words: it read "cancelled: Cancelled: SIGINT.".
    const report = await readReportData(new LocalStore({ root }), result.runId);
    expect(report.tasks.find((t) => t.id === "slow-sq[0]")?.why).toContain("cancelled: the flow run was cancelled: SIGINT");
  });

  it("is said to have been cancelled before it started when it waited for a slot as task X failed (fail-fast): plan and explain", async () => {
    const root = await tmp();
    const params = { items: [3, 4, 5] };
    // One slot: x = 4 and x = 5 are looked up (their keys known), then wait for it while x = 3 fails.
    const first = await runCollect(f, { root, params, concurrency: 1 });
    expect(statuses(first.result)).toMatchObject({ "slow-sq[0]": "failed", "slow-sq[1]": "skipped", "slow-sq[2]": "skipped" });
    const waited = first.result.tasks["slow-sq[1]"]!.runId!;
    const plan = await planOf(f, root, params);
    const why = 'stopped because task "slow-sq[0]" failed and the failure policy is fail-fast';
    // Before: "no cache entry for these inputs and code: a new item of slow-sq (x = 4): no entry for it yet".
    expect(plan.find((p) => p.task === "slow-sq[1]")).toMatchObject({ action: "run", cancelled: { runId: waited, why, waiting: true } });
    expect(plan.find((p) => p.task === "slow-sq[1]")!.reason).toMatch(/: a run with this key was cancelled before it started \(run \w+, [^)]+\): stopped because task "slow-sq\[0\]" failed and the failure policy is fail-fast; no entry is stored for it$/);
    const { tasks } = await openFlowCache(f.definition, { root, params, env: {} });
    const explained = await explainTask(f.definition, "slow-sq[2]", { params, cache: tasks }).finally(() => tasks.store.close());
    expect(explained.planned.cancelled).toMatchObject({ runId: first.result.tasks["slow-sq[2]"]!.runId, why, waiting: true });
  });

  it(`a fail-fast stop of a large map gives its first ${UNSTARTED_ITEM_KEYS} unstarted items their key, not all: plan's bounded search of failures is not flooded`, async () => {
    // x = 3 fails once every other item has been looked up (its key known) and waits for the one slot.
    const late = task("late-sq")
      .input<{ x: number }>()
      .run(async ({ x }) => {
        if (x === 3) await sleep(2000).then(() => Promise.reject(new Error(`cannot square ${x}`)));
        return { y: x * x };
      });
    const f = flow("cancelled-many-items")
      .params<{ items: number[] }>()
      .build(({ params }) => ({ ys: map(late, { over: params.items, as: "x", concurrency: 200 }).outputs }));
    const root = await tmp();
    const params = { items: [3, ...Array.from({ length: UNSTARTED_ITEM_KEYS + 5 }, (_, i) => 10 + i)] };
    const first = await runCollect(f, { root, params, concurrency: 1 });
    expect(statuses(first.result)["late-sq[1]"]).toBe("skipped");
    const store = new LocalStore({ root });
    const { experimentId } = (await store.getRun(first.result.runId))!;
    // Before: every one of the 105 items stopped while it waited carried cairn.failed_key.
    const keyed = (await store.searchRuns({ experimentIds: [experimentId], hasTag: "cairn.failed_key" })).filter((r) => r.status === "KILLED");
    expect(keyed).toHaveLength(UNSTARTED_ITEM_KEYS);
    const plan = await planOf(f, root, params);
    const items = plan.filter((p) => p.task.startsWith("late-sq[") && p.task !== "late-sq[0]");
    expect(items.filter((p) => p.cancelled?.waiting)).toHaveLength(UNSTARTED_ITEM_KEYS);
    // The rest are compared as any other item.
    expect(items.filter((p) => !p.cancelled).map((p) => p.reason)).toEqual(Array(5).fill(expect.stringMatching(/^no cache entry for these inputs and code/)));
  });

  it("is said to have been cancelled before it started, with the reason, when it waited for a slot as the flow run was cancelled", async () => {
    const root = await tmp();
    const params = { items: [4, 5] };
    const run = await f.run({ env: {}, root, params, concurrency: 1 });
    run.on((e) => {
      if (e.type === "task" && e.status === "running" && e.task === "slow-sq[0]") setTimeout(() => run.cancel("SIGINT"), 50);
    });
    const result = await run.wait();
    expect(statuses(result)).toMatchObject({ "slow-sq[0]": "cancelled", "slow-sq[1]": "cancelled" });
    const plan = await planOf(f, root, params);
    // Before: "no cache entry for these inputs and code: a new item of slow-sq (x = 5): no entry for it yet".
    expect(plan.find((p) => p.task === "slow-sq[1]")).toMatchObject({ action: "run", cancelled: { runId: result.tasks["slow-sq[1]"]!.runId, why: "the flow run was cancelled: SIGINT", waiting: true } });
    expect(plan.find((p) => p.task === "slow-sq[1]")!.reason).toMatch(/: a run with this key was cancelled before it started \(run \w+, [^)]+\): the flow run was cancelled: SIGINT; no entry is stored for it$/);
    // The report says what stopped it too: it read "cancelled: the flow run was cancelled before it finished".
    const report = await readReportData(new LocalStore({ root }), result.runId);
    expect(report.tasks.find((t) => t.id === "slow-sq[1]")?.why).toContain("cancelled: the flow run was cancelled: SIGINT");
  });

  it("words a cancelled run's error tags once, also the doubled ones a queue worker recorded", () => {
    const tags = (name: string, message: string) => ({ "cairn.error.name": name, "cairn.error.message": message });
    expect(cancelledRunWhy(tags("CancelledError", "Cancelled: SIGINT."))).toBe("the flow run was cancelled: SIGINT");
    expect(cancelledRunWhy(tags("CancelledError", "Cancelled."))).toBe("the flow run was cancelled");
    expect(cancelledRunWhy(tags("FailFast", 'Stopped because task "sq[0]" failed and the failure policy is fail-fast.'))).toBe('stopped because task "sq[0]" failed and the failure policy is fail-fast');
    // Before: "the flow run was cancelled: Cancelled: the flow run was cancelled".
    expect(cancelledRunWhy(tags("CancelledError", "Cancelled: Cancelled: the flow run was cancelled."))).toBe("the flow run was cancelled");
    expect(cancelledRunWhy({})).toBeUndefined();
  });
});

describe("a key with no failed or cancelled run found, where the search stopped at its bound", () => {
  it("explain says the search looked among the experiment's newest 2,000 runs only; with fewer runs, it says nothing of it", async () => {
    const root = await tmp();
    const flaky = task("old-flaky")
      .input<{ x: number }>()
      .run(({ x }) => {
        if (x > 0) throw new Error(`cannot square ${x}`);
        return { y: x };
      });
    const f = flow("old-failure")
      .params<{ x: number }>()
      .build(({ params }) => ({ y: flaky({ x: params.x }).y }));
    const params = { x: 3 };
    const first = await runCollect(f, { root, params });
    const failedRun = first.result.tasks["old-flaky"]!.runId!;
    const explain = async () => {
      const { tasks, params: parsed } = await openFlowCache(f.definition, { root, params, env: {} });
      return explainTask(f.definition, "old-flaky", { params: parsed, cache: tasks }).finally(() => tasks.store.close());
    };
    const found = await explain();
    expect(found.planned.failed).toMatchObject({ runId: failedRun });
    expect(found.notFoundAmong).toBeUndefined();
    // 2,000 newer runs in the experiment: the failed one is past the search's bound.
    const store = new LocalStore({ root });
    const { experimentId, startTime } = (await store.getRun(failedRun))!;
    for (let i = 1; i <= 2000; i++) await store.recordRun({ experimentId, name: `filler-${i}`, startTime: startTime + i, status: "FINISHED" });
    await store.flush();
    const past = await explain();
    expect(past.planned.failed).toBeUndefined();
    // Before: nothing said the key might have failed before the runs the search looked among.
    expect(past.notFoundAmong).toEqual({ runs: 2000, endedOnly: false });
    // 1,000 newer failed runs of other keys: the search's one page is full.
    const full = await tmp();
    const again = await runCollect(f, { root: full, params });
    const fullStore = new LocalStore({ root: full });
    const older = (await fullStore.getRun(again.result.tasks["old-flaky"]!.runId!))!;
    for (let i = 1; i <= 1000; i++) {
      await fullStore.recordRun({ experimentId: older.experimentId, name: `failed-${i}`, startTime: older.startTime + i, status: "FAILED", tags: { "cairn.failed_key": `other-${i}` } });
    }
    await fullStore.flush();
    const { tasks: fullTasks } = await openFlowCache(f.definition, { root: full, params, env: {} });
    const paged = await explainTask(f.definition, "old-flaky", { params, cache: fullTasks }).finally(() => fullTasks.store.close());
    expect(paged.planned.failed).toBeUndefined();
    expect(paged.notFoundAmong).toEqual({ runs: 1000, endedOnly: true });
    // Another key, with fewer runs than the bound in its own experiment, says nothing of it.
    const other = await tmp();
    await runCollect(flow("few-runs").build(() => ({ y: task("fine").run(() => ({ y: 1 }))().y })), { root: other });
    const g = flow("few-runs").build(() => ({ y: task("fine").run(() => ({ y: 2 }))().y }));
    const { tasks } = await openFlowCache(g.definition, { root: other, params: {}, env: {} });
    const few = await explainTask(g.definition, "fine", { params: {}, cache: tasks }).finally(() => tasks.store.close());
    expect(few.planned.action).toBe("run");
    expect(few.notFoundAmong).toBeUndefined();
  }, 120_000);
});

/** Entry file → its text, of the embedded store under `root`. */
async function snapshot(root: string): Promise<Map<string, string>> {
  const files = await entryFiles(root);
  return new Map(await Promise.all(files.map(async (f) => [f, await readFile(f, "utf8")] as [string, string])));
}

describe("a function task that reads process.env itself", () => {
  it("is keyed by the value of each variable its function names, as if declared with .env(), and explain names the one that changed", async () => {
    const root = await tmp();
    const name = "CAIRN_TEST_SCALE_READ";
    const before = process.env[name];
    let calls = 0;
    // It reads the variable itself, undeclared.
    const scaled = task("scaled").input<{ n: number }>().run(({ n }) => (calls++, { v: n * Number(process.env.CAIRN_TEST_SCALE_READ ?? "1") }));
    const f = flow("reads-env").build(() => ({ v: scaled({ n: 3 }).v }));
    try {
      process.env[name] = "1";
      expect((await runCollect(f, { root })).result.outputs).toEqual({ v: 3 });
      process.env[name] = "5";
      const { tasks, params } = await openFlowCache(f.definition, { root, params: {}, env: {} });
      const explained = await explainTask(f.definition, "scaled", { params, cache: tasks }).finally(() => tasks.store.close());
      expect(explained.nearest?.changes.map((c) => c.message)).toEqual([`environment variable \`${name}\` changed value`]);
      const { result } = await runCollect(f, { root });
      expect(statuses(result)).toEqual({ scaled: "succeeded" });
      expect(result.outputs).toEqual({ v: 15 });
      expect(calls).toBe(2);
      // Its value is kept only as the slow digest a declared one gets.
      const entries = await entryFiles(root);
      expect(entries.length).toBe(2);
      for (const file of entries) expect(await readFile(file, "utf8")).toMatch(new RegExp(`"env":\\{"${name}":"[0-9a-f]{64}"\\}`));
    } finally {
      if (before === undefined) delete process.env[name];
      else process.env[name] = before;
    }
  });
});

describe("two checkouts of one project at different paths, sharing a store", () => {
  const made: string[] = [];
  afterAll(async () => {
    for (const dir of made) await rm(dir, { recursive: true, force: true });
  });
  /** A checkout (a folder with `.git`) at `at` under a folder inside the workspace (where `cairn-dag` resolves), holding `flow.ts` made of `flowText`. */
  const checkout = async (base: string, at: string, files: Record<string, string>): Promise<string> => {
    const dir = join(base, at);
    await mkdir(join(dir, ".git"), { recursive: true });
    await mkdir(join(dir, "steps"), { recursive: true });
    await mkdir(join(dir, "data"), { recursive: true });
    await writeFile(join(dir, "steps", "train.sh"), `echo '{"ok":true}' > "$CAIRN_OUTPUTS"\n`);
    await writeFile(join(dir, "data", "in.csv"), "a,1\nb,2\n");
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    return dir;
  };
  const flowText = (cwd: string) =>
    [
      `import { join } from "node:path";`,
      `import { flow, script, task } from "cairn-dag";`,
      `export const trainCwd = script("trainCwd", { file: "steps/train.sh", cwd: ${cwd} }).output<{ ok: boolean }>();`,
      `export const absCode = task("absCode").codeFiles(join(import.meta.dirname, "data/in.csv")).run(() => ({ n: 1 }));`,
      `export default flow("checkouts").build(() => ({ ok: trainCwd({}).ok, n: absCode().n }));`,
      ``,
    ].join("\n");

  it("share entries when a process task's cwd and a code file are given from import.meta.dirname (inside the project), and explain names a changed cwd as such", async () => {
    const base = await mkdtemp(join(repo, "test", ".x-checkouts-"));
    made.push(base);
    const text = flowText("import.meta.dirname");
    const alice = await checkout(base, "alice/proj", { "flow.ts": text, "moved.ts": flowText(`join(import.meta.dirname, "steps")`) });
    const bob = await checkout(base, "bob/work/proj", { "flow.ts": text });
    const root = await tmp();
    const load = async (file: string) => ((await import(pathToFileURL(file).href)) as { default: Definable & { run: never } }).default;
    const first = await runCollect(await load(join(alice, "flow.ts")), { root });
    expect(statuses(first.result)).toEqual({ trainCwd: "succeeded", absCode: "succeeded" });
    // Bob's checkout: the same project elsewhere. Its keys held alice's paths, so nothing hit.
    const second = await runCollect(await load(join(bob, "flow.ts")), { root });
    expect(statuses(second.result)).toEqual({ trainCwd: "cached", absCode: "cached" });
    // Another folder of the project is another cwd, and said as an option of the script.
    const moved = await load(join(alice, "moved.ts"));
    const { tasks, params } = await openFlowCache(moved.definition, { root, params: {}, env: {} });
    const explained = await explainTask(moved.definition, "trainCwd", { params, cache: tasks }).finally(() => tasks.store.close());
    expect(explained.nearest?.changes.map((c) => c.message)).toEqual(["option `cwd` of script `train.sh` changed"]);
  });
});

describe("two copies of one project without .git (git archive, a Docker COPY) at different paths, sharing a store", () => {
  /** A copy at `at` under `base` (no `.git` above): its lockfile at the top, the flow's tasks in lib/, `cairn-dag` linked as an install makes it. */
  const copy = async (base: string, at: string): Promise<string> => {
    const dir = join(base, at);
    const files: Record<string, string> = {
      "package.json": `{ "name": "proj", "private": true, "type": "module" }\n`,
      "package-lock.json": `{ "name": "proj", "lockfileVersion": 3, "packages": {} }\n`,
      "data/points.csv": "x\n1\n2\n",
      "steps/count.sh": `echo '{"ok":true}' > "$CAIRN_OUTPUTS"\n`,
      "lib/tasks.ts": [
        `import { join } from "node:path";`,
        `import { script, task } from "cairn-dag";`,
        `export const readData = task("readData").codeFiles(join(import.meta.dirname, "../data/points.csv")).run(() => ({ ok: 1 }));`,
        `export const count = script("count", { file: join(import.meta.dirname, "../steps/count.sh"), cwd: join(import.meta.dirname, "..") }).output<{ ok: boolean }>();`,
      ].join("\n"),
      "flow.ts": [
        `import { flow } from "cairn-dag";`,
        `import { count, readData } from "./lib/tasks.ts";`,
        `export default flow("copies").build(() => ({ a: readData().ok, b: count().ok }));`,
      ].join("\n"),
    };
    for (const [name, text] of Object.entries(files)) {
      await mkdir(dirname(join(dir, name)), { recursive: true });
      await writeFile(join(dir, name), text);
    }
    await mkdir(join(dir, "node_modules"));
    await symlink(join(repo, "packages/cairn"), join(dir, "node_modules/cairn-dag"));
    return dir;
  };
  const run = (cwd: string, store: string) => start(process.execPath, [cairnBin, "run", "flow.ts", "--root", store], { cwd, env: childEnv({ CAIRN_NO_AUTORUN: "0" }) }).done;
  const ran = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(readData|count)\s+(succeeded|cached)\s/gm)].map((m) => [m[1], m[2]]));

  it("share entries: paths from import.meta.dirname count from the folder of the lockfile, not as absolute paths", async () => {
    const base = await tmp("cairn-no-git-");
    const store = join(base, "store");
    const first = await run(await copy(base, "g1/repo"), store);
    expect(first.code, first.stderr).toBe(0);
    expect(ran(first.stdout)).toEqual({ readData: "succeeded", count: "succeeded" });
    // Before, both ran again: "code file /tmp/.../g1/repo/data/points.csv was removed", "option `cwd` of script changed".
    const second = await run(await copy(base, "g2/work/repo"), store);
    expect(second.code, second.stderr).toBe(0);
    expect(ran(second.stdout)).toEqual({ readData: "cached", count: "cached" });
  });
});

describe("a lookup that fails while planning", () => {
  it("fails the plan with its error: the key was made, so it is not said to be a key that cannot be made", async () => {
    const root = await tmp();
    const one = task("one").run(async () => ({ n: 1 }));
    const each = task("each").input<{ x: number }>().run(async ({ x }) => ({ y: x }));
    const f = flow("lease-fault").build(() => ({ n: one().n, ys: map(each, { over: [1, 2], as: "x" }).outputs }));
    const { tasks } = await openFlowCache(f.definition, { root, params: {}, env: {} });
    try {
      // The fault: the lease store refuses the read that asks who computes a key.
      vi.spyOn(tasks, "leaseHolder").mockRejectedValue(new Error("lease read refused (injected)"));
      await expect(planFlow(f.definition, { params: {}, cache: tasks })).rejects.toThrow("lease read refused (injected)");
    } finally {
      await tasks.store.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
