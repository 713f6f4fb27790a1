import { describe, expectTypeOf, it } from "vitest";
import { z } from "zod";
import * as v from "valibot";
import { flow, task, type Artifact, type InferFlowOutputs, type InferInput, type InferOutput, type MaybeRef, type Ref } from "./index.ts";

const load = task("load")
  .input(z.object({ rows: z.number().int(), label: z.string().default("x") }))
  .run(async ({ rows, label }, ctx) => {
    expectTypeOf(rows).toEqualTypeOf<number>();
    expectTypeOf(label).toEqualTypeOf<string>();
    return { data: await ctx.artifacts.write("d.csv", "a"), rows };
  });

const train = task("train")
  .input<{ data: Artifact; lr: number }>()
  .run(({ lr }) => ({ accuracy: lr, tags: ["a"] }));

describe("task types", () => {
  it("infers outputs from the function's return type", () => {
    expectTypeOf<InferOutput<typeof load>>().toEqualTypeOf<{ data: Artifact; rows: number }>();
    expectTypeOf<InferOutput<typeof train>>().toEqualTypeOf<{ accuracy: number; tags: string[] }>();
  });

  it("takes the schema's input type for callers (defaults optional)", () => {
    expectTypeOf<InferInput<typeof load>>().toEqualTypeOf<{ rows: number; label?: string | undefined }>();
  });

  it("works with valibot schemas", () => {
    const t = task("vb")
      .input(v.object({ n: v.number() }))
      .run(({ n }) => ({ twice: n * 2 }));
    expectTypeOf<InferInput<typeof t>>().toEqualTypeOf<{ n: number }>();
  });

  it("constrains the return type when .output() is declared", () => {
    task("o")
      .output<{ n: number }>()
      .run(() => ({ n: 1 }));
    task("o")
      .output<{ n: number }>()
      // @ts-expect-error: the output type says n is a number
      .run(() => ({ n: "one" }));
  });
});

describe("wiring types", () => {
  it("gives typed references and typed flow outputs", () => {
    const f = flow("demo")
      .params(z.object({ rows: z.number().default(10), lr: z.number() }))
      .build(({ params }) => {
        expectTypeOf(params.rows).toEqualTypeOf<Ref<number>>();
        const d = load({ rows: params.rows });
        expectTypeOf(d.data).toEqualTypeOf<Ref<Artifact>>();
        const t = train({ data: d.data, lr: params.lr });
        return { accuracy: t.accuracy, fixed: 3 };
      });
    expectTypeOf<InferFlowOutputs<typeof f>>().toEqualTypeOf<{ accuracy: number; fixed: number }>();
  });

  it("rejects a reference of the wrong type at compile time", () => {
    flow("bad").build(() => {
      const d = load({ rows: 5 });
      // @ts-expect-error: data expects an Artifact, rows is a number
      train({ data: d.rows, lr: 0.1 });
      // @ts-expect-error: lr expects a number, got a string literal
      train({ data: d.data, lr: "fast" });
      // @ts-expect-error: a required input is missing
      train({ data: d.data });
      return {};
    });
  });

  it("accepts arrays of references where an array is expected", () => {
    const sum = task("sum")
      .input<{ xs: number[] }>()
      .run(({ xs }) => ({ total: xs.reduce((a, b) => a + b, 0) }));
    flow("arr").build(() => {
      const a = load({ rows: 1 });
      const b = load({ rows: 2 });
      const s = sum({ xs: [a.rows, b.rows, 3] });
      expectTypeOf(s.total).toEqualTypeOf<Ref<number>>();
      return {};
    });
  });

  it("gives any-typed outputs under every name for a task that returns any, and none for unknown", () => {
    const fetchy = task("fetchy").run(async () => JSON.parse('{"score": 0.9}'));
    const opaque = task("opaque").run((): unknown => ({ score: 1 }));
    const use = task("use").input<{ s: number }>().run(({ s }) => ({ twice: s * 2 }));
    const check = task("check").run(() => ({ ok: true }));
    const f = flow("any").build(() => {
      const got = fetchy();
      expectTypeOf(got.score).toBeAny();
      expectTypeOf(got.$id).toEqualTypeOf<string>();
      expectTypeOf(got.$out).toEqualTypeOf<Ref<any>>();
      const u = use({ s: got.score });
      const maybe = fetchy({}, { if: check().ok });
      expectTypeOf(maybe.score).toBeAny();
      expectTypeOf(maybe.$out).toEqualTypeOf<MaybeRef<any>>();
      // @ts-expect-error: an unknown output has no names to read
      opaque().score;
      return { twice: u.twice, score: got.score, maybe: maybe.score };
    });
    expectTypeOf<InferFlowOutputs<typeof f>>().toEqualTypeOf<{ twice: number; score: any; maybe: any }>();
  });

  it("types a node returned whole as a flow output by its output, not its handle", () => {
    const check = task("check").run(() => ({ ok: true }));
    const f = flow("whole").build(() => {
      const d = load({ rows: 1 });
      const t = train({ data: d.data, lr: 0.1 }, { if: check().ok });
      return { whole: d, nested: { first: d, list: [d] }, maybe: t };
    });
    type Loaded = { data: Artifact; rows: number };
    expectTypeOf<InferFlowOutputs<typeof f>>().toEqualTypeOf<{
      whole: Loaded;
      nested: { first: Loaded; list: Loaded[] };
      maybe: { accuracy: number; tags: string[] } | undefined;
    }>();
  });

  it("types run params", () => {
    const f = flow("p")
      .params(z.object({ rows: z.number().default(1) }))
      .build(() => ({}));
    void f.run({ params: { rows: 3 }, tracker: false });
    // @ts-expect-error: rows is a number
    void f.run({ params: { rows: "3" }, tracker: false });
  });
});
