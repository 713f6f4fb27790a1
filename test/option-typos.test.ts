/**
 * A misspelt option of a fan-out or a task kind is refused where it is declared, naming the
 * option it likely meant, as run(), .retries() and .cache() already did: `timeout` for `timeoutMs`
 * left the 30 s default in force, `concurency` the flow's concurrency, without a word.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { refusal } from "./kinds/helpers.ts";
import * as v from "valibot";
import { z } from "zod";
import { flow, grid, http, map, max, mlflowModel, mlflowProject, notebook, OptionError, random, script, shell, sweep, task, when } from "cairn-dag";

const repo = join(import.meta.dirname, "..");
const fit = task("fit")
  .input<{ lr: number; depth: number }>()
  .run(({ lr }) => ({ score: lr }));

describe("misspelt options are refused at declaration, naming the one meant", () => {
  it("map and sweep", () => {
    expect(refusal(() => flow("m").build(() => ({ o: map(fit, { over: [1, 2], as: "lr", with: { depth: 1 }, concurency: 2 } as never).outputs })))).toMatch(
      /^map\(fit\) has no option `concurency` \(did you mean `concurrency`\?\)\. Its options: over, as, with, id, after, if, concurrency, minSuccess\. Rename it to `concurrency`, or remove it\.$/,
    );
    expect(refusal(() => flow("m").build(() => ({ o: map(fit, { over: [1], as: "lr", with: { depth: 1 }, width: {} } as never).outputs })))).toMatch(/^map\(fit\) has no option `width` \(did you mean `with`\?\)\. /);
    expect(
      refusal(() => flow("s").build(() => ({ o: sweep(fit, { over: grid({ lr: [1] }), with: { depth: 1 }, select: max("score"), concurency: 2 } as never).params }))),
    ).toMatch(/^sweep\(fit\) has no option `concurency` \(did you mean `concurrency`\?\)/);
  });

  // `c({}, { dependsOn: [a] })` ran c without waiting for a, `{ iff: a.ok }` ran it whatever a said.
  it("a task call's options", () => {
    const a = task("a").run(() => ({ ok: true }));
    const c = task("c").run(() => ({}));
    const call = (options: unknown) => refusal(() => flow("t").build(() => void c({}, options as never)));
    const callAfterA = (options: (n: object) => unknown) =>
      refusal(() =>
        flow("t").build(() => {
          c({}, options(a()) as never);
        }),
      );
    expect(callAfterA((n) => ({ dependsOn: [n] }))).toBe(
      'task "c" has no option `dependsOn` (did you mean `after`?). Its options: id, after, if. Rename it to `after`, or remove it.',
    );
    expect(callAfterA((n) => ({ iff: (n as { ok: unknown }).ok }))).toMatch(/^task "c" has no option `iff` \(did you mean `if`\?\)\. /);
    expect(callAfterA((n) => ({ when: (n as { ok: unknown }).ok }))).toMatch(/^task "c" has no option `when` \(did you mean `if`\?\)\. /);
    expect(call({ ID: "x" })).toMatch(/^task "c" has no option `ID` \(did you mean `id`\?\)\. /);
    expect(call({ retries: 2 })).toBe('task "c" has no option `retries`. Its options: id, after, if. Remove it, or use one of those.');
    // The options argument itself: a node, a ref or a list of nodes where `{ after }` or `{ if }` was meant.
    expect(callAfterA((n) => n)).toBe('Expected `task "c" options` to be { id?, after?, if? } or nothing, got the node "a". To run after it, pass { after: [node] }.');
    expect(callAfterA((n) => (n as { ok: unknown }).ok)).toBe('Expected `task "c" options` to be { id?, after?, if? } or nothing, got a reference. To run only when it holds, pass { if: ref }.');
    expect(callAfterA((n) => when((n as { ok: never }).ok, Boolean))).toBe(
      'Expected `task "c" options` to be { id?, after?, if? } or nothing, got a condition made by when(). Pass it as { if: when(...) }.',
    );
    expect(callAfterA((n) => [n])).toBe('Expected `task "c" options` to be { id?, after?, if? } or nothing, got an array of 1. To run after other nodes, pass { after: [...] }.');
    expect(call(null)).toBe('Expected `task "c" options` to be { id?, after?, if? } or nothing, got null.');
    expect(call("c2")).toBe('Expected `task "c" options` to be { id?, after?, if? } or nothing, got "c2" (string).');
  });

  it("random() and its ranges", () => {
    expect(refusal(() => random({ n: 2, seed: 1, space: { lr: [1] }, sed: 2 } as never))).toMatch(/^random\(\) has no option `sed` \(did you mean `seed`\?\)\. Its options: n, seed, space\./);
    // A range's `log` or `int` under another name drew uniform reals without a word.
    expect(refusal(() => random({ n: 2, seed: 1, space: { lr: { min: 0.001, max: 1, logScale: true } } } as never))).toBe(
      "random() `space.lr` has no option `logScale` (did you mean `log`?). Its options: min, max, int, log. Rename it to `log`, or remove it.",
    );
    expect(refusal(() => random({ n: 2, seed: 1, space: { depth: { min: 1, max: 9, integer: true } } } as never))).toMatch(/has no option `integer` \(did you mean `int`\?\)/);
  });

  // `as: "value"` for a task whose input is `x` was refused as "missing its required input "x". Pass it when calling the task".
  it("a map's `as` that is no input of the task, when its schema shows them", () => {
    const item = task("item")
      .input(z.object({ x: z.number() }))
      .run(({ x }) => ({ y: x * 2 }));
    const mapped = (options: object) => refusal(() => flow("m").build(() => ({ o: map(item, { over: [1, 2], ...options } as never).outputs })));
    expect(mapped({ as: "value" })).toBe('map(item) `as: "value"` is not an input of task "item" (its inputs: x). Pass each item as "x" (`as: "x"`).');
    // The input likely meant by its spelling, else the one required input `with` leaves out, else none.
    const two = task("two")
      .input(v.object({ lr: v.number(), depth: v.number(), seed: v.optional(v.number()) }))
      .run(({ lr }) => ({ score: lr }));
    const mappedTwo = (options: object) => refusal(() => flow("m").build(() => ({ o: map(two, { over: [1, 2], ...options } as never).outputs })));
    expect(mappedTwo({ as: "lrr", with: {} })).toMatch(/^map\(two\) `as: "lrr"` is not an input of task "two" \(its inputs: lr, depth, seed\)\. Pass each item as "lr" \(`as: "lr"`\)\.$/);
    expect(mappedTwo({ as: "value", with: { lr: 1 } })).toMatch(/\. Pass each item as "depth" \(`as: "depth"`\)\.$/);
    expect(mappedTwo({ as: "value" })).toMatch(/\(its inputs: lr, depth, seed\)\. Name in `as` the one each item is passed as\.$/);
  });

  it("http, shell, script, notebook, mlflowModel, mlflowProject", () => {
    expect(refusal(() => http("h", { url: "http://127.0.0.1:1/x", timeout: 5 } as never))).toMatch(
      /^http\("h"\) has no option `timeout` \(did you mean `timeoutMs`\?\)\. Its options: url, method, headers, timeoutMs, retries, retryDelayMs, maxResponseMB\. Rename it to `timeoutMs`, or remove it\.$/,
    );
    expect(refusal(() => shell("s", "echo", { killGrace: 5 } as never))).toMatch(/^shell\("s"\) has no option `killGrace` \(did you mean `killGraceMs`\?\)/);
    const file = join(repo, "test/kinds/fixtures/echo_value.py");
    expect(refusal(() => script("s", { file, timout: 5 } as never))).toMatch(/^script\("s"\) has no option `timout`/);
    expect(refusal(() => script("s", { file, interpeter: "python2" } as never))).toMatch(/\(did you mean `interpreter`\?\)/);
    expect(refusal(() => notebook("n", join(repo, "test/fixtures/prints-secret.ipynb"), { kernal: "python3" } as never))).toMatch(/\(did you mean `kernel`\?\)/);
    expect(refusal(() => mlflowModel("m", "models:/tiny/1", { startTimeout: 5 } as never))).toMatch(/^mlflowModel\("m"\) has no option `startTimeout` \(did you mean `startTimeoutMs`\?\)/);
    expect(refusal(() => mlflowProject("p", { uri: join(repo, "test/kinds/fixtures/mlproject"), entrypoint: "main" } as never))).toMatch(/\(did you mean `entryPoint`\?\)/);
  });

  it("every documented option is still taken", () => {
    const a = task("a").run(() => ({ ok: true }));
    const c = task("c").run(() => ({}));
    expect(() =>
      flow("t").build(() => {
        const first = a();
        c({}, { id: "c1", after: [first, "a"], if: first.ok });
        c({}, { if: when(first.ok, (ok) => ok), id: undefined, after: undefined });
        c({}, undefined);
        c();
      }),
    ).not.toThrow();
    expect(() => random({ n: 2, seed: 1, space: { lr: { min: 0.001, max: 1, log: true }, depth: { min: 1, max: 9, int: true }, k: [1, 2] } })).not.toThrow();
    expect(() => http("h", { url: "http://127.0.0.1:1/x", method: "GET", headers: {}, timeoutMs: 5, retries: 1, retryDelayMs: 1 })).not.toThrow();
    expect(() => shell("s", "echo", { shell: "/bin/sh", env: {}, secrets: [], cwd: ".", killGraceMs: 1 })).not.toThrow();
    expect(() => mlflowModel("m", "models:/tiny/1", { mode: "predict", format: "dataframe_records", registryUri: "http://x", startTimeoutMs: 5 })).not.toThrow();
  });
});

describe("http's retryDelayMs", () => {
  // A delay above 10 s was cut to 10 s without a word: retryDelayMs: 60_000 for a rate limit waited 10 s.
  it.each([10_001, 60_000, 3e9])("%d is refused: each wait is at most 10 s", (retryDelayMs) => {
    expect(refusal(() => http("h", { url: "http://127.0.0.1:1/x", retryDelayMs }))).toBe(
      `Expected \`task "h" option \`retryDelayMs\`\` to be a number of milliseconds from 0 to 10000 (each wait between tries doubles up to 10 s, a server's Retry-After too); ` +
        `for longer waits, retry the whole task with .retries(n, { minDelayMs }), got \`${retryDelayMs}\` (number).`,
    );
  });

  it("10000 is taken", () => {
    expect(() => http("h", { url: "http://127.0.0.1:1/x", retryDelayMs: 10_000 })).not.toThrow();
  });
});

describe("names that can never match", () => {
  it(".pool() takes a pool name, as a task's name is written", () => {
    for (const name of [" ", "gpu=2", ""]) expect(refusal(() => fit.pool(name))).toMatch(/^Expected `task "fit" \.pool\(\)` to be a pool name: ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, like a task name, got /);
    expect(() => fit.pool("gpu.large")).not.toThrow();
  });

  // A variable that can never be set entered the key as absent.
  it(".env() takes variable names, not `$HOME` or `my var`", () => {
    for (const name of ["$HOME", "my var", "A=B", ""]) expect(refusal(() => fit.env(name))).toMatch(/^Expected `task "fit" \.env\(\)` to be environment variable names, without `\$`, `=` or spaces \(`\$HOME` is written HOME\)/);
    expect(() => fit.env("HOME", "ProgramFiles(x86)")).not.toThrow();
  });
});

describe("run()'s root and experiment", () => {
  // A folder named " " was created.
  it("are refused when blank", async () => {
    const f = flow("blank").build(() => ({ s: fit({ lr: 1, depth: 1 }).score }));
    await expect(f.run({ root: " ", tracker: false })).rejects.toThrow("Expected `root` to be the path of Cairn's state folder (a string that is not blank), got \" \" (string).");
    await expect(f.run({ experiment: " \t", tracker: false })).rejects.toThrow("Expected `experiment` to be an experiment name (a string that is not blank)");
  });
});

