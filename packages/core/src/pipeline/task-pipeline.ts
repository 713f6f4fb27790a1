/**
 * The task pipeline of one flow run, as the scheduler uses it: what every task's stages share
 * (the run's context, where runs are recorded, the cache, the leases held, the hits being
 * recorded, the attempts abandoned), and its stages for one task: `lookup` (lookup.ts) before
 * the task takes a slot, `run` (run-task.ts) once it has one, `release` after. A worker
 * process that runs one task needs only runTask and a PipelineScope.
 */
import { setMaxListeners } from "node:events";
import { storeDownWarning, type TaskCache } from "../caching/task-cache.ts";
import { placeNode, type RunEvent } from "../run/events.ts";
import type { SecretRegistry } from "../run/secrets.ts";
import type { RunRecord, Tracker } from "../tracking/tracker.ts";
import { AbandonedAttempts } from "./abandoned.ts";
import { rejectOnAbort } from "./attempts.ts";
import type { TaskInterceptor } from "./intercept.ts";
import { type LargeOutputs, largeOutputsFromEnv } from "./large-output.ts";
import { type Lookup, type LookupScope, type LookupTask, lookupTask } from "./lookup.ts";
import { type PipelineScope, type PipelineTask, RunNotClosed, type TaskOutcome, releaseTask, runTask } from "./run-task.ts";
import { createGroupRun, finishGroupRun, type GroupSummary, type HitRecords, longInputs, recordHit, recordUnstarted, type UnstartedOutcome } from "./task-run.ts";
import type { FlowNode } from "../definition/flow-definition.ts";
import type { Flight } from "./single-flight.ts";
import { RunScope } from "../run/run-scope.ts";
import { type DispatchedTask, sentCodeFingerprint, RemoteTaskError, type TaskDispatcher } from "./dispatch.ts";
import { CancelledError } from "../errors.ts";
import { cairnBuild } from "../cairn-build.ts";
import { HitQueue } from "./hit-queue.ts";
import { type SentStop, sentStop } from "./stop.ts";

/**
 * Closings of task runs under way beside the flow at most (closeBeside): each is three or four
 * requests; past it a task closes its run before handing on its outputs, so a slow server
 * holds the tasks back instead of piling up requests.
 */
const CLOSINGS_BESIDE = 16;

/** What the pipeline of a flow run is made from. */
export interface PipelineSettings {
  readonly flowName: string;
  readonly params: Record<string, unknown>;
  readonly tracker: Tracker;
  readonly experimentId: string;
  readonly flowRunId: string;
  readonly secrets: SecretRegistry;
  /** The run's environment: the cache keys the variables a task declares with it, and the task reads them from it (ctx.env, a child's environment). */
  readonly env: NodeJS.ProcessEnv;
  /** Folder for task artifacts when the tracker keeps none locally. */
  readonly workDir: string;
  /** The run's cache, when on. */
  readonly cache?: TaskCache;
  readonly emit: (event: RunEvent) => void;
  /** Hooks around every attempt (RunOptions.interceptors). */
  readonly interceptors?: readonly TaskInterceptor[];
  /** The large-output limit and the tasks warned of (null: no warning); absent: read from `env` for this pipeline. */
  readonly largeOutputs?: LargeOutputs | null;
  /** Aborts when the flow stops, with its StopReason. */
  readonly signal: AbortSignal;
  /**
   * With a server, close a succeeded task's run beside its dependants (closeBeside): the flow's
   * own pipeline, which waits for the closings at its end. Not a queue worker's, whose
   * coordinator is answered once the run is closed and the entry stored.
   */
  readonly closeBeside?: boolean;
  /** Tags every task run carries (MLflow's source tags). */
  readonly runTags?: Readonly<Record<string, string>>;
}

