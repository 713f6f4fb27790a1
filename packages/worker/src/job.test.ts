import { describe, expect, it } from "vitest";
import { type JobData, restoreNegativeZeros, withNegativeZerosNoted } from "./job.ts";

/** The job's data as a worker reads it from Redis: through JSON. */
const throughRedis = (data: JobData): JobData => JSON.parse(JSON.stringify(data)) as JobData;

describe("-0 in a job's data", () => {
  it("comes back as -0 where the coordinator's inputs and params had it, and nowhere else", () => {
    const sent = withNegativeZerosNoted({ inputs: { x: -0, y: 0, deep: { list: [0, -0] } }, params: { lr: -0 } } as unknown as JobData);
    const got = restoreNegativeZeros(throughRedis(sent)) as unknown as { inputs: { x: number; y: number; deep: { list: number[] } }; params: { lr: number } };
    expect(Object.is(got.inputs.x, -0)).toBe(true);
    expect(Object.is(got.inputs.y, 0)).toBe(true);
    expect(Object.is(got.inputs.deep.list[0], 0)).toBe(true);
    expect(Object.is(got.inputs.deep.list[1], -0)).toBe(true);
    expect(Object.is(got.params.lr, -0)).toBe(true);
  });

  it("notes nothing for data without -0, and a path that leads elsewhere (a prototype, a value that is no 0) changes nothing", () => {
    const plain = { inputs: { x: 1 }, params: {} } as unknown as JobData;
    expect(withNegativeZerosNoted(plain)).toBe(plain);
    const crafted = throughRedis({ inputs: { x: 1 }, params: {}, negativeZeros: [["inputs", "__proto__", "polluted"], ["inputs", "x"], ["nodeId"]] } as unknown as JobData);
    restoreNegativeZeros(crafted);
    expect((crafted.inputs as { x: number }).x).toBe(1);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });
});
