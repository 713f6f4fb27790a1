import { describe, expect, it } from "vitest";
import { ConditionError, ProcessCrashError } from "./errors.ts";

describe("ProcessCrashError", () => {
  it("shows a rejected non-Error with its credentials redacted by key name", () => {
    const error = new ProcessCrashError("unhandled-rejection", "fetch", { status: 401, headers: { authorization: "Bearer CRASHSEKRET" } });
    expect(error.message).not.toContain("CRASHSEKRET");
    expect(error.message).toContain("authorization: '***'");
    expect(error.message).toContain("status: 401");
  });
});

describe("ConditionError", () => {
  it("of a when() test that threw: its cause is what it threw, a thrown value that is no Error shown with the run's secrets masked", () => {
    const thrown = new TypeError("bad row");
    const error = new ConditionError("b", "x.stats", undefined, { cause: thrown });
    expect(error).toMatchObject({ name: "ConditionError", code: "CAIRN_CONDITION", nodeId: "b", condition: "x.stats", threw: true, cause: thrown });
    expect(error.message).toMatch(/^Task "b" did not run: the when\(\) test of its condition on x\.stats threw TypeError: bad row\. Fix the test/);
    const masked = new ConditionError("b", "x.stats", undefined, { cause: "token s3cr3t", mask: (text) => text.replaceAll("s3cr3t", "***") });
    expect(masked.message).toContain('threw "token ***" (string)');
    expect(new ConditionError("b", "x.flag", "yes")).toMatchObject({ threw: false });
  });
});
