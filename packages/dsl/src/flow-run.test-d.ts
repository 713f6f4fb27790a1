/**
 * `run()`'s params are required by type when the flow's params have a required key: a missing
 * one fails at compile time, not as a ParamError at run time. With every param optional or
 * defaulted (or none), `run()` takes no argument.
 */
import { describe, expectTypeOf, it } from "vitest";
import { z } from "zod";
import * as v from "valibot";
import { flow, type Flow, type FlowRunOptions, type InferParams } from "./index.ts";

describe("run() params", () => {
  it("requires params when the schema has a required key", () => {
    const req = flow("req")
      .params(z.object({ n: z.number(), label: z.string().default("x") }))
      .build(() => ({}));
    // @ts-expect-error: n is required, so params are
    void req.run();
    // @ts-expect-error: n is required
    void req.run({});
    // @ts-expect-error: options without params
    void req.run({ tracker: false });
    // @ts-expect-error: params without n
    void req.run({ params: {} });
    // @ts-expect-error: params without n, only the defaulted label
    void req.run({ params: { label: "y" } });
    void req.run({ params: { n: 1 } });
    void req.run({ params: { n: 1, label: "y" }, tracker: false });
    expectTypeOf<InferParams<typeof req>>().toEqualTypeOf<{ n: number; label?: string | undefined }>();
  });

  it("requires them for .params<T>() and other Standard Schemas too", () => {
    const typed = flow("typed").params<{ rows: number }>().build(() => ({}));
    // @ts-expect-error: rows is required
    void typed.run();
    // @ts-expect-error: rows is required
    void typed.run({ params: {} });
    void typed.run({ params: { rows: 3 } });
    const valibot = flow("valibot").params(v.object({ rows: v.number() })).build(() => ({}));
    // @ts-expect-error: rows is required
    void valibot.run({ tracker: false });
    void valibot.run({ params: { rows: 3 } });
    // @ts-expect-error: the options type says so as well
    const missing: FlowRunOptions<{ rows: number }> = { tracker: false };
    void missing;
  });

  it("allows run() and run({}) when every param is optional or defaulted, or there are none", () => {
    const defaulted = flow("defaulted")
      .params(z.object({ rows: z.number().default(1) }))
      .build(() => ({}));
    void defaulted.run();
    void defaulted.run({});
    void defaulted.run({ params: {} });
    void defaulted.run({ tracker: false });
    const optional = flow("optional").params<{ n?: number }>().build(() => ({}));
    void optional.run();
    void optional.run({ params: { n: 1 } });
    const none = flow("none").build(() => ({}));
    void none.run();
    void none.run({ tracker: false });
    // A flow of unknown params (the CLI's loaded flow): any options, or none.
    const loaded = none as Flow<any, any>;
    void loaded.run();
    void loaded.run({ params: { anything: 1 } });
    const plain = none as Flow;
    void plain.run();
  });
});
