import { describe, expect, it } from "vitest";
import { CancelledError, InputValidationError, NonRetryableError } from "../errors.ts";
import { HttpTaskError } from "../executors/errors.ts";
import { isRetryableError } from "./retryable.ts";

describe("isRetryableError", () => {
  it("retries what says nothing, and Cairn errors that may pass on a retry", () => {
    expect(isRetryableError(new Error("flaky"))).toBe(true);
    expect(isRetryableError("a string")).toBe(true);
    expect(isRetryableError(undefined)).toBe(true);
    expect(isRetryableError(new CancelledError())).toBe(true); // the scheduler decides about stops
    expect(isRetryableError(new HttpTaskError("t", "GET", "http://x", 503, 1, "busy"))).toBe(true);
  });

  it("does not retry a NonRetryableError, a Cairn error that says so, or any error with retryable = false", () => {
    expect(isRetryableError(new NonRetryableError("no"))).toBe(false);
    expect(isRetryableError(new InputValidationError("t", ["x: expected number"]))).toBe(false);
    expect(isRetryableError(new HttpTaskError("t", "GET", "http://x", 404, 1, "not found"))).toBe(false);
    expect(isRetryableError(Object.assign(new Error("quota"), { retryable: false }))).toBe(false);
    // A brand-free object from another copy of Cairn: the property is what counts.
    expect(isRetryableError({ name: "NonRetryableError", retryable: false })).toBe(false);
  });
});
