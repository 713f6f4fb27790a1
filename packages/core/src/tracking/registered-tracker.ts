/**
 * The boundary between Cairn and a tracker that a registered factory opens
 * (`registerTrackerScheme`): a plug-in's code, which may throw a plain `Error`. Such a failure,
 * of the factory or of any call, becomes one TrackerCallError naming the tracking URI, the scheme,
 * where the factory was registered, the call and its run, with the tracker's error as its cause:
 * otherwise the user met `cairn: Error: cannot open` with a stack of Cairn's internals, or a flow
 * that failed with `Error: service said 500` and tasks "skipped because the flow failed", and no
 * word of the tracker. Cairn's own errors (a TrackingError that says what to do) pass as they are.
 */
import { fileURLToPath } from "node:url";
import { CairnError, TrackerCallError } from "../errors.ts";
import type { Tracker } from "./tracker.ts";

/** Where a tracker came from, for its messages. */
export interface TrackerOrigin {
  /** The tracking URI, its password hidden. */
  readonly uri: string;
  /** The URI's scheme, lower case. */
  readonly scheme: string;
  /** Where `registerTrackerScheme` was called for it (`/abs/register.ts:3:1`), when known. */
  readonly registeredAt: string | undefined;
  /** What a tracker of Cairn's own is (`Cairn's MLflow tracker (@cairn/mlflow)`); undefined for a plug-in's. */
  readonly builtIn?: string | undefined;
  /** The raw tracking URI, so that its password can be hidden in what the tracker says. */
  readonly rawUri: string;
}

/** The methods whose first argument is a run id, which the message names. */
const RUN_CALLS = new Set(["logBatch", "logArtifact", "endRun", "getRun", "logText", "getMetricHistory", "listArtifacts", "downloadArtifact", "flushRun", "artifactDir"]);

/** What the factory gives, its failures worded as TrackerCallError; a factory's own throw too. */
export async function openRegisteredTracker(open: () => Promise<Tracker>, origin: TrackerOrigin): Promise<Tracker> {
  let tracker: Tracker;
  try {
    tracker = await open();
  } catch (error) {
    throw worded(error, origin, "factory");
  }
  return guarded(tracker, origin);
}

/**
 * `tracker` with every method's failure that is not a CairnError (thrown, or a rejection) turned
 * into a TrackerCallError. Methods run on the tracker itself (its private fields work), and each
 * is wrapped once, so that `tracker.logBatch === tracker.logBatch` still holds.
 */
function guarded(tracker: Tracker, origin: TrackerOrigin): Tracker {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(tracker, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== "function" || typeof prop !== "string" || prop === "constructor") return value;
      // A proxy must hand out a frozen property as it is.
      const own = Object.getOwnPropertyDescriptor(target, prop);
      if (own && !own.configurable && !own.writable) return value;
      let fn = wrapped.get(prop) as ((...args: unknown[]) => unknown) | undefined;
      if (!fn || (fn as { original?: unknown }).original !== value) {
        const method = value as (...args: unknown[]) => unknown;
        fn = Object.assign(
          (...args: unknown[]) => {
            const runId = RUN_CALLS.has(prop) && typeof args[0] === "string" ? args[0] : undefined;
            let result: unknown;
            try {
              result = method.apply(target, args);
            } catch (error) {
              throw worded(error, origin, prop, runId);
            }
            if (isThenable(result)) return Promise.resolve(result).catch((error: unknown) => Promise.reject(worded(error, origin, prop, runId)));
            return result;
          },
          { original: value },
        );
        wrapped.set(prop, fn);
      }
      return fn;
    },
  });
}

/** A CairnError as it is; anything else as a TrackerCallError with it as the cause. */
function worded(error: unknown, origin: TrackerOrigin, call: string, runId?: string): unknown {
  if (CairnError.is(error)) return error;
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  // A factory may put the URI it was given, password and all, in its message.
  const detail = origin.rawUri === origin.uri ? text : text.split(origin.rawUri).join(origin.uri);
  return new TrackerCallError(origin.uri, origin.scheme, call, detail, { cause: error, registeredAt: origin.registeredAt, builtIn: origin.builtIn, runId });
}

/**
 * Where the code that called `fn` is (`/abs/register.ts:3:1`): the first frame of the stack
 * below `fn`, a file URL as a path; undefined when the stack does not tell.
 */
export function callerPlace(fn: (...args: never[]) => unknown): string | undefined {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, fn);
  const frame = holder.stack?.split("\n").find((line) => line.trimStart().startsWith("at "));
  const place = frame && /\(?((?:file:\/\/)?[^\s()]+:\d+:\d+)\)?\s*$/.exec(frame)?.[1];
  if (!place) return undefined;
  if (!place.startsWith("file://")) return place;
  const at = /:\d+:\d+$/.exec(place)![0];
  try {
    return fileURLToPath(place.slice(0, -at.length)) + at;
  } catch {
    return place;
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null && typeof (value as { then?: unknown }).then === "function";
}