/**
 * How many items of one map stopped before they started carry their key (`cairn.failed_key`):
 * plan's one search reads the experiment's 1,000 newest failed or cancelled runs (an MLflow filter
 * has no OR, and a status filter would leave out the cancelled ones), and a fail-fast stop of a
 * map of thousands made them all its unstarted items, so other tasks' failures read as new keys.
 * The rest are compared as any other; their map's run says how many were not started.
 */
export const UNSTARTED_ITEM_KEYS = 100;

export class TaskPipeline {
  readonly scope: PipelineScope;
  private readonly lookups?: LookupScope;
  /**
   * Cross-process leases held now, with their task. When the flow stops, those of tasks that never
   * started are given up at once; a started task gives its own up once its processes are gone.
   */
  private readonly leases = new Map<{ release(): Promise<void> }, Flight>();
  /** Runs of cache hits, and of tasks that ended without one, still being recorded (see recordHit, `unstarted`). */
  private readonly recording = new Set<Promise<void>>();
  /** The records of this flow's cache hits (see recordHit); their runs are kept once keepHitRuns() is called. */
  private readonly hits: HitRecords = { background: this.recording, written: undefined, queue: new HitQueue() };
  /** Closings of succeeded tasks' runs under way beside the flow (closeBeside). */
  private closings = 0;
  /** Tasks whose run could not be closed beside the flow: the flow fails on them at its end. */
  readonly unclosed: Array<{ task: string; error: unknown; leftRunning: boolean }> = [];
  /** The run of a task that ended without one could not be recorded: said once, not once per task. */
  private unrecorded = false;
  /**
   * Per map's or sweep's run: its items' records still being written after the items ended (their
   * closings beside the flow, the runs of those that never started, a closing held for a process
   * tree): the group's run ends after them (endGroup), so that it never ends before its items.
   */
  private readonly itemRecords = new Map<string, Set<Promise<unknown>>>();
  /** Per map (its run, else its node id): how many of its unstarted items' runs carry their key (see {@link UNSTARTED_ITEM_KEYS}). */
  private readonly unstartedItemKeys = new Map<string, number>();
  /** Attempts that did not stop at their signal. */
  private readonly abandonedAttempts: AbandonedAttempts;
  /** Where tasks that miss the cache run, when not here (see dispatchTo). */
  private dispatcher: TaskDispatcher | undefined;
  /** The flow's stop as the dispatcher is given it (see dispatchSignal). */
  private stopToSend: AbortSignal | undefined;

  constructor(private readonly s: PipelineSettings) {
    // Every task waiting on another process listens to this one signal; there may be thousands.
    setMaxListeners(0, s.signal);
    const warn = (task: string | undefined, message: string) => this.warn(task, message);
    this.abandonedAttempts = new AbandonedAttempts(warn);
    // A worker passes its own, kept for the flow run across its jobs: one warning per task there, not per job.
    const large = s.largeOutputs !== undefined ? s.largeOutputs : largeOutputsFromEnv(s.env);
    const record = { tracker: s.tracker, experimentId: s.experimentId, flowRunId: s.flowRunId, flowName: s.flowName, workDir: s.workDir, secrets: s.secrets, longInputs: longInputs(), ...(s.runTags ? { runTags: s.runTags } : {}) };
    this.scope = {
      shared: {
        params: s.params,
        flowRunId: s.flowRunId,
        // The cache computes keys with the same scope, so a kind's memo serves both key and run.
        scope: s.cache?.scope ?? new RunScope(),
        tracking: Object.freeze({ kind: s.tracker.kind, uri: s.tracker.uri, experimentId: s.experimentId, capabilities: s.tracker.capabilities }),
        tracker: s.tracker,
        workDir: s.workDir,
        secrets: s.secrets,
        env: s.env,
        paramsCheck: { flowName: s.flowName, values: s.params },
        emit: s.emit,
      },
      flowSignal: s.signal,
      flowAborted: rejectOnAbort(s.signal),
      abandoned: this.abandonedAttempts,
      ...(s.interceptors ? { interceptors: s.interceptors } : {}),
      record,
      ...(s.cache ? { cache: s.cache } : {}),
      warn,
      ...(large ? { largeOutputs: large } : {}),
      // With a server a run's end is requests away: a task's dependants do not wait for it.
      ...(s.closeBeside && s.tracker.capabilities.remote ? { closeBeside: (task: PipelineTask, close: () => Promise<boolean>) => this.closeBeside(task, close) } : {}),
    };
    if (s.cache) {
      this.lookups = {
        cache: s.cache,
        flowRunId: s.flowRunId,
        flowSignal: s.signal,
        leases: this.leases,
        waiting: (task, node, heldBy) => s.emit(placeNode({ type: "task", status: "waiting", runId: s.flowRunId, task, ...(heldBy ? { heldBy } : {}), time: Date.now() }, node ?? {})),
        warn,
        record,
        hits: this.hits,
      };
      // One warning for the run, from whichever task met the dead store first.
      s.cache.onStoreDown((error) => this.warn(undefined, storeDownWarning(error, false, s.tracker)));
    }
  }

