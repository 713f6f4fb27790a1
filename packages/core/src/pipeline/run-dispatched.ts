/**
 * A dispatched task (dispatch.ts) on the other side: one task through the same runTask as in
 * the coordinator (its run, attempts, outputs, cache entry), in a process that loaded the same
 * flow file and found the task's node in it. A worker process calls it once per task it takes.
 * While the task runs, the process watches for crashes as a flow run does (crash-guard.ts): an
 * error that escapes the task's code, or its `process.exit()`, fails the task with the error a
 * run in one process gives (ProcessCrashError, TaskExitError), instead of ending the worker with
 * its job left to stall and run again.
 */
import type { TaskCache, TaskKey } from "../caching/task-cache.ts";
import { CacheKeyMismatchError } from "../errors.ts";
import type { FlowNode } from "../definition/flow-definition.ts";
import { watchCrashes } from "../run/crash-guard.ts";
import { isError, type RunEvent, toErrorInfo } from "../run/events.ts";
import { SecretRegistry } from "../run/secrets.ts";
import type { Tracker } from "../tracking/tracker.ts";
import type { DispatchedOutcome, DispatchedTask } from "./dispatch.ts";
import type { TaskInterceptor } from "./intercept.ts";
import type { PipelineTask, TaskOutcome } from "./run-task.ts";
import { isStopReason, readSentStop, receivedStop, StopReason, stopInfo } from "./stop.ts";
import { TaskPipeline } from "./task-pipeline.ts";
import type { LargeOutputs } from "./large-output.ts";

/** What a process that runs dispatched tasks brings of its own. */
export interface DispatchedRunSettings {
  readonly tracker: Tracker;
  /** Its cache, on the store the coordinator's entries are found in. */
  readonly cache?: TaskCache;
  /** Folder for task artifacts when the tracker keeps none locally. */
  readonly workDir: string;
  /**
   * Aborting it cancels the task (the coordinator's flow stopped). A reason that is a SentStop
   * (what stopped that flow, as its dispatcher was given it) is what the task's run records.
   */
  readonly signal: AbortSignal;
  readonly emit: (event: RunEvent) => void;
  readonly secrets?: Record<string, string>;
  /**
   * The flow run's secrets as this process knows them, shared by all its tasks of that run: a
   * secret one task read from the environment (`ctx.secret`) is then known to the next, as in one
   * process. Made from `secrets` and `env` for this task alone when absent.
   */
  readonly registry?: SecretRegistry;
  /** Its environment (default `process.env`): its tasks are keyed with it (its cache's) and read it. */
  readonly env?: NodeJS.ProcessEnv;
  readonly interceptors?: readonly TaskInterceptor[];
  /**
   * Called when an error escaped code while the task ran (crash-guard.ts), with the error the task
   * fails with: a ProcessCrashError or TaskExitError that names the task when its code raised it;
   * a ProcessCrashError without `nodeId` when no task's code did (the process's own code, or a
   * task whose run here had ended), after which the process's state cannot be trusted.
   */
  readonly onCrash?: (error: Error) => void;
  /**
   * The large-output limit and the tasks warned of, kept by the process for the flow run across its
   * tasks, so a task is warned of once there as in one process (null: no warning); absent: read
   * from `env` for this task alone.
   */
  readonly largeOutputs?: LargeOutputs | null;
  /**
   * The task's key as this process made it from the task's inputs (`cache.keyFor`), when it
   * checked `task.key` against it before; absent, it is made here. The task's result is stored
   * under this one, never under the key the task names: a task whose key differs is refused
   * (CacheKeyMismatchError), as a crafted or altered job would otherwise plant a result under
   * another input's key.
   */
  readonly key?: TaskKey;
}

