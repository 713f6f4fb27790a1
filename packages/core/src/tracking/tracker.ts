/**
 * The contract every tracker implements: MLflow's concepts (experiment, run,
 * params, metrics, tags, artifacts) and nothing more, so that the embedded
 * local store and a real MLflow server are interchangeable.
 *
 * Every implementation runs the compliance suite in `tracker-compliance.ts`.
 */

import { MetricError } from "../errors.ts";

/** Options of {@link Tracker.closeAbandonedRuns}. */
export interface AbandonedRunsOptions {
  readonly warn?: (message: string) => void;
  readonly copyTags?: Readonly<Record<string, string>>;
}

/** The tags `copyTags` (tag → tag) adds to a run that carries `tags`: see {@link Tracker.closeAbandonedRuns}. */
export function copiedTags(tags: Readonly<Record<string, string>>, copyTags: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const copied: Record<string, string> = {};
  for (const from in copyTags) if (tags[from] !== undefined) copied[copyTags[from]!] = tags[from]!;
  return copied;
}

/**
 * Tag of a run closed by another process than its own (its process died: a later command, or the
 * coordinator or a worker for a dead queue worker's run), saying who closed it and why. Every
 * tracker's closer writes it; plan reads it to say the run was interrupted.
 */
export const ABANDONED_TAG = "cairn.abandoned";

/** MLflow's run statuses. */
export type RunStatus = "RUNNING" | "SCHEDULED" | "FINISHED" | "FAILED" | "KILLED";

/** One metric value at one step. */
export interface MetricPoint {
  /** Metric name. */
  key: string;
  /** Numeric value; NaN and ±Infinity are allowed, as in MLflow. */
  value: number;
  /** Step, an integer; negative ones are kept, as MLflow keeps them. @default 0 */
  step: number;
  /** Milliseconds since the epoch. */
  timestamp: number;
}

/**
 * Throws a {@link MetricError} for a metric no tracker keeps (see there); what MLflow's own client
 * accepts passes, a negative step among them. `ctx.log.metric` checks here, at the call, and every
 * tracker's `logBatch` again, with the same words.
 */
export function checkMetric(key: unknown, value: unknown, step: unknown): void {
  if (typeof key !== "string" || key === "") throw new MetricError(key, "key", key);
  if (typeof value !== "number") throw new MetricError(key, "value", value);
  if (!Number.isSafeInteger(step)) throw new MetricError(key, "step", step);
}

/**
 * What one `logBatch` call records. A param or tag value holding a lone surrogate (half an emoji,
 * as `s.slice(0, n)` can leave) is stored with U+FFFD in its place (`value.toWellFormed()`), the
 * rest of the batch kept: MLflow, sent one, stores that value empty and drops the batch's tags and
 * metrics, so a tracker that sends to it replaces them first.
 */
export interface LogBatch {
  /** Params are write-once strings, as in MLflow. */
  params?: Record<string, string>;
  /** Metric points, appended; each checked with {@link checkMetric} (see {@link Tracker.logBatch}). */
  metrics?: MetricPoint[];
  /** Tags overwrite earlier values of the same key. */
  tags?: Record<string, string>;
}

/** What `createRun` needs. */
export interface CreateRunOptions {
  /** Experiment the run belongs to. */
  experimentId: string;
  /** The run's display name (`mlflow.runName`). */
  name: string;
  /** Parent run; recorded as the `mlflow.parentRunId` tag. */
  parentRunId?: string;
  /** Tags set at creation; a value with a lone surrogate is stored with U+FFFD in its place, as in {@link LogBatch}. */
  tags?: Record<string, string>;
  /** Milliseconds since the epoch. @default Date.now() */
  startTime?: number;
}

/** What `recordRun` needs: a run that is over when it is recorded. */
export interface FinishedRunOptions extends CreateRunOptions {
  status: Exclude<RunStatus, "RUNNING" | "SCHEDULED">;
  /** Milliseconds since the epoch. @default Date.now() */
  endTime?: number;
}

/** A run as read back from a tracker. */
export interface RunRecord {
  runId: string;
  experimentId: string;
  name: string;
  status: RunStatus;
  startTime: number;
  endTime?: number;
  /** From the `mlflow.parentRunId` tag. */
  parentRunId?: string;
  params: Record<string, string>;
  /**
   * Each metric's latest value in MLflow's sense: the value of its point at the highest step (at
   * that step, the latest timestamp, then the highest value), not the one logged last: step 3
   * logged after step 5 leaves step 5's value here. `getMetricHistory` has every point.
   */
  metrics: Record<string, number>;
  tags: Record<string, string>;
}

