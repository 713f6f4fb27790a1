import { OptionError } from "@cairn/core";
import { describe, expect, it } from "vitest";
import { flow } from "./flow.ts";

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