/** Runs one dispatched task through runTask (its run, attempts, outputs, cache entry) and waits for its processes to end; never rejects. */
export async function runDispatchedTask(node: FlowNode, task: Omit<DispatchedTask, "node">, s: DispatchedRunSettings): Promise<DispatchedOutcome> {
  const stop = new AbortController();
  // What stopped the coordinator's flow, when it was sent with the cancel: the task's run says it as there.
  const onAbort = () => {
    const sent = readSentStop(s.signal.reason);
    stop.abort(sent ? receivedStop(sent) : new StopReason("cancel", s.signal.reason));
  };
  if (s.signal.aborted) onAbort();
  else s.signal.addEventListener("abort", onAbort, { once: true });
  const secrets =
    s.registry ??
    new SecretRegistry(s.secrets, s.env ?? process.env, (message, id) =>
      s.emit({ type: "log", level: "warn", runId: task.flowRunId, ...(id ? { task: id } : {}), message, time: Date.now() }),
    );
  // Made here, not before: what it reads of the environment (CAIRN_LARGE_OUTPUT_MB) may refuse it,
  // and that is the task's failure, said to the coordinator, not a rejection (never rejects).
  let pipeline: TaskPipeline;
  try {
    pipeline = new TaskPipeline({
      flowName: task.flowName,
      params: task.params,
      tracker: s.tracker,
      experimentId: task.experimentId,
      flowRunId: task.flowRunId,
      secrets,
      env: s.env ?? process.env,
      workDir: s.workDir,
      // Masked here, as the coordinator's door masks its events: a log line leaves this process masked.
      emit: (event) => s.emit(secrets.maskEvent(event)),
      signal: stop.signal,
      ...(s.cache ? { cache: s.cache } : {}),
      ...(s.interceptors ? { interceptors: s.interceptors } : {}),
      ...(task.runTags ? { runTags: task.runTags } : {}),
      ...(s.largeOutputs !== undefined ? { largeOutputs: s.largeOutputs } : {}),
    });
  } catch (error) {
    s.signal.removeEventListener("abort", onAbort);
    return { ok: false, error: errorInfoOf(asError(error), secrets), cancelled: false, attempts: 0 };
  }
  // The key the result is stored under is made here, from the inputs the task runs with: the one
  // the task names only has to agree with it (see DispatchedRunSettings.key).
  let key: TaskKey | undefined;
  if (task.key && s.cache) {
    try {
      key = s.key ?? (await s.cache.keyFor(node, task.inputs, { flowRunId: task.flowRunId }));
    } catch (error) {
      s.signal.removeEventListener("abort", onAbort);
      return { ok: false, error: errorInfoOf(asError(error), secrets), cancelled: false, attempts: 0 };
    }
    const named = (task.key as { key?: unknown }).key;
    if (key.key !== named) {
      s.signal.removeEventListener("abort", onAbort);
      return { ok: false, error: errorInfoOf(new CacheKeyMismatchError(node.id, key.key, String(named), keyDifferences(task.key, key)), secrets), cancelled: false, attempts: 0 };
    }
  }
  const state: PipelineTask = { node, result: { status: "running", attempts: 0 }, ...(key ? { key } : {}), ...(task.forceRun ? { forceRun: true } : {}), ...(task.missReason !== undefined ? { missReason: task.missReason } : {}) };
  // Secrets tasks of the run asked for on other processes, known here by this process's own value before the task starts.
  for (const name of Array.isArray(task.askedSecrets) ? task.askedSecrets : []) if (typeof name === "string") secrets.learnAsked(name);
  // As a flow run does: an error that escapes code while the task runs stops it as failed, and
  // one the task's code raised is that task's failure (crash-guard.ts).
  let crash: Error | undefined;
  const offCrash = watchCrashes(stop.signal, (error) => {
    crash ??= error;
    stop.abort(new StopReason("flow-failed", error));
    s.onCrash?.(error);
  }, { endsProcess: false });
  try {
    const outcome: TaskOutcome = await pipeline.run(state, task.inputs);
    await pipeline.release(state);
    const { runId, attempts, durationMs } = state.result;
    // The names (never the values) of the secrets asked for here go back, for the run to know and pass on.
    const asked = secrets.askedNames;
    const ran = { ...(runId ? { runId } : {}), attempts, ...(durationMs !== undefined ? { durationMs } : {}), ...(asked.length ? { askedSecrets: asked } : {}) };
    if (outcome.ok) return { ok: true, outputs: outcome.outputs, ...ran };
    // Stopped by a crash no code of its own raised: it failed with that error, it was not cancelled
    // (the coordinator would take a cancel for its flow's, and wait for a failure that never comes).
    const error = crash && outcome.cancelled && isCrashStop(outcome.stop, crash) ? crash : asError(outcome.error);
    const cancelled = outcome.cancelled && error !== crash;
    return {
      ok: false,
      error: errorInfoOf(error, secrets),
      cancelled,
      ...ran,
    };
  } finally {
    offCrash();
    s.signal.removeEventListener("abort", onAbort);
  }
}

/**
 * What differs between the key a dispatched task names (`theirs`, as it came: not trusted to be
 * well formed) and the one made here, by ingredient, for a message: `input "n"`, `code`.
 */
/** @internal */
export function keyDifferences(theirs: unknown, mine: TaskKey): string[] {
  const t = (theirs as { ingredients?: unknown } | null)?.ingredients as Record<string, unknown> | undefined;
  if (!t || typeof t !== "object") return ["all (the job records none)"];
  const m = mine.ingredients as unknown as Record<string, unknown>;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const out: string[] = [];
  for (const part of ["schemaVersion", "taskName", "taskVersion", "code", "codeFiles", "environment"]) if (!same(t[part], m[part])) out.push(part);
  for (const group of ["inputs", "params", "env"] as const) {
    const a = (t[group] && typeof t[group] === "object" ? t[group] : {}) as Record<string, unknown>;
    const b = (m[group] && typeof m[group] === "object" ? m[group] : {}) as Record<string, unknown>;
    const noun = group === "inputs" ? "input" : group === "params" ? "param" : "environment variable";
    for (const name of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) if (!same(a[name], b[name])) out.push(`${noun} "${name}"`);
  }
  return out;
}

/** `error` as sent to the coordinator: masked, with its place in the user's code (shown there as for a task run there) and its code. */
function errorInfoOf(error: Error, secrets: SecretRegistry): Extract<DispatchedOutcome, { ok: false }>["error"] {
  const code = (error.constructor as { code?: unknown } | undefined)?.code;
  const { name, message, at } = toErrorInfo(error);
  return { name, message: secrets.mask(message), ...(at !== undefined ? { at } : {}), ...(typeof code === "string" ? { code } : {}) };
}

/** Whether `stop` (what stopped the task) is the stop a crash made of `crash`. */
function isCrashStop(stop: unknown, crash: Error): boolean {
  return isStopReason(stop) && stop.kind === "flow-failed" && stop.detail === crash;
}

/** What a task ended with, as an Error: a stop is told by its own error (the cancel this worker got) or as the coordinator tells it, not as "[object Object]". */
function asError(thrown: unknown): Error {
  if (isError(thrown)) return thrown;
  if (isStopReason(thrown)) return isError(thrown.detail) ? thrown.detail : Object.assign(new Error(), stopInfo(thrown));
  return new Error(toErrorInfo(thrown).message);
}
