import { describe, expectTypeOf, it } from "vitest";
import { z } from "zod";
import { flow, grid, list, map, max, min, random, sweep, task, when, type Artifact, type FanOutOptions, type InferFlowOutputs, type MaybeRef, type Node, type NodeOptions, type Ref, type SweepTrial } from "./index.ts";

const listFiles = task("listFiles")
  .input<{ dir: string }>()
  .run(({ dir }) => ({ paths: [`${dir}/a.csv`] }));
const featureStats = task("featureStats")
  .input<{ path: string; cols: number }>()
  .run(({ path, cols }) => ({ path, mean: cols * 1.5 }));
const check = task("check")
  .input<{ stats: Array<{ path: string; mean: number }> }>()
  .run(({ stats }) => ({ passed: stats.length > 0 }));
const train = task("train")
  .input<{ data: string; lr: number; depth: number }>()
  .run(({ lr, depth }) => ({ rocAuc: lr * depth, model: "m", note: "x" }));

describe("map types", () => {
  it("outputs a typed array in item order, wired where an array is expected", () => {
    const f = flow("m")
      .params(z.object({ dir: z.string(), cols: z.number() }))
      .build(({ params }) => {
        const files = listFiles({ dir: params.dir });
        const stats = map(featureStats, { over: files.paths, as: "path", with: { cols: params.cols } });
        expectTypeOf(stats.outputs).toEqualTypeOf<Ref<Array<{ path: string; mean: number }>>>();
        expectTypeOf(stats.failed).toEqualTypeOf<Ref<string[]>>();
        const ok = check({ stats: stats.outputs });
        return { stats: stats.outputs, passed: ok.passed };
      });
    expectTypeOf<InferFlowOutputs<typeof f>>().toEqualTypeOf<{ stats: Array<{ path: string; mean: number }>; passed: boolean }>();
  });

  it("types the outputs with holes when minSuccess lets items fail", () => {
    flow("m2").build(() => {
      const stats = map(featureStats, { over: ["a"], as: "path", with: { cols: 1 }, minSuccess: 0.8 });
      expectTypeOf(stats.outputs).toEqualTypeOf<Ref<Array<{ path: string; mean: number } | null>>>();
      return {};
    });
  });

  it("types the outputs with holes whenever minSuccess may be a number, also number | undefined", () => {
    const maybe = Math.random() > 0.5 ? 0.8 : undefined;
    const options: FanOutOptions = { minSuccess: 2 };
    const f = flow("m3").build(() => {
      const mayFail = map(featureStats, { over: ["a"], as: "path", with: { cols: 1 }, minSuccess: maybe });
      expectTypeOf(mayFail.outputs).toEqualTypeOf<Ref<Array<{ path: string; mean: number } | null>>>();
      const viaVariable = map(featureStats, { ...options, over: ["a"], as: "path", with: { cols: 1 }, id: "v" });
      expectTypeOf(viaVariable.outputs).toEqualTypeOf<Ref<Array<{ path: string; mean: number } | null>>>();
      const none = map(featureStats, { over: ["a"], as: "path", with: { cols: 1 }, minSuccess: undefined, id: "n" });
      expectTypeOf(none.outputs).toEqualTypeOf<Ref<Array<{ path: string; mean: number }>>>();
      return { rows: mayFail.outputs };
    });
    expectTypeOf<InferFlowOutputs<typeof f>>().toEqualTypeOf<{ rows: Array<{ path: string; mean: number } | null> }>();
  });

  it("rejects a list of the wrong item type, an unknown input, and missing `with` inputs", () => {
    flow("bad").build(() => {
      const files = listFiles({ dir: "d" });
      // @ts-expect-error: `cols` items are numbers, the list holds strings
      map(featureStats, { over: files.paths, as: "cols", with: { path: "p" } });
      // @ts-expect-error: the task has no input "file"
      map(featureStats, { over: files.paths, as: "file", with: { cols: 1 } });
      // @ts-expect-error: `cols` is required and not given
      map(featureStats, { over: files.paths, as: "path" });
      // @ts-expect-error: `over` must be a list
      map(featureStats, { over: files.paths[0], as: "path", with: { cols: 1 } });
      return {};
    });
  });
});

