/**
 * The worker's side of a queue (`cairn worker FLOW --queue URL`): a process that loaded a flow
 * file takes its tasks' jobs from the queues of its pools and runs each through core's
 * runDispatchedTask (the same runTask the coordinator would run), recording to the flow run's
 * MLflow server. Before it runs one, it closes the runs a worker that died under the same job
 * left RUNNING, checks that the task's code here is the code the run was started with (a job it
 * must refuse goes back to the queue for another worker first), learns the secrets the
 * coordinator knows from the start (refusing the job when its value of one differs) and those
 * tasks of the run asked for elsewhere so far, and reads the task's inputs from the flow run when
 * they were too large for the job (inputs-by-reference.ts). A job of a cache key another job computes now waits for that
 * one's entry instead of running twice, and a job taken again after its lock lapsed while its
 * worker, alive, still runs it (Redis did not answer for a while) waits for that worker's outcome.
 * It keeps a heartbeat in Redis (`cairn workers`), aborts a
 * task when its flow run is cancelled (told at once, and looked up while the task runs, for a
 * message lost while its connection was down), and on close finishes what it runs and takes
 * nothing more. While it runs a task it watches for crashes as a flow run does (core's
 * crash-guard.ts, through runDispatchedTask): a task whose code lets an error escape or calls
 * `process.exit()` fails with it, and the worker goes on; an error no task's code raised hands
 * the jobs it runs back to the queue, for another worker, and stops it (see {@link RunningWorker.crashed}).
 */
