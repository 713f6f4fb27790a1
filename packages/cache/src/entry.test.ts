import { describe, expect, it, vi } from "vitest";
import { type OutputsManifest, outputsDigest } from "./entry.ts";

const manifest = (values: unknown): OutputsManifest => ({ values, artifacts: [] });

describe("outputsDigest", () => {
  it("is the digest of the outputs' JSON, whatever form they are given in", () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays -- a hole JSON writes as null
    const odd: unknown[] = [
      { a: 1, b: undefined },
      [undefined, -0, NaN, Infinity],
      sparse,
      new Point(1, 2),
      Object.assign(Object.create(null), { k: "v" }),
      { toJSON: () => "replaced" },
      { nested: { deep: [{ s: "é\uD83D" }] } },
      "text",
      { big: "x".repeat(100_000), n: [1.5, -2, 1e21] },
    ];
    for (const value of odd) {
      const read = JSON.parse(JSON.stringify(manifest(value))) as OutputsManifest;
      expect(outputsDigest(manifest(value)), JSON.stringify(value)?.slice(0, 40)).toBe(outputsDigest(read));
    }
    expect(outputsDigest(manifest({ a: 1 }))).not.toBe(outputsDigest(manifest({ a: 2 })));
  });

  it("makes no copy of outputs in their JSON form (an entry read back from a store: every hit's)", () => {
    const read = JSON.parse(JSON.stringify(manifest({ text: "x".repeat(100_000), rows: [1, 2, { a: null }] }))) as OutputsManifest;
    const stringify = vi.spyOn(JSON, "stringify");
    try {
      outputsDigest(read);
      expect(stringify).not.toHaveBeenCalled();
    } finally {
      stringify.mockRestore();
    }
  });
});