describe("condition types", () => {
  it("types the outputs of a conditional node optional in the flow's outputs, and still wires them", () => {
    const f = flow("c").build(() => {
      const files = listFiles({ dir: "d" });
      const stats = map(featureStats, { over: files.paths, as: "path", with: { cols: 2 } });
      const ok = check({ stats: stats.outputs });
      const t = train({ data: "d", lr: 0.1, depth: 3 }, { if: ok.passed });
      expectTypeOf(t.rocAuc).toEqualTypeOf<MaybeRef<number>>();
      const again = check({ stats: stats.outputs }, { if: ok.passed });
      const below = train({ data: "d", lr: t.rocAuc, depth: 3 });
      expectTypeOf(below.rocAuc).toEqualTypeOf<MaybeRef<number>>();
      return { auc: t.rocAuc, passed: again.passed, always: ok.passed, below: below.model };
    });
    expectTypeOf<InferFlowOutputs<typeof f>>().toEqualTypeOf<{ auc: number | undefined; passed: boolean | undefined; always: boolean; below: string | undefined }>();
  });

  it("types the outputs optional when the options' type may hold a condition (a NodeOptions variable, a ref that may be undefined)", () => {
    const f = flow("c4").build(() => {
      const t = train({ data: "d", lr: 0.1, depth: 3 });
      const ok = check({ stats: [] });
      const opts: NodeOptions = { if: ok.passed };
      const viaVariable = train({ data: "d", lr: 0.1, depth: 3 }, opts);
      expectTypeOf(viaVariable.rocAuc).toEqualTypeOf<MaybeRef<number>>();
      const maybe = t.model === undefined ? undefined : ok.passed;
      const maybeCondition = train({ data: "d", lr: 0.1, depth: 3 }, { if: maybe });
      expectTypeOf(maybeCondition.rocAuc).toEqualTypeOf<MaybeRef<number>>();
      const plain = train({ data: "d", lr: 0.1, depth: 3 }, { id: "plain" });
      expectTypeOf(plain.rocAuc).toEqualTypeOf<Ref<number>>();
      const noCondition = train({ data: "d", lr: 0.1, depth: 3 }, { id: "none", if: undefined });
      expectTypeOf(noCondition.rocAuc).toEqualTypeOf<Ref<number>>();
      return { a: viaVariable.rocAuc, b: maybeCondition.rocAuc, c: plain.rocAuc };
    });
    expectTypeOf<InferFlowOutputs<typeof f>>().toEqualTypeOf<{ a: number | undefined; b: number | undefined; c: number }>();
  });

  it("types when()'s predicate by the referenced value", () => {
    flow("c3").build(() => {
      const t = train({ data: "d", lr: 0.1, depth: 3 });
      const again = train({ data: "d", lr: 0.2, depth: 3 }, { if: when(t.rocAuc, (auc) => auc > 0.5) });
      expectTypeOf(again.rocAuc).toEqualTypeOf<MaybeRef<number>>();
      // @ts-expect-error: rocAuc is a number, not a string
      when(t.rocAuc, (auc: string) => auc === "x");
      return {};
    });
  });

  it("rejects a condition that is not a boolean", () => {
    flow("c2").build(() => {
      const t = train({ data: "d", lr: 0.1, depth: 3 });
      // @ts-expect-error: the task has no input "epochs" (the call's generic inputs still refuse unknown keys)
      train({ data: "d", lr: 0.1, depth: 3, epochs: 2 });
      expectTypeOf(train({ data: "d", lr: 0.1, depth: 3 })).toEqualTypeOf<Node<{ rocAuc: number; model: string; note: string }>>();
      // @ts-expect-error: `if` takes a boolean reference, rocAuc is a number
      train({ data: "d", lr: 0.1, depth: 3 }, { if: t.rocAuc });
      return {};
    });
  });
});