  /** Whether `lookup` is to be asked first: the cache is on for the run and for this task. */
  caches(task: Flight): boolean {
    return this.lookups !== undefined && task.node.task.cache !== false;
  }

  /** The cache stage (lookup.ts); only when `caches(task)`. */
  lookup(task: LookupTask, inputs: Record<string, unknown> | Promise<Record<string, unknown>>): Promise<Lookup> {
    return lookupTask(this.lookups!, task, inputs);
  }

  /** Runs the tasks that miss the cache elsewhere (RunOptions.dispatcher); set before the flow starts. */
  dispatchTo(dispatcher: TaskDispatcher): void {
    this.dispatcher = dispatcher;
  }

  /** The task with a slot: run-task.ts, here or through the dispatcher. */
  run(task: PipelineTask, inputs: Record<string, unknown> | Promise<Record<string, unknown>>): Promise<TaskOutcome> {
    if (this.dispatcher) return this.dispatch(this.dispatcher, task, inputs);
    return runTask(this.scope, task, inputs);
  }

  /** runTask in another process: its outcome as runTask's; the in-process flight is settled here (the entry is in the store). */
  private async dispatch(dispatcher: TaskDispatcher, task: PipelineTask, inputs: Record<string, unknown> | Promise<Record<string, unknown>>): Promise<TaskOutcome> {
    const { node, result } = task;
    const signal = this.s.signal;
    try {
      const resolved = await inputs;
      const outcome = await dispatcher.run(
        {
          flowName: this.s.flowName,
          flowRunId: this.s.flowRunId,
          experimentId: this.s.experimentId,
          tracker: { kind: this.s.tracker.kind, uri: this.s.tracker.uri },
          nodeId: node.id,
          ...(node.item ? { item: node.item } : {}),
          taskName: node.task.name,
          ...(node.task.pool ? { pool: node.task.pool } : {}),
          params: this.s.params,
          inputs: resolved,
          ...(!this.s.secrets.empty && this.s.secrets.find(resolved) !== undefined ? { inputsCarrySecret: true as const } : {}),
          ...(task.key ? { key: task.key } : {}),
          ...(task.forceRun ? { forceRun: true } : {}),
          ...(task.missReason !== undefined ? { missReason: await task.missReason } : {}),
          code: await sentCodeFingerprint(node, task.key, this.s.cache, this.s.flowRunId),
          ...(this.s.runTags ? { runTags: this.s.runTags } : {}),
          ...(await this.sentSecrets()),
          cairn: cairnBuild(this.s.env).id,
          node,
        },
        this.dispatchSignal(),
        this.s.emit,
      );
      // Secrets its task asked for there are known here from now on (by this process's value, when
      // it has one), and their names go with every later task: as in one process, from the moment
      // a task first asks for a secret, later tasks' outputs and logs that carry it are refused and masked.
      for (const name of Array.isArray(outcome.askedSecrets) ? outcome.askedSecrets : []) if (typeof name === "string") this.s.secrets.learnAsked(name);
      result.attempts = outcome.attempts;
      if (outcome.durationMs !== undefined) result.durationMs = outcome.durationMs;
      // The check runTask makes (checkOutputs): a worker knows an environment secret only once a
      // task asks for it, this run knows its --secrets file from the start. Outputs that carry one
      // are neither handed on nor printed.
      if (outcome.ok) this.s.secrets.assertClean(outcome.outputs, node.id, "its outputs");
      if (outcome.ok && outcome.reused && outcome.runId && task.key) {
        // Another coordinator's job computed the key meanwhile: a cache hit of its run, recorded in this flow run as any hit is.
        await recordHit(this.scope.record, node, { sourceRunId: outcome.runId, key: task.key.key }, result, this.hits, this.scope.warn);
        task.settleFlight?.(undefined);
        return { ok: true, outputs: outcome.outputs, cachedFrom: outcome.runId };
      }
      if (outcome.runId) result.runId = outcome.runId;
      task.settleFlight?.(undefined); // a waiter here looks again, and finds the entry the worker stored
      if (outcome.ok) return { ok: true, outputs: outcome.outputs };
      // One that failed on its own there stays failed when its end is read after the flow stopped
      // (two items failing at once under fail-fast): its run there (runId) says FAILED, with its error.
      const stop = signal.aborted && (outcome.cancelled || !outcome.runId) ? signal.reason : undefined;
      const error = outcome.cancelled ? new CancelledError(outcome.error.message) : new RemoteTaskError(outcome.error);
      return { ok: false, error, cancelled: outcome.cancelled || stop !== undefined, stop };
    } catch (error) {
      task.settleFlight?.(undefined);
      const stop = signal.aborted ? signal.reason : undefined;
      return { ok: false, error, cancelled: stop !== undefined, stop };
    }
  }

