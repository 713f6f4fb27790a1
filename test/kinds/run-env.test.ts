/**
 * `run({ env })` in a long-running app: the variables a task declares with `.env()` enter its key
 * from the run's environment, and the task sees those same values: a process task's child gets
 * them (over `process.env`'s), a function task reads them through `ctx.env()`, and a task a
 * worker runs sees the worker's environment, which it is keyed with there. Real child processes.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Flow, flow, task, UndeclaredEnvError } from "@cairn/dsl";
import { NullTracker, runDispatchedTask } from "@cairn/core";
import { shell } from "../../packages/process/src/index.ts";
import { tempRoot } from "./helpers.ts";

const NAME = "CAIRN_TEST_RUN_ENV_FOO";

/** The app's own process has another value than the one each run is given. */
let before: string | undefined;
beforeEach(() => {
  before = process.env[NAME];
  process.env[NAME] = "process-level";
});
afterEach(() => {
  if (before === undefined) delete process.env[NAME];
  else process.env[NAME] = before;
});

/** Runs `f` with `value` (undefined: unset) as the run's value of NAME, the rest of process.env kept. */
async function runWith<T>(f: { run(o: object): Promise<{ wait(): Promise<T> }> }, root: string, value: string | undefined) {
  const env: NodeJS.ProcessEnv = { ...process.env, [NAME]: value };
  if (value === undefined) delete env[NAME];
  return (await f.run({ root, tracker: false, env })).wait();
}

/** The warnings of a run of `f` given `value` as NAME's value that speak of process.env. */
async function processEnvWarnings(f: Flow<object, object>, value: string): Promise<string[]> {
  const run = await f.run({ root: await tempRoot(), tracker: false, env: { ...process.env, [NAME]: value } });
  const messages: string[] = [];
  run.on((e) => e.type === "log" && e.level === "warn" && messages.push(e.message));
  await run.wait();
  return messages.filter((m) => m.includes("process.env"));
}

