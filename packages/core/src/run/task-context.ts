import type { Artifact } from "../definition/artifact.ts";
import { taskArtifactPath } from "../definition/artifact-path.ts";
import type { TrackingInfo } from "../tracking/tracker.ts";
import type { RunScope } from "./run-scope.ts";

/**
 * @internal A context's method (absent on contexts made outside the engine) through which an
 * executor hands over work that outlives the attempt's promise, such as a process tree still
 * being ended after a cancel: the engine keeps the task's concurrency slot and single-flight
 * lease until that work settles, and when the flow stops it closes the task's run only then.
 * `Symbol.for`, so that copies of this module agree.
 */
export const HOLD_WORK: unique symbol = Symbol.for("cairn.holdWork") as never;

/** What held work is, for what the engine says of an attempt that did not stop at its signal. */
export interface HeldWork {
  /** The attempt runs a process group that its signal ends: SIGTERM, then SIGKILL this many ms later. */
  killGraceMs?: number;
  /**
   * Settles once that process group is gone: an attempt still pending after it is finishing (reading
   * what the process printed or left), and is not said to be a process that ignores SIGTERM.
   */
  groupGone?: Promise<unknown>;
}

/** Hands `work` to the engine running `ctx`, if any; see {@link HOLD_WORK}. */
export function holdWork(ctx: object, work: Promise<unknown>, what: HeldWork = {}): void {
  (ctx as { [HOLD_WORK]?: (work: Promise<unknown>, what: HeldWork) => void })[HOLD_WORK]?.(work, what);
}

/**
 * @internal A context's method (absent on contexts made outside the engine) through which an
 * executor sends a file it wrote in the task's artifacts folder to the task's run before the
 * attempt ends, such as a child process's logs: with a tracker that keeps artifacts elsewhere
 * (an MLflow server) only outputs are sent otherwise. `Symbol.for`, as HOLD_WORK.
 */
export const SEND_ARTIFACT: unique symbol = Symbol.for("cairn.sendArtifact") as never;

/**
 * Sends artifact `name` (a file already written at `ctx.artifacts.path(name)`) to the task's run,
 * streamed from disk; does nothing with a tracker that keeps the folder itself (the embedded
 * store), with no tracker, or for a context made outside the engine. With `under` (a folder of
 * the run, "/"-separated) it is sent as `<under>/<name>` instead: a failed attempt's files go
 * under `cairn/attempts/<n>/`, never where the successful attempt's outputs are.
 */
export function sendArtifact(ctx: object, name: string, under?: string): Promise<void> {
  return (ctx as { [SEND_ARTIFACT]?: (name: string, under?: string) => Promise<void> })[SEND_ARTIFACT]?.(name, under) ?? Promise.resolve();
}

/**
 * @internal A context's method through which a kind's executor sets a tag that Cairn reserves and
 * `ctx.log.tag()` refuses to a task (see reservedTagReason): the MLflow model kind's
 * `cairn.model_uri`, the MLflow project kind's `mlflow.source.*`. `Symbol.for`, as HOLD_WORK.
 */
export const SYSTEM_TAG: unique symbol = Symbol.for("cairn.systemTag") as never;

/** Sets Cairn's tag `key` on the task's run; see {@link SYSTEM_TAG}. A context made outside the engine gets it through `ctx.log.tag()`. */
export function systemTag(ctx: { readonly log: RunLog }, key: string, value: string): void {
  const own = ctx as { [SYSTEM_TAG]?: (key: string, value: string) => void; readonly log: RunLog };
  if (own[SYSTEM_TAG]) own[SYSTEM_TAG](key, value);
  else own.log.tag(key, value);
}

/**
 * @internal A context's method through which an executor gets what a child process needs,
 * besides `ctx.tracking.uri`, to record to the run's tracker itself (see Tracker.childEnv).
 * `Symbol.for`, as HOLD_WORK.
 */
export const TRACKING_ENV: unique symbol = Symbol.for("cairn.trackingEnv") as never;

/** The tracker's variables for a child process (its credentials); none for a context made outside the engine. */
export function trackingEnv(ctx: object): Readonly<Record<string, string>> {
  return (ctx as { [TRACKING_ENV]?: () => Readonly<Record<string, string>> })[TRACKING_ENV]?.() ?? {};
}

/**
 * @internal A context's method through which an executor gets the variables its task declares
 * with `.env()`, as the run's environment gives them (`undefined`: unset there): what entered the
 * task's cache key, for the child process it starts. `Symbol.for`, as HOLD_WORK.
 */
export const DECLARED_ENV: unique symbol = Symbol.for("cairn.declaredEnv") as never;

/** The task's declared variables as the run gives them (see DECLARED_ENV); none for a context made outside the engine. */
export function declaredEnv(ctx: object): Readonly<Record<string, string | undefined>> {
  return (ctx as { [DECLARED_ENV]?: () => Readonly<Record<string, string | undefined>> })[DECLARED_ENV]?.() ?? {};
}

