/**
 * A tracker built on a URI that holds a password (`new MlflowTracker({ uri })`, not the environment,
 * which strips it) says that URI in its links and messages with the password masked.
 */
import { describe, expect, it } from "vitest";
import { MlflowTracker } from "./mlflow-tracker.ts";

describe("MlflowTracker given a URI with a password", () => {
  it("links a run without the password (the summary's view line and the report print the link)", () => {
    const tracker = new MlflowTracker({ uri: "http://alice:uri-pw-9911@127.0.0.1:5999" });
    const url = tracker.runUrl("7", "abc");
    expect(url).not.toContain("uri-pw-9911");
    expect(url).toBe("http://alice:***@127.0.0.1:5999/#/experiments/7/runs/abc");
    tracker.client.http.close();
  });
});