  /**
   * What a dispatched task carries of the run's secrets, never their values: the names of those
   * given up front with a slow digest of each value (the other side refuses a task whose value
   * there differs), and the names of those tasks asked for so far.
   */
  private async sentSecrets(): Promise<Pick<DispatchedTask, "secretNames" | "secretDigests" | "askedSecrets">> {
    const secrets = this.s.secrets;
    const given = secrets.givenNames;
    const asked = secrets.askedNames.filter((name) => !given.includes(name));
    // Salted with the flow run's id: one run's digests cannot be matched with another's, nor
    // guesses computed ahead for every run. Each is computed once per run (privateDigest's memo).
    const digests: Record<string, string> = {};
    for (const name of given) {
      const digest = await secrets.digest(name, this.s.flowRunId);
      if (digest !== undefined) digests[name] = digest;
    }
    return {
      ...(given.length ? { secretNames: given, secretDigests: digests } : {}),
      ...(asked.length ? { askedSecrets: asked } : {}),
    };
  }

  /**
   * The flow's signal as a dispatcher is given it: it aborts with the flow's stop made a
   * {@link SentStop}, masked with the run's secrets, so that what stopped the flow travels with
   * the cancel and the task's run on the other side says it, not only "cancelled". One for all
   * the run's tasks.
   */
  private dispatchSignal(): AbortSignal {
    if (this.stopToSend) return this.stopToSend;
    const sent = new AbortController();
    setMaxListeners(0, sent.signal);
    const abort = () => sent.abort(sentStop(this.s.signal.reason, (text) => this.s.secrets.mask(text)));
    if (this.s.signal.aborted) abort();
    else this.s.signal.addEventListener("abort", abort, { once: true });
    return (this.stopToSend = sent.signal);
  }

