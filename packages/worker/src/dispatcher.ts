/**
 * The coordinator's side of a queue (`cairn run --queue URL`, `run({ dispatcher })`): each task
 * that missed the cache becomes one BullMQ job on its pool's queue, and its outcome comes back as
 * the job's return value. The graph is never modelled in BullMQ (a job has one parent; a DAG
 * needs many): the scheduler stays in this process, and a job is sent only once its inputs are
 * ready. A cancel is published to every worker and marks the run cancelled in Redis; a job whose
 * workers died under it too often fails as a poison task, and the task runs its dead attempts
 * left RUNNING are closed, saying why (also when the run is cancelled before another worker takes
 * the job again). A job is removed once its outcome is here: task outputs do not stay in Redis; nor do large
 * inputs stay in the flow run, where they went instead of the job (inputs-by-reference.ts).
 */
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { Job, Queue, QueueEvents } from "bullmq";
import type { Redis } from "ioredis";
import { parseOwner } from "@cairn/cache";
import {
  ATTEMPTS_TAG,
  CancelledError,
  cairnBuild,
  type DispatchedOutcome,
  type DispatchedTask,
  ERROR_MESSAGE_TAG,
  ERROR_NAME_TAG,
  type LogEvent,
  NODE_CONDITIONS,
  type OwnedDispatcher,
  readSentStop,
  redactUri,
  type RunRecord,
  type SentStop,
  STATUS_TAG,
  shellQuote,
  type Tracker,
  WORKER_TAG,
} from "@cairn/core";
import { PoisonTaskError, QueueInputsTooLargeError, QueueJobLostError, QueueNeedsSharedTrackerError, QueueUnreachableError } from "./errors.ts";
import { CANCEL_CHANNEL, cancelledKey, checkQueueUrl, connect, DEFAULT_POOL, integerFromEnv, jobId, logChannel, queueCredentials, queueFailure, queueName, whyUnreachable } from "./queue-names.ts";
import { type JobData, type JobProgress, STALLED_REASON, withNegativeZerosNoted } from "./job.ts";
import { closeDeadRuns, poisonTags, stoppedWhileRunning } from "./dead-runs.ts";
import { fromSent, readOutputs, type SentOutcome } from "./outputs-by-reference.ts";
import { dropInputs, sendInputs } from "./inputs-by-reference.ts";
import { readWorkers } from "./workers-list.ts";

/** How often a waiting coordinator checks that Redis still has the job it waits on. */
const JOB_CHECK_MS = 5_000;

/**
 * How long a worker's heartbeat record lives (three of its beats, worker.ts): after Redis comes
 * back, a live worker may not have written its record again for this long.
 */
const WORKER_RECORD_MS = 6_000;

/** How long a cancel waits on a running task's worker in silence before it says what it waits for. */
const CANCEL_QUIET_MS = 2_000;
/** A ping unanswered this long is Redis not answering (it answers in well under a millisecond). */
const SILENCE_MS = 2_000;
/** A job sent again this soon after Redis answers again is taken to be one whose lock lapsed while Redis was silent. */
const LATELY_MS = 10_000;

/**
 * Events kept in a queue's stream (BullMQ keeps 10 000): each `completed` event holds a task's
 * outputs. The coordinator reads the stream as events come; one that fell behind (Redis away
 * for a while) reads a finished job's outcome from the job itself (see run).
 */
const EVENTS_MAX_LEN = 1_000;

/** Settings of {@link queueDispatcher}. */
export interface QueueDispatcherOptions {
  /**
   * How long Redis may stay unreachable while tasks wait on it before they fail with
   * QueueUnreachableError (what already finished stays in the cache).
   * @default 30000, or CAIRN_QUEUE_DOWN_MS
   */
  downMs?: number;
  /** The flow's file, as the coordinator was given it (`cairn run FILE`): named in the command that starts a worker, when none takes a task's pool. */
  flowFile?: string;
}