import { hostname } from "node:os";
import { resolve as resolvePath } from "node:path";
import { randomUUID } from "node:crypto";
import { EventEmitter, once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { DelayedError, type Job, Worker as BullWorker } from "bullmq";
import type { Redis } from "ioredis";
import { CacheStore, environmentChange, packageOfEntry } from "@cairn/cache";
import {
  type CodeFingerprint,
  type DispatchedOutcome,
  type FlowDefinition,
  type FlowNode,
  type LargeOutputs,
  type RunEvent,
  type SentStop,
  type TaskKey,
  type Tracker,
  CacheKeyMismatchError,
  CancelledError,
  cairnBuild,
  codeFingerprint,
  keyDifferences,
  largeOutputsFromEnv,
  LONGEST_TIMER_MS,
  NODE_CONDITIONS,
  ProcessCrashError,
  readSentStop,
  redactUri,
  RunScope,
  resolveTracker,
  runDispatchedTask,
  SecretNotFoundError,
  SecretRegistry,
  TaskCache,
  WORKER_TAG,
} from "@cairn/core";
import {
  buildMismatch,
  BuildMismatchError,
  type QueueInputsUnreadableError,
  QueueJobDataError,
  type Refusals,
  refusedSentence,
  SecretMismatchError,
  StaleCodeError,
  UnknownQueuedTaskError,
  WorkerOptionError,
} from "./errors.ts";
import { type JobData, jobDataProblems, type JobProgress, restoreNegativeZeros } from "./job.ts";
import { closeDeadRuns, stoppedWhileRunning } from "./dead-runs.ts";
import { type SentOutcome, toSent } from "./outputs-by-reference.ts";
import { receivedInputs } from "./inputs-by-reference.ts";
import { readWorkers, type WorkerRecord } from "./workers-list.ts";
import {
  CANCEL_CHANNEL,
  cancelledKey,
  checkQueueUrl,
  COMPUTED_MS,
  computedKey,
  computingKey,
  connect,
  DEFAULT_POOL,
  integerFromEnv,
  KEPT_OUTCOME_MS,
  keptOutcomeKey,
  logChannel,
  queueCredentials,
  queueFailure,
  queueName,
  workerKey,
} from "./queue-names.ts";

/** Settings of {@link startWorker}. */
export interface WorkerOptions {
  /** The flow whose tasks this worker runs (loaded from its own checkout). */
  flow: FlowDefinition;
  /** The flow's file, for messages. */
  file: string;
  /** The queue's Redis URL. */
  queue: string;
  /** Pools whose tasks it takes; `default` is the pool of tasks that name none. @default ["default"] */
  pools?: readonly string[];
  /** Tasks it runs at once, per pool. @default 1 */
  concurrency?: number;
  /** Folder of Cairn's local state (downloads, the embedded cache store). @default ".cairn" */
  root?: string;
  /** Environment for MLflow and Cairn variables, the tasks' secrets, and the variables tasks declare with `.env()` (their keys here, and what the tasks see). @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Secrets by name, besides the environment. */
  secrets?: Record<string, string>;
  /**
   * How long a job stays locked to this worker without its heartbeat: a worker dead for this
   * long has its job given to another.
   * @default 30000, or CAIRN_QUEUE_LOCK_MS
   */
  lockMs?: number;
  /** A task whose workers died this many times in a row fails as a poison task. @default 3, or CAIRN_QUEUE_MAX_DEATHS */
  maxDeaths?: number;
  /**
   * How long a task whose code differs here is handed back to the queue for a worker with the
   * run's code, once every live worker of its pool refused it (a worker of the new commit may be
   * starting), before it fails with StaleCodeError.
   * @default 15000, or CAIRN_QUEUE_STALE_GRACE_MS
   */
  staleGraceMs?: number;
  /** What the worker does, for its log. */
  onEvent?: (event: WorkerEvent) => void;
}

/** What a worker reports as it goes. */
export type WorkerEvent =
  | { readonly type: "ready"; readonly id: string; readonly pools: readonly string[] }
  | { readonly type: "task"; readonly status: "started"; readonly task: string; readonly flowRunId: string }
  | { readonly type: "task"; readonly status: "succeeded" | "failed" | "cancelled" | "refused" | "reused" | "waiting" | "handed-back"; readonly task: string; readonly flowRunId: string; readonly message?: string }
  | { readonly type: "log"; readonly event: RunEvent }
  /** A job whose data is not a task Cairn sends (another program's, another Cairn's, or altered in Redis): it failed with QueueJobDataError, `message`. */
  | { readonly type: "bad-job"; readonly jobId: string; readonly queue: string; readonly message: string }
  /** Closing, its tasks ended, Redis did not answer for {@link CLEANUP_MS}: it left without telling it; `message` says what stays there. */
  | { readonly type: "left-without-queue"; readonly message: string };

/** A started worker. */
export interface RunningWorker {
  readonly id: string;
  /**
   * Takes no more jobs, waits for the ones it runs, however long, and leaves; when Redis then
   * does not answer for 5 s, it leaves without telling it, and says what it left there (the
   * `left-without-queue` event).
   */
  close(): Promise<void>;
  /**
   * Resolves with the error once the worker stopped itself: an error that no task's code raised
   * (its own code's, a library's, or a task's whose job had ended) escaped while it ran tasks, as
   * an uncaught exception or a rejection Node would end the process for. Node's docs say a
   * process's state cannot be trusted after one: the jobs it ran went back to the queue for
   * another worker (their runs here recorded FAILED with a ProcessCrashError), it takes no more, and closes (`cairn worker` then exits 1). Never resolves otherwise; an error
   * a task's code raised fails only that task, and the worker goes on.
   */
  readonly crashed: Promise<ProcessCrashError>;
}

const HEARTBEAT_MS = 2000;
/**
 * How long a closing worker waits, once its tasks have ended, for Redis to take what it still has
 * to be told (the jobs' ends, the heartbeat record's removal): Redis gone, BullMQ's close waited
 * for ever, and so did `cairn worker` on SIGTERM.
 */
const CLEANUP_MS = 5000;
/** The first wait of a job handed back for another worker; doubled at each hand-back, up to {@link MAX_HAND_BACK_MS}. */
const HAND_BACK_MS = 500;
const MAX_HAND_BACK_MS = 4000;

/** A pool's name, as `.pool()` takes it. */
const POOL_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Starts taking `options.flow`'s tasks from the queue. */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const url = checkQueueUrl(options.queue);
  const env = options.env ?? process.env;
  const pools = [...new Set(options.pools?.length ? options.pools : [DEFAULT_POOL])];
  for (const pool of pools) {
    if (typeof pool !== "string" || !POOL_NAME.test(pool)) {
      // `--pool gpu=2` (cairn run's form) made a worker of a pool literally named "gpu=2", which no task names.
      throw new WorkerOptionError("pools", `pool names (ASCII letters, digits, \`_\`, \`.\` and \`-\`, not starting with \`.\` or \`-\`, as .pool() takes them)${typeof pool === "string" && pool.includes("=") ? `; a worker takes a pool's name only (--pool ${pool.split("=")[0]}): its limit is cairn run's --pool NAME=N` : ""}`, options.pools);
    }
  }
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new WorkerOptionError("concurrency", "an integer >= 1", concurrency);
  const lockMs = options.lockMs ?? integerFromEnv(env, "CAIRN_QUEUE_LOCK_MS", 30_000);
  if (!Number.isInteger(lockMs) || lockMs < 1 || lockMs > LONGEST_TIMER_MS) throw new WorkerOptionError("lockMs", `an integer from 1 to ${LONGEST_TIMER_MS}`, lockMs);
  const maxDeaths = options.maxDeaths ?? integerFromEnv(env, "CAIRN_QUEUE_MAX_DEATHS", 3);
  if (!Number.isInteger(maxDeaths) || maxDeaths < 1) throw new WorkerOptionError("maxDeaths", "an integer >= 1", maxDeaths);
  const staleGraceMs = options.staleGraceMs ?? integerFromEnv(env, "CAIRN_QUEUE_STALE_GRACE_MS", 15_000);
  if (!Number.isInteger(staleGraceMs) || staleGraceMs < 1 || staleGraceMs > LONGEST_TIMER_MS) throw new WorkerOptionError("staleGraceMs", `an integer from 1 to ${LONGEST_TIMER_MS}`, staleGraceMs);
  // Checked now, as `cairn run` does: read only as each job ran, a mistyped value failed every job the worker took.
  const largeOutputs = largeOutputsFromEnv(env);
  const root = resolvePath(options.root ?? ".cairn");
  const host = hostname();
  const id = `${host}-${process.pid}-${randomUUID().slice(0, 8)}`;
  /** The Cairn this worker runs: a job of a coordinator of another is refused (see runJob). */
  const build = cairnBuild(env).id;
  const tell = options.onEvent ?? (() => {});
  const { flow } = options;
  // The code this worker runs is the flow module as it was loaded: its files and package versions
  // are read now, once, and every key made here says them. Read again for each run, a file edited
  // or a package upgraded under the running worker gave keys of code it does not run, under which
  // it stored what its old code made; the coordinator's key now differs, and the task is refused.
  const loadedCode = new RunScope();
  await Promise.all([...new Set(flow.nodes.map((n) => n.task))].map((task) => task.codeDependencies?.(loadedCode).catch(() => undefined)));
  // Absolute in messages: two checkouts on one host are told apart.
  const file = resolvePath(options.file);

  const redis = connect(url);
  const subscriber = connect(url);
  const trackers = new Map<string, Promise<Tracker>>();
  let store: Promise<CacheStore> | undefined;
  /**
   * What a flow run's tasks here share, kept for a few runs at a time (a run's are of no use to the
   * next): its TaskCache, whose scope holds the run's memos (code reads), and its secrets as known
   * here (see DispatchedRunSettings.registry), both as in the coordinator.
   */
  const runs = new Map<string, { cache: Promise<TaskCache>; secrets: SecretRegistry; largeOutputs: LargeOutputs | null }>();
  /** Sends a log line to the coordinator of `flowRunId` (masked before it gets here). */
  const publishLog = (flowRunId: string, event: RunEvent) => void redis.publish(logChannel(flowRunId), JSON.stringify(event)).catch(() => {});
  /** Called once an error no task's code raised escaped while tasks ran: the worker then stops (see RunningWorker.crashed). */
  let crashedWith: (error: ProcessCrashError) => void = () => {};
  const crashed = new Promise<ProcessCrashError>((resolve) => (crashedWith = resolve));
  /** Tasks running now, by flow run: a cancel aborts them. */
  const running = new Map<string, Set<{ controller: AbortController; task: string; since: number }>>();
  /**
   * Jobs being handled here, from the moment BullMQ hands one over to its task's end: a job prepares
   * (opens its tracker, makes its key, compares fingerprints, up to a minute with
   * CAIRN_PYTHON_ENV_KEY) before its task enters `running`, and close waits for those too.
   */
  let handling = 0;
  /** Emits `idle` when the last job handled here ends (see close). */
  const handled = new EventEmitter();
  /** Jobs taken here whose end Redis has not recorded yet, by job id: what close says it left there. */
  const unrecorded = new Map<string, { task: string; flowRunId: string }>();

  const trackerFor = (uri: string) => {
    let t = trackers.get(uri);
    if (!t) {
      t = resolveTracker({ root, env: trackerEnv(env, uri, id).env });
      t.catch(() => trackers.delete(uri));
      trackers.set(uri, t);
    }
    return t;
  };
  const runOf = (data: JobData, tracker: Tracker) => {
    let shared = runs.get(data.flowRunId);
    if (!shared) {
      store ??= CacheStore.fromUrl(env.CAIRN_CACHE_URL || undefined, { root, source: "CAIRN_CACHE_URL" });
      const secrets = new SecretRegistry(options.secrets ?? {}, env, (message, id) =>
        publishLog(data.flowRunId, { type: "log", level: "warn", runId: data.flowRunId, ...(id ? { task: id } : {}), message, time: Date.now() }),
      );
      shared = {
        // With the run's secrets, as the coordinator's: an input that holds one enters the key by
        // a digest of it there, and the key made here must be the same (see runJob's key check).
        cache: store.then((s) => new TaskCache(s, tracker, data.experimentId, root, env, { params: data.params, loadedCode }, secrets)),
        secrets,
        // A task of the run warned of once here, as in one process, not once per job.
        largeOutputs: largeOutputs ? { limitBytes: largeOutputs.limitBytes, warned: new Set() } : null,
      };
      // The tracker's credentials reach task processes, as in one process: what those print of them is masked.
      shared.secrets.maskCredentials(tracker.childEnv?.() ?? {});
      // And the queue URL's password, which a task may come across (the worker's command line, when given as --queue).
      shared.secrets.maskCredentials(queueCredentials(url));
      const { note } = trackerEnv(env, data.tracker.uri, id);
      if (note) {
        const event: RunEvent = { type: "log", level: "warn", runId: data.flowRunId, message: note, time: Date.now() };
        tell({ type: "log", event });
        publishLog(data.flowRunId, event);
      }
      runs.set(data.flowRunId, shared);
      if (runs.size > 8) runs.delete(runs.keys().next().value!);
    }
    return shared;
  };

  /**
   * Closes the runs that workers dead under this job left RUNNING (KILLED when its flow run was
   * cancelled, else FAILED), each tagged with the worker that died, as a killed coordinator's
   * runs are; a run already closed (by the coordinator, or an earlier take of the job) is left as it is.
   */
  const closeRunsOfDead = async (runIds: readonly string[], opening: Promise<Tracker>, status: "FAILED" | "KILLED", nodeId: string) => {
    if (!runIds.length) return;
    const tracker = await opening.catch(() => undefined);
    if (!tracker) return;
    const then = status === "KILLED" ? "the flow run was cancelled before another worker took the task" : "another worker took the task to run it again";
    await closeDeadRuns(tracker, runIds, status, (worker) => `${stoppedWhileRunning(worker, nodeId)}, and ${then}.`, `worker ${id}`);
  };

  /**
   * A job this worker cannot run (its code differs here, its flow here has no such task, a secret
   * of the run has no value here, or another value) goes back to the queue for another worker, which BullMQ gives
   * it to as to any: true when it was handed back. Not when every live worker of its pool has
   * refused it and the grace period since the first refusal is over: then it fails here. Two
   * projects on one Redis whose flows share a name share its queues: a worker of the other one
   * hands the job back as a worker of an older commit does, unless its task has the same id and
   * code, which it then runs (the README says to give each its own Redis database). `holdMs`: how
   * long this worker keeps the slot the job took when an untried worker idles (see refuse).
   */
  const handBack = async (
    job: Job<JobData, SentOutcome>,
    token: string | undefined,
    progress: JobProgress,
    why: string,
  ): Promise<{ handed: boolean; stale: Required<JobProgress>["stale"]; holdMs?: number }> => {
    const now = Date.now();
    const stale = {
      since: progress.stale?.since ?? now,
      by: [...new Set([...(progress.stale?.by ?? []), id])],
      times: (progress.stale?.times ?? 0) + 1,
      why: { ...progress.stale?.why, [id]: why },
    };
    const pool = job.data.pool ?? DEFAULT_POOL;
    const live = await readWorkers(redis).catch(() => undefined);
    // Unknown (Redis did not answer): as if another could take it.
    const untried = live ? live.filter((w) => w.flow === flow.name && w.pools.includes(pool) && !stale.by.includes(w.id)) : [undefined];
    if (!untried.length && now - stale.since >= staleGraceMs) return { handed: false, stale };
    if (!token) return { handed: false, stale };
    try {
      await job.updateProgress({ ...progress, stale } as object);
      const wait = Math.min(HAND_BACK_MS * 2 ** (stale.times - 1), MAX_HAND_BACK_MS);
      await job.moveToDelayed(now + wait, token);
      const idle = untried.some((w) => w && w.running.length < w.concurrency);
      return { handed: true, stale, ...(idle ? { holdMs: wait + HAND_BACK_MS } : {}) };
    } catch {
      return { handed: false, stale }; // the job cannot go back (Redis away): it fails here, as before
    }
  };

  /**
   * Puts back in the queue, at once and not counted as an attempt, a job whose task was stopped by
   * an error its code did not raise (see runJob), for another worker; false when it cannot go back
   * (no lock token, Redis away): it then fails with the error, as before. `message`: the error's, masked.
   */
  const handBackCrashed = async (job: Job<JobData, SentOutcome>, token: string | undefined, flowRunId: string, task: string, message: string): Promise<boolean> => {
    if (!token) return false;
    const moved = await job.moveToDelayed(Date.now(), token).then(
      () => true,
      () => false,
    );
    if (!moved) return false;
    const said = `handed back to the queue for another worker: this worker stopped for an error its code did not raise (${message})`;
    tell({ type: "task", status: "handed-back", task, flowRunId, message: said });
    publishLog(flowRunId, { type: "log", level: "warn", runId: flowRunId, task, time: Date.now(), message: `Worker ${id} (on ${host}) did not finish task "${task}": ${said}.` });
    return true;
  };

  /** Jobs whose outcome this worker took from the worker that ran them (see keptOutcome): their kept outcome goes once they complete. */
  const handedOn = new Set<string>();
  /** Jobs this worker put off while another ran them (see putOff), told once each. */
  const putOffTold = new Set<string>();

  /**
   * The outcome a worker left for this job when it finished it after its lock had lapsed (see
   * keepIfLockLost), which this worker hands on as its own, as the coordinator waits for it.
   */
  const keptOutcome = async (job: Job<JobData, SentOutcome>): Promise<SentOutcome | undefined> => {
    const raw = await redis.get(keptOutcomeKey(job.id!)).catch(() => null);
    if (!raw) return undefined;
    let kept: { worker: string; outcome: SentOutcome };
    try {
      kept = JSON.parse(raw) as typeof kept;
    } catch {
      return undefined;
    }
    handedOn.add(job.id!);
    const { nodeId: task, flowRunId } = job.data;
    tell({ type: "task", status: "reused", task, flowRunId, message: `the outcome of worker ${kept.worker}, which ran it while its lock lapsed` });
    return kept.outcome;
  };

  /**
   * The live worker (this one too) that runs `data`'s task now, if one does: a job whose lock
   * lapsed while Redis did not answer (stopped, hung) is given to the next worker although its
   * first one, alive, goes on running it. Read from the heartbeat records, which name the tasks
   * each worker runs; a dead worker's record outlives it by 6 s at most, and Redis not answering
   * reads as none (the task runs, as before).
   */
  const runnerOf = async (data: JobData): Promise<string | undefined> => {
    if ([...(running.get(data.flowRunId) ?? [])].some((e) => e.task === data.nodeId)) return id;
    const live = await readWorkers(redis).catch(() => []);
    return live.find((w) => w.id !== id && w.running.some((r) => r.flowRunId === data.flowRunId && r.task === data.nodeId))?.id;
  };

  /**
   * Hands the job back to the queue for a while, as its worker `runner` still runs it: taken
   * again, its outcome is there (see keptOutcome), or its runner died and it runs. False when it
   * cannot go back (Redis away): it runs here, as before.
   */
  const putOff = async (job: Job<JobData, SentOutcome>, token: string | undefined, runner: string): Promise<boolean> => {
    if (!token) return false;
    try {
      await job.moveToDelayed(Date.now() + HEARTBEAT_MS, token);
    } catch {
      return false;
    }
    if (!putOffTold.has(job.id!)) {
      if (putOffTold.size > 1000) putOffTold.clear();
      putOffTold.add(job.id!);
      tell({ type: "task", status: "waiting", task: job.data.nodeId, flowRunId: job.data.flowRunId, message: `worker ${runner} still runs it (its lock lapsed); its outcome is taken when it ends` });
    }
    return true;
  };

  /**
   * A job whose lock lapsed while this worker ran it (Redis did not answer for longer than the
   * lock) is no longer this worker's to complete, and BullMQ drops what it returns: its outcome
   * is left in Redis instead, for the job's next taker to hand on, so that the task does not run
   * a second time. Asked of every job as it ends (one script call): the lapse is not always
   * reported before the end.
   */
  const keepIfLockLost = async (job: Job<JobData, SentOutcome>, token: string | undefined, outcome: SentOutcome): Promise<void> => {
    if (!token || (await job.extendLock(token, lockMs).catch(() => 0)) === 1) return;
    await redis.set(keptOutcomeKey(job.id!), JSON.stringify({ worker: id, outcome }), "PX", KEPT_OUTCOME_MS).catch(() => {});
    // A worker that put the job off (see putOff) takes it at once.
    await job.promote().catch(() => {});
  };

  const process_ = async (job: Job<JobData, SentOutcome>, token?: string): Promise<SentOutcome> => {
    // A job of another program or Cairn, or one altered in Redis: said here, on the worker's log,
    // and failed with an error that names what was wrong (it once failed with a TypeError only Redis showed).
    const wrong = jobDataProblems(job.data);
    if (wrong.length) {
      const error = new QueueJobDataError(job.id ?? "(no id)", job.queueName, wrong, build);
      tell({ type: "bad-job", jobId: job.id ?? "(no id)", queue: job.queueName, message: error.message });
      throw error;
    }
    // Large outputs stay in the task's run (MLflow), which the coordinator reads: not through Redis.
    unrecorded.set(job.id!, { task: job.data.nodeId, flowRunId: job.data.flowRunId });
    handling++;
    let outcome: SentOutcome;
    try {
      outcome = toSent(
        await runJob(job, token).catch((error: unknown) => {
          if (error instanceof DelayedError) unrecorded.delete(job.id!); // moved back to the queue by runJob itself
          throw error;
        }),
      );
    } finally {
      // Not counted past here: what follows only tells Redis (through BullMQ's connection, which
      // waits for it for ever), and close bounds that.
      if (!--handling) handled.emit("idle");
    }
    await keepIfLockLost(job, token, outcome);
    return outcome;
  };

  const runJob = async (job: Job<JobData, SentOutcome>, token?: string): Promise<SentOutcome> => {
    // JSON made its -0 inputs 0: the task gets them as the coordinator's key has them.
    const data = restoreNegativeZeros(job.data);
    const task = data.nodeId;
    const fail = (error: Error & { code?: string }, status: "failed" | "refused"): DispatchedOutcome => {
      tell({ type: "task", status, task, flowRunId: data.flowRunId, message: error.message });
      return { ok: false, cancelled: false, attempts: 0, error: { name: error.name, message: error.message, ...(error.code ? { code: error.code } : {}) } };
    };
    // Asked while the tracker opens: a round trip less on the way to the task.
    const cancelledRun = redis.get(cancelledKey(data.flowRunId)).catch(() => null);
    const opening = trackerFor(data.tracker.uri);
    opening.catch(() => {}); // awaited below, once the task is known to run
    const progress = (job.progress && typeof job.progress === "object" ? job.progress : {}) as JobProgress;
    const runIds = Array.isArray(progress.runIds) ? [...progress.runIds] : [];
    const mark = await cancelledRun;
    if (mark !== null) {
      // The runs of workers that died under it end first: nothing else would close them.
      await closeRunsOfDead(runIds, opening, "KILLED", task);
      tell({ type: "task", status: "cancelled", task, flowRunId: data.flowRunId });
      const stop = markedStop(mark);
      return { ok: false, cancelled: true, attempts: 0, error: stop ? { name: stop.name, message: stop.message } : { name: "CancelledError", message: new CancelledError("the flow run was cancelled").message } };
    }
    /**
     * Hands the job back for another worker (`why` says what this one lacks, `forWhom` which
     * worker could run it), or, once none took it within the grace period, fails the task with
     * the error `failWith` makes from the refusals.
     */
    const refuse = async (why: string, forWhom: string, failWith: (refused: Refusals) => Error & { code?: string }): Promise<DispatchedOutcome> => {
      const { handed, stale, holdMs } = await handBack(job, token, progress, why);
      if (!handed) return fail(failWith({ by: stale.by, waitedMs: Date.now() - stale.since, why: stale.why }), "refused");
      const said = `${why}; handed back to the queue for ${forWhom}`;
      tell({ type: "task", status: "refused", task, flowRunId: data.flowRunId, message: said });
      // Said once per job on the coordinator: its task waits, and why.
      if (!progress.stale) {
        publishLog(data.flowRunId, { type: "log", level: "warn", runId: data.flowRunId, task, time: Date.now(), message: `Worker ${id} (on ${host}, ${file}) did not run task "${task}": ${said}.` });
      }
      // A worker that has not refused the job idles: this one keeps the slot until that one has
      // taken it. Free, it would wake with that one when the job is given out again and take it
      // back as often as not, for seconds, while the other idled. (A worker with more slots
      // still has its others free: it keeps one out of the race.)
      if (holdMs) await sleep(holdMs);
      // BullMQ's way to say the job was moved (to delayed) by its processor.
      throw new DelayedError();
    };
    // Taken again after its lock lapsed (BullMQ's stalled check): its worker may be alive, and
    // have finished it, or still run it.
    if (job.stalledCounter > 0) {
      const kept = await keptOutcome(job);
      if (kept) return kept;
      const runner = await runnerOf(data);
      // BullMQ's way to say the job was moved (to delayed) by its processor.
      if (runner && (await putOff(job, token, runner))) throw new DelayedError();
    }
    // Runs that workers dead under this job left RUNNING end now, before it runs again (or is refused).
    await closeRunsOfDead(runIds, opening, "FAILED", task);
    // Before the code is compared: Cairn makes the keys and the fingerprints, so another Cairn's
    // would differ for no change of the user's code (and an old worker stored under keys it did not know).
    if (data.cairn !== build) {
      return refuse(buildMismatch(data.cairn, build), "a worker of the coordinator's Cairn", (refused) => new BuildMismatchError(task, { id, host }, data.cairn, build, refused));
    }
    const node = nodeOf(flow, data);
    if (!node) {
      return refuse(`the flow in its ${file} has no task with that id`, "a worker whose flow has it", (refused) => new UnknownQueuedTaskError(task, file, { id, host }, refused));
    }
    const tracker = await opening;
    const shared = runOf(data, tracker);
    const cache = await shared.cache;
    // Made as the coordinator made its fingerprint: from the code part of the key (which does not
    // depend on the inputs), or from the task's own source.
    const mine = data.code.full ? await cache.keyFor(node, {}, { flowRunId: data.flowRunId }).catch(() => undefined) : undefined;
    const fingerprint = codeFingerprint(node, mine);
    const differs = compareCode(data.code, fingerprint, node.task.kind);
    // The variables the task declares (.env) and those its function reads from process.env by
    // name enter its key alike: run here with other values, it would store what they give under
    // the coordinator's key, a wrong hit for every later run.
    const envDiffers = data.key && mine ? compareEnv(data.key.ingredients.env, mine.ingredients.env) : [];
    // So does its Python environment (another interpreter, another scikit-learn), for the same
    // reason, when the run's key holds one (CAIRN_PYTHON_ENV_KEY on at the coordinator).
    const environment =
      data.code.environment !== undefined && data.code.environment !== fingerprint.environment ? environmentWords(data.key?.ingredients.environment, mine?.ingredients.environment, cache.environmentKeyed) : undefined;
    if (differs.length || envDiffers.length || environment) {
      const what = differs.length ? "code" : "environment";
      // Code that differs under other export conditions is most likely the same checkout resolving another entry (src/ for dist/).
      const conditions = differs.length ? otherConditions(data.conditions) : undefined;
      const said = conditions ? `; the coordinator resolves packages with conditions [${conditions.coordinator.join(", ")}], this worker with [${conditions.worker.join(", ")}]` : "";
      const why = `its ${what} here differs (${[...differs, ...envDiffers.map((n) => `environment variable ${n}`), ...(environment ? [environment] : [])].join(", ")})${said}`;
      const kind = data.code.code !== fingerprint.code && !CAIRN_KINDS.has(node.task.kind) ? node.task.kind : undefined;
      return refuse(why, `a worker with the run's ${what}`, (refused) => new StaleCodeError(task, file, { id, host }, differs, envDiffers, refused, environment, envDiffers.filter((n) => !node.task.env.includes(n)), kind, conditions));
    }
    // The secrets the coordinator knew from the start are known here before the task starts: an
    // output that carries one is refused before anything is written (cache entry, MLflow, Redis).
    const secretNames = Array.isArray(data.secretNames) ? data.secretNames : [];
    for (const name of secretNames) {
      if (!shared.secrets.learn(name)) {
        return refuse(`it has no value for secret "${name}"`, "a worker that has one", (refused) => new SecretNotFoundError(name, task, `${id} (on ${host})`, refusedSentence(refused, id, "with a value for it")));
      }
    }
    // Known here by another value (a rotated secrets file), the run's would pass unrecognised into
    // what this worker writes (its run, the cache, the job) before the coordinator refused it.
    const otherValue = await secretDiffering(shared.secrets, secretNames, data.secretDigests, data.flowRunId);
    if (otherValue !== undefined) {
      return refuse(`its value for secret "${otherValue}" differs from the coordinator's`, "a worker with the run's value", (refused) => new SecretMismatchError(otherValue, task, { id, host }, refused));
    }

    // The job's key is checked against the one its inputs make here before anything is claimed,
    // looked up or stored under it: a job whose key is another input's (crafted, or altered in
    // Redis) would store its result there, a wrong hit for every later run of those inputs.
    for (const name of Array.isArray(data.askedSecrets) ? data.askedSecrets : []) if (typeof name === "string") shared.secrets.learnAsked(name);
    let verified: TaskKey | undefined;
    const checkKey = async (inputs: Record<string, unknown>): Promise<DispatchedOutcome | undefined> => {
      if (!data.key) return undefined;
      try {
        verified = await cache.keyFor(node, inputs, { flowRunId: data.flowRunId });
      } catch (error) {
        return fail(error as Error, "failed");
      }
      if (verified.key === data.key.key) return undefined;
      const differs = keyDifferences(data.key, verified);
      const expected = verified.key;
      return refuse(
        `the cache key its inputs make here (${expected}) is not the job's (${String(data.key.key)})${differs.length ? `: they differ in ${differs.join(", ")}` : ""}`,
        "a worker that makes the job's key",
        (refused) => new CacheKeyMismatchError(task, expected, String(data.key!.key), differs, `by worker ${id} (on ${host}); ${refusedSentence(refused, id, "that makes the job's key")}`),
      );
    };
    // Inputs in the job are at hand: checked now. Inputs left in MLflow are read only once the job
    // is not reused (below), and checked then, before the task runs.
    if (data.inputsIn === undefined) {
      const refused = await checkKey(data.inputs);
      if (refused) return refused;
    }

    const controller = new AbortController();
    const entry = { controller, task, since: Date.now() };
    let set = running.get(data.flowRunId);
    if (!set) running.set(data.flowRunId, (set = new Set()));
    set.add(entry);
    let computing: (() => Promise<void>) | undefined;
    try {
      if (data.key) {
        const key = data.key.key;
        const waited = await claimKey(redis, key, job.id!, lockMs, controller.signal, () =>
          tell({ type: "task", status: "waiting", task, flowRunId: data.flowRunId, message: "another job of its cache key runs; waiting for its result" }),
        );
        computing = release(redis, key, job.id!, lockMs);
        // Another job of the same key ran meanwhile, or lately (a second send of the task, or
        // another coordinator's run of the same flow that looked the key up before it was
        // stored): its entry is the outcome, unless the run asked for the task to run.
        const lately = !waited && !data.forceRun && (await redis.exists(computedKey(key)).catch(() => 0)) === 1;
        if ((waited || lately) && !data.forceRun) {
          const found = await cache.lookup(key, { fresh: true });
          if (found.entry) {
            tell({ type: "task", status: "reused", task, flowRunId: data.flowRunId });
            // A run this job opened itself (on a worker since presumed dead) is the task's own run, not a hit.
            const own = runIds.includes(found.entry.sourceRunId);
            return { ok: true, outputs: found.entry.outputs.values, runId: found.entry.sourceRunId, attempts: 0, ...(own ? {} : { reused: true }) };
          }
        }
      }
      // Read only now: a job refused or reused above needs none of them (they may be hundreds of MB).
      let inputs: Record<string, unknown>;
      try {
        inputs = await receivedInputs(data, tracker, { id, host });
      } catch (error) {
        return fail(error as QueueInputsUnreadableError, "failed");
      }
      if (data.inputsIn !== undefined) {
        const refused = await checkKey(inputs);
        if (refused) return refused;
      }
      tell({ type: "task", status: "started", task, flowRunId: data.flowRunId });
      let noting = Promise.resolve();
      /** Set when an error no task's code raised stopped this job's task: the job is handed back, not failed (below). */
      let notItsOwn: ProcessCrashError | undefined;
      const outcome = await runDispatchedTask(node, { ...data, inputs, runTags: { ...data.runTags, [WORKER_TAG]: id } }, {
        tracker,
        cache,
        workDir: root,
        signal: controller.signal,
        env,
        registry: shared.secrets,
        largeOutputs: shared.largeOutputs,
        ...(verified ? { key: verified } : {}),
        // One that no task's code raised (or a task's whose job here had ended): the worker stops,
        // and this job, whose code did not raise it, goes back to the queue (below).
        onCrash: (error) => {
          if (ProcessCrashError.is(error) && (error as ProcessCrashError).nodeId === undefined) {
            notItsOwn = error as ProcessCrashError;
            crashedWith(notItsOwn);
          }
        },
        emit: (event) => {
          if (event.type === "task" && event.status === "running" && event.taskRunId && !runIds.includes(event.taskRunId)) {
            runIds.push(event.taskRunId);
            const noted: JobProgress = { ...progress, runIds: [...runIds] };
            noting = noting.then(() => job.updateProgress(noted as object)).catch(() => {});
          }
          if (event.type === "log") {
            tell({ type: "log", event });
            // To the coordinator's events, as the line would be in one process (masked there, and here by the task's registry).
            publishLog(data.flowRunId, event);
          }
        },
      });
      void noting; // not waited for: the outcome does not depend on it, and a late note on a finished job is harmless
      // Stopped by an error its code did not raise: it is no failure of the task. Before the guard,
      // the process died and BullMQ gave the job to another worker; it goes back so, not counted.
      if (notItsOwn && !outcome.ok && (await handBackCrashed(job, token, data.flowRunId, task, outcome.error.message))) throw new DelayedError();
      // Said before the claim is let go (one connection keeps the order; nothing waits for the
      // answer): a job of the key that claims it next looks the entry up.
      if (outcome.ok && data.key) void redis.set(computedKey(data.key.key), "1", "PX", COMPUTED_MS).catch(() => {});
      tell(
        outcome.ok
          ? { type: "task", status: "succeeded", task, flowRunId: data.flowRunId }
          : { type: "task", status: outcome.cancelled ? "cancelled" : "failed", task, flowRunId: data.flowRunId, message: outcome.error.message },
      );
      // Which worker ran a task that failed: on a fleet where one machine lacks a package, a failure there reads as a bug otherwise.
      if (!outcome.ok && !outcome.cancelled) return { ...outcome, error: { ...outcome.error, message: `${outcome.error.message} (on worker ${id})` } };
      return outcome;
    } finally {
      set.delete(entry);
      if (!set.size) running.delete(data.flowRunId);
      await computing?.();
    }
  };

  try {
    await subscriber.subscribe(CANCEL_CHANNEL);
  } catch (cause) {
    // Redis is not there at the start: say so and let go of the connections, which would
    // otherwise go on reconnecting and keep a worker that never takes a task alive.
    redis.disconnect();
    subscriber.disconnect();
    throw queueFailure(url, "start the worker", subscriber, cause);
  }
  /** Cancels the run's tasks here, with what stopped its flow when the coordinator sent it (their runs record it). */
  const cancelRun = (flowRunId: string, stop: SentStop | undefined) => {
    for (const entry of running.get(flowRunId) ?? []) entry.controller.abort(stop ?? new CancelledError("the flow run was cancelled"));
  };
  subscriber.on("message", (_channel: string, message: string) => {
    let sent: { flowRunId?: unknown; stop?: unknown };
    try {
      sent = (JSON.parse(message) ?? {}) as typeof sent;
    } catch {
      return;
    }
    cancelRun(String(sent.flowRunId), readSentStop(sent.stop));
  });
  /**
   * A cancel is published once, and a subscriber that was reconnecting then never hears it: the
   * mark the coordinator leaves in Redis is looked up for the runs whose tasks run here, at each
   * heartbeat and as soon as the subscriber is back.
   */
  const lookForCancels = async () => {
    const ids = [...running.keys()];
    if (!ids.length) return;
    const marked = await Promise.all(ids.map((flowRunId) => redis.get(cancelledKey(flowRunId)).catch(() => null)));
    ids.forEach((flowRunId, i) => marked[i] != null && cancelRun(flowRunId, markedStop(marked[i]!)));
  };
  subscriber.on("ready", () => void lookForCancels());

  // BullMQ leaves a connection it was given open at close: these are ended here.
  const connections: Redis[] = [];
  const workers = pools.map((pool) => {
    const connection = connect(url, { blocking: true });
    connections.push(connection);
    return new BullWorker<JobData, SentOutcome>(queueName(flow.name, pool), process_, {
      connection,
      concurrency,
      lockDuration: lockMs,
      stalledInterval: stalledIntervalOf(lockMs),
      maxStalledCount: maxDeaths - 1,
    });
  });
  for (const w of workers) {
    w.on("error", () => {}); // the connection reconnects; a job's own error is its outcome
    w.on("completed", (job) => {
      unrecorded.delete(job.id!);
      if (handedOn.delete(job.id!)) void redis.del(keptOutcomeKey(job.id!)).catch(() => {});
    });
    w.on("failed", (job) => void (job && unrecorded.delete(job.id!)));
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));

  const startedAt = Date.now();
  const beat = async () => {
    const record: WorkerRecord = {
      id,
      host,
      pid: process.pid,
      flow: flow.name,
      file,
      pools,
      concurrency,
      cairn: build,
      running: [...running].flatMap(([flowRunId, set]) => [...set].map((e) => ({ task: e.task, flowRunId, since: e.since }))),
      startedAt,
      beatAt: Date.now(),
    };
    await redis.set(workerKey(id), JSON.stringify(record), "PX", HEARTBEAT_MS * 3).catch(() => {});
  };
  await beat();
  const heartbeat = setInterval(() => void Promise.all([beat(), lookForCancels()]), HEARTBEAT_MS);
  tell({ type: "ready", id, pools });

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      // Takes no more jobs from now; resolves once Redis has the ends of those it ran.
      const drained = Promise.all(workers.map((w) => w.close())).then(
        () => true,
        () => true,
      );
      // Its jobs run to their end, however long they take (preparing, then their task): only what
      // Redis is told after is bounded.
      let told = false;
      for (;;) {
        if (handling) await once(handled, "idle");
        told = await within(drained, CLEANUP_MS, false);
        if (told || !handling) break; // else a job taken before the close was handed over meanwhile
      }
      clearInterval(heartbeat);
      if (!told) {
        // Redis does not answer: the commands BullMQ and this worker wait on fail now, and it leaves.
        const left = [...unrecorded.values()];
        for (const c of [...connections, redis]) c.disconnect();
        // And what close(true) would have ended, had close() not been called first (BullMQ 5 keeps
        // the first close): each worker's own blocking connection, a copy of the one it was given,
        // which reconnected for ever, and its lock renewal's timer, which close() ends after the
        // jobs' ends are recorded; either kept the process alive.
        for (const w of workers) {
          const inner = w as unknown as { blockingConnection: { disconnect(wait: boolean): Promise<void> }; lockManager?: { close(): Promise<void> } };
          void inner.blockingConnection.disconnect(false).catch(() => {});
          void inner.lockManager?.close().catch(() => {});
        }
        const jobs = left.length
          ? `; the jobs it took of ${left.map((j) => `task "${j.task}" (flow run ${j.flowRunId})`).join(", ")} are not marked done there: their lock lapses (CAIRN_QUEUE_LOCK_MS) and they go back to the queue, or, if Redis lost them, their coordinator takes their outcome from the worker's run`
          : "";
        tell({
          type: "left-without-queue",
          message:
            `The queue at ${redactUri(url)} did not answer for ${CLEANUP_MS / 1000} s once the worker's tasks had ended: it leaves without telling it. ` +
            `Its heartbeat record (${workerKey(id)}) expires by itself within ${(HEARTBEAT_MS * 3) / 1000} s, and its claims of cache keys within CAIRN_QUEUE_LOCK_MS${jobs}.`,
        });
      } else await within(redis.del(workerKey(id)).catch(() => {}), CLEANUP_MS, undefined);
      const s = store ? await store.catch(() => undefined) : undefined;
      await s?.close().catch(() => {});
      await Promise.allSettled([...trackers.values()].map(async (t) => (await t).flush()));
      subscriber.disconnect();
      redis.disconnect();
      for (const c of connections) c.disconnect();
    })());
  // Taking no more jobs at once: its running ones end failed with the error, and are completed so.
  void crashed.then(close);
  return { id, close, crashed };
}

