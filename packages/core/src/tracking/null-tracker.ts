import { randomUUID } from "node:crypto";
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
  async createRun() {
    return randomUUID().replaceAll("-", "");
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
