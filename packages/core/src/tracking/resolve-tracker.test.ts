import { describe, expect, it } from "vitest";
import { TrackingError } from "../errors.ts";
import { LocalStore } from "./local/local-store.ts";
import { registerTrackerScheme, resolveTracker } from "./resolve-tracker.ts";

// The MLflow tracker's registration is tested in @cairn/mlflow (src/register.test.ts).
describe("resolveTracker without a registered MLflow tracker", () => {
  it("says how to load the tracker when the URI is an MLflow server's, credentials hidden", async () => {
    const error = await resolveTracker({ env: { MLFLOW_TRACKING_URI: "http://bob:s3cr3t@mlflow.example.com:5000" } }).catch((e: unknown) => e);
    expect(TrackingError.is(error)).toBe(true);
    expect((error as Error).message).toContain('import "@cairn/mlflow/register"');
    expect((error as Error).message).toContain("http://bob:***@mlflow.example.com:5000");
    expect((error as Error).message).not.toContain("s3cr3t");
  });

  it("opens a registered scheme with its factory", async () => {
    const store = new LocalStore({ root: "unused" });
    registerTrackerScheme(["memo"], async (uri, env) => {
      expect(uri).toBe("memo://x");
      expect(env.MLFLOW_TRACKING_URI).toBe("memo://x");
      return store;
    });
    expect(await resolveTracker({ env: { MLFLOW_TRACKING_URI: "memo://x" } })).toBe(store);
  });
});
