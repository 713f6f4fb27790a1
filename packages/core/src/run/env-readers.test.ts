import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { FlowDefinition, TaskDefinition } from "../definition/flow-definition.ts";
import { processEnvReaderWarnings } from "./env-readers.ts";

const A = "CAIRN_TEST_ENV_READERS_A";
const B = "CAIRN_TEST_ENV_READERS_B";

/** A flow of one function task made of `task`'s fields. */
const flowOf = (task: Partial<TaskDefinition>): FlowDefinition => ({ nodes: [{ id: "t", task: { name: "t", kind: "function", env: [A, B], code: "", ...task } }] }) as unknown as FlowDefinition;

/** A run's env that gives both A and B other values than the process's. */
const runEnv = (): NodeJS.ProcessEnv => ({ ...process.env, [A]: "run-a", [B]: "run-b" });

let saved: Record<string, string | undefined> = {};
beforeEach(() => {
  saved = { [A]: process.env[A], [B]: process.env[B] };
  process.env[A] = "process-a";
  process.env[B] = "process-b";
});
afterEach(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

describe("processEnvReaderWarnings", () => {
  it("names only the declared variables the definition says the function reads by name", async () => {
    const [warning, ...rest] = await processEnvReaderWarnings(flowOf({ envRead: [A, "OTHER"], envReadUnnamed: false, code: "process.env.A" }), runEnv());
    expect(rest).toEqual([]);
    expect(warning).toContain(`reads process.env.${A} and declares ${A} with .env()`);
    expect(warning).not.toContain(B);
    expect(warning).not.toContain("run-a");
    expect(warning).not.toContain("process-a");
  });

  it("says nothing of a function that reads only undeclared variables by name, whatever its text mentions", async () => {
    expect(await processEnvReaderWarnings(flowOf({ envRead: ["OTHER"], envReadUnnamed: false, code: "process.env.OTHER" }), runEnv())).toEqual([]);
  });

  it("names every declared variable that differs for a read by a name the text does not show, and for a definition made by hand that mentions process.env", async () => {
    for (const task of [{ envReadUnnamed: true }, { code: "(n) => process.env[n]" }]) {
      expect(await processEnvReaderWarnings(flowOf(task), runEnv())).toEqual([
        `task "t" reads process.env by a name its text does not show (a computed one, a destructuring) and declares ${A}, ${B} with .env(), whose value in the run's env differs from process.env's: its cache key holds the run's value. Read them with ctx.env("${A}"), ctx.env("${B}") instead.`,
      ]);
    }
    expect(await processEnvReaderWarnings(flowOf({ code: "() => 1" }), runEnv())).toEqual([]);
  });
});