/** `promise`'s value, or `otherwise` once `ms` passed first; its timer does not outlive the wait. */
async function within<T>(promise: Promise<T>, ms: number, otherwise: T): Promise<T> {
  const timer = new AbortController();
  try {
    return await Promise.race([promise, sleep(ms, otherwise, { signal: timer.signal })]);
  } finally {
    timer.abort();
  }
}

/**
 * How often a worker looks for jobs whose lock lapsed (BullMQ's stalled check, run by one worker
 * of a queue at a time). A dead worker's job goes back once its lock lapsed and a check saw it:
 * checking once per lock, as before, sent it again up to twice CAIRN_QUEUE_LOCK_MS after the
 * death; a tenth of the lock keeps it within 1.1 times the lock, as the README says.
 */
function stalledIntervalOf(lockMs: number): number {
  return Math.max(1, Math.round(lockMs / 10));
}

/**
 * The node of a job: one of the flow's, or an item of one of its map or sweep nodes, made as the
 * coordinator's scheduler made it (the map's task; its inputs arrive resolved with the job).
 */
function nodeOf(flow: FlowDefinition, data: JobData): FlowNode | undefined {
  if (!data.item) return flow.nodes.find((n) => n.id === data.nodeId);
  const parent = flow.nodes.find((n) => n.id === data.item!.parent && n.map);
  return parent ? { id: data.nodeId, task: parent.task, inputs: {}, after: [], item: data.item } : undefined;
}

