import { CacheValueError, privateDigest } from "@cairn/cache";
import { describe, expect, it } from "vitest";
import { configDigest } from "./kind-task.ts";

describe("configDigest()", () => {
  it("is the same for any order of object keys, at every depth, and differs when a value or an array's order does", () => {
    expect(configDigest({ a: 1, b: { c: [1, 2], d: "x" } })).toBe(configDigest({ b: { d: "x", c: [1, 2] }, a: 1 }));
    expect(configDigest({ a: 1 })).not.toBe(configDigest({ a: 2 }));
    expect(configDigest({ a: [1, 2] })).not.toBe(configDigest({ a: [2, 1] }));
    expect(configDigest({ a: 1, b: undefined })).toBe(configDigest({ a: 1 }));
    expect(configDigest(undefined)).toMatch(/^[0-9a-f]{16}$/);
  });

  it("keeps the digest of config whose keys were already sorted (the built-in kinds' env entries)", () => {
    // What the process kinds pass: sorted [name, value] pairs, whose JSON text is already canonical.
    const pairs = [["A", "1"], ["B", "2"]];
    expect(configDigest(pairs)).toBe(privateDigest(JSON.stringify(pairs), "config").slice(0, 16));
    expect(configDigest({ a: 1, b: "x" })).toBe(privateDigest(JSON.stringify({ a: 1, b: "x" }), "config").slice(0, 16));
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
