import { describe, expect, it } from "vitest";
import { closestName, retryAfterMs } from "./internal.ts";

describe("closestName", () => {
  it("names the candidate a typo meant, a swap of neighbours being one edit, case ignored", () => {
    expect(closestName("lerning_rate", ["epochs", "learning_rate"])).toBe("learning_rate");
    expect(closestName("ALhpa", ["alpha", "beta"])).toBe("alpha");
    expect(closestName("gamma", ["alpha", "beta"])).toBeUndefined();
    expect(closestName("", ["alpha"])).toBeUndefined();
  });

  it("takes an abbreviation for its flag only when asked to", () => {
    expect(closestName("exp", ["experiment", "json"], { prefixes: true })).toBe("experiment");
    expect(closestName("exp", ["experiment", "json"])).toBeUndefined();
  });
});

describe("retryAfterMs", () => {
  it("reads seconds and HTTP dates, and nothing else", () => {
    expect(retryAfterMs("2")).toBe(2000);
    expect(retryAfterMs(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(50_000);
    expect(retryAfterMs("soon")).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });
});
