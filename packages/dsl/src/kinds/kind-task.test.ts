import { CacheValueError, sha256 } from "@cairn/cache";
import { NO_RETRY, type TaskDefinition } from "@cairn/core";
import { describe, expect, it } from "vitest";
import { grid, map, max, sweep } from "../fan-out.ts";
import { flow } from "../flow.ts";
import { task } from "../task.ts";
import { configDigest, kindTask, type KindCall } from "./kind-task.ts";

describe("configDigest()", () => {
  it("is the same for any order of object keys, at every depth, and differs when a value or an array's order does", () => {
    expect(configDigest({ a: 1, b: { c: [1, 2], d: "x" } })).toBe(configDigest({ b: { d: "x", c: [1, 2] }, a: 1 }));
    expect(configDigest({ a: 1 })).not.toBe(configDigest({ a: 2 }));
    expect(configDigest({ a: [1, 2] })).not.toBe(configDigest({ a: [2, 1] }));
    expect(configDigest({ a: 1, b: undefined })).toBe(configDigest({ a: 1 }));
    expect(configDigest(undefined)).toMatch(/^[0-9a-f]{16}$/);
  });

  it("keeps the digest of config whose keys were already sorted (the built-in kinds' env entries), so their keys survive the upgrade", () => {
    // What the process kinds pass: sorted [name, value] pairs, whose JSON text is already canonical.
    const pairs = [["A", "1"], ["B", "2"]];
    expect(configDigest(pairs)).toBe(sha256(JSON.stringify(pairs)).slice(0, 16));
    expect(configDigest({ a: 1, b: "x" })).toBe(sha256(JSON.stringify({ a: 1, b: "x" })).slice(0, 16));
    expect(configDigest({ a: 1, b: [{ c: true, d: null }] })).toBe(configDigest({ b: [{ d: null, c: true }], a: 1 }));
  });

  it("refuses what it cannot digest faithfully, naming the path inside the config and what to pass instead", () => {
    const refused = (value: unknown) => {
      try {
        configDigest(value);
      } catch (error) {
        expect(error).toBeInstanceOf(CacheValueError);
        return (error as Error).message;
      }
      throw new Error("configDigest() accepted it");
    };
    expect(refused({ q: "select 1", transform: function double() {} })).toMatch(/`config\.transform`, but got a function \(double\)\. .*version string/);
    expect(refused(() => 1)).toMatch(/`config`, but got a function/);
    expect(refused({ m: new Map([[1, 2]]) })).toMatch(/`config\.m`, but got a Map\. .*\[\.\.\.map\]/);
    expect(refused({ steps: [1, new Set([1])] })).toMatch(/`config\.steps\[1\]`, but got a Set/);
    expect(refused({ when: new Date(0) })).toMatch(/`config\.when`, but got a Date instance\. .*toISOString/);
    expect(refused({ n: 10n })).toMatch(/`config\.n`, but got a BigInt \(10n\)/);
    expect(refused({ "odd key": Symbol("s") })).toMatch(/`config\["odd key"\]`, but got a symbol/);
    expect(refused({ x: Number.NaN })).toMatch(/`config\.x`, but got NaN/);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(refused(cycle)).toMatch(/`config\.self`, but got a cycle/);
  });
});

describe("a kind's checkCall", () => {
  const definition: TaskDefinition = { name: "k", kind: "test-kind", code: "1", retry: NO_RETRY, cache: {}, env: [], run: () => ({}) };
  const seen: Array<{ inputs: Record<string, unknown>; call: KindCall }> = [];
  const k = kindTask<{ x: number; y: number }, Record<string, unknown>>({
    definition,
    checkCall: (inputs, _schema, call) => {
      seen.push({ inputs, call });
      if (!("y" in inputs)) throw new Error(`no y (${call.via})`);
    },
  });

  it("runs for map() with the item as its input and the `with` inputs, and for sweep() with each point", () => {
    seen.length = 0;
    expect(() => flow("m").build(() => ({ o: map(k, { over: [1, 2], as: "x" } as never).outputs }))).toThrow("no y (map)");
    expect(() => flow("s").build(() => ({ o: sweep(k, { over: grid({ x: [1] }), select: max("m") } as never).outputs }))).toThrow("no y (sweep)");
    seen.length = 0;
    flow("m2").build(() => ({ o: map(k, { over: [1, 2], as: "x", with: { y: 3 } }).outputs }));
    expect(seen).toEqual([
      { inputs: { y: 3, x: 1 }, call: { via: "map", itemInputs: ["x"] } },
      { inputs: { y: 3, x: 2 }, call: { via: "map", itemInputs: ["x"] } },
    ]);
  });
});