  /**
   * A task that ended without a run of its own (skipped, cancelled, failed before its run was
   * created) gets one, recorded already over; `result.runId` is set once it exists. The flow
   * waits for it at its end (`drain`); a caller that wants the id in the task's event awaits it.
   */
  unstarted(task: { readonly node: PipelineTask["node"]; readonly result: { runId?: string } }, outcome: UnstartedOutcome): Promise<void> | undefined {
    if (!this.s.tracker.capabilities.records || task.result.runId) return undefined;
    const work = recordUnstarted(this.scope.record, task.node, this.boundedKey(task.node, outcome)).then(
      (runId) => void (runId && (task.result.runId = runId)),
      (e: unknown) => {
        if (this.unrecorded) return;
        this.unrecorded = true;
        this.warn(task.node.id, `could not record the run of a ${outcome.status} task: ${(e as Error).message}`);
      },
    );
    this.recording.add(work);
    void work.finally(() => this.recording.delete(work));
    this.itemRecord(task.node, work);
    return work;
  }

  /** `work` records the run of item `node` (when it is one): its group's run ends after it (see {@link itemRecords}). */
  private itemRecord(node: FlowNode, work: Promise<unknown>): void {
    const group = node.item?.parentRunId;
    if (group === undefined) return;
    let records = this.itemRecords.get(group);
    if (!records) this.itemRecords.set(group, (records = new Set()));
    const done = () => void records.delete(work);
    records.add(work);
    work.then(done, done);
  }

  /** `outcome` without its key once {@link UNSTARTED_ITEM_KEYS} unstarted items of the same map have carried theirs. */
  private boundedKey(node: PipelineTask["node"], outcome: UnstartedOutcome): UnstartedOutcome {
    if (outcome.status === "failed" || outcome.key === undefined || !node.item) return outcome;
    const map = node.item.parentRunId ?? node.item.parent;
    const carried = this.unstartedItemKeys.get(map) ?? 0;
    if (carried < UNSTARTED_ITEM_KEYS) {
      this.unstartedItemKeys.set(map, carried + 1);
      return outcome;
    }
    const { key: _, ...keyless } = outcome;
    return keyless;
  }

  /** The run of a map or sweep node, the parent of its items' runs (task-run.ts createGroupRun). */
  groupRun(node: FlowNode, items: number): Promise<string | undefined> {
    return createGroupRun(this.scope.record, node, items);
  }

  /**
   * Ends a map's or sweep's run with its summary, in the background: the flow waits for it at its
   * end (`drain`); nothing else does (the map's dependants start at once). It ends once its items'
   * records are written (itemRecords), so that its end time is not before theirs.
   */
  endGroup(node: FlowNode, runId: string, summary: GroupSummary): void {
    // A best trial (or one past a stopWhen's cut) that was a cache hit may still be getting its run (recordHit): its id is tagged once it has one.
    const pending = (summary.best?.result && !summary.best.result.runId) || summary.uncounted?.some((r) => !r.runId) ? [...this.recording] : [];
    // Read after the current turn: the map ends inside the call that ends its last item, before
    // that item's unstarted run (stop, skipPastCut) is asked for.
    const work = Promise.resolve()
      .then(() => {
        const items = this.itemRecords.get(runId) ?? new Set();
        this.itemRecords.delete(runId);
        return Promise.allSettled([...pending, ...items]);
      })
      .then(() => finishGroupRun(this.scope.record, runId, summary))
      .catch((e: unknown) => this.warn(node.id, `could not record the end of its run ${runId}: ${(e as Error).message}`));
    this.recording.add(work);
    void work.finally(() => this.recording.delete(work));
  }

