/**
 * Picks the tracker from the tracking URI: the embedded store when there is
 * none, an MLflow server for http(s), and a clear error for anything else.
 */
import { UnsupportedTrackingUriError } from "../errors.ts";
import { LocalStore } from "./local/local-store.ts";
import { redactUri } from "./mlflow/mlflow-config.ts";
import type { Tracker } from "./tracker.ts";

/** Where `resolveTracker` looks. */
export interface ResolveTrackerOptions {
  /** Tracking URI; overrides `MLFLOW_TRACKING_URI`. */
  uri?: string;
  /** Folder of the embedded store. @default ".cairn" */
  root?: string;
  /** Environment to read `MLFLOW_*` variables from. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/**
 * The tracker for a tracking URI (`options.uri`, else `MLFLOW_TRACKING_URI`):
 * - none → the embedded `LocalStore` in `root`;
 * - `http://` / `https://` → an `MlflowTracker`, configured from MLflow's environment variables;
 * - anything else (`sqlite:`, `file:`, a path, `databricks`) → `UnsupportedTrackingUriError`,
 *   whose message says how to start `mlflow server` and what to set.
 *
 * @example
 * const tracker = resolveTracker({ env: process.env });
 * await tracker.ping();
 */
export async function resolveTracker(options: ResolveTrackerOptions = {}): Promise<Tracker> {
  const env = options.env ?? process.env;
  const uri = (options.uri ?? env.MLFLOW_TRACKING_URI ?? "").trim();
  if (!uri) return new LocalStore({ root: options.root ?? ".cairn" });
  if (/^https?:\/\//i.test(uri)) {
    // Loaded only when a server is used: local runs never need the client.
    const { MlflowTracker } = await import("./mlflow/mlflow-tracker.ts");
    return MlflowTracker.fromEnv(env, uri);
  }
  throw new UnsupportedTrackingUriError(redactUri(uri));
}