/** One entry of an artifact listing. */
export interface ArtifactInfo {
  /** Path relative to the run's artifact root, with `/` separators. */
  path: string;
  isDir: boolean;
  /** Size in bytes, for files. */
  size?: number;
}

/** Which runs `searchRuns` returns. All conditions must hold. */
export interface RunFilter {
  experimentIds: string[];
  /** Exact tag values. Keys may contain dots (`cairn.cache_key`). */
  tags?: Record<string, string>;
  /** Leaves out the runs whose tag `key` is `value`; runs without the tag stay. */
  withoutTag?: { key: string; value: string };
  /** Only runs that have the tag `key`, whatever its value. */
  hasTag?: string;
  /**
   * Looks no further than the experiments' newest `within` runs (of those the parent conditions
   * keep), for a search of rare runs where a tracker reads run by run (the embedded store): the
   * cost stays bounded however many runs are kept. A tracker that filters on its server may look
   * further.
   */
  within?: number;
  /** Told when `within` left older runs unread, so that the caller can say its answer is bounded. */
  onCut?: () => void;
  /** Only children of this run. */
  parentRunId?: string;
  /**
   * Only runs whose id starts with this (a short id, as `cairn show` takes one). The embedded
   * store then reads only those runs' records, not every run's; MLflow, which cannot search by
   * it, still lists every run and keeps these.
   */
  runIdPrefix?: string;
  /** Only runs with this status. */
  status?: RunStatus;
  /** Only top-level runs (no parent). */
  topLevelOnly?: boolean;
  /** At most this many, newest first. @default 100 */
  maxResults?: number;
  /**
   * Told of a run whose record exists but cannot be read (its permissions, a folder in its
   * place), which is then left out. Without it such a run fails the search, naming its file.
   */
  warn?: (message: string, run: { runId: string }) => void;
}

/** An experiment as read back from a tracker. */
export interface ExperimentRecord {
  experimentId: string;
  name: string;
  /** Set by `getExperiment` and `openExperimentById` only, for an experiment moved to MLflow's trash (restorable); the listings leave such ones out. */
  deleted?: true;
}

/** Told by {@link Tracker.listExperiments} of an experiment whose record is damaged or cannot be read. */
export type ExperimentWarning = (message: string, experiment: { experimentId: string; listed: boolean }) => void;

/**
 * What a tracker can do beyond the methods every tracker has, declared so that the engine asks
 * for what it needs instead of for a tracker by name (as keyv's adapters declare theirs). What
 * a tracker declares, it does: the compliance suite checks each one that is true. Optional
 * methods (`recordRun`, `getRuns`, `readIndexEntry`, ...) declare themselves by being there.
 */
export interface TrackerCapabilities {
  /** Runs, params, metrics and artifacts are kept and read back; false for tracking off, where callers skip work whose only use is the record. */
  readonly records: boolean;
  /** Run artifacts live in a local folder (`artifactDir(runId)`) that the engine writes into in place instead of uploading. */
  readonly localArtifacts: boolean;
  /** Other machines record here too: a key the cache store lacks may be found among the runs, and an artifact missing on disk may be had from its run. */
  readonly sharedRuns: boolean;
  /** `uri` is an MLflow tracking server that MLflow's own clients (a script's `mlflow`, `mlflow run`, the model registry) in child processes can use directly. */
  readonly mlflowClients: boolean;
  /**
   * Every call is a round trip to a server: the scheduler then records a cache hit's run in the
   * background, off the path of the hit's dependants (the hit's `cached` event comes without
   * `taskRunId`, which the flow's result holds once the flow is over).
   */
  readonly remote: boolean;
}

/** Where a task's run is recorded, as a task and its code resolver see it (`ctx.tracking`). */
export interface TrackingInfo {
  /** The tracker's `kind`, for messages. */
  readonly kind: string;
  /** The tracker's `uri`. */
  readonly uri: string;
  /** The flow run's experiment. */
  readonly experimentId: string;
  /** The tracker's capabilities; a child process is pointed at `uri` when `mlflowClients` is true. */
  readonly capabilities: TrackerCapabilities;
}