/** A dispatcher on a Redis queue; `close()` when the run is over. */
export type QueueDispatcher = OwnedDispatcher;

/**
 * Sends each task of a flow run that misses the cache to `url`'s queues, for `cairn worker`
 * processes to run.
 * @example
 * const dispatcher = queueDispatcher("redis://queue-host:6379");
 * try { await myFlow.run({ dispatcher }).outputs(); } finally { await dispatcher.close(); }
 */
export function queueDispatcher(url: string, options: QueueDispatcherOptions = {}): QueueDispatcher {
  return new RedisQueueDispatcher(checkQueueUrl(url), options.downMs ?? integerFromEnv(process.env, "CAIRN_QUEUE_DOWN_MS", 30_000), options.flowFile);
}

class RedisQueueDispatcher implements QueueDispatcher {
  private readonly redis: Redis;
  private readonly queues = new Map<string, Promise<{ queue: Queue; events: QueueEvents }>>();
  /** BullMQ leaves a connection it was given open at close: these are ended here. */
  private readonly connections: Redis[] = [];
  private tracker: Tracker | undefined;
  /** Flow runs whose cancel was published. */
  private readonly cancelled = new Set<string>();
  /** Waits to end when Redis stays down (see downMs). */
  private readonly waiting = new Set<(error: QueueUnreachableError) => void>();
  private downSince: number | undefined;
  /**
   * When the oldest ping still unanswered was sent: a stopped or hung redis-server keeps its
   * connection "ready" and answers nothing, which the connection's status never shows.
   */
  private unansweredSince: number | undefined;
  private pinging = false;
  /** The last time Redis did not answer for {@link SILENCE_MS} or longer, once it answered again. */
  private silence: { from: number; to: number } | undefined;
  /** Reads the log lines workers publish, one channel per flow run (see logChannel). */
  private logs: Redis | undefined;
  private readonly logDoors = new Map<string, (event: LogEvent) => void>();
  private readonly watch: NodeJS.Timeout;
  /** Queues whose workers were looked for (see checkServed). */
  private readonly served = new Set<string>();
  /** When Redis last came back after a disconnect (see checkServed). */
  private reconnectedAt: number | undefined;
  /** Jobs waited on, by id: told when BullMQ gives the job of a dead worker to another. */
  private readonly stalls = new Map<string, () => void>();
  /**
   * The ends awaited, by job id: told by one listener per queue's events (see queueOf), not by
   * BullMQ's waitUntilFinished, which adds a `closing` listener on the queue per job in flight
   * (nothing in BullMQ 5 emits it on a Queue) and warned of a leak past 10 jobs
   * (MaxListenersExceededWarning), though `--concurrency` is meant to match the workers' slots.
   */
  private readonly ends = new Map<string, { completed: (sent: SentOutcome) => void; failed: (error: Error) => void }>();
  /** Removals of finished jobs under way: close() waits for them. */
  private readonly removing = new Set<Promise<unknown>>();

  constructor(
    private readonly url: string,
    private readonly downMs: number,
    private readonly flowFile?: string,
  ) {
    this.redis = connect(url);
    let connected = false;
    this.redis.on("ready", () => {
      if (connected) this.reconnectedAt = performance.now();
      connected = true;
    });
    this.watch = setInterval(() => this.checkDown(), 500);
    this.watch.unref();
  }

  /** The queue URL's password: the run masks it (a task on a worker may come across it). */
  credentials(): Record<string, string> {
    return queueCredentials(this.url);
  }

  async open(run: { flowName: string; tracker: Tracker }): Promise<void> {
    const { capabilities } = run.tracker;
    if (!capabilities.sharedRuns || !capabilities.remote) throw new QueueNeedsSharedTrackerError(run.flowName, run.tracker);
    this.tracker = run.tracker;
    try {
      await this.redis.ping();
    } catch (cause) {
      throw queueFailure(this.url, "open the queue", this.redis, cause, { inRun: true });
    }
  }

