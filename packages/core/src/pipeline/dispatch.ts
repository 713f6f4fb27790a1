/**
 * The seam between the scheduler and another process that runs a task: a `TaskDispatcher`
 * (RunOptions.dispatcher) is handed each task that missed the cache, with its resolved inputs,
 * instead of the run's own runTask; the scheduler, the cache lookup, the single flight and the
 * flow run stay here. On the other side, `runDispatchedTask` (run-dispatched.ts) runs one such
 * task through the same runTask in a process that loaded the same flow file.
 * What carries the task between the two (a queue) is the dispatcher's business: @cairn/worker.
 */
import { createHash } from "node:crypto";
import { hashValue } from "@cairn/cache";
import type { TaskCache, TaskKey } from "../caching/task-cache.ts";
import type { FlowNode, ItemInfo } from "../definition/flow-definition.ts";
import { CairnError, OptionError } from "../errors.ts";
import { type ErrorInfo, type LogEvent, noteErrorSource } from "../run/events.ts";
import { redactUri } from "../tracking/resolve-tracker.ts";
import type { Tracker } from "../tracking/tracker.ts";

/** What identifies a task's code, as its cache key records it: two checkouts that agree run the same code. */
export interface CodeFingerprint {
  /** sha256 of the code fingerprint (the key's `code` ingredient). */
  readonly code: string;
  /** Content digests of its code files and dependencies, by name. */
  readonly codeFiles?: Readonly<Record<string, string>>;
  readonly taskVersion: string | null;
  /** Digest of the environment its code runs in (a Python task's interpreter and packages), when its key holds one. */
  readonly environment?: string;
  /**
   * Made from the key's code part (the helpers and code files it reaches included), also for a
   * task without a key (`.cache(false)`) when the run has a cache to make it with; absent, it is
   * the task's own source only (a run with `--no-cache`).
   */
  readonly full?: boolean;
}

/** One task as a dispatcher gets it: everything the other process needs, in JSON, and the node itself. */
export interface DispatchedTask {
  readonly flowName: string;
  readonly flowRunId: string;
  readonly experimentId: string;
  /** The tracker the flow run records to: the task's run goes there too. */
  readonly tracker: { readonly kind: string; readonly uri: string };
  readonly nodeId: string;
  /** An item of a map or sweep: the other side makes its node from the map node `item.parent`. */
  readonly item?: ItemInfo;
  readonly taskName: string;
  readonly pool?: string;
  readonly params: Record<string, unknown>;
  /** Resolved and validated; artifacts as their records. */
  readonly inputs: Record<string, unknown>;
  /**
   * Its inputs carry the value of a secret this run knows (a literal wired in, say): a dispatcher
   * never writes them where they are kept (a queue's large inputs go through the flow run's
   * artifacts otherwise), only where they pass, as in one process.
   */
  readonly inputsCarrySecret?: true;
  /** Its cache key, when the cache is on for it: the other process stores the entry under it. */
  readonly key?: TaskKey;
  /** The run asked for this task to run whatever the cache holds (`--rerun`, `--refresh`): the other side never reuses an entry for it. */
  readonly forceRun?: boolean;
  /** Why it missed the cache (the value of `MISS_REASON_TAG`), as the lookup here found: its run records it. */
  readonly missReason?: string;
  readonly code: CodeFingerprint;
  readonly runTags?: Readonly<Record<string, string>>;
  /** The names (never the values) of the secrets the run was given up front: the other side reads each before the task starts, so that an output carrying one is refused there. */
  readonly secretNames?: readonly string[];
  /**
   * Per name of `secretNames`, a slow digest of the run's value (SecretRegistry.digest, salted
   * with the flow run's id and the name), never the value: the other side refuses the task before
   * it starts when its own value differs (a rotated secrets file), as it would not recognise the
   * run's value in an output.
   */
  readonly secretDigests?: Readonly<Record<string, string>>;
  /**
   * The names (never the values) of the secrets tasks of the run asked for at run time
   * (`ctx.secret()`, from the environment) so far, here or on other workers: the other side
   * knows its own value of each it has before the task starts, as a later task in one process would.
   */
  readonly askedSecrets?: readonly string[];
  /**
   * The Cairn that made its key and code fingerprint, "0.1.0+57ab83a" (`cairnBuild(env).id` of
   * the run's env, as its flow run's tag says): another Cairn there would make others.
   */
  readonly cairn?: string;
  /** The node, in this process only (not to be sent). */
  readonly node: FlowNode;
}

/**
 * How a dispatched task ended: as runTask's outcome, with its error as plain info, and its
 * duration (its attempts' wall time, TaskResult.durationMs) when an attempt started.
 */
export type DispatchedOutcome =
  /**
   * `reused`: the other side did not run the task, because another job of its key (another
   * coordinator's) stored an entry meanwhile; `runId` is that entry's source run, and the task
   * is a cache hit of it here.
   */
  | ({ readonly ok: true; readonly outputs: unknown; readonly runId?: string; readonly attempts: number; readonly durationMs?: number; readonly reused?: boolean } & AskedSecrets)
  | ({ readonly ok: false; readonly error: ErrorInfo & { code?: string }; readonly cancelled: boolean; readonly runId?: string; readonly attempts: number; readonly durationMs?: number } & AskedSecrets);

