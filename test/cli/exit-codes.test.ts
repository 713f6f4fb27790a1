/**
 * What is found before anything runs is a validation error, exit 2 (README, "The `cairn` CLI"):
 * a script or notebook file that does not exist, an MLflow project's missing required
 * parameter or MLproject file, a command template naming no input, an input literal that is not JSON data. The flow fails to build, so no run is created.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairn, fixture, repo, tmp } from "./helpers.ts";

describe("validation errors found before anything runs exit 2", () => {
  it.each([
    ["missing-script.flow.ts", /TaskFileError: Task "train": the file "\.\/no-such-script\.py" does not exist/],
    ["missing-notebook.flow.ts", /TaskFileError: Task "report": the file "\.\/no-such-notebook\.ipynb" does not exist/],
    ["mlproject-missing-param.flow.ts", /MlflowProjectParameterError: .*entry point "touch": the required parameter "count" \(int\) has no value/],
    ["no-mlproject.flow.ts", /MlflowProjectError: .*there is no MLproject file in this folder/],
    ["unknown-placeholder.flow.ts", /UnknownPlaceholderError: Task "greet" uses the placeholder \{name\}, but no input is called "name"/],
    ["bad-flow-name.flow.ts", /OptionError: Expected `flow name` to be a non-empty string of letters, digits, spaces, `_`, `\.` and `-` .*, got "evil\\u001b\]0;title\\u0007" \(string\)\./],
    ["nan-input.flow.ts", /FlowValidationError: Task "t" input "n" at "\(the whole input\)" cannot be serialized: .*got NaN \(number\).* \(in flow "nan-input"\)/],
    ["bad-params-schema.flow.ts", /OptionError: Expected `flow "bad-params" \.params\(\)` to be a Standard Schema \(zod, valibot, \.\.\.\), or no argument with a type parameter \(\.params<T>\(\)\), got an object\./],
    // Found while the flow is built, at the flow file's line (the CLI compiles it; source maps give the .ts line).
    ["task-outside-build.flow.ts", /OptionError: Task "load" was called outside a flow's build function \(at \S*task-outside-build\.flow\.ts:5:1\)\./],
    ["ref-in-string.flow.ts", /OptionError: `params\.dir` is a reference to a value known only when the flow runs \(at \S*ref-in-string\.flow\.ts:11:\d+\): inside build\(\) it cannot be put into a string/],
  ])("cairn run %s", async (file, message) => {
    const cwd = await tmp("cairn-cli-exit-");
    const r = await cairn(["run", fixture(file)], { cwd });
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    // Nothing ran: no flow run was recorded.
    expect(existsSync(join(cwd, ".cairn", "experiments"))).toBe(false);
  });

  it.each([["plan"], ["graph"]])("cairn %s of a flow whose script is missing exits 2 too", async (command) => {
    const r = await cairn([command, fixture("missing-script.flow.ts")]);
    expect(r.stderr).toMatch(/TaskFileError/);
    expect(r.code).toBe(2);
  });

  it.each([
    ["a flow file that does not exist", ["worker", "no-such.flow.ts", "--queue", "redis://127.0.0.1:1"], /FlowFileError/],
    ["a queue URL that is not redis://", ["worker", join(repo, "test/fixtures/ok.flow.ts"), "--queue", "http://x"], /QueueUrlError/],
  ])("cairn worker --healthcheck with %s exits 2, as its help says (a Redis that does not answer: 1)", async (_, args, message) => {
    const r = await cairn([...args, "--healthcheck"]);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    expect((await cairn(["help", "worker"])).stdout).toMatch(/1 when Redis does not answer or no such worker beats; 2 when\s+the flow does not load or URL is not redis:\/\//);
  });

  it("a task that fails while running still exits 1", async () => {
    const r = await cairn(["run", join(repo, "test/fixtures/fails.flow.ts"), "--no-tracking"]);
    expect(r.code).toBe(1);
  });
});