  async run(task: DispatchedTask, signal: AbortSignal, log: (event: LogEvent) => void): Promise<DispatchedOutcome> {
    const { node: _node, ...data } = task;
    await this.listen(task.flowRunId, log);
    const id = jobId(task.flowRunId, task.nodeId);
    let queue: Queue;
    // The coordinator's Cairn, as the run's env names it (CAIRN_TEST_BUILD): a worker of another refuses the job before it runs anything.
    // And the conditions it resolves packages with: a worker started with others has other code for a task that imports a package exporting by them.
    const noted = withNegativeZerosNoted({ ...data, cairn: data.cairn ?? cairnBuild().id, conditions: NODE_CONDITIONS } satisfies JobData);
    // Large inputs go to the flow run in MLflow, and only their place through Redis (inputs-by-reference.ts).
    const sent = await sendInputs(noted, this.tracker).catch((cause: unknown) => {
      if (tooLarge(cause)) throw new QueueInputsTooLargeError(task.nodeId, this.url, { cause });
      throw cause;
    });
    try {
      const opened = await this.queueOf(queueName(task.flowName, task.pool));
      queue = opened.queue;
      await opened.queue.add(task.nodeId, sent, {
        jobId: id,
        attempts: 1, // the task's own retries run in the worker; a job is sent again only when its worker dies
        // Removed as soon as its outcome is here (settle); this clears the jobs of a coordinator that died.
        removeOnComplete: { age: 300 },
        removeOnFail: { age: 24 * 3600 },
      });
    } catch (cause) {
      // No job will read them.
      await dropInputs(sent, this.tracker);
      // Said for what it is: a job too large for Redis read as a Redis that did not answer.
      if (tooLarge(cause)) throw new QueueInputsTooLargeError(task.nodeId, this.url, { cause, carriesSecret: Boolean(sent.inputsCarrySecret) });
      throw new QueueUnreachableError(this.url, `send task "${task.nodeId}"`, { cause, inRun: true });
    }
    /** `runId`: the run a worker opened for the task, which the flow run then shows instead of making one of its own. */
    const stopped = readSentStop(signal.reason);
    const cancelled = (runId?: string): DispatchedOutcome => ({
      ok: false,
      cancelled: true,
      attempts: 0,
      ...(runId ? { runId } : {}),
      error: stopped ? { name: stopped.name, message: stopped.message } : { name: "CancelledError", message: new CancelledError(signal.reason).message },
    });
    return new Promise<DispatchedOutcome>((resolve, reject) => {
      /** Its outcome came, and its outputs are being read (see finished). */
      let reading = false;
      /**
       * Redis away for longer than downMs: the run a worker opened for the task, when there is one,
       * says how it ended, and is the task's run, as for a lost job (jobLost). A worker may well
       * have finished the task meanwhile: failed here with a run of its own, it had two runs, the
       * worker's FINISHED beside a FAILED one. An outcome that came is not lost to Redis going away
       * while its outputs are read from MLflow.
       */
      const down = (error: QueueUnreachableError) => {
        if (done || reading || losing) return;
        losing = true;
        void this.jobLost(task, signal.aborted ? cancelled : undefined, error).then((outcome) => settle(() => resolve(outcome), false));
      };
      let done = false;
      let lookForJob: NodeJS.Timeout | undefined;
      /** The job was found gone: the run its worker opened is being looked up. */
      let losing = false;
      /**
       * `then` once; `remove`: the outcome is here, and the job (its inputs, its outputs) leaves
       * Redis. `ended`: no worker can take the job any more (removed, or finished), so its inputs'
       * file goes too; one that may still be in Redis (Redis away, the job not found) keeps it,
       * or a worker taking it later finds no inputs.
       */
      const settle = (then: () => void, remove = true, ended = remove) => {
        if (done) return;
        done = true;
        clearInterval(lookForJob);
        this.waiting.delete(down);
        this.stalls.delete(id);
        this.ends.delete(id);
        signal.removeEventListener("abort", onAbort);
        // A job a worker still holds (a cancel it did not answer) stays, and goes with removeOnComplete.
        const removals = [...(remove ? [queue.remove(id).catch(() => {})] : []), ...(ended && sent.inputsIn ? [dropInputs(sent, this.tracker)] : [])];
        for (const removal of removals) {
          this.removing.add(removal);
          void removal.finally(() => this.removing.delete(removal));
        }
        then();
      };
      /** The job's return value, its outputs read from their run when they were too large for Redis (outputs-by-reference.ts). */
      const finished = (sent: SentOutcome) => {
        if (done || reading) return;
        reading = true;
        void fromSent(sent, this.tracker, task.nodeId).then((outcome) => settle(() => resolve(outcome)));
      };
      /** Its job failed in BullMQ, told once (its event, or the job read first). */
      let failing = false;
      const failedJob = (error: Error) => {
        if (done || reading || failing) return;
        failing = true;
        void this.failed(task, id, error).then((outcome) => settle(() => resolve(outcome)), (e: Error) => settle(() => reject(e), false, true));
      };
      /**
       * Redis no longer has the job (restarted without its data, flushed): the run its worker
       * made, when there is one, says how the task ended, and is the task's run (jobLost).
       */
      const lost = () => {
        if (losing || done) return;
        losing = true;
        void this.jobLost(task, signal.aborted ? cancelled : undefined).then((outcome) => settle(() => resolve(outcome), false));
      };
      /** A job found finished: its outcome, as if its end had been read from the events stream. */
      const ended = (found: Job) => (found.failedReason ? failedJob(new Error(found.failedReason)) : finished(found.returnvalue as SentOutcome));
      const onAbort = () => {
        void this.cancel(task.flowRunId, readSentStop(signal.reason)).then(async () => {
          // A job no worker holds (not taken yet, or its worker died and its lock lapsed) is taken
          // back, and the runs its dead workers left RUNNING are closed: no worker will. One a
          // worker runs ends there, and says so; a worker that died with it may never say, and its
          // lock lapses within CAIRN_QUEUE_LOCK_MS: asked again each second, for downMs at most.
          const end = performance.now() + this.downMs;
          let told = false;
          while (!done && !reading && !losing) {
            // Unread (Redis did not answer) is not gone: asked again.
            const read = await Job.fromId(queue, id).then((job) => ({ job }), () => undefined);
            const held = read?.job;
            if (read && !held) return lost();
            // One that ended before the cancel (its end not read yet) is what it did: removing it would call a failed or succeeded task cancelled.
            if (held?.finishedOn) return ended(held);
            if (await queue.remove(id).then((n) => n === 1, () => false)) {
              await this.closeDeadRuns(runIdsOf(held), "KILLED", (worker) => `${stoppedWhileRunning(worker, task.nodeId)}, and the flow run was cancelled before another worker took the task.`);
              return settle(() => resolve(cancelled(runIdsOf(held).at(-1))));
            }
            // The run a worker opened is the task's, also when Redis could not say which it is.
            if (performance.now() >= end) {
              const runId = runIdsOf(held).at(-1) ?? (await this.workerRunOf(task))?.runId;
              return settle(() => resolve(cancelled(runId)));
            }
            // A worker that answers stops its task within a second or two: past that, the wait is said, or Ctrl-C looks stuck.
            if (!told && performance.now() >= end - this.downMs + CANCEL_QUIET_MS) {
              told = true;
              log(
                warning(
                  task,
                  `Cancelling: the worker running task "${task.nodeId}" has not stopped yet; waiting for it to, or for its lock to lapse if it died (CAIRN_QUEUE_LOCK_MS), ` +
                    `${Math.ceil((end - performance.now()) / 1000)} s more at most (CAIRN_QUEUE_DOWN_MS).`,
                ),
              );
            }
            await sleep(1000, undefined, { ref: false });
          }
        });
      };
      this.waiting.add(down);
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      this.stalls.set(id, () => void this.sentAgain(task, queue, id, log));
      // A Redis that comes back without its data has lost the job: its end would never come.
      // Looked for only while Redis answers (its absence is checkDown's).
      lookForJob = setInterval(() => {
        if (this.redis.status !== "ready") return;
        void Job.fromId(queue, id).then(
          (found) => {
            if (done || reading) return;
            if (!found) return lost();
            // Its end was trimmed from the events stream before this process read it (see EVENTS_MAX_LEN).
            if (found.finishedOn) return ended(found);
            // Not right after a reconnect: the workers' records may have gone with Redis's data.
            if (this.reconnectedAt === undefined || performance.now() - this.reconnectedAt >= WORKER_RECORD_MS) void this.checkServed(task, log, () => !done);
          },
          () => {},
        );
      }, JOB_CHECK_MS);
      lookForJob.unref();
      this.ends.set(id, { completed: finished, failed: failedJob });
      // An end that came before it was listened for (a worker quicker than add's answer) is read from the job.
      void Job.fromId(queue, id).then((found) => void (found?.finishedOn && ended(found)), () => {});
    });
  }

