import { describe, expect, it } from "vitest";
import { NullTracker, isUntrackedRecord } from "./null-tracker.ts";
import { trackerComplianceSuite } from "./tracker-compliance.ts";

trackerComplianceSuite("NullTracker", () => new NullTracker(), { records: false });

describe("NullTracker", () => {
  it("records a finished run in one step as an id, like createRun", async () => {
    const t = new NullTracker();
    const id = await t.recordRun({ experimentId: "0", name: "hit", status: "FINISHED" });
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(await t.getRun(id)).toBeUndefined();
  });

  it("tells a record made with tracking off from one made through a tracker", () => {
    expect(isUntrackedRecord({ kind: new NullTracker().kind })).toBe(true);
    expect(isUntrackedRecord({ kind: "local" })).toBe(false);
    expect(isUntrackedRecord({ kind: "mlflow" })).toBe(false);
  });
});