describe("run({ env }) and the variables a task declares", () => {
  it("a process task's child sees the run's value of each, which its key holds: never process.env's, and a hit only for the value it was computed with", async () => {
    const echo = shell("echo-foo", `echo "FOO=\${${NAME}-unset}"`).env(NAME);
    const f = flow("run-env-shell").build(() => ({ out: echo().stdout }));
    const root = await tempRoot();
    const seen = [];
    for (const value of ["one", "two", "one", undefined]) {
      const result = await runWith(f, root, value);
      seen.push([result.outputs?.out, result.tasks["echo-foo"]?.status]);
    }
    expect(seen).toEqual([
      ["FOO=one", "succeeded"],
      ["FOO=two", "succeeded"],
      ["FOO=one", "cached"],
      // Unset in the run's environment: unset for the child, though the app's process has it.
      ["FOO=unset", "succeeded"],
    ]);
  });

  it("a task's static env still wins over the run's value (both are in its key)", async () => {
    const echo = shell("echo-static", `echo "FOO=$${NAME}"`, { env: { [NAME]: "static" } }).env(NAME);
    const result = await runWith(flow("run-env-static").build(() => ({ out: echo().stdout })), await tempRoot(), "one");
    expect(result.outputs?.out).toBe("FOO=static");
  });

  it("a declared PYTHONPATH comes from the run's env, after Cairn's helper folder, so import cairn_task still works", async () => {
    const path = shell("py-path", 'echo "$PYTHONPATH"').env("PYTHONPATH");
    const run = await flow("run-env-pythonpath").build(() => ({ out: path().stdout })).run({ root: await tempRoot(), tracker: false, env: { ...process.env, PYTHONPATH: "/declared/here" } });
    const out = String((await run.wait()).outputs?.out);
    expect(out).toMatch(/\/python:\/declared\/here$/);
  });

  it("a function task reads the run's value with ctx.env(), as keyed; an undeclared name is UndeclaredEnvError naming .env()", async () => {
    const read = task("read").env(NAME).run((_, ctx) => ({ foo: ctx.env(NAME) ?? "unset" }));
    const f = flow("run-env-fn").build(() => ({ foo: read().foo }));
    const root = await tempRoot();
    expect((await runWith(f, root, "one")).outputs).toEqual({ foo: "one" });
    expect((await runWith(f, root, undefined)).outputs).toEqual({ foo: "unset" });

    const sneaky = task("sneaky").env(NAME).run((_, ctx) => ({ home: ctx.env("HOME") }));
    const failed = await runWith(flow("run-env-undeclared").build(() => ({ home: sneaky().home })), root, "one");
    expect(failed.status).toBe("failed");
    const error = failed.tasks.sneaky?.error;
    expect(error?.name).toBe("UndeclaredEnvError");
    expect(error?.message).toContain('Task "sneaky" read environment variable "HOME" with ctx.env()');
    expect(error?.message).toContain('.env("HOME")');
    expect(UndeclaredEnvError.name).toBe("UndeclaredEnvError");
  });

  it("a declared variable named as an Object.prototype member (toString, constructor, __proto__) reads as unset until set, for ctx.env(), the key and a child", async () => {
    const names = ["toString", "constructor", "__proto__", "hasOwnProperty"];
    const read = task("read-proto").env(...names).run((_, ctx) => ({ seen: names.map((n) => `${n}=${ctx.env(n) ?? "unset"}`).join(" ") }));
    const echo = shell("echo-proto", 'echo "[${constructor-unset}]"').env("constructor").cache(false);
    const f = flow("run-env-proto").build(() => ({ seen: read().seen, out: echo().stdout }));
    const root = await tempRoot();
    const env = { ...process.env };
    for (const n of names) delete env[n];
    const unset = await (await f.run({ root, tracker: false, env })).wait();
    expect(unset.status).toBe("succeeded");
    expect(unset.outputs).toEqual({ seen: "toString=unset constructor=unset __proto__=unset hasOwnProperty=unset", out: "[unset]" });
    const set = await (await f.run({ root, tracker: false, env: { ...env, constructor: "built" } })).wait();
    expect(set.tasks["read-proto"]?.status).toBe("succeeded"); // another key: the value entered it
    expect(set.outputs).toEqual({ seen: "toString=unset constructor=built __proto__=unset hasOwnProperty=unset", out: "[built]" });
  });

  it("a function task that reads process.env where the run's env differs is warned of once, named, without a value", async () => {
    const direct = task("direct").env(NAME).run(() => ({ foo: process.env[NAME] ?? "unset" }));
    const viaCtx = task("via-ctx").env(NAME).run((_, ctx) => ({ foo: ctx.env(NAME) ?? "unset" }));
    const f = flow("run-env-warn").build(() => ({ a: direct().foo, b: viaCtx().foo }));
    expect(await processEnvWarnings(f, "one")).toEqual([
      `task "direct" reads process.env by a name its text does not show (a computed one, a destructuring) and declares ${NAME} with .env(), whose value in the run's env differs from process.env's: its cache key holds the run's value. Read it with ctx.env("${NAME}") instead.`,
    ]);
    // The same value as the process's: nothing to say.
    expect(await processEnvWarnings(f, "process-level")).toEqual([]);
  });

  it("the warning names the declared variable a function reads from process.env by name; a read its key already holds says nothing; a destructuring still warns", async () => {
    const named = task("named").env(NAME).run(() => ({ foo: process.env.CAIRN_TEST_RUN_ENV_FOO ?? "unset" }));
    // OTHER, undeclared, is keyed with the process's value, which is what the task reads.
    const other = task("other").env(NAME).run((_, ctx) => ({ foo: `${ctx.env(NAME)}${process.env.CAIRN_TEST_RUN_ENV_OTHER ?? ""}` }));
    const destructured = task("destructured")
      .env(NAME)
      .run(() => {
        const { CAIRN_TEST_RUN_ENV_FOO: foo } = process.env;
        return { foo: foo ?? "unset" };
      });
    const f = flow("run-env-warn-reads").build(() => ({ a: named().foo, b: other().foo, c: destructured().foo }));
    const differs = `with .env(), whose value in the run's env differs from process.env's: its cache key holds the run's value. Read it with ctx.env("${NAME}") instead.`;
    expect(await processEnvWarnings(f, "one")).toEqual([
      `task "named" reads process.env.${NAME} and declares ${NAME} ${differs}`,
      `task "destructured" reads process.env by a name its text does not show (a computed one, a destructuring) and declares ${NAME} ${differs}`,
    ]);
  });

  it("a task run by a worker sees the worker's environment, the one its key is computed with there", async () => {
    const echo = shell("echo-worker", `echo "FOO=$${NAME}"`).env(NAME);
    const f = flow("run-env-worker").build(() => ({ out: echo().stdout }));
    const node = f.definition.nodes.find((n) => n.id === "echo-worker")!;
    const outcome = await runDispatchedTask(node, { flowName: f.definition.name, flowRunId: "run-1", experimentId: "0", params: {}, inputs: {} } as unknown as Parameters<typeof runDispatchedTask>[1], {
      tracker: new NullTracker(),
      workDir: await tempRoot(),
      signal: new AbortController().signal,
      emit: () => {},
      env: { ...process.env, [NAME]: "worker" },
    });
    expect(outcome).toMatchObject({ ok: true, outputs: { stdout: "FOO=worker" } });
  });
});
