import { describe, expect, it } from "vitest";
import { flow, task } from "@cairn/dsl";
import { inputsOnce, resolveValue } from "./inputs.ts";

const source = task("source").run(() => ({ n: 1 }));
const sink = task("sink").input<{ n: number; tag: string; list: number[] }>().run(() => ({}));

describe("input resolution", () => {
  const definition = flow("inputs")
    .params<{ tag: string }>()
    .build(({ params }) => {
      const s = source();
      sink({ n: s.n, tag: params.tag, list: [s.n, 2] });
      return {};
    }).definition;
  const [first, second] = definition.nodes;

  it("replaces refs with params and upstream outputs along their paths, leaving literals as they are", () => {
    const outputs: Record<string, unknown> = { [first!.id]: { n: 7 } };
    expect(resolveValue(second!.inputs, { tag: "x" }, (id) => outputs[id])).toEqual({ n: 7, tag: "x", list: [7, 2] });
    expect(resolveValue(second!.inputs, { tag: "x" }, () => undefined)).toEqual({ n: undefined, tag: "x", list: [undefined, 2] });
  });

  it("keeps a task's inputs once known, and hands a failure back as a rejected promise, not a throw", async () => {
    const held: { node: typeof second & object; inputs?: Record<string, unknown> } = { node: second! };
    const inputs = inputsOnce(held, { tag: "x" }, () => ({ n: 3 }));
    expect(inputs).toEqual({ n: 3, tag: "x", list: [3, 2] });
    expect(inputsOnce(held, {}, () => undefined)).toBe(inputs);
    const failing = inputsOnce({ node: second! }, { tag: "x" }, () => {
      throw new Error("no output");
    });
    await expect(failing).rejects.toThrow("no output");
  });
});
