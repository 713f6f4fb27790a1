import { randomBytes, randomUUID } from "node:crypto";
import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync, statSync } from "node:fs";
import { access, copyFile, cp, link, lstat, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import type { FileHandle } from "node:fs/promises";
import { setImmediate } from "node:timers/promises";
import { formatOwner, ownerIsGone, parseOwner, readSmallFile, sha256, writeFileAtomic } from "@cairn/cache";
import { safePathSegment, safeRelativePath } from "../../definition/artifact-path.ts";
import { TrackingError } from "../../errors.ts";
import { makeFolder } from "../../make-folder.ts";
import { fsFix, POINT_ELSEWHERE } from "./fs-fix.ts";
import type {
  AbandonedRunsOptions,
  TrackerCapabilities,
  ArtifactInfo,
  CreateRunOptions,
  ExperimentRecord,
  ExperimentWarning,
  FinishedRunOptions,
  LogBatch,
  MetricPoint,
  RunFilter,
  RunRecord,
  RunStatus,
  Tracker,
} from "../tracker.ts";
import { ABANDONED_TAG, checkMetric, copiedTags } from "../tracker.ts";
import { JsonlAppender } from "./jsonl-appender.ts";
import { choosePrunedRuns, type PrunableLine } from "./prune-runs.ts";

/** Options of {@link LocalStore.pruneRuns}. */
export interface PruneRunsOptions {
  /** Epoch ms: flow runs that ended before it go, with the runs under them. */
  endedBefore: number;
  /** Runs that stay whatever their age, with their whole flow run (the runs above and beside them): the source runs of the cache entries kept. */
  keep: ReadonlySet<string>;
  /** Count what would go; remove nothing. */
  dryRun?: boolean;
}

/** What {@link LocalStore.pruneRuns} removed (or, with `dryRun`, would remove). */
export interface PruneRunsResult {
  /** Runs removed, flow runs and the runs under them. */
  removedRuns: number;
  /** Of them, top-level runs (flow runs). */
  removedFlowRuns: number;
  /** Bytes freed: run files, metric logs, artifacts (logs, report pages), batch files, index lines. */
  freedBytes: number;
  /** Runs of old flow runs kept whole because a kept cache entry names one of their runs as its source (and none of them is RUNNING). */
  keptForCache: number;
  /** Runs of old flow runs kept whole because the flow run or a run under it is still RUNNING. */
  keptRunning: number;
}

/** Options of {@link LocalStore}. */
export interface LocalStoreOptions {
  /** The store's folder, usually `.cairn`; created when missing. */
  root: string;
}

/** One line of an experiment's `runs.jsonl`. */
interface IndexLine {
  runId: string;
  name: string;
  startTime: number;
  parentRunId?: string;
  /**
   * The store instance that created the run (RUNNING), so that a run whose process was killed before
   * its run file was written can still be found and closed. Absent on runs recorded already over.
   */
  writer?: string;
}

/** The latest point of one metric, by MLflow's order: highest step, then timestamp, then value. */
interface LatestMetric {
  value: number;
  step: number;
  timestamp: number;
}

/** A run as this process holds it. */
interface RunState {
  runId: string;
  experimentId: string;
  name: string;
  status: RunStatus;
  startTime: number;
  endTime?: number;
  params: Record<string, string>;
  tags: Record<string, string>;
  metrics: Record<string, LatestMetric>;
}

/** What `runs/<runId>.json` holds: the run, and which store instance may write it. */
interface RunFile extends Omit<RunState, "metrics"> {
  /** NaN and ±Infinity, which JSON cannot carry, are the strings "NaN", "Infinity", "-Infinity". */
  metrics: Record<string, { value: number | string; step: number; timestamp: number }>;
  /** The store instance that created the run; only it writes the run. */
  writer: string;
}

/** A run this store instance created and has not let go of. */
interface OwnedRun {
  state: RunState;
  /** Pending deferred write of the run file. */
  timer?: NodeJS.Timeout;
  /** The write of the run file in flight. */
  writing?: Promise<void>;
  /** Something changed while a write was in flight: write once more. */
  again: boolean;
  /** The last write failed; flush tries again. */
  failed?: boolean;
  /** Artifact folders known to exist, so that a second artifact costs no mkdir. */
  folders?: Set<string>;
}

type FinalStatus = Exclude<RunStatus, "RUNNING" | "SCHEDULED">;

/** What a meta.json that parses but is not its experiment's record is, for messages. */
const NOT_THE_RECORD = 'is not this experiment\'s record (an object with its "experimentId" and a "name" whose sha256 begins with that id)';
const RUN_ID = /^[0-9a-f]{32}$/;
const EXPERIMENT_ID = /^[0-9a-f]{16}$/;
const STORE_ID = /^[0-9a-f]{16}$/;
/** How long a run's changes may stay in memory only; endRun and flush write at once. */
const PERSIST_DELAY_MS = 1000;
/** Run files read at once by searchRuns. */
const READ_CONCURRENCY = 64;
/** Run files searchRuns reads between two turns of the event loop (they are read synchronously: see readJson). */
const READS_PER_TURN = 1024;
/** Runs recorded whole (recordRun) per batch file before the next batch file is started. */
const BATCH_RUNS = 1000;
/** Ends the name of a batch file a prune has set aside to remove it (see removeBatchFile). */
const ASIDE = ".pruning";
/**
 * Age past which a `prune.lock` that names no process (empty, or not an owner) counts as left by a
 * writer that died, or whose disk filled, between making it and writing its owner: a live prune
 * writes its owner right after making the file, so a younger one may still be getting it.
 */
const UNOWNED_LOCK_MS = 10_000;

/**
 * A prune's claim on a stale lock (see claimStaleLock) older than this was left by a prune killed
 * while holding it: a live one holds it only while it removes the stale lock and writes its own.
 */
const DEAD_CLAIM_MS = 5_000;

let tmpCounter = 0;

/**
 * The embedded tracker: MLflow's concepts in a folder (`.cairn/` by default), so
 * that moving to a server is one environment variable. Layout:
 *
 * ```
 * experiments/<id>/meta.json    { experimentId, name, creationTime }; id = sha256(name), so racing creators agree
 * experiments/<id>/runs.jsonl   append-only index, one short line per run
 * runs/<runId>.json            info, params, tags, latest metrics (replaced whole: temp file + rename)
 * runs/<runId>.metrics.jsonl    every metric point, appended
 * runs/<batchId>.batch.jsonl    runs recorded already ended (cache hits), one whole run per line, appended;
 *                               batchId is the first 16 hex digits of each such run's id
 * runs/<batchId>.batch.jsonl.pruning  a batch file a prune is removing (removeBatchFile); one a killed
 *                               prune left is put back by the next prune (restoreBatchFilesAside)
 * artifacts/<runId>/            the run's artifacts; tasks may write here directly (artifactDir)
 * live/<writer>.json            while a store instance has runs RUNNING: the experiments it created runs in
 * prune.lock                    while `pruneRuns` removes runs: its process, so that two prunes never race
 * store-id                      a random id, written once: tells this store from another at the same path (storeId)
 * ```
 *
 * Run files sit side by side rather than in a folder per run: creating files and
 * folders is most of the store's cost, and a task then costs one file (its run
 * file) plus its artifact folder. A run that is over when it is recorded (a cache
 * hit's run, {@link LocalStore.recordRun}) costs no file of its own: it is one line of
 * its batch file, and the lines of runs recorded at once are one write. Its run file,
 * when one is written later (a log after the run ended), takes precedence over its line.
 *
 * Safe with several processes: a run is written only by the store instance that
 * created it, its run file is replaced atomically so a reader never sees half of it,
 * and index lines are single small `O_APPEND` writes. An index is rewritten only by
 * {@link LocalStore.pruneRuns}, whole and renamed in place; a line appended meanwhile to the file it
 * replaced is copied over, or written again by its writer, which checks after each write.
 *
 * For speed, runs this instance created live in memory until they end, and
 * its run file is written when the run ends, on `flush()`, or at most a second
 * after a change; another process sees a run once that file exists.
 *
 * A process killed with -9 cannot end its runs. Its index lines name it (`writer`: host, pid and
 * process start time), and its `live/` file says which experiments to look in, so a later
 * instance closes its RUNNING runs as KILLED ({@link LocalStore.closeAbandonedRuns}), also the
 * ones killed before their run file was written. Runs of a process of another host are left alone.
 *
 * @example
 * const store = new LocalStore({ root: ".cairn" });
 * const runId = await store.createRun({ experimentId: await store.ensureExperiment("etl"), name: "load" });
 * await store.logBatch(runId, { params: { rows: "500" } });
 * await store.endRun(runId, "FINISHED");
 */
export class LocalStore implements Tracker {
  readonly kind = "local";
  /** A folder on this machine, whose artifacts the engine writes in place. */
  readonly capabilities: TrackerCapabilities = Object.freeze({ records: true, localArtifacts: true, sharedRuns: false, mlflowClients: false, remote: false });
  /** Absolute path of the store's folder. */
  readonly uri: string;
  /** See {@link storeId}: read (or made) once per instance. */
  private id: Promise<string | undefined> | undefined;
  /** See {@link storeCopy}: read once per instance. */
  private copy: Promise<string | undefined> | undefined;
  /** Names this instance in the runs it writes. */
  private readonly writer = `${formatOwner()}:${randomUUID().slice(0, 8)}`;
  /** Experiments this instance's `live/` file lists; empty when there is no such file. */
  private readonly liveIn = new Set<string>();
  /** Writes and removals of the `live/` file, in order. */
  private liveFile: Promise<void> = Promise.resolve();
  private readonly owned = new Map<string, OwnedRun>();
  /** Runs being read back from disk to be written again (a log after endRun). */
  private readonly adopting = new Map<string, Promise<OwnedRun>>();
  private readonly knownExperiments = new Set<string>();
  private readonly appender = new JsonlAppender();
  /** `<uri>/runs/` and `<uri>/experiments/`: paths of checked ids are concatenated to them (path.join costs microseconds a call). */
  private readonly runsPrefix: string;
  private readonly experimentsPrefix: string;
  /** The batch file recordRun appends to now: its id (the first half of its runs' ids) and how many runs it has. */
  private batch = { id: "", count: BATCH_RUNS };
  /** Batch files read so far: how far (a byte offset after a whole line), and the runs in them by id. */
  private readonly batchesRead = new Map<string, { ino: number; offset: number; runs: Map<string, RunFile> }>();

  constructor(options: LocalStoreOptions) {
    if (typeof options?.root !== "string" || options.root === "") {
      throw new TrackingError(`LocalStore expects \`root\` to be a folder path, got ${show(options?.root)}.`);
    }
    this.uri = resolve(options.root);
    this.runsPrefix = join(this.uri, "runs") + sep;
    this.experimentsPrefix = join(this.uri, "experiments") + sep;
  }

  /**
   * The store's id: 16 random hex digits in `<root>/store-id`, made by the first call that finds
   * none (racing makers agree: the file is linked in place whole, and the first stands). Two
   * machines' stores at the same path (CI runners' `/home/runner/work/x/x/.cairn`) have the same
   * uri, not the same id. Undefined when the store cannot be written to and has none.
   */
  storeId(): Promise<string | undefined> {
    this.id ??= (async () => {
      const path = join(this.uri, "store-id");
      const read = () => readFile(path, "utf8").then((text) => (STORE_ID.test(text.trim()) ? text.trim() : undefined), () => undefined);
      const found = await read();
      if (found) return found;
      const tmp = `${path}.${process.pid}.${tmpCounter++}.tmp`;
      try {
        await mkdir(this.uri, { recursive: true });
        await writeFile(tmp, `${randomBytes(8).toString("hex")}\n`);
        await link(tmp, path).catch(async (error: unknown) => {
          // No hard links here: rename is atomic too. A damaged file (not an id) is replaced.
          if ((error as NodeJS.ErrnoException).code !== "EEXIST" || (await read()) === undefined) await rename(tmp, path);
        });
      } catch {
        return undefined; // a store that cannot be written to: its entries carry no id, as before ids
      } finally {
        await unlink(tmp).catch(() => {});
      }
      return read();
    })();
    return this.id;
  }

  /**
   * Which copy of this store's folder this is (see `Tracker.storeCopy`): the inode and birth time
   * of its `store-id` file, made once with the file. A copy, a tar archive or a CI cache restores
   * the file's content and mtime, not these. Undefined without an id, or without a birth time.
   */
  storeCopy(): Promise<string | undefined> {
    this.copy ??= this.storeId().then(async (id) => {
      if (id === undefined) return undefined;
      const made = await stat(join(this.uri, "store-id"), { bigint: true }).catch(() => undefined);
      return made && made.birthtimeNs > 0n ? `${made.ino.toString(16)}.${made.birthtimeNs.toString(16)}` : undefined;
    });
    return this.copy;
  }

  /** The run's artifact folder; the engine lets tasks write into it directly instead of copying. */
  artifactDir(runId: string): string {
    return join(this.uri, "artifacts", checkRunId(runId, "artifactDir"));
  }

  async ping(): Promise<void> {
    try {
      await mkdir(this.uri, { recursive: true });
      await access(this.uri, constants.W_OK);
    } catch (error) {
      throw this.unusable(error);
    }
  }

  async ensureExperiment(name: string): Promise<string> {
    if (typeof name !== "string" || name.trim() === "") {
      throw new TrackingError(`LocalStore.ensureExperiment expects a non-empty experiment name, got ${show(name)}.`);
    }
    const experimentId = sha256(name).slice(0, 16);
    if (this.knownExperiments.has(experimentId)) return experimentId;
    const dir = join(this.uri, "experiments", experimentId);
    const meta = join(dir, "meta.json");
    // There already (the usual case): nothing to write, so a read-only store works for reading commands.
    const found = await readJson<ExperimentRecord>(meta).catch(() => undefined);
    if (found?.experimentId === experimentId && found.name === name) {
      this.knownExperiments.add(experimentId);
      return experimentId;
    }
    await mkdir(dir, { recursive: true }).catch(async (error: unknown) => {
      // mkdir's own error may hide the cause: on a read-only file system a recursive mkdir says ENOENT.
      const denied = await this.notWritable();
      if (denied) throw this.unusable(denied);
      throw new TrackingError(`Cannot create experiment "${name}" in ${this.uri}: ${(error as Error).message}.`, { cause: error });
    });
    try {
      // meta.json appears whole or not at all: written aside, then linked in place. When
      // another process won the race, link fails with EEXIST and its file (same name) stands.
      const tmp = join(dir, `meta.json.${process.pid}.${tmpCounter++}.tmp`);
      try {
        // Inside the try: a write that fails part-way (a full disk) leaves no temp file either.
        await writeFile(tmp, JSON.stringify({ experimentId, name, creationTime: Date.now() }));
        await link(tmp, meta).catch(async (error: unknown) => {
          const code = (error as NodeJS.ErrnoException).code;
          // Some file systems have no hard links; rename is atomic too and the content is the same but for the time.
          // A file there that is damaged (not valid JSON, or not this experiment's record) is replaced: this run writes it again.
          const damaged = () => readJson(meta).then((found) => !isRecordOf(found, experimentId), (e: unknown) => (e as Error).cause instanceof SyntaxError);
          if (code !== "EEXIST" || (await damaged())) await rename(tmp, meta);
        });
      } finally {
        await unlink(tmp).catch(() => {});
      }
    } catch (error) {
      throw new TrackingError(`Cannot create experiment "${name}" in ${this.uri}: ${(error as Error).message}.`, { cause: error });
    }
    this.knownExperiments.add(experimentId);
    return experimentId;
  }

  /** The experiment's id when its record is there; nothing is written, so a read-only store is fine. */
  async findExperiment(name: string): Promise<string | undefined> {
    if (typeof name !== "string" || name.trim() === "") {
      throw new TrackingError(`LocalStore.findExperiment expects a non-empty experiment name, got ${show(name)}.`);
    }
    const experimentId = sha256(name).slice(0, 16);
    if (this.knownExperiments.has(experimentId)) return experimentId;
    const found = await readJson<ExperimentRecord>(join(this.uri, "experiments", experimentId, "meta.json")).catch(() => undefined);
    return found?.experimentId === experimentId && found.name === name ? experimentId : undefined;
  }

  async getExperiment(experimentId: string): Promise<ExperimentRecord | undefined> {
    if (!EXPERIMENT_ID.test(experimentId)) return undefined;
    const path = join(this.uri, "experiments", experimentId, "meta.json");
    const meta = await readJson<unknown>(path);
    if (meta === undefined) return undefined;
    if (!isRecordOf(meta, experimentId)) throw new TrackingError(`${path} ${NOT_THE_RECORD}; restore or delete it.`);
    return { experimentId, name: meta.name };
  }

  /**
   * Every experiment in the store, by name. One whose `meta.json` is damaged or missing gets its
   * name back from its runs (the id is the name's hash, so a run named after the experiment, as a
   * flow run is, proves it); failing that it is left out, and `warn` is told: one experiment's
   * damage never hides the others.
   */
  async listExperiments(options: { warn?: ExperimentWarning } = {}): Promise<ExperimentRecord[]> {
    const dir = join(this.uri, "experiments");
    const ids = await readdir(dir).catch(ifAbsent(dir, [] as string[]));
    const all = await Promise.all(ids.filter((id) => EXPERIMENT_ID.test(id)).map((id) => this.listedExperiment(id, options.warn)));
    return all.filter((e): e is ExperimentRecord => e !== undefined).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async createRun(options: CreateRunOptions): Promise<string> {
    const { experimentId, name, parentRunId } = options;
    if (typeof experimentId !== "string" || !EXPERIMENT_ID.test(experimentId)) {
      throw new TrackingError(`LocalStore.createRun: ${show(experimentId)} is not an experiment id of the local store; get one from ensureExperiment().`);
    }
    if (typeof name !== "string") throw new TrackingError(`LocalStore.createRun expects \`name\` to be a string, got ${show(name)}.`);
    const runId = randomUUID().replaceAll("-", "");
    const startTime = options.startTime ?? Date.now();
    const tags = keyed<string>({ "mlflow.runName": name });
    const given = options.tags ?? {};
    for (const key in given) tags[key] = storedValue(given[key]);
    if (parentRunId !== undefined) tags["mlflow.parentRunId"] = parentRunId;
    const state: RunState = { runId, experimentId, name, status: "RUNNING", startTime, params: keyed(), tags, metrics: keyed() };
    const owned: OwnedRun = { state, again: false };
    this.owned.set(runId, owned);
    const line: IndexLine =
      parentRunId === undefined ? { runId, name, startTime, writer: this.writer } : { runId, name, startTime, parentRunId, writer: this.writer };
    try {
      // Before the index line: a run whose process is killed from here on is found by a later process.
      if (!this.liveIn.has(experimentId)) await this.markLive(experimentId);
      await this.appender.append(this.indexPath(experimentId), `${JSON.stringify(line)}\n`, { keepOpen: true, mayBeReplaced: true });
    } catch (error) {
      this.owned.delete(runId);
      const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
      throw new TrackingError(
        missing
          ? `LocalStore.createRun: there is no experiment ${experimentId} in ${this.uri}; get an id from ensureExperiment().`
          : `LocalStore.createRun: cannot record run "${name}" in ${this.uri}: ${(error as Error).message}; ${fsFix(error, "write")}.`,
        { cause: error },
      );
    }
    // A run that ends within the delay (most tasks, every cache hit) costs one write of its run file.
    this.persistSoon(owned);
    return runId;
  }

  /**
   * Records a run that is already over, with its tags, in one step: its index line and its
   * record, a line of this instance's batch file (see the layout above), are appended, and
   * lines asked for at once are one write per file. Resolves once both are on disk. The run
   * is like any other afterwards (a later logBatch or endRun writes it a run file).
   */
  async recordRun(options: FinishedRunOptions): Promise<string> {
    const { experimentId, name, parentRunId, status } = options;
    if (typeof experimentId !== "string" || !EXPERIMENT_ID.test(experimentId)) {
      throw new TrackingError(`LocalStore.recordRun: ${show(experimentId)} is not an experiment id of the local store; get one from ensureExperiment().`);
    }
    if (typeof name !== "string") throw new TrackingError(`LocalStore.recordRun expects \`name\` to be a string, got ${show(name)}.`);
    if (status !== "FINISHED" && status !== "FAILED" && status !== "KILLED") {
      throw new TrackingError(`LocalStore.recordRun expects status FINISHED, FAILED or KILLED, got ${show(status)}.`);
    }
    if (this.batch.count >= BATCH_RUNS) this.batch = { id: randomBytes(8).toString("hex"), count: 0 };
    // Joined, one flat string, as the null tracker's ids are: kept by the run to its end.
    const runId = [this.batch.id, (this.batch.count++).toString(16).padStart(16, "0")].join("");
    const startTime = options.startTime ?? Date.now();
    const endTime = options.endTime ?? Math.max(startTime, Date.now());
    const tags = keyed<string>({ "mlflow.runName": name });
    const given = options.tags ?? {};
    for (const key in given) tags[key] = storedValue(given[key]);
    if (parentRunId !== undefined) tags["mlflow.parentRunId"] = parentRunId;
    const file: RunFile = { runId, experimentId, name, status, startTime, endTime, params: keyed(), tags, metrics: keyed(), writer: this.writer };
    const line: IndexLine = parentRunId === undefined ? { runId, name, startTime } : { runId, name, startTime, parentRunId };
    const index = this.appender.append(this.indexPath(experimentId), `${JSON.stringify(line)}\n`, { keepOpen: true, mayBeReplaced: true });
    const record = this.appender.append(this.batchPath(this.batch.id), `${JSON.stringify(file)}\n`, {
      keepOpen: true,
      // A prune may remove a batch file idle for long (see removeBatchFile): the line then goes to a new one.
      mayBeReplaced: true,
      onMissingFolder: () => mkdir(join(this.uri, "runs"), { recursive: true }),
    });
    const [indexed, recorded] = await Promise.allSettled([index, record]);
    if (indexed.status === "rejected") {
      const error = indexed.reason as NodeJS.ErrnoException;
      throw new TrackingError(
        error.code === "ENOENT"
          ? `LocalStore.recordRun: there is no experiment ${experimentId} in ${this.uri}; get an id from ensureExperiment().`
          : `LocalStore.recordRun: cannot record run "${name}" in ${this.uri}: ${error.message}; ${fsFix(error, "write")}.`,
        { cause: error },
      );
    }
    if (recorded.status === "rejected") {
      const error = recorded.reason as Error;
      throw new TrackingError(`LocalStore.recordRun: cannot write run "${name}" to ${this.uri}: ${error.message}; ${fsFix(error, "write")}.`, { cause: error });
    }
    return runId;
  }

  async logBatch(runId: string, batch: LogBatch): Promise<void> {
    const owned = this.owned.get(runId) ?? (await this.adopt(runId, "logBatch"));
    const { state } = owned;
    const params = batch.params ?? {};
    // Checked before anything is applied, so a rejected batch changes nothing.
    for (const key in params) {
      const value = storedValue(params[key]);
      const before = state.params[key];
      if (before !== undefined && before !== value) {
        throw new TrackingError(
          `LocalStore.logBatch: param "${key}" of run ${runId} is already "${before}"; params are write-once, as in MLflow, ` +
            `so it cannot become "${value}". Log the new value under another key, or as a tag or metric.`,
        );
      }
    }
    const points: (LatestMetric & { key: string })[] = [];
    let lines = "";
    for (const m of batch.metrics ?? []) {
      const { key, value, step = 0, timestamp = Date.now() } = m;
      checkMetric(key, value, step);
      if (!Number.isFinite(timestamp)) throw new TrackingError(`LocalStore.logBatch: metric "${key}" has timestamp ${show(timestamp)}; expected milliseconds since the epoch.`);
      points.push({ key, value, step, timestamp });
      lines += `${JSON.stringify({ key, value: encodeNumber(value), step, timestamp })}\n`;
    }
    for (const key in params) state.params[key] = storedValue(params[key]);
    const tags = batch.tags ?? {};
    for (const key in tags) state.tags[key] = storedValue(tags[key]);
    for (const { key, ...point } of points) {
      const latest = state.metrics[key];
      if (!latest || isLater(point, latest)) state.metrics[key] = point;
    }
    // The run file is rewritten at endRun, flush, or within the delay: a task's params and its end cost one write.
    this.persistSoon(owned);
    if (lines) {
      try {
        await this.appender.append(this.runPath(runId, ".metrics.jsonl"), lines, { onMissingFolder: () => mkdir(join(this.uri, "runs"), { recursive: true }) });
      } catch (error) {
        throw new TrackingError(
          `LocalStore.logBatch: cannot append metrics of run ${runId} to ${this.runPath(runId, ".metrics.jsonl")}: ${(error as Error).message.replace(/\.$/, "")}; ${fsFix(error, "write")}.`,
          { cause: error },
        );
      }
    }
  }

  async logArtifact(runId: string, localPath: string, artifactPath?: string): Promise<void> {
    checkRunId(runId, "logArtifact");
    if (!this.owned.has(runId) && !(await this.getRun(runId))) {
      throw new TrackingError(`LocalStore.logArtifact: there is no run ${runId} in ${this.uri}.`);
    }
    const folder = artifactPath === undefined ? [] : artifactSegments(artifactPath, "logArtifact");
    const destDir = join(this.artifactDir(runId), ...folder);
    // The file keeps its own name, which must be one name too (a path ending in ".." has none).
    const dest = join(destDir, safePathSegment(basename(resolve(localPath)), { source: "LocalStore.logArtifact()" }));
    if (resolve(localPath) === dest) return; // written in place already
    const info = await stat(localPath).catch((error: unknown) => {
      throw new TrackingError(`LocalStore.logArtifact: cannot read "${localPath}" for run ${runId}: ${(error as Error).message}.`, { cause: error });
    });
    try {
      if (info.isDirectory()) {
        await makeFolder(destDir);
        await cp(localPath, dest, { recursive: true });
      } else {
        const owned = this.owned.get(runId);
        if (!owned?.folders?.has(destDir)) {
          await makeFolder(destDir);
          if (owned) (owned.folders ??= new Set()).add(destDir);
        }
        await copyFile(localPath, dest);
      }
    } catch (error) {
      throw new TrackingError(`LocalStore.logArtifact: cannot copy "${localPath}" into run ${runId}: ${(error as Error).message}.`, { cause: error });
    }
  }

  async endRun(runId: string, status: FinalStatus, endTime?: number): Promise<void> {
    if (status !== "FINISHED" && status !== "FAILED" && status !== "KILLED") {
      throw new TrackingError(`LocalStore.endRun expects status FINISHED, FAILED or KILLED, got ${show(status)}.`);
    }
    const owned = this.owned.get(runId) ?? (await this.adopt(runId, "endRun"));
    owned.state.status = status;
    // Now, but never before the start (a clock stepped back during the run), as recordRun and closeRunsOf do.
    owned.state.endTime = endTime ?? Math.max(Date.now(), owned.state.startTime);
    await this.persist(owned);
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const owned = this.owned.get(runId);
    if (owned) return toRecord(owned.state);
    if (typeof runId !== "string" || !RUN_ID.test(runId)) return undefined;
    const file = await this.readRunFile(runId);
    return file && toRecord(file);
  }

  async searchRuns(filter: RunFilter): Promise<RunRecord[]> {
    const max = filter.maxResults ?? 100;
    const candidates: { line: IndexLine; order: number }[] = [];
    const seen = new Set<string>();
    // Runs this instance is recording now have their index line and their batch line written together.
    if (this.batch.id) await this.appender.settled(this.batchPath(this.batch.id));
    for (const experimentId of filter.experimentIds) {
      if (!EXPERIMENT_ID.test(experimentId)) continue;
      const path = this.indexPath(experimentId);
      await this.appender.settled(path);
      const bytes = await readFile(path).catch(ifAbsent(path, Buffer.alloc(0)));
      for (const raw of indexLinesFor(bytes, filter)) {
        const line = parseLine<IndexLine>(raw);
        if (!line || seen.has(line.runId)) continue;
        seen.add(line.runId);
        if (filter.parentRunId !== undefined && line.parentRunId !== filter.parentRunId) continue;
        // A short id's runs, known by their lines: only theirs are read, not every run kept.
        if (filter.runIdPrefix !== undefined && (typeof line.runId !== "string" || !line.runId.startsWith(filter.runIdPrefix))) continue;
        if (filter.topLevelOnly && line.parentRunId !== undefined) continue;
        candidates.push({ line, order: candidates.length });
      }
    }
    // Newest first; runs started in the same millisecond in reverse order of creation.
    candidates.sort((a, b) => b.line.startTime - a.line.startTime || b.order - a.order);
    // Each candidate is a run file read: a search for rare runs would otherwise read every one.
    if (filter.within !== undefined && candidates.length > Math.max(0, filter.within)) {
      candidates.length = Math.max(0, filter.within);
      filter.onCut?.();
    }
    const narrowing = filter.status !== undefined || filter.hasTag !== undefined || (filter.tags !== undefined && Object.keys(filter.tags).length > 0);
    const out: RunRecord[] = [];
    for (let i = 0; i < candidates.length && out.length < max; ) {
      // A long listing would otherwise hold the event loop from start to end: signals (Ctrl-C) would wait.
      if (i > 0 && i % READS_PER_TURN < READ_CONCURRENCY) await setImmediate();
      // Without a status or tag condition every readable run counts, so read no more than needed.
      const size = narrowing ? READ_CONCURRENCY : Math.min(READ_CONCURRENCY, max - out.length);
      // A damaged run file hides that run only, not the whole listing; one that cannot be read
      // (its permissions, a folder in its place) fails the listing, naming it: what it holds is
      // unknown. Unless the caller would rather be told and list the others (`cairn runs`).
      const unread = (runId: string) => (error: unknown) => {
        if (!filter.warn) throw error;
        filter.warn(`${(error as Error).message.replace(/\.$/, "")}; run ${runId} is not listed until it can be read.`, { runId });
        return undefined;
      };
      const runs = await Promise.all(
        candidates.slice(i, i + size).map((c) => this.getRun(c.line.runId).catch(ifDamaged(undefined)).catch(unread(c.line.runId))),
      );
      i += size;
      for (const run of runs) {
        if (!run || !matches(run, filter)) continue;
        out.push(run);
        if (out.length >= max) break;
      }
    }
    return out;
  }

  async getMetricHistory(runId: string, key: string): Promise<MetricPoint[]> {
    if (typeof runId !== "string" || !RUN_ID.test(runId)) return [];
    const path = this.runPath(runId, ".metrics.jsonl");
    await this.appender.settled(path);
    const text = await readFile(path, "utf8").catch(ifAbsent(path, ""));
    const points: MetricPoint[] = [];
    for (const raw of text.split("\n")) {
      const p = parseLine<{ key: string; value: number | string; step: number; timestamp: number }>(raw);
      if (p?.key === key) points.push({ key, value: decodeNumber(p.value), step: p.step, timestamp: p.timestamp });
    }
    return points;
  }

  async listArtifacts(runId: string, path?: string): Promise<ArtifactInfo[]> {
    const segments = path === undefined ? [] : artifactSegments(path, "listArtifacts");
    const dir = join(this.artifactDir(runId), ...segments);
    const prefix = segments.length ? `${segments.join("/")}/` : "";
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    const listed = await Promise.all(
      entries.map(async (e): Promise<ArtifactInfo | undefined> => {
        const rel = prefix + e.name;
        if (e.isDirectory()) return { path: rel, isDir: true };
        const info = await stat(join(dir, e.name)).catch(() => undefined);
        if (!info) return undefined; // removed meanwhile
        return info.isDirectory() ? { path: rel, isDir: true } : { path: rel, isDir: false, size: info.size };
      }),
    );
    return listed.filter((a): a is ArtifactInfo => a !== undefined).sort((a, b) => (a.path < b.path ? -1 : 1));
  }

  async downloadArtifact(runId: string, path: string, destDir: string): Promise<string> {
    const segments = artifactSegments(path, "downloadArtifact");
    const source = join(this.artifactDir(runId), ...segments);
    const dest = join(destDir, segments.at(-1) ?? "artifacts");
    const info = await stat(source).catch(() => undefined);
    if (!info) throw new TrackingError(`Run ${runId} has no artifact "${path}" in ${this.uri}; listArtifacts() shows what it has.`);
    try {
      if (info.isDirectory()) {
        await cp(source, dest, { recursive: true });
      } else {
        await makeFolder(destDir);
        await copyFile(source, dest);
      }
    } catch (error) {
      throw new TrackingError(`Cannot copy artifact "${path}" of run ${runId} to ${destDir}: ${(error as Error).message}.`, { cause: error });
    }
    return dest;
  }

  async flush(): Promise<void> {
    const writes = [...this.owned.values()].map((o) => (o.timer || o.failed ? this.persist(o) : o.writing));
    const results = await Promise.allSettled([...writes, this.appender.close()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    // Nothing of ours is RUNNING any more: no later process has anything to close for us.
    if (this.liveIn.size && ![...this.owned.values()].some((o) => o.state.status === "RUNNING")) {
      this.liveIn.clear();
      const path = this.livePath(this.writer);
      this.liveFile = this.liveFile.then(() => unlink(path).catch(() => {}));
      await this.liveFile;
    }
  }

  /**
   * Closes the runs that processes of this host left RUNNING when they were killed (their
   * process no longer exists): each becomes KILLED, with an end time (now: when it was found)
   * and the tag `cairn.abandoned` saying why. Resolves to the runs closed, parents first.
   * Cheap when there is nothing to close: one listing of the small `live/` folder, and a stat of
   * each other writer's file there. Runs of another host's processes, or of another PID
   * namespace's under this host name (a container with the host's name), or of another boot's
   * that cannot be an earlier boot of this machine (a machine given this host name), are left
   * alone: nothing here can tell whether those still run.
   * A run whose record exists but cannot be read now (its permissions, a folder in its place,
   * too many open files) is left as it is, and `warn` is told, naming the file (by default, a
   * process warning): what it holds is unknown, and it may be a finished run. Its writer's
   * `live/` file stays, so a later instance tries again.
   */
  async closeAbandonedRuns(_experimentIds?: readonly string[], options: AbandonedRunsOptions = {}): Promise<RunRecord[]> {
    const warn = options.warn ?? ((message: string) => process.emitWarning(message, "CairnStoreWarning"));
    const dir = join(this.uri, "live");
    const names = await readdir(dir).catch(() => [] as string[]);
    const closed: RunRecord[] = [];
    for (const name of names) {
      if (!name.endsWith(".json")) continue;
      const base = decodeURIComponent(name.slice(0, -".json".length));
      // `<writer>.json`, or `<writer>.closing-<closer>.json` left by a closer that died itself.
      const [writer, closer] = base.split(".closing-");
      if (!writer || writer === this.writer) continue;
      // Its writer was at work when it last wrote the file: of no earlier boot if that was since this one began.
      const seenAt = await stat(join(dir, name)).then((info) => info.mtimeMs, () => undefined);
      if (!ownerIsGone(parseOwner(writer), seenAt !== undefined ? { seenAt } : {})) continue;
      if (closer !== undefined && !ownerIsGone(parseOwner(closer))) continue;
      // Claimed by a rename, so that two processes never close the same runs at once.
      const claimed = join(dir, `${encodeURIComponent(`${writer}.closing-${this.writer}`)}.json`);
      try {
        await rename(join(dir, name), claimed);
      } catch {
        continue; // another process claimed it first
      }
      let whole = true;
      // A live file that cannot be read (EMFILE, a damaged one) names no experiment: put back, not
      // deleted, or its writer's runs would stay RUNNING for good.
      const experiments = ((await readJson<{ experiments?: unknown }>(claimed).catch((error: unknown) => {
        whole = false;
        warn(`${(error as Error).message}: the runs its writer left RUNNING are closed once it can be read.`);
        return undefined;
      }))?.experiments ?? []) as unknown[];
      for (const experimentId of experiments) {
        if (typeof experimentId !== "string" || !EXPERIMENT_ID.test(experimentId)) continue;
        const done = await this.closeRunsOf(writer, experimentId, warn, options.copyTags);
        for (const run of done.closed) closed.push(run);
        whole &&= done.whole;
      }
      // A run left unread keeps the file under its writer's name, for the next instance to close.
      if (whole) await unlink(claimed).catch(() => {});
      else await rename(claimed, join(dir, name)).catch(() => {});
    }
    return closed;
  }

  /**
   * Removes the flow runs that ended before `endedBefore`, each with the runs under it: their run
   * files, metric logs, artifacts (logs and report pages too), their lines in the experiment's
   * index and batch files left with no run. Kept whole whatever their age: a flow run with a run
   * `keep` names, or with a run still RUNNING (one whose process died is closed first by
   * closeAbandonedRuns, and goes once it is old). Safe beside runs writing now: an index is rewritten whole and renamed
   * in place, and lines appended meanwhile are kept (see the layout above). One prune at a time: a
   * second one is refused, naming the first's process.
   */
  async pruneRuns(options: PruneRunsOptions): Promise<PruneRunsResult> {
    if (!Number.isFinite(options?.endedBefore)) {
      throw new TrackingError(`LocalStore.pruneRuns expects \`endedBefore\` to be a time in epoch ms, got ${show(options?.endedBefore)}.`);
    }
    const result: PruneRunsResult = { removedRuns: 0, removedFlowRuns: 0, freedBytes: 0, keptForCache: 0, keptRunning: 0 };
    // A store never written (a cron job started in another folder): nothing to remove, no lock to make.
    if (!(await stat(this.uri).catch(() => undefined))?.isDirectory()) return result;
    const release = options.dryRun ? undefined : await this.lockPrune();
    try {
      if (!options.dryRun) await this.restoreBatchFilesAside();
      const dir = join(this.uri, "experiments");
      const experimentIds = (await readdir(dir).catch(ifAbsent(dir, [] as string[]))).filter((id) => EXPERIMENT_ID.test(id));
      const removed = new Map<string, PrunableLine[]>();
      const remaining = new Set<string>();
      for (const experimentId of experimentIds) {
        const lines = await this.indexLines(experimentId);
        const choice = await choosePrunedRuns(lines, {
          endedBefore: options.endedBefore,
          keep: options.keep,
          runOf: (runId) => (RUN_ID.test(runId) ? this.getRun(runId).catch(ifDamaged(undefined)) : Promise.resolve(undefined)),
          writerMayRun: (writer) => writer === this.writer || !ownerIsGone(parseOwner(writer)),
        });
        const gone = new Set(choice.remove.map((line) => line.runId));
        for (const line of lines) if (!gone.has(line.runId)) remaining.add(line.runId);
        if (choice.remove.length) removed.set(experimentId, choice.remove);
        result.removedRuns += choice.remove.length;
        result.removedFlowRuns += choice.remove.filter((line) => line.parentRunId === undefined).length;
        result.keptForCache += choice.keptForCache;
        result.keptRunning += choice.keptRunning;
        for (const line of choice.remove) result.freedBytes += Buffer.byteLength(`${JSON.stringify(line)}\n`);
      }
      const runIds = [...removed.values()].flat().map((line) => line.runId).filter((runId) => RUN_ID.test(runId));
      // Most runs (cache hits) have no file of their own: two listings instead of a stat per run and file.
      const inRuns = new Set(await readdir(join(this.uri, "runs")).catch(() => [] as string[]));
      const inArtifacts = new Set(await readdir(join(this.uri, "artifacts")).catch(() => [] as string[]));
      const files = runIds.flatMap((runId) => [
        ...(inRuns.has(`${runId}.json`) ? [this.runPath(runId, ".json")] : []),
        ...(inRuns.has(`${runId}.metrics.jsonl`) ? [this.runPath(runId, ".metrics.jsonl")] : []),
        ...(inArtifacts.has(runId) ? [this.artifactDir(runId)] : []),
      ]);
      const batches = await this.batchFilesLeftWithout(remaining, options.endedBefore);
      for (const size of await inBatches(files, sizeOf)) result.freedBytes += size;
      for (const batch of batches) result.freedBytes += batch.read;
      if (options.dryRun) return result;
      // Files first, the index lines last: a prune that dies part-way leaves lines a later prune finds again.
      await inBatches(files, (path) => rm(path, { recursive: true, force: true }));
      await inBatches(batches, (batch) => this.removeBatchFile(batch.path, batch.read));
      for (const [experimentId, lines] of removed) await this.rewriteIndex(experimentId, new Set(lines.map((line) => line.runId)));
      for (const runId of runIds) this.batchesRead.get(runId.slice(0, 16))?.runs.delete(runId);
      return result;
    } finally {
      await release?.();
    }
  }

  // ------------------------------------------------------------ internals

  /** The experiment's index lines, each run's first only (a line may be written twice beside a prune). */
  private async indexLines(experimentId: string): Promise<PrunableLine[]> {
    const path = this.indexPath(experimentId);
    await this.appender.settled(path);
    const text = await readFile(path, "utf8").catch(ifAbsent(path, ""));
    const lines = new Map<string, PrunableLine>();
    for (const raw of text.split("\n")) {
      const line = parseLine<IndexLine>(raw);
      if (line && typeof line.runId === "string" && !lines.has(line.runId)) lines.set(line.runId, line);
    }
    return [...lines.values()];
  }

  /**
   * The batch files none of whose runs is in `remaining` (an index's runs that stay) and that were
   * last written before `endedBefore`: a process that still records into one appended to it since.
   * Each with how many bytes of it were read: what is appended after that is not the prune's to remove.
   */
  private async batchFilesLeftWithout(remaining: ReadonlySet<string>, endedBefore: number): Promise<{ path: string; read: number }[]> {
    const dir = join(this.uri, "runs");
    const names = (await readdir(dir).catch(ifAbsent(dir, [] as string[]))).filter((name) => name.endsWith(".batch.jsonl"));
    const found: { path: string; read: number }[] = [];
    for (const name of names) {
      const path = join(dir, name);
      const info = await stat(path).catch(() => undefined);
      if (!info || info.mtimeMs >= endedBefore) continue;
      const bytes = await readFile(path).catch(() => undefined);
      if (bytes === undefined) continue;
      const used = bytes
        .toString("utf8")
        .split("\n")
        .some((raw) => {
          const runId = parseLine<RunFile>(raw)?.runId;
          return typeof runId === "string" && remaining.has(runId);
        });
      if (!used) found.push({ path, read: bytes.length });
    }
    return found;
  }

  /**
   * Removes a batch file {@link batchFilesLeftWithout} chose, keeping what a long-lived recorder (a
   * `cairn worker` whose batch file was idle) appended since it was read: the file is first renamed
   * aside, so that a later append makes a new file at its path; the whole lines found past what was
   * read are appended there, and only then is the aside file removed. A line written to the aside
   * file after this copy is written again at the path by its recorder, which checks after each write
   * that its file is still there (JsonlAppender's `mayBeReplaced`). A line may then be there twice;
   * readers keep one.
   */
  private async removeBatchFile(path: string, read: number): Promise<void> {
    const aside = `${path}${ASIDE}`;
    try {
      await rename(path, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw error;
    }
    const bytes = await readFile(aside);
    const appended = bytes.subarray(read, bytes.lastIndexOf(10) + 1);
    if (appended.length) {
      await this.appender.append(path, appended.toString("utf8"), {
        mayBeReplaced: true,
        onMissingFolder: () => mkdir(dirname(path), { recursive: true }),
      });
    }
    await rm(aside, { force: true });
  }

  /**
   * Puts back the batch files that a prune killed part-way through removeBatchFile left set aside
   * (`<batch>.pruning`), which no reader reads: they may hold the runs of hits recorded after that
   * prune read the file. Its index lines are all still there (the index is rewritten last), so
   * this prune decides again what goes. Called under the prune lock only: before it is taken, an
   * aside file may be a live prune's own, mid-removal.
   */
  private async restoreBatchFilesAside(): Promise<void> {
    const dir = join(this.uri, "runs");
    const names = await readdir(dir).catch(ifAbsent(dir, [] as string[]));
    for (const name of names) {
      if (name.endsWith(`.batch.jsonl${ASIDE}`)) await this.restoreBatchFile(join(dir, name.slice(0, -ASIDE.length)));
    }
  }

  /** Puts `<path>.pruning` back at `path` (see restoreBatchFilesAside). */
  private async restoreBatchFile(path: string): Promise<void> {
    const aside = `${path}${ASIDE}`;
    try {
      // A link, unlike a rename, never replaces a file a recorder has made again at the path since,
      // and keeps the file's time, by which a prune judges it idle.
      await link(aside, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const [set, made] = await Promise.all([stat(aside), stat(path)]);
      // The same file when the prune was killed after its link; else a recorder's new one, which gets the lines.
      if (set.ino !== made.ino || set.dev !== made.dev) {
        const bytes = await readFile(aside);
        const whole = bytes.subarray(0, bytes.lastIndexOf(10) + 1);
        // A line may then be there twice (one its recorder wrote again): readers keep one.
        if (whole.length) await this.appender.append(path, whole.toString("utf8"), { mayBeReplaced: true });
      }
    }
    await rm(aside, { force: true });
  }

  /**
   * Writes the experiment's index again without the lines of `drop`, whole and renamed in place.
   * Lines appended to the old file while this ran (a run created now) are copied into the new one;
   * one appended after that copy is written again by its writer (JsonlAppender's `mayBeReplaced`).
   */
  private async rewriteIndex(experimentId: string, drop: ReadonlySet<string>): Promise<void> {
    const path = this.indexPath(experimentId);
    await this.appender.settled(path);
    const old = await open(path, "r");
    try {
      const before = await readAll(old, 0);
      const end = before.lastIndexOf(10) + 1;
      const kept = before
        .toString("utf8", 0, end)
        .split("\n")
        .filter((raw) => raw !== "" && !drop.has(parseLine<IndexLine>(raw)?.runId as string));
      await writeFileAtomic(dirname(path), basename(path), kept.length ? `${kept.join("\n")}\n` : "");
      const appended = await readAll(old, end);
      // Whole lines only: a line still being written is written again by its writer, which finds its file replaced.
      const whole = appended.subarray(0, appended.lastIndexOf(10) + 1);
      if (whole.length) await this.appender.append(path, whole.toString("utf8"), { mayBeReplaced: true });
    } finally {
      await old.close();
    }
  }

  /**
   * Takes `prune.lock` for this process (one whose process is gone is taken over, and so is one
   * that names no process and is older than {@link UNOWNED_LOCK_MS}); resolves to its release.
   * A stale lock is claimed before it is removed (see {@link claimStaleLock}): two prunes that
   * read the same stale lock do not both end up holding one.
   */
  private async lockPrune(): Promise<() => Promise<void>> {
    const path = join(this.uri, "prune.lock");
    // The lock appears with its owner in it: written to a file of this process's own first, then
    // linked to the lock's name, which never replaces a lock that is there. Made empty and then
    // written, a prune killed in between (kill -9) left an empty lock that refused every prune.
    const take = async () => {
      const temp = `${path}.${process.pid}.${tmpCounter++}.tmp`;
      try {
        await writeFile(temp, this.writer);
        await link(temp, path);
      } catch (error) {
        if (!cannotLink(error)) throw error;
        await takeByOpen();
      } finally {
        await unlink(temp).catch(() => {});
      }
    };
    // Where the folder's file system has no hard links: made, then written.
    const takeByOpen = async () => {
      const file = await open(path, "wx");
      try {
        await file.writeFile(this.writer);
        await file.close();
      } catch (error) {
        // A full disk creates the file and refuses its content: an empty lock left there refused every later prune.
        await file.close().catch(() => {});
        await unlink(path).catch(() => {});
        throw error;
      }
    };
    const held = (owner: ReturnType<typeof parseOwner>, seen?: SeenLock) =>
      new TrackingError(
        owner || !seen
          ? `Another prune is removing runs from ${this.uri}${owner ? ` (process ${owner.pid} on ${owner.host})` : ""}: ${path} is there. ` +
              `Wait for it to end and run this again; if no such process runs, delete ${path}.`
          : unownedLockMessage(this.uri, path, seen),
      );
    const notWritten = (error: unknown) =>
      new TrackingError(`LocalStore.pruneRuns: cannot write ${path}: ${(error as Error).message}; ${fsFix(error, "write")}.`, { cause: error });
    try {
      await take();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw notWritten(error);
      const seen = await readLock(path);
      const owner = parseOwner(seen?.text ?? "");
      if (!(owner ? ownerIsGone(owner) : leftUnowned(seen))) throw held(owner, seen);
      const release = seen ? await claimStaleLock(path, seen).catch((claiming: unknown) => Promise.reject(notWritten(claiming))) : async () => {};
      if (!release) throw held(undefined); // another prune claimed it first, or it changed since it was read
      try {
        if (seen) await unlink(path).catch(() => {}); // its process is gone; a lock gone already is not removed by path: it may be a new one
        await take().catch((again: unknown) => {
          throw (again as NodeJS.ErrnoException).code === "EEXIST" ? held(undefined) : notWritten(again); // EEXIST: a new prune took it meanwhile
        });
      } finally {
        await release();
      }
    }
    return () => unlink(path).catch(() => {});
  }

  /** The error for a store folder this process cannot write to, saying where to point it instead. */
  private unusable(error: unknown): TrackingError {
    return new TrackingError(
      `Cannot use ${this.uri} as Cairn's local store: ${(error as Error).message.replace(/\.$/, "")}${danglingLink(this.uri)}. ` +
        `Point it at a writable folder (${POINT_ELSEWHERE}), or set MLFLOW_TRACKING_URI to use an MLflow server.`,
      { cause: error },
    );
  }

  /** Why the store's folder cannot be written to (its nearest existing parent's, when it does not exist yet), or undefined when it can. */
  private async notWritable(): Promise<unknown> {
    for (let dir = this.uri; ; dir = dirname(dir)) {
      try {
        await access(dir, constants.W_OK);
        return undefined;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT" || dirname(dir) === dir) return error;
      }
    }
  }

  /** An experiment as listExperiments shows it (see there), or undefined to leave it out. */
  private async listedExperiment(experimentId: string, warn: ExperimentWarning | undefined): Promise<ExperimentRecord | undefined> {
    const meta = join(this.uri, "experiments", experimentId, "meta.json");
    let problem: string;
    try {
      const found = await readJson<unknown>(meta);
      if (isRecordOf(found, experimentId)) return { experimentId, name: found.name };
      problem = found === undefined ? "is missing" : NOT_THE_RECORD;
    } catch (error) {
      if (!((error as Error).cause instanceof SyntaxError)) {
        warn?.(`${(error as Error).message.replace(/\.$/, "")}; the runs of experiment ${experimentId} are not listed until it can be read.`, { experimentId, listed: false });
        return undefined;
      }
      problem = "is not valid JSON";
    }
    const index = this.indexPath(experimentId);
    const text = await readFile(index, "utf8").catch(() => "");
    if (!text) return undefined; // an experiment folder with no runs: nothing to list
    for (const raw of text.split("\n")) {
      const name = parseLine<IndexLine>(raw)?.name;
      if (typeof name === "string" && sha256(name).slice(0, 16) === experimentId) {
        warn?.(`${meta} ${problem}; the experiment's name, "${name}", was read from its runs. The flow's next run in this store writes the file again.`, { experimentId, listed: true });
        return { experimentId, name };
      }
    }
    warn?.(
      `${meta} ${problem}, and no run in ${index} tells the experiment's name: its runs are not listed. ` +
        `The flow's next run in this store writes the file again (or write it yourself: {"experimentId":"${experimentId}","name":"<experiment name>"}).`,
      { experimentId, listed: false },
    );
    return undefined;
  }

  /** `live/<writer>.json`. */
  private livePath(writer: string): string {
    return join(this.uri, "live", `${encodeURIComponent(writer)}.json`);
  }

  /** Lists `experimentId` in this instance's `live/` file (written whole, atomically). */
  private markLive(experimentId: string): Promise<void> {
    this.liveIn.add(experimentId);
    const path = this.livePath(this.writer);
    const text = JSON.stringify({ experiments: [...this.liveIn] });
    this.liveFile = this.liveFile.then(() => writeFileAtomic(dirname(path), basename(path), text));
    const written = this.liveFile;
    this.liveFile = written.catch(() => {});
    return written.catch((error: unknown) => {
      this.liveIn.delete(experimentId);
      throw error;
    });
  }

  /**
   * Closes as KILLED the RUNNING runs `writer` (a process that is gone) created in `experimentId`.
   * `whole` is false when a file could not be read (not missing: unreadable), so that some of its
   * runs may still be RUNNING; `warn` was told which. `copyTags`: see Tracker.closeAbandonedRuns.
   */
  private async closeRunsOf(writer: string, experimentId: string, warn: (message: string) => void, copyTags?: Readonly<Record<string, string>>): Promise<{ closed: RunRecord[]; whole: boolean }> {
    const index = this.indexPath(experimentId);
    let text: string;
    try {
      text = await readFile(index, "utf8").catch(ifAbsent(index, ""));
    } catch (error) {
      warn(
        `${(error as Error).message.replace(/\.$/, "")}. The runs a killed process left RUNNING in experiment ${experimentId} stay so: ` +
          `the next process that opens this store closes them once the file can be read.`,
      );
      return { closed: [], whole: false };
    }
    let whole = true;
    const closed: RunRecord[] = [];
    const now = Date.now();
    const owner = parseOwner(writer);
    const reason =
      `Its process (pid ${owner?.pid} on ${owner?.host}) ended without closing it: killed, crashed, or its closing record could not be written (a full disk); ` +
      `closed as KILLED by process ${process.pid} at ${new Date(now).toISOString()}.`;
    const seen = new Set<string>();
    for (const raw of text.split("\n")) {
      const line = parseLine<IndexLine>(raw);
      // A line may be there twice (written again beside a prune): its run is closed once.
      if (!line || line.writer !== writer || !RUN_ID.test(line.runId) || seen.has(line.runId)) continue;
      seen.add(line.runId);
      let file: (RunState & { writer: string }) | undefined;
      try {
        // Damaged (not valid JSON) counts as absent: there is nothing in it to keep.
        file = await this.readRunFile(line.runId).catch(ifDamaged(undefined));
      } catch (error) {
        // It exists but cannot be read: it may be a finished run, whose params and metrics a KILLED record would replace.
        warn(
          `${(error as Error).message.replace(/\.$/, "")}. Run ${line.runId} ("${line.name}") is left as it is, not closed as KILLED: what the file ` +
            `holds is unknown, and a finished run's params and metrics would be lost. The next process that opens this store closes it, if it was left RUNNING, once the file can be read.`,
        );
        whole = false;
        continue;
      }
      if (file && file.status !== "RUNNING" && file.status !== "SCHEDULED") continue;
      // Killed before its run file was written: what its index line says is all there is.
      const tags = keyed<string>({ "mlflow.runName": line.name, ...(line.parentRunId ? { "mlflow.parentRunId": line.parentRunId } : {}) });
      const state: RunState = file ?? { runId: line.runId, experimentId, name: line.name, status: "RUNNING", startTime: line.startTime, params: keyed(), tags, metrics: keyed() };
      state.status = "KILLED";
      state.endTime = Math.max(now, state.startTime);
      state.tags[ABANDONED_TAG] = reason;
      Object.assign(state.tags, copiedTags(state.tags, copyTags));
      await this.writeRunFile({ runId: state.runId, experimentId: state.experimentId, name: state.name, status: state.status, startTime: state.startTime, endTime: state.endTime, params: state.params, tags: state.tags, metrics: state.metrics });
      closed.push(toRecord(state));
    }
    // Parents first, then by start.
    closed.sort((a, b) => (a.parentRunId === undefined ? 0 : 1) - (b.parentRunId === undefined ? 0 : 1) || a.startTime - b.startTime);
    return { closed, whole };
  }

  /** `runs/<runId><suffix>`, for a checked run id. */
  private runPath(runId: string, suffix: ".json" | ".metrics.jsonl"): string {
    return this.runsPrefix + runId + suffix;
  }

  /** `runs/<batchId>.batch.jsonl`. */
  private batchPath(batchId: string): string {
    return `${this.runsPrefix}${batchId}.batch.jsonl`;
  }

  /** `experiments/<id>/runs.jsonl`, for a checked experiment id. */
  private indexPath(experimentId: string): string {
    return `${this.experimentsPrefix}${experimentId}${sep}runs.jsonl`;
  }

  /**
   * A run recorded by recordRun (here or by another process), from its batch file, or undefined.
   * Batch files only grow, a line at a time, so what was read of one is kept and only what was
   * appended since is read: a listing of a flow's thousand hits reads each batch file once. A prune
   * may remove one and a recorder then make it again: a file other than the one read is read whole.
   */
  private readBatchedRun(runId: string): RunFile | undefined {
    const batchId = runId.slice(0, 16);
    let read = this.batchesRead.get(batchId);
    const known = read?.runs.get(runId);
    if (known) return copyOf(known);
    let fd: number;
    const path = this.batchPath(batchId);
    try {
      fd = openSync(path, "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined; // no such batch: the run is not (yet) on disk
      throw unreadable(path, error);
    }
    try {
      const { size, ino } = fstatSync(fd);
      if (read && read.ino !== ino) read.offset = 0;
      const offset = read?.offset ?? 0;
      if (size <= offset) return undefined;
      const bytes = Buffer.allocUnsafe(size - offset);
      let got = 0;
      while (got < bytes.length) {
        const n = readSync(fd, bytes, got, bytes.length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      // Only whole lines: a line being appended (or cut short by a crash) is left for a later read.
      const end = bytes.subarray(0, got).lastIndexOf(10) + 1;
      if (end === 0) return undefined;
      if (!read) this.batchesRead.set(batchId, (read = { ino, offset: 0, runs: new Map() }));
      read.ino = ino;
      read.offset = offset + end;
      for (const raw of bytes.toString("utf8", 0, end).split("\n")) {
        const run = parseLine<RunFile>(raw);
        if (run && typeof run.runId === "string") read.runs.set(run.runId, run);
      }
    } finally {
      closeSync(fd);
    }
    return copyOf(read.runs.get(runId));
  }

  /** Takes back a run this instance created and already let go of (a log after endRun); refuses other runs. */
  private adopt(runId: string, method: string): Promise<OwnedRun> {
    let adopting = this.adopting.get(runId);
    if (!adopting) {
      adopting = (async () => {
        const file = RUN_ID.test(runId) ? await this.readRunFile(runId) : undefined;
        const again = this.owned.get(runId);
        if (again) return again;
        if (!file) {
          throw new TrackingError(
            `LocalStore.${method}: this store has no run ${show(runId)} in ${this.uri}. Only the process that created a run ` +
              `writes to it; create runs with createRun() on the same LocalStore.`,
          );
        }
        if (file.writer !== this.writer) {
          throw new TrackingError(
            `LocalStore.${method}: run ${runId} was not created by this process (it was by ${file.writer}); ` +
              `the local store lets only a run's creator write to it, so that two processes never overwrite each other.`,
          );
        }
        const owned: OwnedRun = { state: file, again: false };
        this.owned.set(runId, owned);
        return owned;
      })().finally(() => this.adopting.delete(runId));
      this.adopting.set(runId, adopting);
    }
    return adopting;
  }

  private persistSoon(owned: OwnedRun): void {
    if (owned.timer) return;
    owned.timer = setTimeout(() => void this.persist(owned).catch(() => {}), PERSIST_DELAY_MS);
    owned.timer.unref();
  }

  /**
   * Writes the run file atomically. Writes asked for while one is in flight fold into one
   * more. An ended run leaves memory once written; readers then get it from disk.
   */
  private persist(owned: OwnedRun): Promise<void> {
    if (owned.timer) {
      clearTimeout(owned.timer);
      owned.timer = undefined;
    }
    if (owned.writing) {
      owned.again = true;
      return owned.writing;
    }
    owned.failed = false;
    const write = async (): Promise<void> => {
      try {
        do {
          owned.again = false;
          await this.writeRunFile(owned.state);
        } while (owned.again);
      } finally {
        // In the same step as the last check, so no request can slip between them.
        owned.writing = undefined;
      }
      const { runId, status } = owned.state;
      if (status !== "RUNNING" && status !== "SCHEDULED" && !owned.timer && this.owned.get(runId) === owned) this.owned.delete(runId);
    };
    owned.writing = write().catch((error: unknown) => {
      owned.failed = true;
      throw new TrackingError(`LocalStore: cannot write run ${owned.state.runId} to ${this.uri}: ${(error as Error).message}; ${fsFix(error, "write")}.`, { cause: error });
    });
    return owned.writing;
  }

  private async writeRunFile(state: RunState): Promise<void> {
    const path = this.runPath(state.runId, ".json");
    const metrics: RunFile["metrics"] = keyed();
    for (const key in state.metrics) {
      const m = state.metrics[key]!;
      metrics[key] = { value: encodeNumber(m.value), step: m.step, timestamp: m.timestamp };
    }
    const text = JSON.stringify({ ...state, metrics, writer: this.writer } satisfies RunFile);
    // runs/ is made by the first write to it.
    await writeFileAtomic(dirname(path), basename(path), text);
  }

  /** The run file (else the run's line in its batch file) as a RunState plus its writer, or undefined when there is none (yet). */
  private async readRunFile(runId: string): Promise<(RunState & { writer: string }) | undefined> {
    const file = (await readJson<RunFile>(this.runPath(runId, ".json"))) ?? this.readBatchedRun(runId);
    if (!file) return undefined;
    const metrics = keyed<LatestMetric>();
    for (const key in file.metrics) {
      const m = file.metrics[key]!;
      metrics[key] = { value: decodeNumber(m.value), step: m.step, timestamp: m.timestamp };
    }
    return { ...file, params: keyed(file.params), tags: keyed(file.tags), metrics };
  }
}

/**
 * `; it is a symbolic link to X, which does not exist` when `path` is a link whose target is
 * missing (mkdir through it says only ENOENT), else "".
 */
function danglingLink(path: string): string {
  try {
    if (!lstatSync(path).isSymbolicLink()) return "";
    try {
      statSync(path);
      return "";
    } catch {
      return `; it is a symbolic link to ${readlinkSync(path)}, which does not exist: create that folder, or remove the link`;
    }
  } catch {
    return "";
  }
}

/** A run read from a batch file, with params and tags of its own: the one kept for later reads must not change (a run adopted to be written again changes its copy). */
function copyOf(run: RunFile | undefined): RunFile | undefined {
  return run && { ...run, params: keyed(run.params), tags: keyed(run.tags) };
}

/**
 * A run's params, tags or metrics by key (a copy of `from`, else empty), without a prototype: a
 * task may name one `constructor`, `toString` or `__proto__`, which on a plain object read as
 * Object.prototype's members (a param "already set" to a function, a metric never later) or set
 * the prototype instead of a key. A spread of it (`{ ...record }`) keeps each as an own key.
 */
function keyed<T>(from?: Readonly<Record<string, T>>): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, from);
}

/**
 * Whether `meta` (a parsed meta.json) is the record of experiment `experimentId`: an object with
 * that id and a name whose hash it is. Anything else (`{}`, `[]`, another experiment's record)
 * would otherwise hide the experiment's runs behind an id or name that is not theirs.
 */
function isRecordOf(meta: unknown, experimentId: string): meta is ExperimentRecord {
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) return false;
  const { experimentId: id, name } = meta as Partial<ExperimentRecord>;
  return id === experimentId && typeof name === "string" && sha256(name).slice(0, 16) === experimentId;
}

/** A RunRecord the caller may keep and change. */
function toRecord(state: RunState): RunRecord {
  // fromEntries, not assignment: a metric named __proto__ stays a key of the copy.
  const metrics: Record<string, number> = Object.fromEntries(Object.keys(state.metrics).map((key) => [key, state.metrics[key]!.value]));
  const parentRunId = state.tags["mlflow.parentRunId"];
  return {
    runId: state.runId,
    experimentId: state.experimentId,
    name: state.name,
    status: state.status,
    startTime: state.startTime,
    ...(state.endTime !== undefined ? { endTime: state.endTime } : {}),
    ...(parentRunId !== undefined ? { parentRunId } : {}),
    params: { ...state.params },
    metrics,
    tags: { ...state.tags },
  };
}

function matches(run: RunRecord, filter: RunFilter): boolean {
  if (filter.status !== undefined && run.status !== filter.status) return false;
  if (filter.parentRunId !== undefined && run.parentRunId !== filter.parentRunId) return false;
  if (filter.topLevelOnly && run.parentRunId !== undefined) return false;
  const tags = filter.tags ?? {};
  for (const key in tags) if (run.tags[key] !== tags[key]) return false;
  if (filter.withoutTag && run.tags[filter.withoutTag.key] === filter.withoutTag.value) return false;
  if (filter.hasTag !== undefined && run.tags[filter.hasTag] === undefined) return false;
  return true;
}

/** MLflow's order for a metric's latest value: step, then timestamp, then value. */
function isLater(a: LatestMetric, b: LatestMetric): boolean {
  if (a.step !== b.step) return a.step > b.step;
  if (a.timestamp !== b.timestamp) return a.timestamp > b.timestamp;
  return a.value > b.value;
}

function checkRunId(runId: string, method: string): string {
  if (typeof runId !== "string" || !RUN_ID.test(runId)) {
    throw new TrackingError(`LocalStore.${method} expects a run id of 32 lowercase hex characters, got ${show(runId)}.`);
  }
  return runId;
}

/** The parts of an artifact path, checked by the one rule (safeRelativePath); "" is the run's root. */
function artifactSegments(path: string, method: string): string[] {
  if (typeof path !== "string") throw new TrackingError(`LocalStore.${method} expects an artifact path string, got ${show(path)}.`);
  return path === "" ? [] : safeRelativePath(path, { source: `LocalStore.${method}()` }).split("/");
}

function encodeNumber(value: number): number | string {
  return Number.isFinite(value) ? value : String(value);
}

function decodeNumber(value: number | string | null): number {
  return typeof value === "number" ? value : value === null ? Number.NaN : Number(value);
}

/**
 * One line of a `.jsonl` file, or undefined when it holds no whole record. A line cut short (a
 * crash or a full disk mid-append) names nothing whole; when a later append was written straight
 * after it (by a writer that did not end the half line first), the record at the end is whole and
 * is kept: the shortest tail starting at `{"` that parses.
 */
function parseLine<T>(raw: string): T | undefined {
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as T;
  } catch {
    for (let at = raw.lastIndexOf('{"'); at > 0; at = raw.lastIndexOf('{"', at - 1)) {
      try {
        const value: unknown = JSON.parse(raw.slice(at));
        if (value !== null && typeof value === "object" && !Array.isArray(value)) return value as T;
      } catch {
        // not a whole record from here: try an earlier start
      }
    }
    return undefined;
  }
}

/** A lock file as read: its text and which file it was (inode, modification time), or undefined when it is gone. */
interface SeenLock {
  text: string;
  ino: number;
  mtimeMs: number;
}

/**
 * The lock at `path` as {@link SeenLock}, its text and identity read through one handle (a lock
 * this process may not read: no text); undefined when it is gone.
 */
async function readLock(path: string): Promise<SeenLock | undefined> {
  const file = await open(path, "r").catch(() => undefined);
  if (!file) return stat(path).then(({ ino, mtimeMs }) => ({ text: "", ino, mtimeMs }), () => undefined);
  try {
    const { ino, mtimeMs } = await file.stat();
    return { text: await file.readFile("utf8").catch(() => ""), ino, mtimeMs };
  } finally {
    await file.close().catch(() => {});
  }
}

/**
 * Claims the stale lock `seen` at `path` for this process alone before it is removed: a claim file
 * named after that very lock (its inode and modification time) is created exclusively, so of two
 * prunes that read the same stale lock one gets the claim; the other is refused. Under the claim,
 * the lock is read again: one that is no longer `seen` (another prune took over meanwhile and
 * released its claim) is left alone. Resolves to the claim's release, or undefined when not claimed;
 * rejects when the claim cannot be written. Removing by path without a claim let a second prune
 * unlink the first's new lock and take its own. A claim older than {@link DEAD_CLAIM_MS} was left
 * by a prune killed while holding it: it is taken over the same way (see {@link createClaim}).
 */
async function claimStaleLock(path: string, seen: SeenLock): Promise<(() => Promise<void>) | undefined> {
  const claim = `${path}.takeover-${seen.ino}-${Math.trunc(seen.mtimeMs)}`;
  if (!(await createClaim(claim))) return undefined;
  const release = () => unlink(claim).catch(() => {});
  const now = await readLock(path);
  if (now && (now.ino !== seen.ino || now.mtimeMs !== seen.mtimeMs || now.text !== seen.text)) {
    await release();
    return undefined;
  }
  return release;
}

/**
 * Creates the claim file `claim` exclusively; false when another prune holds it. One older than
 * {@link DEAD_CLAIM_MS} is a dead prune's (a claim is held only while a stale lock is swapped for a
 * new one): it is itself claimed as a stale lock before it is removed and made again, so that of
 * two prunes that find it one wins. Left, it refused every later prune for good.
 */
async function createClaim(claim: string): Promise<boolean> {
  const made = async () => {
    const file = await open(claim, "wx").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "EEXIST") return undefined;
      throw error;
    });
    await file?.close().catch(() => {});
    return file !== undefined;
  };
  if (await made()) return true;
  const left = await readLock(claim);
  if (left && Date.now() - left.mtimeMs <= DEAD_CLAIM_MS) return false;
  const release = left ? await claimStaleLock(claim, left) : async () => {};
  if (!release) return false;
  try {
    if (left) await unlink(claim).catch(() => {});
    return await made();
  } finally {
    await release();
  }
}

/**
 * Why a prune is refused by a young `prune.lock` that names no process, and when it is taken over:
 * left empty by a prune stopped between making it and writing its pid (an older Cairn made it so,
 * or a file system without hard links), or holding something else.
 */
function unownedLockMessage(store: string, path: string, seen: SeenLock): string {
  const what = seen.text === "" ? "was left empty by a prune that was stopped before it wrote its pid" : "names no prune's process";
  const at = seen.mtimeMs + UNOWNED_LOCK_MS;
  const clock = new Date(at).toTimeString().slice(0, 8);
  const wait = Math.max(1, Math.ceil((at - Date.now()) / 1000));
  return (
    `Cannot prune runs from ${store}: ${path} ${what}. It is taken over ${UNOWNED_LOCK_MS / 1000} s after it was made, at ${clock} (in ${wait} s): ` +
    `run this again then, or delete ${path} if no prune runs.`
  );
}

/** Hard links are not made in this folder (a file system without them): the lock is made by another way. */
function cannotLink(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "ENOSYS";
}

/** A lock that names no process is stale once older than {@link UNOWNED_LOCK_MS} (its writer died before writing its owner); one gone is free. */
function leftUnowned(seen: SeenLock | undefined): boolean {
  return !seen || Date.now() - seen.mtimeMs > UNOWNED_LOCK_MS;
}

/**
 * The parsed file, or undefined when it does not exist. A file that exists but cannot be read
 * (its permissions, a folder in its place, too many open files) is a TrackingError naming it:
 * taking it for absent would call a run that exists gone (and evict the cache entries it backs).
 */
async function readJson<T>(path: string): Promise<T | undefined> {
  let text: string | undefined;
  try {
    text = readSmallFile(path);
  } catch (error) {
    throw unreadable(path, error);
  }
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    // Files are replaced whole, so this is damage from outside (a disk error, an edit), not a write in progress.
    throw new TrackingError(`${path} is not valid JSON (${(error as Error).message}); restore or delete it.`, { cause: error });
  }
}

/** The error for a file or folder of the store that exists (or may) but cannot be read. */
function unreadable(path: string, error: unknown): TrackingError {
  return new TrackingError(`Cannot read ${path} in Cairn's local store: ${(error as Error).message}; ${fsFix(error, "read")}.`, { cause: error });
}

/** For a `.catch` of a read: `fallback` when the path does not exist, else the error naming it. */
function ifAbsent<T>(path: string, fallback: T): (error: unknown) => T {
  return (error) => {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return fallback;
    throw unreadable(path, error);
  };
}

/** For a `.catch` of a run's read: `fallback` when the file is damaged (not valid JSON), else the error. */
function ifDamaged<T>(fallback: T): (error: unknown) => T {
  return (error) => {
    if ((error as Error).cause instanceof SyntaxError) return fallback;
    throw error;
  };
}

/** The lines of `bytes` (UTF-8) that hold `needle` (ASCII), in order, each once. */
/**
 * The lines of an index that may hold the runs `filter` asks for. A parent's children (a
 * report's, `cairn show`'s search), or the runs whose id starts with a prefix: only the lines
 * holding that id or prefix can be theirs, and finding those in the bytes costs far less than
 * decoding and parsing every line of a long index. Each line found is still checked whole.
 */
function indexLinesFor(bytes: Buffer, filter: RunFilter): string[] {
  if (filter.parentRunId !== undefined && RUN_ID.test(filter.parentRunId)) return linesHolding(bytes, filter.parentRunId);
  if (filter.runIdPrefix !== undefined && /^[0-9a-f]+$/.test(filter.runIdPrefix)) return linesHolding(bytes, filter.runIdPrefix);
  return bytes.toString("utf8").split("\n");
}

function linesHolding(bytes: Buffer, needle: string): string[] {
  const lines: string[] = [];
  for (let at = bytes.indexOf(needle); at !== -1; ) {
    const start = bytes.lastIndexOf(10, at) + 1;
    const newline = bytes.indexOf(10, at);
    const end = newline === -1 ? bytes.length : newline;
    lines.push(bytes.toString("utf8", start, end));
    at = bytes.indexOf(needle, end);
  }
  return lines;
}

/** Every byte of the open file from `offset` on. */
async function readAll(handle: FileHandle, offset: number): Promise<Buffer> {
  const { size } = await handle.stat();
  const bytes = Buffer.alloc(Math.max(0, size - offset));
  let got = 0;
  while (got < bytes.length) {
    const { bytesRead } = await handle.read(bytes, got, bytes.length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return bytes.subarray(0, got);
}

/** `fn` of each item, at most {@link READ_CONCURRENCY} at once, in order. */
async function inBatches<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += READ_CONCURRENCY) out.push(...(await Promise.all(items.slice(i, i + READ_CONCURRENCY).map(fn))));
  return out;
}

/** Bytes of the file, or of every file in the folder, at `path`; 0 when there is none. */
async function sizeOf(path: string): Promise<number> {
  const info = await lstat(path).catch(() => undefined);
  if (!info) return 0;
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const name of await readdir(path).catch(() => [] as string[])) total += await sizeOf(join(path, name));
  return total;
}

/** A value for an error message. */
function show(value: unknown): string {
  if (typeof value === "string") return `"${value}"`;
  if (value === undefined || value === null || typeof value === "number" || typeof value === "boolean") return `\`${String(value)}\` (${value === null ? "null" : typeof value})`;
  return typeof value;
}

/**
 * A param's or tag's value as it is kept: a string, well-formed (a lone UTF-16 surrogate, half an
 * emoji cut by `s.slice(0, n)`, becomes U+FFFD), so it reads back as MLflow's tracker records it.
 */
function storedValue(value: unknown): string {
  return String(value).toWellFormed();
}