  async close(): Promise<void> {
    clearInterval(this.watch);
    await Promise.allSettled([...this.removing]);
    const opened = await Promise.allSettled(this.queues.values());
    await Promise.allSettled(opened.flatMap((o) => (o.status === "fulfilled" ? [o.value.events.close(), o.value.queue.close()] : [])));
    for (const c of this.connections) c.disconnect();
    this.logs?.disconnect();
    this.redis.disconnect();
  }

  /** A job that failed in BullMQ (not a task that failed: that is a result): its workers died, or it was taken back. */
  private async failed(task: DispatchedTask, id: string, error: Error): Promise<DispatchedOutcome> {
    const message = error.message;
    const queue = (await this.queueOf(queueName(task.flowName, task.pool))).queue;
    const job = await Job.fromId(queue, id).catch(() => undefined);
    const runIds = runIdsOf(job);
    const poison = message.includes(STALLED_REASON) ? new PoisonTaskError(task.nodeId, job?.stalledCounter || runIds.length, message) : undefined;
    // The runs its dead workers left RUNNING end now: none stays RUNNING for ever. A poison task's
    // carry its error, as a failed run's: plan then says the key failed, not that it was interrupted.
    await this.closeDeadRuns(
      runIds,
      "FAILED",
      (worker) =>
        poison
          ? `${stoppedWhileRunning(worker, task.nodeId)}, and the task was given up as a poison task (PoisonTaskError).`
          : `Its worker${worker} failed the job of task "${task.nodeId}" without closing this run: ${message}`,
      poison ? poisonTags(poison) : {},
    );
    const runId = runIds.at(-1);
    if (poison) {
      return { ok: false, cancelled: false, attempts: runIds.length, ...(runId ? { runId } : {}), error: { name: poison.name, message: poison.message, code: poison.code } };
    }
    return { ok: false, cancelled: false, attempts: runIds.length, ...(runId ? { runId } : {}), error: { name: "Error", message } };
  }

