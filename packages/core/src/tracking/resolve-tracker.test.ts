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

  it("refuses a scheme no URI can have, warns when a registration replaces another, and names the registered schemes when none fits", async () => {
    const store = new LocalStore({ root: "unused" });
    const factory = async () => store;
    expect(() => registerTrackerScheme(["my_tracker"], factory)).toThrow(/Expected `registerTrackerScheme\(\) scheme` to be a URI scheme without its colon.*\(no `_`\), got "my_tracker"/);
    expect(() => registerTrackerScheme(["x"], "f" as never)).toThrow(/registerTrackerScheme\(\) factory/);
    const warned: Error[] = [];
    const onWarning = (w: Error) => void warned.push(w);
    process.on("warning", onWarning);
    try {
      registerTrackerScheme(["wandb"], factory);
      registerTrackerScheme(["wandb"], factory); // the same factory again: no warning
      registerTrackerScheme(["WandB"], async () => store);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warned.map((w) => [w.name, w.message])).toEqual([["CairnTrackerSchemeWarning", 'The tracker for "wandb://" URIs was registered again: the later registration replaces the earlier one.']]);
    } finally {
      process.off("warning", onWarning);
    }
    await expect(resolveTracker({ env: { MLFLOW_TRACKING_URI: "sqlite:///x.db" } })).rejects.toThrow(/only over HTTP \(and, through plug-ins, .*wandb:\/\/.*\)\./);
  });
});
