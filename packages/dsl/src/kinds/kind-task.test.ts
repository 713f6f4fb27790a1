import { CacheValueError, sha256 } from "@cairn/cache";
import { NO_RETRY, type TaskDefinition } from "@cairn/core";
import { describe, expect, it } from "vitest";
import { grid, map, max, sweep } from "../fan-out.ts";
import { flow } from "../flow.ts";
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
});