  /**
   * The outcome of a task whose job Redis lost, from the run a worker opened for it: its id went
   * with the job, so it is looked up by its tags. The flow run shows that run rather than making
   * a second one. A run that finished is the task's result: succeeded with the outputs it
   * recorded, failed with its error. Else the task fails with QueueJobLostError (`unreachable`
   * instead, when Redis is away rather than without the job), or, when the flow is being
   * cancelled (`cancelledAs`), is cancelled: a worker still running it stops on the cancel it
   * was sent, and closes its run.
   */
  private async jobLost(task: DispatchedTask, cancelledAs?: (runId?: string) => DispatchedOutcome, unreachable?: QueueUnreachableError): Promise<DispatchedOutcome> {
    const run = await this.workerRunOf(task);
    const runId = run?.runId;
    const attempts = Number(run?.tags[ATTEMPTS_TAG]) || (run ? 1 : 0);
    const lost = (unread?: unknown): DispatchedOutcome => {
      const error = unreachable ?? new QueueJobLostError(this.url, task.nodeId, runId && unread !== undefined ? { runId, unread } : undefined);
      return { ok: false, cancelled: false, attempts, ...(runId ? { runId } : {}), error: { name: error.name, message: error.message, code: error.code } };
    };
    if (run?.status === "FINISHED" && run.tags[STATUS_TAG] === "succeeded") {
      return readOutputs(this.tracker, run.runId).then(
        (outputs): DispatchedOutcome => ({ ok: true, outputs, runId: run.runId, attempts }),
        (cause: unknown) => lost(cause),
      );
    }
    const [name, message] = [run?.tags[ERROR_NAME_TAG], run?.tags[ERROR_MESSAGE_TAG]];
    if (run?.status === "FAILED" && name && message !== undefined) return { ok: false, cancelled: false, attempts, runId: run.runId, error: { name, message } };
    return cancelledAs ? cancelledAs(runId) : lost();
  }

