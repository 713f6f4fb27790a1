/**
 * Picks the tracker from the tracking URI: the embedded store when there is
 * none, an MLflow server for http(s), and a clear error for anything else.
 */
import { redactUrl } from "@cairn/cache";
import { OptionError, TrackingError, UnsupportedTrackingUriError } from "../errors.ts";
import { LocalStore } from "./local/local-store.ts";
import { callerPlace, openRegisteredTracker } from "./registered-tracker.ts";
import type { Tracker } from "./tracker.ts";

/**
 * A URI with its password replaced by `***` (`http://alice:***@host`), and its query's values
 * but known-safe ones (`?token=***`) and fragment, so it can be shown; also one that does not
 * parse, whose password (holding `/`, `@` or a stray `%`) is hidden up to the last `@`. An `@`
 * that only starts path segments (an npm scope: `https://registry.npmjs.org/@types/node`) of a URI
 * with a plain host and no user info hides nothing. The cache's `redactUrl`: one redaction for
 * every URL Cairn prints.
 */
export const redactUri: (raw: string) => string = redactUrl;

/** Opens the tracker for a tracking URI of a registered scheme. */
export type TrackerFactory = (uri: string, env: NodeJS.ProcessEnv) => Promise<Tracker>;

/** A registered factory, and where it was registered (for its tracker's messages). */
interface Registration {
  readonly factory: TrackerFactory;
  readonly at: string | undefined;
  /** What a factory of Cairn's own names itself (BUILT_IN_TRACKER), for messages that should not send the user to fix it. */
  readonly builtIn: string | undefined;
}

/**
 * The property by which a factory of Cairn's own packages ("@cairn/mlflow/register") names its
 * tracker: a failure of that tracker is Cairn's to fix, not a plug-in's.
 */
export const BUILT_IN_TRACKER: unique symbol = Symbol.for("cairn.builtInTracker") as never;

const factories = new Map<string, Registration>();

/**
 * Lets `resolveTracker` open URIs of these schemes (without the colon) with `factory`: how a
 * tracker package plugs in without the engine loading it ("@cairn/mlflow/register" does this
 * for http and https). A later registration of a scheme replaces the earlier one.
 */
export function registerTrackerScheme(schemes: readonly string[], factory: TrackerFactory): void {
  if (typeof factory !== "function") throw new OptionError("registerTrackerScheme() factory", "a function (uri, env) => Promise<Tracker>", factory);
  for (const s of schemes) {
    // A URI's scheme (RFC 3986): what resolveTracker reads before `://`. `my_tracker` could never match.
    if (typeof s !== "string" || !SCHEME.test(s)) {
      throw new OptionError("registerTrackerScheme() scheme", "a URI scheme without its colon: a letter, then letters, digits, `+`, `-` or `.` (no `_`)", s);
    }
    const scheme = s.toLowerCase();
    const before = factories.get(scheme);
    if (before && before.factory !== factory) process.emitWarning(`The tracker for "${scheme}://" URIs was registered again: the later registration replaces the earlier one.`, "CairnTrackerSchemeWarning");
    const builtIn = (factory as { [BUILT_IN_TRACKER]?: unknown })[BUILT_IN_TRACKER];
    factories.set(scheme, { factory, at: callerPlace(registerTrackerScheme), builtIn: typeof builtIn === "string" ? builtIn : undefined });
  }
}

const SCHEME = /^[a-z][a-z0-9+.-]*$/i;

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
 * The tracking URI {@link resolveTracker} goes by (`options.uri`, else `MLFLOW_TRACKING_URI`,
 * trimmed), or undefined when none is set (empty or whitespace only): then it is the embedded store.
 */
export function trackingUriOf(options: Pick<ResolveTrackerOptions, "uri" | "env"> = {}): string | undefined {
  return (options.uri ?? (options.env ?? process.env).MLFLOW_TRACKING_URI ?? "").trim() || undefined;
}

/**
 * The tracker for a tracking URI (`options.uri`, else `MLFLOW_TRACKING_URI`):
 * - none → the embedded `LocalStore` in `root`;
 * - `http://` / `https://` → an `MlflowTracker`, configured from MLflow's environment variables;
 * - a scheme a plug-in registered (`registerTrackerScheme`) → what its factory opens; a failure
 *   of the factory or of the tracker's calls that is not a CairnError → `TrackerCallError`;
 * - anything else (`sqlite:`, `file:`, a path, `databricks`) → `UnsupportedTrackingUriError`,
 *   whose message says how to start `mlflow server` and what to set.
 *
 * @example
 * const tracker = resolveTracker({ env: process.env });
 * await tracker.ping();
 */
export async function resolveTracker(options: ResolveTrackerOptions = {}): Promise<Tracker> {
  const env = options.env ?? process.env;
  const uri = trackingUriOf({ ...options, env });
  if (!uri) return new LocalStore({ root: options.root ?? ".cairn" });
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(uri)?.[1]?.toLowerCase();
  const registered = scheme ? factories.get(scheme) : undefined;
  // A plug-in's failures (its factory's, its calls') say which tracker failed, in what call.
  if (registered) return openRegisteredTracker(() => registered.factory(uri, env), { uri: redactUri(uri), rawUri: uri, scheme: scheme!, registeredAt: registered.at, builtIn: registered.builtIn });
  if (scheme === "http" || scheme === "https") {
    throw new TrackingError(
      `The tracking URI is ${redactUri(uri)} (an MLflow server), but the MLflow tracker is not loaded in this process. ` +
        `Import Cairn from "cairn-dag" (it loads the tracker), or import "@cairn/mlflow/register" once before running a flow.`,
    );
  }
  throw new UnsupportedTrackingUriError(redactUri(uri), [...factories.keys()].filter((s) => s !== "http" && s !== "https"));
}
