import { mkdir, readdir, readlink, realpath, rename, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { formatOwner, ownerIsGone, parseOwner, partialPath, sweepDeadPartials } from "@cairn/cache";
import { basename, join, posix, relative, sep } from "node:path";
import PQueue from "p-queue";
import { AdaptiveLimit } from "./adaptive-limit.ts";
import {
  ABANDONED_TAG,
  checkMetric,
  copiedTags,
  safeRelativePath,
  TrackingError,
  type TrackerCapabilities,
  type AbandonedRunsOptions,
  type ArtifactInfo,
  type CreateRunOptions,
  type ExperimentRecord,
  type FinishedRunOptions,
  type LogBatch,
  type MetricPoint,
  type RunFilter,
  type RunRecord,
  type RunStatus,
  redactUri,
  type Tracker,
} from "@cairn/core";
import {
  isTagAbsenceRefused,
  MlflowClient,
  type MlflowExperiment,
  type MlflowMetric,
  type MlflowRun,
  normalizeArtifactPath,
  PARENT_RUN_TAG,
  runFilter,
  tagAbsentCondition,
  tagNotCondition,
} from "../client/client.ts";
import { type MlflowClientOptions, mlflowOptionsFromEnv } from "../client/mlflow-config.ts";
import { fitMlflowValue, fitRunName, longValueArtifactPath, MLFLOW_LIMITS, toMlflowKey } from "../client/mlflow-limits.ts";

/** Tags naming the process that created a run (see @cairn/cache's process-owner.ts), so that a later process can close it if it is killed. */
const OWNER_TAG = "cairn.owner";
const HOST_TAG = "cairn.host";

/** Where index documents live in an experiment's artifact location. */
const INDEX_FOLDER = "cairn-index";

/** Artifact files sent at once. */
const UPLOAD_CONCURRENCY = 4;

/** Run ids per `runs/search` of getRuns; keeps the filter string short. */
const RUNS_PER_SEARCH = 100;

/** What MLflow accepts as a run id (and what a filter can quote as it is). */
const RUN_ID = /^[a-zA-Z0-9][\w-]{0,255}$/;

const FINAL_STATUSES = new Set<string>(["FINISHED", "FAILED", "KILLED"]);

interface RunState {
  artifactUri?: string;
  /** Metric points not sent yet. */
  metrics: MlflowMetric[];
  /** Serialises writes to one run so points keep their order. */
  chain: Promise<void>;
}

/**
 * The tracker for an MLflow tracking server, over its REST API.
 *
 * A typical task costs four requests: create, one log-batch, one update, plus
 * one per artifact file. Metric-only `logBatch` calls are buffered and sent
 * with the run's next params/tags, at `flush()`, at `endRun()`, before any read
 * of the run, or once 1000 points are waiting.
 *
 * Keys are made to fit MLflow (`toMlflowKey`). A param or tag value longer
 * than MLflow keeps (6000 / 8000 characters) is never cut silently: the full
 * value is uploaded as the artifact `cairn/long-values/<params|tags>/<key>.txt`
 * and the stored value says so.
 *
 * @example
 * const tracker = MlflowTracker.fromEnv(); // MLFLOW_TRACKING_URI=http://127.0.0.1:5000
 * await tracker.ping();
 */
export class MlflowTracker implements Tracker {
  readonly kind = "mlflow";
  /** A shared server, a round trip per call, that MLflow's own clients can log to. */
  readonly capabilities: TrackerCapabilities = Object.freeze({ records: true, localArtifacts: false, sharedRuns: true, mlflowClients: true, remote: true });
  /** The server's URL as the client was given it (from the environment: without credentials). */
  readonly uri: string;
  /** {@link uri} with a password masked (redactUri), for messages and links, which may reach a log or the terminal. */
  readonly #shownUri: string;
  /** The REST client; `client.http.observe(listener)` sees every request. */
  readonly client: MlflowClient;
  private readonly runs = new Map<string, RunState>();
  /** Runs created here whose end has not been recorded (yet, or because the request failed). */
  private readonly open = new Set<string>();
  private readonly experimentLocations = new Map<string, Promise<string | TrackingError>>();
  /** Runs recorded whole (cache hits), as many at a time as {@link recordLimit} finds the server takes. */
  private readonly recordQueue: PQueue;
  /** Unset when `recordsInFlight` fixes the number. */
  private readonly recordLimit: AdaptiveLimit | undefined;

  constructor(options: MlflowClientOptions | MlflowClient) {
    this.client = options instanceof MlflowClient ? options : new MlflowClient(options);
    this.uri = this.client.uri;
    this.#shownUri = redactUri(this.uri).replace(/\/+$/, "");
    const fixed = options instanceof MlflowClient ? undefined : options.recordsInFlight;
    this.recordLimit = fixed === undefined ? new AdaptiveLimit() : undefined;
    this.recordQueue = new PQueue({ concurrency: fixed ?? this.recordLimit!.limit });
    const limit = this.recordLimit;
    if (limit) {
      this.client.http.observe((e) => {
        if (e.phase === "response" && (e.status === 429 || e.status === 503)) this.recordQueue.concurrency = limit.overloaded();
      });
    }
  }

  /** The credentials a task's process needs to log to this server itself (see MlflowClient.childEnv). */
  childEnv(): Readonly<Record<string, string>> {
    return this.client.childEnv();
  }

  /** How many cache hits' records go to the server at once now. */
  get recordsInFlight(): number {
    return this.recordQueue.concurrency;
  }

  /** A tracker configured from MLflow's environment variables; `uri` overrides `MLFLOW_TRACKING_URI`. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, uri?: string): MlflowTracker {
    return new MlflowTracker(mlflowOptionsFromEnv(env, uri));
  }

  /** The run was cancelled: each request makes one short try until the returned function is called (see MlflowClient.hurry). */
  hurry(): () => void {
    return this.client.hurry();
  }

  /** Ends the second runs of creates sent again (see `MlflowClient.endDuplicateRuns`), saying what it ended. */
  async endDuplicateRuns(): Promise<string[]> {
    const ended = await this.client.endDuplicateRuns();
    return ended.map(({ runId, duplicateOf }) =>
      duplicateOf
        ? `Run ${runId} was a duplicate of run ${duplicateOf}: its create was sent again after the first try got no answer, and the MLflow server carried out both. It is ended KILLED, tagged cairn.duplicate_of.`
        : `Run ${runId} was made by a create sent again after its first try got no answer, which then failed: no run uses it. It is ended KILLED.`,
    );
  }

  /** Told of each request retried for long (see `MlflowClient.onRetry`). */
  onWarning(listener: (message: string) => void): () => void {
    return this.client.onRetry(listener);
  }

  /** Runs this tracker created whose end it has not recorded: those may stay RUNNING if the process exits now. */
  openRuns(): string[] {
    return [...this.open];
  }

  /** Checks the server answers, with a few quick retries; rejects with `TrackerUnreachableError`. */
  async ping(): Promise<void> {
    await this.client.ping();
  }

  async ensureExperiment(name: string): Promise<string> {
    return this.client.ensureExperiment(name);
  }

  /** One lookup by name, which is the probe too (with ping's quick retries); a create only the first time. */
  async openExperiment(name: string): Promise<string> {
    return this.client.openExperiment(name);
  }

  /** One lookup by name, which is the probe too; creates nothing. */
  async findExperiment(name: string): Promise<string | undefined> {
    return this.client.findExperiment(name);
  }

  async getExperiment(experimentId: string): Promise<ExperimentRecord | undefined> {
    return experimentRecord(await this.client.getExperiment(experimentId));
  }

  /** One read by id, which is the probe too; refuses an experiment whose artifacts are not proxied (`ArtifactLocationError`). */
  async openExperimentById(experimentId: string): Promise<ExperimentRecord | undefined> {
    return experimentRecord(await this.client.openExperimentById(experimentId));
  }

  async listExperiments(): Promise<ExperimentRecord[]> {
    return (await this.client.searchExperiments()).map((e) => ({ experimentId: e.experimentId, name: e.name }));
  }

  /** The run's page in MLflow's UI, as MLflow's own clients print it ("View run ... at: ..."). */
  runUrl(experimentId: string, runId: string): string {
    return `${this.#shownUri}/#/experiments/${encodeURIComponent(experimentId)}/runs/${encodeURIComponent(runId)}`;
  }

  async createRun(options: CreateRunOptions): Promise<string> {
    const tags: Record<string, string> = {};
    const spills: [string, string][] = [];
    for (const [key, value] of Object.entries(options.tags ?? {})) {
      const k = toMlflowKey(key);
      const fit = fitMlflowValue("tags", k, value);
      tags[k] = fit.value;
      if (fit.overflow) spills.push([k, value]);
    }
    if (options.parentRunId !== undefined) tags["mlflow.parentRunId"] = options.parentRunId;
    tags[OWNER_TAG] = formatOwner();
    tags[HOST_TAG] ??= hostname();
    const info = await this.client.createRun({
      experimentId: options.experimentId,
      // A PostgreSQL or MySQL backend refuses a longer name mid-run; the whole name is in the run's tags.
      runName: fitRunName(options.name),
      ...(options.startTime !== undefined ? { startTime: options.startTime } : {}),
      tags,
    });
    this.runs.set(info.runId, { artifactUri: info.artifactUri, metrics: [], chain: Promise.resolve() });
    this.open.add(info.runId);
    if (spills.length) await this.spill(info.runId, "tags", spills);
    return info.runId;
  }

  /**
   * A run that is over (a cache hit's): create with its tags and start time, then one update to
   * its status and end time; two requests, the fewest MLflow's REST API allows (a run cannot be
   * created finished). Hits recorded at once share {@link recordsInFlight} records in flight,
   * a number that follows what the server takes: a one-worker server writes one run at a time,
   * and more at once only queue there behind its database lock.
   */
  async recordRun(options: FinishedRunOptions): Promise<string> {
    const { status, endTime, ...run } = options;
    if (!FINAL_STATUSES.has(status)) {
      throw new TrackingError(`MlflowTracker.recordRun expects status FINISHED, FAILED or KILLED, got ${JSON.stringify(status)}.`);
    }
    const started = run.startTime ?? Date.now();
    return this.recordQueue.add(async () => {
      const sent = performance.now();
      const runId = await this.createRun({ ...run, startTime: started });
      await this.endRun(runId, status, endTime ?? Math.max(started, Date.now()));
      if (this.recordLimit) this.recordQueue.concurrency = this.recordLimit.sample(performance.now() - sent, this.recordQueue.size > 0);
      return runId;
    }) as Promise<string>;
  }

  async logBatch(runId: string, batch: LogBatch): Promise<void> {
    const params: { key: string; value: string }[] = [];
    const tags: { key: string; value: string }[] = [];
    const spilledParams: [string, string][] = [];
    const spilledTags: [string, string][] = [];
    for (const [key, value] of Object.entries(batch.params ?? {})) {
      const k = toMlflowKey(key);
      const fit = fitMlflowValue("params", k, String(value));
      params.push({ key: k, value: fit.value });
      if (fit.overflow) spilledParams.push([k, String(value)]);
    }
    for (const [key, value] of Object.entries(batch.tags ?? {})) {
      const k = toMlflowKey(key);
      const fit = fitMlflowValue("tags", k, String(value));
      tags.push({ key: k, value: fit.value });
      if (fit.overflow) spilledTags.push([k, String(value)]);
    }
    const now = Date.now();
    const metrics = (batch.metrics ?? []).map((m) => toWireMetric(m, now));
    const state = this.state(runId);
    await this.enqueue(state, async () => {
      // One by one: a spread of a task's burst of points (hundreds of thousands) overflows the stack.
      for (const metric of metrics) state.metrics.push(metric);
      if (params.length || tags.length || state.metrics.length >= MLFLOW_LIMITS.metricsPerBatch) {
        const pending = state.metrics;
        state.metrics = [];
        await this.client.logBatch(runId, { params, tags, metrics: pending });
      }
    });
    if (spilledParams.length) await this.spill(runId, "params", spilledParams);
    if (spilledTags.length) await this.spill(runId, "tags", spilledTags);
  }

  async logArtifact(runId: string, localPath: string, artifactPath?: string): Promise<void> {
    const folder = artifactPath ? normalizeArtifactPath(artifactPath) : undefined;
    const info = await stat(localPath).catch((cause: unknown) => {
      throw new TrackingError(`Cannot log artifact "${localPath}" on run ${runId}: the file does not exist or cannot be read.`, { cause });
    });
    const artifactUri = await this.artifactUri(runId);
    if (!info.isDirectory()) {
      await this.client.uploadArtifact(artifactUri, localPath, folder, runId);
      return;
    }
    // As MLflow's log_artifact: a folder lands as <artifactPath>/<folder name>/...
    const rootFolder = posix.join(folder ?? "", basename(localPath));
    const queue = new PQueue({ concurrency: UPLOAD_CONCURRENCY });
    const uploads: Promise<void>[] = [];
    for (const file of await listFiles(localPath, localPath)) {
      const rel = relative(localPath, file).split(sep);
      const target = posix.join(rootFolder, ...rel.slice(0, -1));
      uploads.push(queue.add(() => this.client.uploadArtifact(artifactUri, file, target, runId)));
    }
    await Promise.all(uploads);
  }

  async logText(runId: string, path: string, text: string): Promise<void> {
    await this.client.writeArtifactText(await this.artifactUri(runId), path, text, runId);
  }

  /** One DELETE through the artifact proxy (MLflow answers 200 for a file that is not there). */
  async deleteArtifact(runId: string, path: string): Promise<void> {
    await this.client.deleteArtifact(await this.artifactUri(runId), path, runId);
  }

  async endRun(runId: string, status: Exclude<RunStatus, "RUNNING" | "SCHEDULED">, endTime?: number): Promise<void> {
    let failure: unknown;
    try {
      await this.sendPending(runId);
    } catch (error) {
      failure = error;
    }
    // The run is ended even when its last metrics could not be sent.
    await this.client.updateRun(runId, { status, endTime: endTime ?? Date.now() });
    this.runs.delete(runId);
    this.open.delete(runId);
    if (failure) throw failure;
  }

  /**
   * One search for the RUNNING runs of these experiments that a process of this host created
   * (tags `cairn.host`, `cairn.owner`); those whose process no longer exists are tagged
   * `cairn.abandoned` and ended KILLED, once a second read finds them still RUNNING (the
   * owner may have ended them and exited while the search was answered). Parents and children
   * alike carry their owner, so a killed flow's task runs are closed with it. Another host's
   * runs are left alone, and so are another PID namespace's, and another boot's unless that boot
   * can only be an earlier one of this machine (see @cairn/cache's process-owner.ts).
   */
  async closeAbandonedRuns(experimentIds: readonly string[], options: AbandonedRunsOptions = {}): Promise<RunRecord[]> {
    if (!experimentIds.length) return [];
    const running = await this.searchRuns({ experimentIds: [...experimentIds], status: "RUNNING", tags: { [HOST_TAG]: hostname() }, maxResults: 1000 });
    // A run's start shows its owner at work then: one started since this machine booted is no earlier boot's.
    const suspects = running.filter((r) => ownerIsGone(parseOwner(r.tags[OWNER_TAG]), { seenAt: r.startTime }));
    if (!suspects.length) return [];
    // The search answered as things stood when it ran: an owner that has ended its runs and
    // exited since then is gone too. Read again now that the owner can no longer write, and
    // close only what it left RUNNING.
    const reread = await this.getRuns(suspects.map((r) => r.runId), experimentIds);
    const gone = suspects.filter((r) => reread.get(r.runId)?.status === "RUNNING");
    const now = Date.now();
    await Promise.all(
      gone.map(async (run) => {
        const owner = parseOwner(run.tags[OWNER_TAG])!;
        const reason =
          `Its process (pid ${owner.pid} on ${owner.host}) ended without closing it: killed, crashed, or its closing record could not be sent (the server could not be reached); ` +
          `closed as KILLED by process ${process.pid} at ${new Date(now).toISOString()}.`;
        const copied = copiedTags(run.tags, options.copyTags);
        const tags = [{ key: ABANDONED_TAG, value: reason }, ...Object.entries(copied).map(([key, value]) => ({ key, value }))];
        await this.client.logBatch(run.runId, { params: [], metrics: [], tags });
        await this.client.updateRun(run.runId, { status: "KILLED", endTime: Math.max(now, run.startTime) });
        run.status = "KILLED";
        run.endTime = Math.max(now, run.startTime);
        run.tags[ABANDONED_TAG] = reason;
        Object.assign(run.tags, copied);
      }),
    );
    return gone.sort((a, b) => (a.parentRunId === undefined ? 0 : 1) - (b.parentRunId === undefined ? 0 : 1) || a.startTime - b.startTime);
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    await this.sendPending(runId);
    const run = await this.client.getRun(runId);
    // A run deleted in MLflow is gone for Cairn too (a cache entry pointing at it is a miss).
    if (!run || run.info.lifecycleStage === "deleted") return undefined;
    this.rememberArtifactUri(run);
    return toRecord(run);
  }

  /**
   * One `runs/search` per {@link RUNS_PER_SEARCH} ids (`attributes.run_id IN (...)`, deleted runs
   * included so that they are seen as gone), instead of one `runs/get` each.
   */
  async getRuns(runIds: readonly string[], experimentIds: readonly string[]): Promise<Map<string, RunRecord | undefined>> {
    const found = new Map<string, RunRecord | undefined>();
    // An id MLflow would refuse in a filter is left to getRun, which says it names no run.
    const ids = [...new Set(runIds)].filter((id) => RUN_ID.test(id));
    if (!ids.length || !experimentIds.length) return found;
    await Promise.all(ids.map((id) => this.sendPending(id)));
    const chunks: string[][] = [];
    for (let i = 0; i < ids.length; i += RUNS_PER_SEARCH) chunks.push(ids.slice(i, i + RUNS_PER_SEARCH));
    const pages = await Promise.all(
      chunks.map((chunk) =>
        this.client.searchRuns({
          experimentIds: [...experimentIds],
          filter: `attributes.run_id IN (${chunk.map((id) => `'${id}'`).join(", ")})`,
          runViewType: "ALL",
          maxResults: chunk.length,
        }),
      ),
    );
    const wanted = new Set(ids);
    for (const run of pages.flat()) {
      if (!wanted.has(run.info.runId)) continue;
      if (run.info.lifecycleStage === "deleted") {
        found.set(run.info.runId, undefined);
        continue;
      }
      this.rememberArtifactUri(run);
      found.set(run.info.runId, toRecord(run));
    }
    return found;
  }

  async searchRuns(filter: RunFilter): Promise<RunRecord[]> {
    if (!filter.experimentIds.length) return [];
    await this.flush();
    const tags: Record<string, string> = {};
    for (const [key, value] of Object.entries(filter.tags ?? {})) tags[toMlflowKey(key)] = value;
    const without = filter.withoutTag ? { key: toMlflowKey(filter.withoutTag.key), value: filter.withoutTag.value } : undefined;
    const maxResults = filter.maxResults ?? 100;
    const base = runFilter({
      tags,
      ...(filter.parentRunId !== undefined ? { parentRunId: filter.parentRunId } : {}),
      ...(filter.status ? { status: filter.status } : {}),
      ...(filter.hasTag !== undefined ? { hasTag: toMlflowKey(filter.hasTag) } : {}),
    });
    // The server may match a superset (values it cannot quote exactly); keep exact matches only.
    const keep = (run: MlflowRun): boolean =>
      Object.entries(tags).every(([k, v]) => run.tags[k] === v) &&
      (without === undefined || run.tags[without.key] !== without.value) &&
      (filter.hasTag === undefined || run.tags[toMlflowKey(filter.hasTag)] !== undefined) &&
      (filter.parentRunId === undefined || run.tags[PARENT_RUN_TAG] === filter.parentRunId) &&
      (!filter.topLevelOnly || run.tags[PARENT_RUN_TAG] === undefined) &&
      (!filter.status || run.info.status === filter.status) &&
      // MLflow's search cannot match an id's start: every run comes, and these are kept.
      (filter.runIdPrefix === undefined || run.info.runId.startsWith(filter.runIdPrefix));
    const search = (extra: (string | undefined)[]) =>
      this.client.searchRuns({ experimentIds: filter.experimentIds, filter: [base, ...extra].filter(Boolean).join(" AND "), maxResults });
    // A filter has no OR: the runs whose tag differs, and those without it, are two searches.
    const topLevel = filter.topLevelOnly ? tagAbsentCondition(PARENT_RUN_TAG) : undefined;
    const notEqual = without ? tagNotCondition(without.key, without.value) : undefined;
    const searches = notEqual ? [[topLevel, notEqual], [topLevel, tagAbsentCondition(without!.key)]] : topLevel ? [[topLevel]] : [];
    let runs: MlflowRun[] | undefined;
    if (searches.length && !this.client.refusesTagAbsence) {
      try {
        const pages = await Promise.all(searches.map(search));
        runs = [...new Map(pages.flat().map((run) => [run.info.runId, run])).values()].filter(keep);
        if (pages.length > 1) runs = runs.sort((a, b) => b.info.startTime - a.info.startTime).slice(0, maxResults);
      } catch (error) {
        if (!isTagAbsenceRefused(error)) throw error;
        this.client.refusesTagAbsence = true;
      }
    }
    if (runs) return runs.map(toRecord);
    // A server that refuses `IS NULL` on tags (MLflow 2.x) is asked for the runs it can match,
    // page after page, until maxResults pass the conditions it was not asked.
    runs = searches.length ? await this.client.searchRuns({ experimentIds: filter.experimentIds, filter: base, maxResults, keep }) : (await search([])).filter(keep);
    return runs.map(toRecord);
  }

  async getMetricHistory(runId: string, key: string): Promise<MetricPoint[]> {
    await this.sendPending(runId);
    return (await this.client.getMetricHistory(runId, toMlflowKey(key))).map((m) => ({ ...m }));
  }

  async listArtifacts(runId: string, path?: string): Promise<ArtifactInfo[]> {
    const files = await this.client.listArtifacts(await this.artifactUri(runId), path, runId);
    return files.map((f) => (f.fileSize !== undefined ? { path: f.path, isDir: f.isDir, size: f.fileSize } : { path: f.path, isDir: f.isDir }));
  }

  /**
   * A file is streamed to a partial name and renamed over `target`. A folder is downloaded
   * whole into a partial sibling folder, then renamed to `target`: a process killed part-way
   * leaves no half folder under the artifact's name (it would be taken for the artifact). A
   * folder already at `target` when ours is whole (another process's download of the same
   * artifact, which may be read by now) is kept, and ours removed. The partial leftovers of
   * killed processes in `destDir` are removed first.
   */
  async downloadArtifact(runId: string, path: string, destDir: string): Promise<string> {
    const rel = normalizeArtifactPath(path);
    const artifactUri = await this.artifactUri(runId);
    const target = join(destDir, basename(rel) || "artifacts");
    await sweepDeadPartials(destDir);
    const entries = await this.client.listArtifacts(artifactUri, rel, runId);
    if (!entries.length) {
      await this.client.downloadArtifactFile(artifactUri, rel, target, runId);
      return target;
    }
    const files: string[] = [];
    const walk = async (list: { path: string; isDir: boolean }[]): Promise<void> => {
      for (const entry of list) {
        if (entry.isDir) await walk(await this.client.listArtifacts(artifactUri, entry.path, runId));
        else files.push(entry.path);
      }
    };
    await walk(entries);
    // The listing is the server's word: each file's place in the folder is a name, checked
    // before it becomes a path (a listed "../x" would otherwise land outside the folder).
    const from = { source: `MLflow's artifact listing of run ${runId} at ${this.#shownUri}` };
    const names = files.map((file) => safeRelativePath(file.startsWith(`${rel}/`) ? file.slice(rel.length + 1) : file, from).split("/"));
    const partial = partialPath(target);
    try {
      await mkdir(partial, { recursive: true });
      const queue = new PQueue({ concurrency: UPLOAD_CONCURRENCY });
      // Every download ends before the partial folder is removed (one still running would make
      // it again); after a failure, those not started yet are skipped.
      let failed = false;
      const results = await Promise.allSettled(
        files.map((file, i) =>
          queue.add(async () => {
            if (failed) return;
            await this.client.downloadArtifactFile(artifactUri, file, join(partial, ...names[i]!), runId).catch((error: unknown) => {
              failed = true;
              throw error;
            });
          }),
        ),
      );
      const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failure) throw failure.reason;
      await rename(partial, target).catch((error: NodeJS.ErrnoException) => {
        // A folder there now was placed whole, by this rename in another download (the cache
        // removes a copy whose digest does not match before it downloads): keep it.
        if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
      });
    } finally {
      await rm(partial, { recursive: true, force: true });
    }
    return target;
  }

  /**
   * Index documents live at `<experiment artifact location>/cairn-index/<name>`, beside the
   * experiment's run folders, through the server's artifact proxy: a read is one GET of a
   * path, as fast with 10,000 runs as with 100 (a tag search is not: MLflow's SQL store
   * scans the tag rows). Rejects when the experiment's artifacts are not proxied.
   */
  async readIndexEntry(experimentId: string, name: string): Promise<string | undefined> {
    return this.client.readArtifactText(await this.indexLocation(experimentId), `${INDEX_FOLDER}/${name}`);
  }

  async writeIndexEntry(experimentId: string, name: string, text: string): Promise<void> {
    await this.client.writeArtifactText(await this.indexLocation(experimentId), `${INDEX_FOLDER}/${name}`, text);
  }

  /** One DELETE through the artifact proxy (MLflow answers 200 for a file that is not there). */
  async deleteIndexEntry(experimentId: string, name: string): Promise<void> {
    await this.client.deleteArtifact(await this.indexLocation(experimentId), `${INDEX_FOLDER}/${name}`);
  }

  /** One listing of the index folder (MLflow lists a folder that is not there as empty). */
  async listIndexEntries(experimentId: string): Promise<string[]> {
    const listed = await this.client.listArtifacts(await this.indexLocation(experimentId), INDEX_FOLDER);
    return listed.filter((file) => !file.isDir).map((file) => file.path.slice(INDEX_FOLDER.length + 1));
  }

  /** Sends the run's buffered metrics now (one log-batch), not with its next params or its end. */
  async flushRun(runId: string): Promise<void> {
    await this.sendPending(runId);
  }

  /** Sends every buffered metric; the tracker stays usable. */
  async flush(): Promise<void> {
    const results = await Promise.allSettled([...this.runs.keys()].map((runId) => this.sendPending(runId)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  // ------------------------------------------------------------ internals

  private state(runId: string): RunState {
    let state = this.runs.get(runId);
    if (!state) {
      state = { metrics: [], chain: Promise.resolve() };
      this.runs.set(runId, state);
    }
    return state;
  }

  private enqueue(state: RunState, op: () => Promise<void>): Promise<void> {
    const result = state.chain.then(op);
    state.chain = result.catch(() => {});
    return result;
  }

  private async sendPending(runId: string): Promise<void> {
    const state = this.runs.get(runId);
    if (!state) return;
    await this.enqueue(state, async () => {
      if (!state.metrics.length) return;
      const pending = state.metrics;
      state.metrics = [];
      await this.client.logBatch(runId, { metrics: pending });
    });
  }

  /**
   * The experiment's artifact location, asked once. An experiment whose artifacts the server
   * does not proxy resolves to the error saying so, remembered like a location; a failed
   * request is not remembered, so the next call asks again.
   */
  /** The experiment's artifact location, where its index lives; rejects when it is not proxied. */
  private async indexLocation(experimentId: string): Promise<string> {
    const location = await this.experimentArtifacts(experimentId);
    if (location instanceof Error) throw location;
    return location;
  }

  private experimentArtifacts(experimentId: string): Promise<string | TrackingError> {
    let known = this.experimentLocations.get(experimentId);
    if (!known) {
      known = (async () => {
        const experiment = await this.client.getExperiment(experimentId);
        if (!experiment?.artifactLocation) return new TrackingError(`MLflow at ${this.#shownUri} has no experiment ${experimentId} with an artifact location.`);
        try {
          this.client.artifactRoot(experiment.artifactLocation); // throws when not an mlflow-artifacts: location
        } catch (error) {
          return error as TrackingError;
        }
        return experiment.artifactLocation;
      })();
      known.catch(() => this.experimentLocations.delete(experimentId));
      this.experimentLocations.set(experimentId, known);
    }
    return known;
  }

  private async artifactUri(runId: string): Promise<string> {
    const known = this.runs.get(runId)?.artifactUri;
    if (known) return known;
    const run = await this.client.getRun(runId);
    if (!run) throw new TrackingError(`MLflow at ${this.#shownUri} has no run ${runId}; its artifacts cannot be read or written.`);
    this.rememberArtifactUri(run);
    return run.info.artifactUri;
  }

  private rememberArtifactUri(run: MlflowRun): void {
    const state = this.runs.get(run.info.runId);
    if (state) state.artifactUri = run.info.artifactUri;
  }

  /** Uploads values too long for MLflow as `cairn/long-values/<kind>/<key>.txt`. */
  private async spill(runId: string, kind: "params" | "tags", values: [string, string][]): Promise<void> {
    for (const [key, value] of values) await this.logText(runId, longValueArtifactPath(kind, key), value);
  }
}

function toWireMetric(m: MetricPoint, now: number): MlflowMetric {
  const step = m.step ?? 0;
  checkMetric(m.key, m.value, step);
  return { key: toMlflowKey(m.key), value: m.value, step, timestamp: Math.round(m.timestamp ?? now) };
}

function toRecord(run: MlflowRun): RunRecord {
  const record: RunRecord = {
    runId: run.info.runId,
    experimentId: run.info.experimentId,
    name: run.info.runName,
    status: run.info.status,
    startTime: run.info.startTime,
    params: run.params,
    metrics: run.metrics,
    tags: run.tags,
  };
  if (run.info.endTime !== undefined && run.info.endTime > 0) record.endTime = run.info.endTime;
  const parent = run.tags["mlflow.parentRunId"];
  if (parent !== undefined) record.parentRunId = parent;
  return record;
}

/**
 * The files under `dir`, to upload folder `root`. A link is followed: to a file, it is uploaded as
 * that file's content; to a folder, the folder is walked, unless it is one being walked already (a
 * loop). A dangling link, or anything that is neither a file nor a folder (a FIFO would block the
 * upload), is refused, naming it: streaming it would fail, or hang, only once the upload is under way.
 */
async function listFiles(dir: string, root: string, walking: readonly string[] = []): Promise<string[]> {
  const refuse = (path: string, why: string) =>
    new TrackingError(`Cannot upload the folder ${root} as an artifact: ${relative(root, path) || "."} ${why}. Remove it from the folder, or replace it by the file it stands for.`);
  const chain = [...walking, await realpath(dir)];
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) {
      // Not spread: a folder may hold more files than the stack takes arguments.
      for (const file of await listFiles(full, root, chain)) out.push(file);
      continue;
    }
    if (entry.isFile()) {
      out.push(full);
      continue;
    }
    if (!entry.isSymbolicLink()) throw refuse(full, "is neither a file nor a folder (a FIFO, socket or device)");
    const target = await stat(full).catch(() => undefined);
    if (!target) throw refuse(full, `is a link to ${await readlink(full)}, which does not exist`);
    if (target.isFile()) out.push(full);
    else if (!target.isDirectory()) throw refuse(full, `is a link to ${await realpath(full)}, which is neither a file nor a folder`);
    else if (chain.includes(await realpath(full))) throw refuse(full, `is a link to ${await realpath(full)}, a folder it is itself in (a loop)`);
    else for (const file of await listFiles(full, root, chain)) out.push(file);
  }
  return out;
}

/** An experiment as the Tracker contract gives it: a deleted one (in MLflow's trash) says so. */
function experimentRecord(e: MlflowExperiment | undefined): ExperimentRecord | undefined {
  return e && { experimentId: e.experimentId, name: e.name, ...(e.lifecycleStage === "deleted" ? { deleted: true as const } : {}) };
}
