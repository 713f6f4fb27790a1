import { describe, expect, it } from "vitest";
import { isRetryableError } from "@cairn/core";
import { HttpTaskError } from "./errors.ts";

// Moved from core's retryable test when the http kind left core: its errors live beside it.
describe("HttpTaskError and retries", () => {
  it("is retried on a 5xx and not on a 4xx other than 408 and 429", () => {
    expect(isRetryableError(new HttpTaskError("t", "GET", "http://x", 503, 1, "busy"))).toBe(true);
    expect(isRetryableError(new HttpTaskError("t", "GET", "http://x", 404, 1, "not found"))).toBe(false);
    expect(isRetryableError(new HttpTaskError("t", "GET", "http://x", 429, 1, "slow down"))).toBe(true);
  });
});
