import { expectTypeOf, test } from "vitest";
import { flow, map, task, type FanOutOptions, type NodeOptions, type Ref } from "./index.ts";
test("options typed with satisfies (README) keep a node's outputs present and a map's without holes", () => {
  const t = task("t").run(() => ({ n: 1 }));
  const item = task("i").input<{ x: number }>().run(({ x }) => ({ y: x }));
  flow("f").build(() => {
    const opts = { id: "x" } satisfies NodeOptions;
    const o = t({}, opts);
    expectTypeOf(o.n).not.toBeNullable();
    const fan = { concurrency: 2 } satisfies FanOutOptions;
    const m = map(item, { over: [1, 2], as: "x", ...fan });
    expectTypeOf(m.outputs).toEqualTypeOf<Ref<Array<{ y: number }>>>();
    return {};
  });
});