  /** The newest run a worker opened for `task` in its flow run (tagged `cairn.worker`, a child of the flow run or of its map's run); undefined when none or unknown. */
  private async workerRunOf(task: DispatchedTask): Promise<RunRecord | undefined> {
    if (!this.tracker) return undefined;
    const runs = await this.tracker
      .searchRuns({ experimentIds: [task.experimentId], parentRunId: task.item?.parentRunId ?? task.flowRunId, tags: { "cairn.node_id": task.nodeId }, maxResults: 20 })
      .catch(() => []);
    return runs.filter((r) => r.tags[WORKER_TAG]).sort((a, b) => b.startTime - a.startTime)[0];
  }

  /** {@link closeDeadRuns} with this process's tracker, closed by the coordinator. */
  private async closeDeadRuns(runIds: readonly string[], status: "FAILED" | "KILLED", why: (worker: string) => string, tags?: Readonly<Record<string, string>>): Promise<void> {
    if (!this.tracker || !runIds.length) return;
    await closeDeadRuns(this.tracker, runIds, status, why, `the coordinator (pid ${process.pid} on ${hostname()})`, tags);
  }

  /**
   * BullMQ gave the job of a worker that stopped answering to the queue again: said on the task,
   * which would otherwise only take longer. Not said of a job that is given up instead (its
   * workers died too often): its PoisonTaskError says it.
   */
  private async sentAgain(task: DispatchedTask, queue: Queue, id: string, log: (event: LogEvent) => void): Promise<void> {
    // Asked before the reads below, which a Redis that answers again makes quick.
    const silent = this.silentLately();
    const job = await Job.fromId(queue, id).catch(() => undefined);
    if (!job || job.deferredFailure || !this.stalls.has(id)) return;
    const runId = runIdsOf(job).at(-1);
    const run = runId && this.tracker ? await this.tracker.getRun(runId).catch(() => undefined) : undefined;
    const worker = describeOwner(run?.tags["cairn.owner"]);
    log(
      warning(
        task,
        silent
          ? // The worker could not renew its lock through a Redis that did not answer: it is not known dead.
            `The lock of the worker running task "${task.nodeId}"${worker} lapsed while the queue's Redis (${redactUri(this.url)}) did not answer for ${Math.round(silent / 1000)} s (stopped, hung or overloaded), ` +
            `so the worker could not renew it; it may well be alive: task "${task.nodeId}" is sent again, and the next worker that takes it waits while that worker's heartbeat says it runs the task, then takes its outcome (or runs it, if the worker died).`
          : `The worker running task "${task.nodeId}"${worker} stopped answering for longer than its lock (CAIRN_QUEUE_LOCK_MS), killed or crashed: ` +
            `task "${task.nodeId}" is sent again, to the next worker that takes it.`,
      ),
    );
  }

