import { OptionError } from "@cairn/core";
import { describe, expect, it } from "vitest";
import { flow } from "./flow.ts";
import { addFlowHooks } from "./flow-hooks.ts";

// An OptionError, as task() throws, so that what embeds Cairn (the CLI: exit 2) knows an invalid flow from a failed run.
describe("flow() refuses what would make an invalid flow with an OptionError", () => {
  it.each(["", " lead", "-x", "a/b", "evil\x1b]0;t\x07", 42])("the name %j", (name) => {
    let thrown: unknown;
    try {
      flow(name as string);
    } catch (error) {
      thrown = error;
    }
    expect(OptionError.is(thrown)).toBe(true);
    expect((thrown as OptionError).option).toBe("flow name");
  });

  it("a .params() argument that is not a Standard Schema", () => {
    expect(() => flow("f").params({} as never)).toThrow(OptionError);
    expect(() => flow("f").params({} as never)).toThrow(/Expected `flow "f" \.params\(\)` to be a Standard Schema .*, got an object\./);
  });

  it("still takes a good name and no argument with a type parameter", () => {
    expect(() => flow("my flow-1.2").params<{ n: number }>()).not.toThrow();
  });
});

describe("flow.run()", () => {
  it("rejects, never throws, when something at its start throws (a run hook, a bad option): run().catch() sees it", async () => {
    let armed = true;
    addFlowHooks({
      runStarted() {
        if (armed) throw new Error("hook boom");
      },
    });
    try {
      const f = flow("starts").build(() => ({}));
      let returned: Promise<unknown> | undefined;
      expect(() => (returned = f.run({ tracker: false, cache: false }))).not.toThrow();
      await expect(returned).rejects.toThrow("hook boom");
    } finally {
      armed = false;
    }
  });
});