describe("holdWork() from @cairn/dsl/kind (and cairn-dag/kind)", () => {
  it("makes a retry wait for work of the attempt before that goes on after its run threw", async () => {
    const { holdWork } = await import("../kind.ts");
    const order: string[] = [];
    const held = kindTask<Record<string, never>, { ok: boolean }>({
      definition: {
        name: "held",
        kind: "held",
        code: "v1",
        retry: { retries: 1, minDelayMs: 1, maxDelayMs: 1 },
        cache: false,
        env: [],
        run: async (_inputs, ctx) => {
          if (ctx.attempt === 1) {
            holdWork(ctx, new Promise((resolve) => setTimeout(() => resolve(order.push("attempt 1's work done")), 300)));
            throw new Error("first attempt fails");
          }
          order.push("attempt 2");
          return { ok: true };
        },
      },
    });
    const result = await (await flow("held").build(() => ({ ok: held({}).ok })).run({ tracker: false, cache: false })).wait();
    expect(result.status).toBe("succeeded");
    expect(order).toEqual(["attempt 1's work done", "attempt 2"]);
  });

  it("says held work that rejects in a warn log of the task, its secrets masked; the task's result stands", async () => {
    const { holdWork } = await import("../kind.ts");
    const upload = kindTask<Record<string, never>, { ok: boolean }>({
      definition: {
        name: "upload",
        kind: "upload",
        code: "v1",
        retry: NO_RETRY,
        cache: false,
        env: [],
        run: async (_inputs, ctx) => {
          holdWork(ctx, new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`upload refused for token ${ctx.secret("API_TOKEN")}`)), 50)));
          return { ok: true };
        },
      },
    });
    const run = await flow("held-rejects").build(() => ({ ok: upload({}).ok })).run({ tracker: false, cache: false, secrets: { API_TOKEN: "s3cr3t-token-value" } });
    const warns: Array<{ task?: string; message: string }> = [];
    run.on((e) => e.type === "log" && e.level === "warn" && warns.push(e));
    const result = await run.wait();
    expect(result.status).toBe("succeeded");
    expect(warns).toEqual([
      {
        ...warns[0],
        task: "upload",
        message:
          'Work that attempt 1 of task "upload" handed to holdWork() failed: Error: upload refused for token ***. ' +
          "The task's result stands, but what that work was to do (sending or masking a file, ending a process) may be undone; " +
          "catch the errors the work may meet in the kind (kind `upload`), or let the run await it to fail the attempt.",
      },
    ]);
    expect(JSON.stringify(warns)).not.toContain("s3cr3t");
  });
});

describe("what a kind's run returns", () => {
  const kindReturning = (name: string, value: (ctx: { secret(n: string): string }) => unknown, extra: Partial<TaskDefinition> = {}, anyOutput = false) =>
    kindTask<Record<string, never>, { y: number }>({
      ...(anyOutput ? { anyOutput } : {}),
      definition: { name, kind: "sql", code: "v1", retry: NO_RETRY, cache: {}, env: [], run: (_inputs, ctx) => value(ctx), ...extra },
    });
  const use = task("use")
    .input<{ y: unknown }>()
    .run(({ y }) => ({ got: y ?? "undefined" }));

  it("fails the task with KindOutputError, naming the kind, the task and what arrived, when it is not an object of outputs (dependants get no undefined)", async () => {
    const cases = [
      ["list", async () => [{ y: 5 }], "an array of 1: [ { y: 5 } ]"],
      ["num", () => 42, "`42` (number)"],
      ["nul", async () => null, "null"],
      ["text", () => "rows", '"rows" (string)'],
      ["leak", (ctx: { secret(n: string): string }) => [ctx.secret("DB_TOKEN")], "an array of 1: [ '***' ]"],
    ] as const;
    for (const [name, value, got] of cases) {
      const k = kindReturning(name, value);
      const r = await (await flow(`shape-${name}`).build(() => ({ got: use({ y: k({}).y }).got })).run({ tracker: false, cache: false, secrets: { DB_TOKEN: "s3cr3t-token-value" } })).wait();
      expect(r.status, name).toBe("failed");
      expect(r.tasks[name]!.error?.name, name).toBe("KindOutputError");
      expect(r.tasks[name]!.error?.message, name).toBe(
        `Task "${name}" (kind \`sql\`) returned ${got}, not an object of outputs: a kind's run must return an object whose fields are the task's outputs (\`{ rows }\`), or nothing. ` +
          "Fix the run of kind `sql` (wrap a list or a value in an object: `{ items: [...] }`), or, for a kind whose output is any JSON value, set `anyOutput: true` beside its definition in kindTask().",
      );
      expect(r.tasks.use!.status, name).toBe("skipped");
    }
  });

  it("says how a kind that declares writesOutputs writes them, and takes an object, nothing, or with anyOutput any JSON value", async () => {
    const written = kindReturning("w", () => 1, { writesOutputs: "as JSON written to $SQL_OUT" });
    let r: { status: string; tasks: Record<string, { error?: Error }>; outputs?: unknown } = await (await flow("shape-w").build(() => ({ y: written({}).y })).run({ tracker: false, cache: false })).wait();
    expect(r.tasks.w!.error?.message).toContain("Its tasks write their outputs as JSON written to $SQL_OUT. Fix the run");
    // An output it did not return: the task that takes it fails, rather than getting undefined.
    const partial = kindReturning("partial", () => ({ z: 1 }), { writesOutputs: "as JSON written to $SQL_OUT" });
    r = await (await flow("shape-partial").build(() => ({ got: use({ y: partial({}).y }).got })).run({ tracker: false, cache: false })).wait();
    expect(r.tasks.use!.error?.name).toBe("MissingOutputError");
    expect(r.tasks.use!.error?.message).toContain(`Task "use" takes partial.y, but task "partial" has no output "y" (its outputs: "z")`);

    const good = kindReturning("good", async () => ({ y: 5 }));
    const none = kindReturning("none", () => undefined);
    const any = kindReturning("any", async () => [{ y: 5 }], {}, true);
    r = await (await flow("shape-ok").build(() => ({ y: use({ y: good({}).y }).got, none: none({}), any: any({}) })).run({ tracker: false, cache: false })).wait();
    expect(r.status).toBe("succeeded");
    expect(r.outputs).toEqual({ y: 5, none: {}, any: [{ y: 5 }] });
  });
});