describe("sweep types", () => {
  it("types the best trial's outputs, its point and the trials", () => {
    const f = flow("s").build(() => {
      const best = sweep(train, {
        with: { data: "d" },
        over: grid({ lr: [0.01, 0.1, 1], depth: [3, 5] }),
        select: max("rocAuc"),
        stopWhen: (o) => o.rocAuc >= 0.99,
        concurrency: 4,
        minSuccess: 0.8,
      });
      expectTypeOf(best.outputs).toEqualTypeOf<Ref<{ rocAuc: number; model: string; note: string }>>();
      expectTypeOf(best.params).toEqualTypeOf<Ref<{ lr: number; depth: number }>>();
      expectTypeOf(best.best.rocAuc).toEqualTypeOf<Ref<number>>();
      return { best: best.outputs, params: best.params, trials: best.trials, metric: best.metric };
    });
    expectTypeOf<InferFlowOutputs<typeof f>["trials"]>().toEqualTypeOf<Array<SweepTrial<{ lr: number; depth: number }>>>();
    expectTypeOf<InferFlowOutputs<typeof f>["metric"]>().toEqualTypeOf<number>();
  });

  it("takes list and random spaces, and min", () => {
    flow("s2").build(() => {
      const a = sweep(train, { with: { data: "d", depth: 3 }, over: list([{ lr: 0.1 }, { lr: 1 }]), select: min("rocAuc") });
      expectTypeOf(a.params).toEqualTypeOf<Ref<{ lr: number }>>();
      const b = sweep(train, { with: { data: "d" }, over: random({ n: 5, seed: 1, space: { lr: { min: 0.001, max: 1, log: true }, depth: [3, 5] } }), select: max("rocAuc") });
      expectTypeOf(b.params).toEqualTypeOf<Ref<{ lr: number; depth: number }>>();
      return {};
    });
  });

  it("rejects a selector on an output that is not a number, or that the task does not have", () => {
    flow("s3").build(() => {
      // @ts-expect-error: `note` is a string output
      sweep(train, { with: { data: "d" }, over: grid({ lr: [0.1], depth: [3] }), select: max("note") });
      // @ts-expect-error: the task has no output `accuracy`
      sweep(train, { with: { data: "d" }, over: grid({ lr: [0.1], depth: [3] }), select: max("accuracy") });
      // @ts-expect-error: a swept value of the wrong type (lr is a number)
      sweep(train, { with: { data: "d", depth: 3 }, over: grid({ lr: ["fast"] }), select: max("rocAuc") });
      // @ts-expect-error: `depth` is neither swept nor given
      sweep(train, { with: { data: "d" }, over: grid({ lr: [0.1] }), select: max("rocAuc") });
      // @ts-expect-error: `detph` is not an input of the task (a typo of `depth`)
      sweep(train, { with: { data: "d", depth: 3 }, over: grid({ lr: [0.1], detph: [3, 5] }), select: max("rocAuc") });
      // @ts-expect-error: the same in a list's points
      sweep(train, { with: { data: "d", depth: 3 }, over: list([{ lr: 0.1, detph: 3 }]), select: max("rocAuc") });
      return {};
    });
  });

  it("takes an axis of one member of a union of inputs", () => {
    const either = task("either")
      .input<{ mode: "a"; depth: number } | { mode: "b"; width: number }>()
      .run(() => ({ score: 1 }));
    flow("s5").build(() => {
      sweep(either, { with: { mode: "b" }, over: grid({ width: [1, 2] }), select: max("score") });
      return {};
    });
  });

  it("lets any selector through for a task whose outputs are not typed", () => {
    const untyped = task("untyped")
      .input<{ lr: number }>()
      .output<Record<string, unknown>>()
      .run(() => ({}));
    flow("s4").build(() => {
      sweep(untyped, { over: grid({ lr: [0.1] }), select: max("anything") });
      return {};
    });
    const art = task("art").input<{ lr: number }>().run(() => ({ file: {} as Artifact, score: 1 }));
    flow("s5").build(() => {
      // @ts-expect-error: `file` is an Artifact
      sweep(art, { over: grid({ lr: [0.1] }), select: max("file") });
      return {};
    });
  });
});
