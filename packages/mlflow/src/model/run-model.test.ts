import { describe, expect, it } from "vitest";
import { checkSignature, prepareModelInput } from "./run-model.ts";

describe("a model's input columns named as Object.prototype members", () => {
  it("are read as columns like any other: their shape, a dataframe_split body, and the signature check", async () => {
    const rows = JSON.parse('[{ "constructor": 1, "x": 0.5 }, { "x": 1.5, "toString": "a" }]') as Record<string, unknown>[];
    const prepared = await prepareModelInput("score", rows, "dataframe_split");
    expect(prepared.shape).toEqual({ columns: ["constructor", "x", "toString"], types: { constructor: ["integer"], x: ["number"], toString: ["string"] } });
    expect(JSON.parse(prepared.body as string)).toEqual({ dataframe_split: { columns: ["constructor", "x", "toString"], data: [[1, 0.5, null], [null, 1.5, "a"]] } });
    const signature = [
      { name: "constructor", type: "long", required: true },
      { name: "toString", type: "double", required: false },
    ];
    expect(checkSignature(signature, prepared.shape!)).toEqual(['column "toString" holds a string values; the model expects double', 'columns the model does not know (ignored by MLflow): "x"']);
    expect(checkSignature([{ name: "valueOf", type: "double", required: false }], { columns: ["valueOf"], types: {} })).toEqual([]);
  });
});