  /**
   * A succeeded task's closing, beside what follows (PipelineScope.closeBeside), while fewer than
   * {@link CLOSINGS_BESIDE} are under way: the flow waits for it at its end (`drain`) and fails
   * there if it failed (`unclosed`). The task's lease is given up once its entry is stored, not
   * with its slot, so another process waiting on the key finds the entry. Returns whether the
   * run was closed and the entry stored, once it is known; undefined when refused.
   */
  private closeBeside(task: PipelineTask, close: () => Promise<boolean>): Promise<boolean> | undefined {
    if (this.closings >= CLOSINGS_BESIDE) return undefined;
    this.closings++;
    const releaseLease = task.releaseLease;
    task.releaseLease = undefined;
    const closed = close().catch((error: unknown) => {
      const why = error instanceof RunNotClosed ? error : new RunNotClosed(error, false);
      this.unclosed.push({ task: task.node.id, error: why.cause, leftRunning: why.leftRunning });
      return false;
    });
    this.track(
      closed
        .then(() => releaseLease?.())
        .catch(() => {})
        .finally(() => this.closings--),
    );
    this.itemRecord(task.node, closed);
    return closed;
  }

  /** Work the flow waits for at its end (`drain`): what follows a task's closing beside the flow (its event). */
  track(work: Promise<void>): void {
    this.recording.add(work);
    void work.finally(() => this.recording.delete(work));
  }

  /** After its outcome is dealt with: see releaseTask. Undefined when the task holds nothing to wait for. */
  release(task: PipelineTask): Promise<void> | undefined {
    if (!task.held && !task.releaseLease) return undefined;
    const work = releaseTask(task);
    // Waited for by the flow's end (drain), before it closes the tracker and the store it opened:
    // a timed-out attempt's process group ends within its killGraceMs, and its logs and run are
    // recorded only then (run-task.ts); a lease given up after the store's close reconnected to
    // redis, and the open socket kept the process alive.
    this.track(work.catch(() => {}));
    // A timed-out item's run is closed once its process tree is gone (run-task.ts).
    this.itemRecord(task.node, work);
    return work;
  }

  /** The flow stopped: the leases of tasks that never started are given up now. */
  stopped(): void {
    for (const [lease, task] of this.leases) if (!task.started) void lease.release().catch(() => {});
  }

  /** Keeps the runs of this flow's cache hits as they are recorded, for {@link hitRuns}. Call before the flow starts. */
  keepHitRuns(): void {
    this.hits.written = [];
  }

  /** The runs of this flow's cache hits as recorded, when kept and each known whole (see HitRecords). */
  get hitRuns(): readonly RunRecord[] | undefined {
    // A hit whose run was never sent (a cancel) leaves them incomplete.
    return this.hits.queue!.dropped ? undefined : this.hits.written;
  }

  /** Runs of cache hits not recorded yet (waiting to be sent, or being sent), and how many hits this flow had recorded (see HitQueue). */
  get hitsLeft(): { runs: number; left: number } {
    return { runs: this.hits.queue!.added, left: this.hits.queue!.left };
  }

  /**
   * The run was cancelled: the runs of hits not yet sent never are (a cancel ends in seconds, not
   * after thousands of requests); their cache entries are untouched. Returns how many.
   */
  dropUnsentHits(): number {
    return this.hits.queue!.close();
  }

  /** Hits whose runs were never sent, the run cancelled first. */
  get unsentHits(): number {
    return this.hits.queue!.dropped;
  }

  /** Waits for the runs of cache hits (see recordHit) and of tasks that ended without one (`unstarted`) to be recorded, and for what tasks hold (`release`). */
  async drain(): Promise<void> {
    while (this.recording.size) await Promise.all(this.recording);
  }

  /** Before the flow's last event: reports the abandoned attempts still running (see AbandonedAttempts). */
  reportAbandoned(): Promise<void> {
    return this.abandonedAttempts.report();
  }

  /** Attempts abandoned at their timeout or cancellation that have not ended yet. */
  abandoned(): Array<{ task: string; attempt: number; killGraceMs?: number }> {
    return this.abandonedAttempts.list();
  }

  warn(task: string | undefined, message: string): void {
    this.s.emit({ type: "log", level: "warn", runId: this.s.flowRunId, ...(task !== undefined ? { task } : {}), message, time: Date.now() });
  }
}