  /** How long (ms) Redis did not answer, when it does not now or did not until lately; undefined when it answered throughout. */
  private silentLately(): number | undefined {
    const now = performance.now();
    if (this.unansweredSince !== undefined && now - this.unansweredSince >= SILENCE_MS) return now - this.unansweredSince;
    if (this.silence && now - this.silence.to <= LATELY_MS) return this.silence.to - this.silence.from;
    return undefined;
  }

  /** Pings Redis, one ping at a time: {@link unansweredSince} holds while one goes unanswered. */
  private probe(): void {
    if (this.pinging || this.redis.status !== "ready") return;
    this.pinging = true;
    this.unansweredSince ??= performance.now();
    void this.redis
      .ping()
      .then(
        () => {
          const since = this.unansweredSince;
          if (since !== undefined && performance.now() - since >= SILENCE_MS) this.silence = { from: since, to: performance.now() };
          this.unansweredSince = undefined;
        },
        () => {}, // the connection dropped: its status says so (see checkDown)
      )
      .finally(() => (this.pinging = false));
  }

  /**
   * Once per queue, for a task still waiting after its first check: warns when no live worker of
   * the flow takes its pool, so that a run does not wait in silence for a worker never started.
   */
  private async checkServed(task: DispatchedTask, log: (event: LogEvent) => void, waits: () => boolean): Promise<void> {
    const name = queueName(task.flowName, task.pool);
    if (this.served.has(name)) return;
    this.served.add(name);
    const workers = await readWorkers(this.redis).catch(() => undefined);
    // Asked again at the next check; a task that ended meanwhile (failed, its job lost) waits for nothing.
    if (!workers || !waits()) return void this.served.delete(name);
    const pool = task.pool ?? DEFAULT_POOL;
    const ofFlow = workers.filter((w) => w.flow === task.flowName);
    if (ofFlow.some((w) => w.pools.includes(pool))) return;
    const pools = [...new Set(ofFlow.flatMap((w) => w.pools))].map((p) => `"${p}"`);
    // The run's own file and queue when known (an app's run does not say which file its flow is in).
    const url = shellQuote(redactUri(this.url));
    const start = `cairn worker ${this.flowFile ? shellQuote(this.flowFile) : "FLOW_FILE"} --queue ${url}${pool === DEFAULT_POOL ? "" : ` --pool ${pool}`}`;
    log(
      warning(
        task,
        `No live worker takes pool "${pool}" of flow "${task.flowName}" (${pools.length ? `its workers take ${pools.join(", ")}` : "the flow has no live worker"}): ` +
          `task "${task.nodeId}" waits in the queue until one does. Start one with \`${start}\`; \`cairn workers --queue ${url}\` lists the live ones.`,
      ),
    );
  }

  /** Passes the log lines workers publish for `flowRunId` to `log`, from before its first task is sent. */
  private async listen(flowRunId: string, log: (event: LogEvent) => void): Promise<void> {
    if (this.logDoors.has(flowRunId)) return;
    this.logDoors.set(flowRunId, log);
    if (!this.logs) {
      this.logs = connect(this.url);
      this.logs.on("message", (channel: string, message: string) => {
        const door = this.logDoors.get(channel.slice(logChannel("").length));
        if (!door) return;
        try {
          const event = JSON.parse(message) as LogEvent;
          if (event.type === "log") door(event);
        } catch {
          // not a log line of ours
        }
      });
    }
    // Log lines are a courtesy: a task runs whether or not they can be read.
    await this.logs.subscribe(logChannel(flowRunId)).catch(() => {});
  }

