import { OptionError } from "@cairn/core";
import { describe, expect, it } from "vitest";
import { flow } from "./flow.ts";
import { addFlowHooks } from "./flow-hooks.ts";
import { checkName } from "./kinds/kind-task.ts";
import { task } from "./task.ts";

// An OptionError, as task() throws, so that what embeds Cairn (the CLI: exit 2) knows an invalid flow from a failed run.
describe("a task name outside the rule is refused in words that state the rule", () => {
  // `..` and `-rf` use only the allowed characters: the words must say what else is refused (a leading `.` or `-`; non-ASCII).
  it.each(["..", "-rf", "ünï", ".hidden", ""])("the name %j, by task() and by checkName() (a kind's)", (name) => {
    const rule = "to be a non-empty string of ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, got";
    expect(() => task(name)).toThrow(`Expected \`task name\` ${rule}`);
    expect(() => checkName(name)).toThrow(`Expected \`task name\` ${rule}`);
  });

  it("still takes a name with `.` and `-` after its first character", () => {
    expect(() => task("_a.b-c")).not.toThrow();
    expect(() => checkName("0.1-x")).not.toThrow();
  });
});

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

describe("a build function's return that is not an object of outputs", () => {
  const one = task("one").run(() => ({ v: 1 }));
  const expected = "Expected `flow \"f\" build function's return` to be an object of outputs by name, such as { model: train(...).model, report: r }, or nothing, got";

  // Once quoted as a string: got "a task's node (return { name: node } ...)" (string).
  it.each([
    ["a node", () => flow("f").build(() => one() as never), `${expected} the node "one" (a task's node). Return { name: node } to make its whole output a flow output, or { name: node.output } for one output.`],
    ["the params", () => flow("f").build(({ params }) => params as never), `${expected} the flow's params. Return the params you want as outputs by name, such as { rows: params.rows }.`],
    ["a reference", () => flow("f").params<{ n: number }>().build(({ params }) => params.n as never), `${expected} a reference (\`params.n\`). Return it under a name: { name: ref }.`],
    [
      "the params as an input",
      () => flow("f").build(({ params }) => (one({ all: params } as never), {})),
      "Expected `task \"one\" input `all`` to be a value, a task's output or one param (`params.rows`); the flow's `params` as a whole is not a value, got the flow's params. Pass the one param it needs, such as params.rows.",
    ],
  ])("is refused in words, with the fix: %s", (_, build, message) => {
    expect(build).toThrow(OptionError);
    expect(build).toThrow(message);
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
