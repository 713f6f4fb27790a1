import { randomBytes } from "node:crypto";
import { TrackingError } from "../errors.ts";
import type {
  ArtifactInfo,
  CreateRunOptions,
  ExperimentRecord,
  FinishedRunOptions,
  LogBatch,
  MetricPoint,
  RunFilter,
  RunRecord,
  RunStatus,
  Tracker,
  TrackerCapabilities,
} from "./tracker.ts";

/**
 * The tracker used with `tracking: false`: a null object. Every method is a valid no-op that
 * hands out run ids and returns what an empty store would (no runs, no metrics, no artifacts),
 * so callers need no special case; those that skip work whose only use is the record ask
 * `capabilities.records`, which is false.
 */
export class NullTracker implements Tracker {
  readonly kind = "none";
  readonly uri = "none";
  /** Records nothing, so can do nothing beyond the contract. */
  readonly capabilities: TrackerCapabilities = Object.freeze({ records: false, localArtifacts: false, sharedRuns: false, mlflowClients: false, remote: false });
  /** 16 random hex digits per tracker, then a counter: ids unique across processes, without a UUID per run. */
  private readonly prefix = randomBytes(8).toString("hex");
  private next = 0;

  async ping(): Promise<void> {}
  async ensureExperiment(_name: string): Promise<string> {
    return "0";
  }
  async openExperiment(_name: string): Promise<string> {
    return "0";
  }
  async findExperiment(_name: string): Promise<string | undefined> {
    return "0";
  }
  async getExperiment(experimentId: string): Promise<ExperimentRecord | undefined> {
    return { experimentId, name: "none" };
  }
  async createRun(_options: CreateRunOptions): Promise<string> {
    return this.newRunId();
  }
  /**
   * A fresh 32-hex-digit run id, synchronously (the engine's fast path for tracking off). Joined,
   * not added: `+` of strings this long makes a chain of concatenations, where `join` makes one
   * flat string, less than half the size; a run keeps every task's id to its end (BENCHMARKS.md,
   * "Why the code is shaped so").
   */
  newRunId(): string {
    return [this.prefix, (this.next++).toString(16).padStart(16, "0")].join("");
  }
  async recordRun(_options: FinishedRunOptions): Promise<string> {
    return this.newRunId();
  }
  async logBatch(_runId: string, _batch: LogBatch): Promise<void> {}
  async logArtifact(_runId: string, _localPath: string, _artifactPath?: string): Promise<void> {}
  async endRun(_runId: string, _status: Exclude<RunStatus, "RUNNING" | "SCHEDULED">, _endTime?: number): Promise<void> {}
  async getRun(_runId: string): Promise<RunRecord | undefined> {
    return undefined;
  }
  async searchRuns(_filter: RunFilter): Promise<RunRecord[]> {
    return [];
  }
  async getMetricHistory(_runId: string, _key: string): Promise<MetricPoint[]> {
    return [];
  }
  async listArtifacts(_runId: string, _path?: string): Promise<ArtifactInfo[]> {
    return [];
  }
  /** There is nothing to download: rejects, as a store does for an artifact it does not list. */
  async downloadArtifact(runId: string, path: string, _destDir: string): Promise<string> {
    throw new TrackingError(`Tracking is off: there are no artifacts to download (asked for ${JSON.stringify(path)} of run ${runId}).`);
  }
  async closeAbandonedRuns(_experimentIds: readonly string[]): Promise<RunRecord[]> {
    return [];
  }
  async flush(): Promise<void> {}
}

/** True for a record (a cache entry's `tracker`) made with tracking off, which names no place to check it against. */
export function isUntrackedRecord(recorded: { readonly kind: string }): boolean {
  return recorded.kind === "none";
}