/** Cairn's own kinds: a task of another kind is a kind of the user's or of a package's. */
const CAIRN_KINDS = new Set(["function", "script", "shell", "notebook", "mlflow-project", "mlflow-model"]);

/**
 * What differs between the run's fingerprint of a task's code and this checkout's; empty when they
 * agree. The fingerprint's `code` is a function task's source, and for another kind its `code`
 * (what the kind puts there: its options, and for a kind from a package its version).
 */
function compareCode(theirs: CodeFingerprint, mine: CodeFingerprint, kind: string): string[] {
  const differs: string[] = [];
  if (theirs.code !== mine.code) differs.push(kind === "function" ? "its source" : `its kind's code (the \`code\` of kind ${kind})`);
  if (theirs.taskVersion !== mine.taskVersion) differs.push(`its version (${theirs.taskVersion ?? "none"} there, ${mine.taskVersion ?? "none"} here)`);
  const names = new Set([...Object.keys(theirs.codeFiles ?? {}), ...Object.keys(mine.codeFiles ?? {})]);
  for (const name of [...names].sort()) {
    const [there, here] = [theirs.codeFiles?.[name], mine.codeFiles?.[name]];
    if (there === here) continue;
    const pkg = packageOfEntry(name);
    differs.push(pkg === undefined ? `file ${name}` : `package ${pkg} (${there ?? "not imported"} in the run, ${here ?? "not imported"} here)`);
  }
  return differs;
}

