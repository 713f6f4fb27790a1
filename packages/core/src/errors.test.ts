import { describe, expect, it } from "vitest";
import { ProcessCrashError } from "./errors.ts";

describe("ProcessCrashError", () => {
  it("shows a rejected non-Error with its credentials redacted by key name", () => {
    const error = new ProcessCrashError("unhandled-rejection", "fetch", { status: 401, headers: { authorization: "Bearer CRASHSEKRET" } });
    expect(error.message).not.toContain("CRASHSEKRET");
    expect(error.message).toContain("authorization: '***'");
    expect(error.message).toContain("status: 401");
  });
});