/**
 * @internal A context's method through which an executor turns an artifact name that arrived
 * from elsewhere (a script's `{"$artifact": name}` output) into the task's Artifact, with the
 * checks `ctx.artifacts` gives its own names (a safe path; no known secret in it), `source`
 * naming where it came from in the error. `Symbol.for`, as HOLD_WORK.
 */
export const ARTIFACT_FILE: unique symbol = Symbol.for("cairn.artifactFile") as never;

/** The Artifact for `name` from `source` (see ARTIFACT_FILE); a context made outside the engine checks only the path. */
export function artifactFile(ctx: TaskContext, name: unknown, source: string): Artifact {
  const own = (ctx as { [ARTIFACT_FILE]?: (name: unknown, source: string) => Artifact })[ARTIFACT_FILE];
  return own ? own.call(ctx, name, source) : ctx.artifacts.file(taskArtifactPath(name, { taskName: ctx.nodeId, source }));
}

/** Logs params, metrics and tags to the task's run. */
export interface RunLog {
  /** Records a param (stringified). */
  param(key: string, value: string | number | boolean): void;
  /** Records a metric value, at `step` (default: 0). */
  metric(key: string, value: number, step?: number): void;
  /** Sets a tag. */
  tag(key: string, value: string): void;
}

/** Writes files that become the task run's artifacts. */
export interface ArtifactWriter {
  /**
   * Writes `data` to `name` in the task's artifacts folder and returns the Artifact to output.
   * A name is a relative path inside that folder (`data.csv`, `reports/summary.md`); one that
   * could reach outside it (`..`, an absolute path, a drive, a NUL, `.` or empty parts) throws
   * UnsafePathError; one that holds a known secret throws SecretLeakError, and nothing is written.
   */
  write(name: string, data: string | Uint8Array): Promise<Artifact>;
  /**
   * Absolute path for `name` in the artifacts folder, parent folders created, for tools that
   * write files themselves; no name (or `""`) gives the folder itself. Names as for `write`.
   */
  path(name?: string): Promise<string>;
  /** The Artifact for a file or folder already written at `path(name)`. Names as for `write`. */
  file(name: string): Artifact;
}

/** How a logged line is kept besides its `log` event. */
export interface LogLineOptions {
  /**
   * The line is also kept whole in a log file of the task run (a process task's logs/stdout.txt
   * and logs/stderr.txt), so the CLI may leave it out when what it prints to is read slower than
   * lines come; other lines it always shows. @default false
   */
  inLogFile?: boolean;
}

/** Messages from the task; the CLI prints them prefixed by the task, embedders get them as `log` events. */
export interface TaskLogger {
  debug(message: string, options?: LogLineOptions): void;
  info(message: string, options?: LogLineOptions): void;
  warn(message: string, options?: LogLineOptions): void;
  error(message: string, options?: LogLineOptions): void;
}

/** What a running task gets besides its inputs. */
export interface TaskContext<Params = Record<string, unknown>> {
  /** The flow's validated params. */
  readonly params: Params;
  /** Node id of this task in the flow. */
  readonly nodeId: string;
  /** Task name. */
  readonly taskName: string;
  /** This task's run id. */
  readonly runId: string;
  /** The flow run's id. */
  readonly flowRunId: string;
  /** State the tasks of this flow run share (a kind's "once per run" memos; see RunScope). */
  readonly scope: RunScope;
  /** 1-based attempt number. */
  readonly attempt: number;
  /** Aborted when the flow is cancelled, the attempt times out, or fail-fast stops the flow. */
  readonly signal: AbortSignal;
  readonly log: RunLog;
  readonly artifacts: ArtifactWriter;
  readonly logger: TaskLogger;
  /** Where this run is recorded, for child processes that log to it themselves (MLFLOW_RUN_ID and friends). */
  readonly tracking: TrackingInfo;
  /**
   * The value of environment variable `name` in the run's environment (`run({ env })`, else
   * `process.env`), as it entered the task's cache key; `undefined` when it is unset there. Only
   * the variables the task declares with `.env()` can be read: another name throws
   * UndeclaredEnvError. Read it instead of `process.env` when a run is given its own `env`.
   * @example task("fetch").env("REGION").run((_, ctx) => ({ region: ctx.env("REGION") ?? "eu" }))
   */
  env(name: string): string | undefined;
  /** A secret from the environment or the secrets file. Never logged; outputs, params, tags and metric keys carrying it are refused. */
  secret(name: string): string;
  /**
   * `text` with the value of every secret known to this run (raw or JSON-escaped) replaced by `***`:
   * for text the task writes itself (a report, a log file). Logger lines, errors and events are masked without it.
   */
  mask(text: string): string;
  /**
   * Where to cut `text` near `at` so that `mask` of its two pieces masks every known secret whole:
   * `at` when no secret spans it, else the start of the secret across it, or, when secrets overlap
   * back to the text's start, their end. For text written in pieces (a process's long line).
   */
  safeCut(text: string, at: number): number;
}