/**
 * The coordinator's export conditions and this worker's, when they differ (as sets: their order
 * decides nothing); undefined when they agree or the job carries none (an older coordinator).
 */
function otherConditions(theirs: unknown): { coordinator: readonly string[]; worker: readonly string[] } | undefined {
  if (!Array.isArray(theirs) || !theirs.every((c) => typeof c === "string")) return undefined;
  const same = theirs.length === NODE_CONDITIONS.length && theirs.every((c) => NODE_CONDITIONS.includes(c));
  return same ? undefined : { coordinator: theirs, worker: NODE_CONDITIONS };
}

/**
 * What differs between the run's environment of a task (a Python's interpreter and packages) and
 * this worker's, from the run's to this one's, in words; the run's record is absent for a task
 * without a key, which is then only said to differ. `keyedHere`: CAIRN_PYTHON_ENV_KEY is on here.
 */
function environmentWords(theirs: unknown, mine: unknown, keyedHere: boolean): string {
  if (!keyedHere) return "its Python environment, which counts in the run's keys (CAIRN_PYTHON_ENV_KEY is on at the coordinator) and not in this worker's (off here)";
  const change = environmentChange(theirs, mine);
  return change ? `${change}, from the run's to this worker's` : "its Python environment";
}

/**
 * The first secret of `names` whose value here differs from the coordinator's, by the digests the
 * job carries (SecretRegistry.digest, salted with the flow run's id); undefined when all agree. A
 * job of a coordinator older than the digests carries none: nothing to compare.
 */
