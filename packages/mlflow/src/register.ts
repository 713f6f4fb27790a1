/**
 * Importing "@cairn/mlflow/register" lets the engine record runs on an MLflow server when the
 * tracking URI is http(s). It loads nothing of the client until such a run starts: runs on the
 * embedded store never pay for it. "cairn-dag" and the `cairn` command import it.
 */
import { registerTrackerScheme } from "@cairn/core";

const factory = async (uri: string, env: NodeJS.ProcessEnv) => {
  const { MlflowTracker } = await import("./tracker/mlflow-tracker.ts");
  return MlflowTracker.fromEnv(env, uri);
};
// Cairn's own tracker (core's BUILT_IN_TRACKER, resolve-tracker.ts): an unexpected failure of it
// is reported as a bug in Cairn, not as a plug-in for the user to fix.
Object.defineProperty(factory, Symbol.for("cairn.builtInTracker"), { value: "Cairn's MLflow tracker (@cairn/mlflow)" });

registerTrackerScheme(["http", "https"], factory);