/** The tracker contract. Methods reject with a `TrackingError` subclass on failure. */
export interface Tracker {
  /** `local` for the embedded store, `mlflow` for a server, `none` for tracking off: for people (messages, `ctx.tracking.kind`, cache entries); the engine asks {@link capabilities}. */
  readonly kind: "local" | "mlflow" | (string & {});
  /** Where the records live: a folder path or a URL; never contains credentials. */
  readonly uri: string;
  /**
   * What a task's child process needs besides `uri` to record to the same place with its own
   * client (MLflow's credential variables, also those given in the tracking URI). Secret: the
   * engine puts them only in a child's environment, and masks them as secrets.
   */
  childEnv?(): Readonly<Record<string, string>>;
  /** What this tracker can do; see {@link TrackerCapabilities}. */
  readonly capabilities: TrackerCapabilities;
  /** Checks the tracker is reachable and usable; rejects with a clear error otherwise. */
  ping(): Promise<void>;
  /** Returns the id of the experiment with this name, creating it if needed. Safe when several processes race. */
  ensureExperiment(name: string): Promise<string>;
  /**
   * `ping()` then `ensureExperiment(name)`, in one round trip where the tracker can: how a flow
   * run starts. Optional; callers fall back to the two calls.
   */
  openExperiment?(name: string): Promise<string>;
  /**
   * The id of the experiment with this name, or undefined when there is none: creates nothing
   * (for commands that only read: `cairn plan`, `cairn explain`). Checks the tracker is reachable,
   * as `ping()` does. Optional; callers fall back to `ensureExperiment`.
   */
  findExperiment?(name: string): Promise<string | undefined>;
  /** Returns the experiment, or undefined when there is none with this id. */
  getExperiment(experimentId: string): Promise<ExperimentRecord | undefined>;
  /**
   * `ping()` then `getExperiment(experimentId)`, in one round trip where the tracker can, refusing
   * an experiment it cannot record runs to as {@link openExperiment} does (MLflow's:
   * `ArtifactLocationError`): how a flow run starts in the experiment `MLFLOW_EXPERIMENT_ID` names.
   * Optional; callers fall back to the two calls.
   */
  openExperimentById?(experimentId: string): Promise<ExperimentRecord | undefined>;
  /** Creates a RUNNING run and returns its id. */
  createRun(options: CreateRunOptions): Promise<string>;
  /**
   * A fresh run id at once, with nothing recorded: offered only by a tracker that records
   * nothing (`capabilities.records` false), so that tracking off costs no promise per task.
   * Optional; callers fall back to `createRun`.
   */
  newRunId?(): string;
  /** The page of a run in the tracker's web UI, for people to open. Optional: a tracker without a UI has none. */
  runUrl?(experimentId: string, runId: string): string;
  /**
   * A random id of this store, made once and kept with it: tells it from another store at the
   * same `uri` (two machines' `.cairn` at the same project path), so that a cache entry recorded
   * in the other is known as foreign. Optional: a tracker whose `uri` alone names it (a server)
   * needs none. Undefined when the store has none and cannot keep one (read-only).
   */
  storeId?(): Promise<string | undefined>;
  /**
   * Which copy of the store's folder this is: its `storeId` file's own identity (inode and birth
   * time), which a copy or a restored archive of the folder does not keep. Tells an entry made by
   * another copy (a `.cairn` restored from a CI cache, at the same path on another runner), whose
   * runs are not here, from one of this store whose run was deleted. Optional; undefined when
   * the file system keeps no birth time.
   */
  storeCopy?(): Promise<string | undefined>;
  /** The local folder of a run's artifacts; offered exactly when `capabilities.localArtifacts` is true. */
  artifactDir?(runId: string): string;
  /**
   * Records a run that is already over (a cache hit's run) in one step and returns its id:
   * the same as createRun then endRun, for trackers that can do it cheaper. Optional; callers
   * fall back to createRun and endRun.
   */
  recordRun?(options: FinishedRunOptions): Promise<string>;
  /**
   * Records params, metrics and tags on a run. Rejects a metric no tracker keeps (a key that is
   * not a non-empty string, a value that is not a number, a step that is not an integer) with the
   * {@link MetricError} that {@link checkMetric} throws: call it on every metric of the batch
   * first. Stores a value with a lone surrogate with U+FFFD in its place (see
   * {@link LogBatch}); a run's metric reads back as {@link RunRecord.metrics} says.
   */
  logBatch(runId: string, batch: LogBatch): Promise<void>;
  /** Copies a local file or folder into the run's artifacts, under `artifactPath` (a folder) when given. */
  logArtifact(runId: string, localPath: string, artifactPath?: string): Promise<void>;
  /** Sets the final status and end time. */
  endRun(runId: string, status: Exclude<RunStatus, "RUNNING" | "SCHEDULED">, endTime?: number): Promise<void>;
  /** Returns the run, or undefined when there is no run with this id. */
  getRun(runId: string): Promise<RunRecord | undefined>;
  /**
   * Several runs of these experiments at once, in as few requests as the tracker can: each id it
   * can settle maps to its run, or to undefined when the run is gone (deleted). An id it cannot
   * settle (a run of another experiment, an id that names no run) is left out: ask `getRun`.
   * Optional; callers fall back to `getRun` per id.
   */
  getRuns?(runIds: readonly string[], experimentIds: readonly string[]): Promise<Map<string, RunRecord | undefined>>;
  /** Runs matching the filter, newest first. */
  searchRuns(filter: RunFilter): Promise<RunRecord[]>;
  /**
   * Writes a small text file (a manifest, a graph, an error) as the run's artifact `path`, from
   * memory: one request, no temporary file. Optional; without it such files go through a
   * temporary file and `logArtifact`.
   */
  logText?(runId: string, path: string, text: string): Promise<void>;
  /** Every point of one metric, in logging order. */
  getMetricHistory(runId: string, key: string): Promise<MetricPoint[]>;
  /** Lists artifacts directly under `path` (the root when omitted). */
  listArtifacts(runId: string, path?: string): Promise<ArtifactInfo[]>;
  /** Copies one artifact file or folder to `destDir` and returns its local path. */
  downloadArtifact(runId: string, path: string, destDir: string): Promise<string>;
  /**
   * Removes the run's artifact file or folder `path`; resolves as well when there is none. For
   * files that only pass through a run (a queued task's large inputs, read by its worker, then
   * removed). Optional: a tracker without it keeps them.
   */
  deleteArtifact?(runId: string, path: string): Promise<void>;
  /**
   * A flat index of small documents kept with an experiment (not with any run), read and
   * written by name in one request whatever the number of runs. The cache keeps its shared
   * entries there; without it, the cache looks a key up by run tag.
   */
  readIndexEntry?(experimentId: string, name: string): Promise<string | undefined>;
  writeIndexEntry?(experimentId: string, name: string, text: string): Promise<void>;
  /**
   * Removes the index document `name` (`cairn cache clear` and `prune`, an entry found bad after
   * its hit); resolves as well when there is none. Optional beside `writeIndexEntry`: without
   * it, the index keeps what the store no longer has.
   */
  deleteIndexEntry?(experimentId: string, name: string): Promise<void>;
  /**
   * The names of the index's documents, in one request whatever their number: a run lists the
   * index once and a key whose name is not there is a miss without a read of its own.
   * Optional beside `readIndexEntry`; without it every miss is one read.
   */
  listIndexEntries?(experimentId: string): Promise<string[]>;
  /**
   * Every experiment, for listings (`cairn runs`); optional because a shared server may hold thousands.
   * `warn` is told of each experiment whose record is damaged or cannot be read, and whether it
   * was left out of the listing (`listed: false`) or listed all the same.
   */
  listExperiments?(options?: { warn?: ExperimentWarning }): Promise<ExperimentRecord[]>;
  /**
   * Closes the runs that processes of this host left RUNNING and that no longer exist (killed
   * with -9, crashed): each becomes KILLED with an end time and the tag `cairn.abandoned` saying
   * why, and its RUNNING children with it. Looks in `experimentIds` (a store that knows where its
   * writers worked may look beyond them). Runs of other hosts' processes are left alone. Resolves
   * to the runs closed. Optional; a tracker without it leaves such runs as they are. `warn` is
   * told of each run left as it is because its record cannot be read now. `copyTags` (tag → tag):
   * a run closed that carries the first gets the second with its value, in the write that closes it.
   */
  closeAbandonedRuns?(experimentIds: readonly string[], options?: AbandonedRunsOptions): Promise<RunRecord[]>;
  /**
   * Sends what is held back for run `runId` (metrics a tracker batches) now, rejecting when it
   * cannot be sent. Optional; a tracker that holds nothing back needs none.
   */
  flushRun?(runId: string): Promise<void>;
  /**
   * The run recording here was cancelled: until the returned function is called, each request
   * gets a short deadline (one try of a few seconds) instead of the full retry policy, and those
   * under way stop retrying, so that closing the runs does not hold the process for minutes
   * against a server that does not answer. Optional: a tracker whose writes cannot wait on a
   * server needs none.
   */
  hurry?(): () => void;
  /**
   * `listener` is told of what the run's user should see while it goes on (a request to the
   * server being retried for long: one line per retry), until the returned function is called.
   * Optional; a tracker with nothing to say needs none.
   */
  onWarning?(listener: (message: string) => void): () => void;
  /**
   * Ends the runs a retried create made twice (its first try unanswered, carried out by the server
   * after all), resolving with a sentence for each; called when a flow's work is over, before it
   * reports. Optional; a tracker whose creates cannot be made twice needs none.
   */
  endDuplicateRuns?(): Promise<string[]>;
  /**
   * The ids of the runs this tracker created and has not ended (their end failed, or is under
   * way): what may stay RUNNING, for the next command's closer, if the process exits now.
   * Optional; a tracker without it tells nothing.
   */
  openRuns?(): readonly string[];
  /** Finishes pending writes; the tracker stays usable. */
  flush(): Promise<void>;
}
