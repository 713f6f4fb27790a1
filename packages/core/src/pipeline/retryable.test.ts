import { describe, expect, it } from "vitest";
import { CancelledError, InputValidationError, NonRetryableError } from "../errors.ts";
import { isRetryableError } from "./retryable.ts";

describe("isRetryableError", () => {
  it("retries what says nothing, and Cairn errors that may pass on a retry", () => {
    expect(isRetryableError(new Error("flaky"))).toBe(true);
    expect(isRetryableError("a string")).toBe(true);
    expect(isRetryableError(undefined)).toBe(true);
    expect(isRetryableError(new CancelledError())).toBe(true); // the scheduler decides about stops
  });

  it("does not retry a NonRetryableError, a Cairn error that says so, or any error with retryable = false", () => {
    expect(isRetryableError(new NonRetryableError("no"))).toBe(false);
    expect(isRetryableError(new InputValidationError("t", ["x: expected number"]))).toBe(false);
    expect(isRetryableError(Object.assign(new Error("quota"), { retryable: false }))).toBe(false);
    // A brand-free object from another copy of Cairn: the property is what counts.
    expect(isRetryableError({ name: "NonRetryableError", retryable: false })).toBe(false);
  });
});
