import { createHash, randomUUID } from "node:crypto";
import { appendFile, cp, mkdir, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { TrackingError } from "../../errors.ts";
import type {
  ArtifactInfo,
  CreateRunOptions,
  ExperimentRecord,
  LogBatch,
  MetricPoint,
  RunFilter,
  RunRecord,
  RunStatus,
  Tracker,
} from "../tracker.ts";

/** One line of an experiment's run index. */
interface IndexLine {
  runId: string;
  name: string;
  startTime: number;
  parentRunId?: string;
}

/** What a run's `run.json` holds. */
type RunFile = RunRecord;

let tmpCounter = 0;

/**
 * The embedded tracker: MLflow's concepts in a folder (`.cairn/` by default), so that
 * moving to a server is one environment variable. Layout:
 *
 * ```
 * experiments/<id>/meta.json     name; the id is derived from the name, so racing creators agree
 * experiments/<id>/runs.jsonl    append-only index, one short line per run
 * runs/<runId>/run.json          info, params, tags, latest metrics (written whole: temp file + rename)
 * runs/<runId>/metrics.jsonl     every metric point, appended
 * runs/<runId>/artifacts/        the run's artifacts; tasks write here directly
 * ```
 *
 * Safe with several processes: each run is written only by the process that made
 * it, `run.json` is replaced atomically so a reader never sees half of it, and
 * index lines are single small appends.
 */
export class LocalStore implements Tracker {
  readonly kind = "local";
  /** Absolute path of the store's folder. */
  readonly uri: string;
  /** Runs this process created: their state stays in memory, so writes never read first. */
  private readonly owned = new Map<string, { file: RunFile; writing?: Promise<void>; again: boolean; timer?: NodeJS.Timeout }>();
  private readonly knownExperiments = new Set<string>();

  constructor(options: { root: string }) {
    this.uri = resolve(options.root);
  }

  /** The run's artifact folder; the engine lets tasks write into it directly. */
  artifactDir(runId: string): string {
    return join(this.uri, "runs", runId, "artifacts");
  }

  async ping(): Promise<void> {
    try {
      await mkdir(this.uri, { recursive: true });
    } catch (error) {
      throw new TrackingError(
        `Cannot use ${this.uri} as Cairn's local store: ${(error as Error).message}. Pass a writable folder with --root or run({ root }).`,
        { cause: error },
      );
    }
  }

  async ensureExperiment(name: string): Promise<string> {
    const experimentId = createHash("sha256").update(name).digest("hex").slice(0, 16);
    if (this.knownExperiments.has(experimentId)) return experimentId;
    const dir = join(this.uri, "experiments", experimentId);
    await mkdir(dir, { recursive: true });
    try {
      await writeFile(join(dir, "meta.json"), JSON.stringify({ experimentId, name, creationTime: Date.now() }), { flag: "wx" });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    this.knownExperiments.add(experimentId);
    return experimentId;
  }

  async getExperiment(experimentId: string): Promise<ExperimentRecord | undefined> {
    const meta = await readJson<ExperimentRecord>(join(this.uri, "experiments", experimentId, "meta.json"));
    return meta && { experimentId: meta.experimentId, name: meta.name };
  }

  async listExperiments(): Promise<ExperimentRecord[]> {
    const ids = await readdir(join(this.uri, "experiments")).catch(() => [] as string[]);
    const all = await Promise.all(ids.map((id) => this.getExperiment(id)));
    return all.filter((e): e is ExperimentRecord => e !== undefined);
  }

  async createRun(options: CreateRunOptions): Promise<string> {
    const runId = randomUUID().replaceAll("-", "");
    const startTime = options.startTime ?? Date.now();
    const tags: Record<string, string> = { "mlflow.runName": options.name, ...options.tags };
    if (options.parentRunId) tags["mlflow.parentRunId"] = options.parentRunId;
    const file: RunFile = {
      runId,
      experimentId: options.experimentId,
      name: options.name,
      status: "RUNNING",
      startTime,
      ...(options.parentRunId ? { parentRunId: options.parentRunId } : {}),
      params: {},
      metrics: {},
      tags,
    };
    await mkdir(join(this.uri, "runs", runId), { recursive: true });
    this.owned.set(runId, { file, again: false });
    const line: IndexLine = { runId, name: options.name, startTime, ...(options.parentRunId ? { parentRunId: options.parentRunId } : {}) };
    await appendFile(join(this.uri, "experiments", options.experimentId, "runs.jsonl"), `${JSON.stringify(line)}\n`);
    // run.json is first written within a second, or at endRun: a task that ends sooner (and every
    // cache hit) costs one write. Until then other processes see the run in the index only.
    this.persistSoon(runId);
    return runId;
  }

  async logBatch(runId: string, batch: LogBatch): Promise<void> {
    const run = this.own(runId, "logBatch");
    Object.assign(run.params, batch.params);
    Object.assign(run.tags, batch.tags);
    const metrics = batch.metrics ?? [];
    for (const m of metrics) run.metrics[m.key] = m.value;
    // run.json is rewritten at endRun, at flush, or within a second: a task's params and
    // end then cost one write, not two. Metric points are appended now.
    this.persistSoon(runId);
    if (metrics.length) {
      const lines = metrics.map((m) => JSON.stringify({ key: m.key, value: m.value, step: m.step, timestamp: m.timestamp })).join("\n");
      await appendFile(join(this.uri, "runs", runId, "metrics.jsonl"), `${lines}\n`);
    }
  }

  async logArtifact(runId: string, localPath: string, artifactPath?: string): Promise<void> {
    const destDir = artifactPath ? join(this.artifactDir(runId), ...artifactPath.split("/")) : this.artifactDir(runId);
    const dest = join(destDir, basename(localPath));
    if (resolve(localPath) === dest) return; // written in place already
    await mkdir(destDir, { recursive: true });
    await cp(localPath, dest, { recursive: true });
  }

  async endRun(runId: string, status: Exclude<RunStatus, "RUNNING" | "SCHEDULED">, endTime = Date.now()): Promise<void> {
    const run = this.own(runId, "endRun");
    run.status = status;
    run.endTime = endTime;
    await this.persist(runId);
    // A finished run is not written again; readers get it from disk, and memory stays flat.
    if (!this.owned.get(runId)?.writing) this.owned.delete(runId);
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const owned = this.owned.get(runId);
    if (owned) return structuredClone(owned.file);
    if (!/^[0-9a-f]{32}$/.test(runId)) return undefined;
    return readJson<RunFile>(join(this.uri, "runs", runId, "run.json"));
  }

  async searchRuns(filter: RunFilter): Promise<RunRecord[]> {
    const lines: IndexLine[] = [];
    for (const experimentId of filter.experimentIds) {
      const text = await readFile(join(this.uri, "experiments", experimentId, "runs.jsonl"), "utf8").catch(() => "");
      for (const raw of text.split("\n")) {
        if (!raw) continue;
        try {
          lines.push(JSON.parse(raw) as IndexLine);
        } catch {
          // A line cut by a crash mid-append names no complete run; skip it.
        }
      }
    }
    const candidates = lines
      .filter((l) => (filter.parentRunId ? l.parentRunId === filter.parentRunId : true) && (filter.topLevelOnly ? !l.parentRunId : true))
      .sort((a, b) => b.startTime - a.startTime);
    const max = filter.maxResults ?? 100;
    const out: RunRecord[] = [];
    for (const line of candidates) {
      if (out.length >= max) break;
      const run = await this.getRun(line.runId);
      if (!run) continue;
      if (filter.status && run.status !== filter.status) continue;
      if (filter.tags && !Object.entries(filter.tags).every(([k, v]) => run.tags[k] === v)) continue;
      out.push(run);
    }
    return out;
  }

  async getMetricHistory(runId: string, key: string): Promise<MetricPoint[]> {
    const text = await readFile(join(this.uri, "runs", runId, "metrics.jsonl"), "utf8").catch(() => "");
    const points: MetricPoint[] = [];
    for (const raw of text.split("\n")) {
      if (!raw) continue;
      try {
        const p = JSON.parse(raw) as MetricPoint;
        if (p.key === key) points.push(p);
      } catch {
        // A line cut by a crash mid-append; the points before it stand.
      }
    }
    return points;
  }

  async listArtifacts(runId: string, path = ""): Promise<ArtifactInfo[]> {
    const dir = join(this.artifactDir(runId), ...path.split("/").filter(Boolean));
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    return Promise.all(
      entries.map(async (e) => {
        const rel = path ? `${path.replace(/\/+$/, "")}/${e.name}` : e.name;
        if (e.isDirectory()) return { path: rel, isDir: true };
        return { path: rel, isDir: false, size: (await stat(join(dir, e.name))).size };
      }),
    );
  }

  async downloadArtifact(runId: string, path: string, destDir: string): Promise<string> {
    const source = join(this.artifactDir(runId), ...path.split("/").filter(Boolean));
    const dest = join(destDir, basename(source));
    try {
      await cp(source, dest, { recursive: true });
    } catch (error) {
      throw new TrackingError(`Run ${runId} has no artifact "${path}" in ${this.uri}.`, { cause: error });
    }
    return dest;
  }

  async flush(): Promise<void> {
    await Promise.all([...this.owned].map(([runId, o]) => (o.timer ? this.persist(runId) : o.writing)));
  }

  private own(runId: string, method: string): RunFile {
    const owned = this.owned.get(runId);
    if (!owned) {
      throw new TrackingError(
        `LocalStore.${method}: run ${runId} was not created by this process; the local store lets only a run's creator write to it.`,
      );
    }
    return owned.file;
  }

  private persistSoon(runId: string): void {
    const owned = this.owned.get(runId)!;
    if (owned.timer) return;
    owned.timer = setTimeout(() => void this.persist(runId).catch(() => {}), 1000);
    owned.timer.unref();
  }

  /** Writes run.json atomically; writes asked for while one is in flight are folded into one more. */
  private persist(runId: string): Promise<void> {
    const owned = this.owned.get(runId)!;
    if (owned.timer) {
      clearTimeout(owned.timer);
      owned.timer = undefined;
    }
    if (owned.writing) {
      owned.again = true;
      return owned.writing;
    }
    const dir = join(this.uri, "runs", runId);
    const write = async (): Promise<void> => {
      try {
        do {
          owned.again = false;
          const tmp = join(dir, `run.json.${process.pid}.${tmpCounter++}.tmp`);
          await writeFile(tmp, JSON.stringify(owned.file));
          await rename(tmp, join(dir, "run.json"));
        } while (owned.again);
      } finally {
        // Cleared in the same step as the last check, so no request can slip between them.
        owned.writing = undefined;
      }
    };
    owned.writing = write();
    return owned.writing;
  }
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}
