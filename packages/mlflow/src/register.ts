/**
 * Importing "@cairn/mlflow/register" lets the engine record runs on an MLflow server when the
 * tracking URI is http(s). It loads nothing of the client until such a run starts: runs on the
 * embedded store never pay for it. "cairn-dag" and the `cairn` command import it.
 */
import { registerTrackerScheme } from "@cairn/core";

registerTrackerScheme(["http", "https"], async (uri, env) => {
  const { MlflowTracker } = await import("./tracker/mlflow-tracker.ts");
  return MlflowTracker.fromEnv(env, uri);
});