async function secretDiffering(secrets: SecretRegistry, names: readonly string[], theirs: unknown, flowRunId: string): Promise<string | undefined> {
  if (!theirs || typeof theirs !== "object") return undefined;
  for (const name of names) {
    const digest = (theirs as Record<string, unknown>)[name];
    if (typeof digest === "string" && (await secrets.digest(name, flowRunId)) !== digest) return name;
  }
  return undefined;
}

/** The names of the keyed environment variables (declared or read by name) whose values (hashed in the key) differ here from the coordinator's. */
function compareEnv(theirs: Readonly<Record<string, string | null>>, mine: Readonly<Record<string, string | null>>): string[] {
  const names = new Set([...Object.keys(theirs), ...Object.keys(mine)]);
  return [...names].sort().filter((name) => theirs[name] !== mine[name]);
}

/**
 * Takes the right to compute `cacheKey` among workers, waiting while another job holds it;
 * true when it waited (that job's entry is then in the cache, unless it failed).
 */
async function claimKey(redis: Redis, cacheKey: string, owner: string, lockMs: number, signal: AbortSignal, onWait: () => void): Promise<boolean> {
  const key = computingKey(cacheKey);
  let waited = false;
  for (;;) {
    // Redis not answering: the task runs; the coordinator's lease still guards the key.
    const got = await redis.set(key, owner, "PX", lockMs, "NX").catch(() => "OK");
    if (got === "OK") return waited;
    if ((await redis.get(key).catch(() => null)) === owner) return waited; // this job's own claim, from a worker that died
    if (signal.aborted) return waited;
    if (!waited) onWait();
    waited = true;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Renews a claim while its task runs; the function returned lets it go. */
function release(redis: Redis, cacheKey: string, owner: string, lockMs: number): () => Promise<void> {
  const key = computingKey(cacheKey);
  const renew = setInterval(() => void redis.pexpire(key, lockMs).catch(() => {}), lockMs / 3);
  return async () => {
    clearInterval(renew);
    if ((await redis.get(key).catch(() => null)) === owner) await redis.del(key).catch(() => {});
  };
}

/**
 * The environment the worker opens the flow run's tracker (`uri`, sent without credentials) with.
 * Its own MLFLOW_TRACKING_URI, when it names the same server, keeps its credentials: as it is
 * when only the credentials differ, else they go on as MLFLOW_TRACKING_USERNAME/PASSWORD (unless
 * those are set) when the host is the same. A worker whose URI names another host records to
 * the run's server without them, and `note` says so.
 */
function trackerEnv(env: NodeJS.ProcessEnv, uri: string, worker: string): { env: NodeJS.ProcessEnv; note?: string } {
  const sent = { ...env, MLFLOW_TRACKING_URI: uri };
  const own = env.MLFLOW_TRACKING_URI?.trim();
  if (!own) return { env: sent };
  let mine: URL;
  let theirs: URL;
  try {
    mine = new URL(own);
    theirs = new URL(uri);
  } catch {
    return { env: sent }; // not URLs (a local store's path): the run's URI as it came
  }
  const bare = (u: URL) => `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`;
  if (bare(mine) === uri) return { env };
  if (mine.host.toLowerCase() === theirs.host.toLowerCase()) {
    const decode = (part: string) => {
      try {
        return decodeURIComponent(part);
      } catch {
        return part;
      }
    };
    return {
      env: {
        ...sent,
        ...(mine.username && !env.MLFLOW_TRACKING_USERNAME ? { MLFLOW_TRACKING_USERNAME: decode(mine.username) } : {}),
        ...(mine.password && !env.MLFLOW_TRACKING_PASSWORD ? { MLFLOW_TRACKING_PASSWORD: decode(mine.password) } : {}),
      },
    };
  }
  return {
    env: sent,
    note:
      `The MLFLOW_TRACKING_URI of worker ${worker} names another server (${bare(mine)}) than the flow run records to (${uri}): its task runs go to the flow run's server` +
      `${mine.username || mine.password ? ", without the credentials in the worker's URI (they are sent only to the host they name)" : ""}. ` +
      `Give the worker the coordinator's MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_USERNAME/PASSWORD if the server asks for them).`,
  };
}

/** What stopped a flow run, from its cancel mark in Redis: a SentStop, or undefined ("1", the mark of a coordinator that sent none). */
function markedStop(mark: string): SentStop | undefined {
  try {
    return readSentStop(JSON.parse(mark));
  } catch {
    return undefined;
  }
}