/** What a dispatched task's outcome tells of the secrets asked for on the other side. */
interface AskedSecrets {
  /**
   * The names (never the values) of the secrets the other side knows tasks of the run asked for
   * (`ctx.secret()`): the run knows its own value of each from then on, and sends the names with
   * its later tasks (DispatchedTask.askedSecrets).
   */
  readonly askedSecrets?: readonly string[];
}

/** Runs tasks somewhere else (RunOptions.dispatcher). */
export interface TaskDispatcher {
  /** Called once the flow run's tracker is open: refuses (throws) a run it cannot serve, before anything is recorded. */
  open(run: { readonly flowName: string; readonly tracker: Tracker; readonly env: NodeJS.ProcessEnv }): Promise<void> | void;
  /**
   * Runs `task`; aborting `signal` (the flow stopped) cancels it there. Its reason is a SentStop
   * (what stopped the flow, masked, in JSON): sent with the cancel, the task's run there says it.
   * `log` passes the task's log lines from there into the run's events (where secrets are
   * masked). Resolves with how it ended; never rejects.
   */
  run(task: DispatchedTask, signal: AbortSignal, log: (event: LogEvent) => void): Promise<DispatchedOutcome>;
  /**
   * The credentials the dispatcher holds (a queue URL's password), by a name for messages: the
   * run masks them in its text (events, logs, errors) as it masks the tracker's, so that a task
   * that prints one shows `***`. Optional.
   */
  credentials?(): Readonly<Record<string, string>>;
}

/** A dispatcher a run opens itself from `RunOptions.queue`, and closes when it is over. */
export interface OwnedDispatcher extends TaskDispatcher {
  close(): Promise<void>;
}

/** Opens the dispatcher of a queue URL (`RunOptions.queue`). */
export type QueueFactory = (url: string) => OwnedDispatcher | Promise<OwnedDispatcher>;

const queueFactories = new Map<string, QueueFactory>();

/**
 * Lets `run({ queue: url })` open URLs of these schemes (without the colon) with `factory`: how a
 * queue package plugs in without the engine loading it ("@cairn/worker/register" does this for
 * redis and rediss; "cairn-dag" imports it). A later registration of a scheme replaces the earlier one.
 */
export function registerQueueScheme(schemes: readonly string[], factory: QueueFactory): void {
  for (const s of schemes) queueFactories.set(s.toLowerCase(), factory);
}

/** The dispatcher for `url`, by its scheme's registered factory; an OptionError names what is expected. */
export async function openQueue(url: unknown): Promise<OwnedDispatcher> {
  const scheme = typeof url === "string" ? /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase() : undefined;
  const factory = scheme !== undefined ? queueFactories.get(scheme) : undefined;
  if (!factory) {
    const known = [...queueFactories.keys()].map((s) => `${s}://...`);
    const expected = known.length
      ? `a queue URL (${known.join(" or ")})`
      : `a queue URL of a registered queue package (import "@cairn/worker/register" for redis://, as "cairn-dag" does)`;
    throw new OptionError("queue", expected, typeof url === "string" ? redactUri(url) : url);
  }
  return factory(url as string);
}

/** A task run by another process failed there; `name` and `code` are those of the error it met. */
export class RemoteTaskError extends CairnError {
  static override readonly code: string = "CAIRN_REMOTE_TASK";
  override name: string;
  readonly remoteCode: string | undefined;
  constructor(info: ErrorInfo & { code?: string }) {
    super(info.message);
    this.name = info.name;
    this.remoteCode = info.code;
    noteErrorSource(this, info.at);
  }
}

/** The fingerprint of `node`'s code: from its key when it has one, else its kind, code and version. */
export function codeFingerprint(node: FlowNode, key: TaskKey | undefined): CodeFingerprint {
  if (key) {
    const { code, codeFiles, taskVersion, environment } = key.ingredients;
    return { code, ...(codeFiles ? { codeFiles } : {}), taskVersion, ...(environment ? { environment: hashValue([environment.interpreter, environment.digest]) } : {}), full: true };
  }
  const code = createHash("sha256").update(`${node.task.kind}\0${node.task.code}`).digest("hex");
  return { code, taskVersion: node.task.version === undefined ? null : String(node.task.version) };
}

/**
 * The fingerprint the coordinator sends with `node`: from its key, or, for a task without one,
 * from the code part of the key it would have (helpers and code files included) when the run has
 * a cache to make it with; else from its own source. Never rejects: a key that cannot be made
 * falls back to the source, and the task meets the same error where it runs.
 */
export async function sentCodeFingerprint(node: FlowNode, key: TaskKey | undefined, cache: TaskCache | undefined, flowRunId: string): Promise<CodeFingerprint> {
  if (key || !cache) return codeFingerprint(node, key);
  // The code part of a key does not depend on the inputs.
  return cache.keyFor(node, {}, { flowRunId }).then(
    (k) => codeFingerprint(node, k),
    () => codeFingerprint(node, undefined),
  );
}