  /**
   * Marks the run cancelled (for workers that take its jobs later) and tells the workers running
   * its tasks; once per run. Both carry what stopped it (`stop`, masked by the run): a task
   * cancelled there records it, as in one process.
   */
  private async cancel(flowRunId: string, stop: SentStop | undefined): Promise<void> {
    if (this.cancelled.has(flowRunId)) return;
    this.cancelled.add(flowRunId);
    await this.redis.set(cancelledKey(flowRunId), stop ? JSON.stringify(stop) : "1", "PX", 24 * 3600_000).catch(() => {});
    await this.redis.publish(CANCEL_CHANNEL, JSON.stringify({ flowRunId, ...(stop ? { stop } : {}) })).catch(() => {});
  }

  private queueOf(name: string): Promise<{ queue: Queue; events: QueueEvents }> {
    let opened = this.queues.get(name);
    if (!opened) {
      opened = (async () => {
        const commands = connect(this.url);
        const blocking = connect(this.url, { blocking: true });
        this.connections.push(commands, blocking);
        const queue = new Queue(name, { connection: commands, streams: { events: { maxLen: EVENTS_MAX_LEN } } });
        const events = new QueueEvents(name, { connection: blocking });
        queue.on("error", () => {});
        events.on("error", () => {});
        events.on("stalled", ({ jobId }) => this.stalls.get(jobId)?.());
        events.on("completed", ({ jobId, returnvalue }) => this.ends.get(jobId)?.completed(returnvalue as unknown as SentOutcome));
        events.on("failed", ({ jobId, failedReason }) => this.ends.get(jobId)?.failed(new Error(failedReason)));
        // Listening before the first job is sent: its end is not missed.
        await events.waitUntilReady();
        return { queue, events };
      })();
      opened.catch(() => this.queues.delete(name));
      this.queues.set(name, opened);
    }
    return opened;
  }

  /**
   * Redis down, or connected but silent (stopped, hung), for longer than downMs: every wait ends
   * with QueueUnreachableError.
   */
  private checkDown(): void {
    if (!this.waiting.size) {
      this.downSince = undefined;
      return;
    }
    this.probe();
    if (this.redis.status === "ready" || this.redis.status === "wait") this.downSince = undefined;
    else this.downSince ??= performance.now();
    const since = Math.min(this.downSince ?? Infinity, this.unansweredSince ?? Infinity);
    const now = performance.now();
    if (now - since < this.downMs) return;
    const cause = this.downSince === since ? `unreachable for ${Math.round((now - since) / 1000)} s` : `connected, but no answer for ${Math.round((now - since) / 1000)} s: the server is stopped or hung`;
    const error = new QueueUnreachableError(this.url, "wait for the tasks running on workers", { cause, inRun: true });
    for (const fail of [...this.waiting]) fail(error);
  }
}

/**
 * A job Redis refused for its size (over its proto-max-bulk-len, which it answers with a protocol
 * error), or whose JSON was longer than Node's longest string.
 */
function tooLarge(error: unknown): boolean {
  const message = error instanceof Error ? error.message : "";
  return /invalid bulk length/i.test(message) || (error instanceof RangeError && /invalid string length/i.test(message));
}

/** The task runs a job's workers opened (JobProgress.runIds), oldest first. */
function runIdsOf(job: Job | undefined): string[] {
  const progress = (job?.progress ?? {}) as JobProgress;
  return Array.isArray(progress.runIds) ? progress.runIds.filter((r): r is string => typeof r === "string") : [];
}

/** ` (pid 123 on host-a)`, from a run's `cairn.owner` tag; empty when it has none. */
function describeOwner(tag: string | undefined): string {
  const owner = parseOwner(tag);
  return owner ? ` (pid ${owner.pid} on ${owner.host})` : "";
}

/** A warning on `task`'s line of its flow run. */
function warning(task: DispatchedTask, message: string): LogEvent {
  return { type: "log", level: "warn", runId: task.flowRunId, task: task.nodeId, time: Date.now(), message };
}
