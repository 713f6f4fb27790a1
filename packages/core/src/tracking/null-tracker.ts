import { randomBytes } from "node:crypto";
import type { Tracker } from "./tracker.ts";

/** The tracker used with `tracking: false`: hands out run ids and records nothing. */
export class NullTracker implements Tracker {
  readonly kind = "none";
  readonly uri = "none";
  async ping() {}
  async ensureExperiment() {
    return "0";
  }
  async getExperiment(experimentId: string) {
    return { experimentId, name: "none" };
  }
  /** 16 random hex digits per tracker, then a counter: ids unique across processes, without a UUID per run. */
  private readonly prefix = randomBytes(8).toString("hex");
  private next = 0;

  async createRun() {
    return this.newRunId();
  }

  /** A fresh 32-hex-digit run id, synchronously (the engine's fast path for tracking off). */
  newRunId(): string {
    return this.prefix + (this.next++).toString(16).padStart(16, "0");
  }
  async logBatch() {}
  async logArtifact() {}
  async endRun() {}
  async getRun() {
    return undefined;
  }
  async searchRuns() {
    return [];
  }
  async getMetricHistory() {
    return [];
  }
  async listArtifacts() {
    return [];
  }
  async downloadArtifact(): Promise<string> {
    throw new Error("Tracking is off: there are no artifacts to download.");
  }
  async flush() {}
}
