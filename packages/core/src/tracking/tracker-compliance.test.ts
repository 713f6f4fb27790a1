/**
 * What the compliance suite says to the author of a tracker that breaks one of its rules: the
 * rule, not `undefined: expected false to be true`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalStore } from "./local/local-store.ts";
import { expectMetricRejected } from "./tracker-compliance.ts";
import type { LogBatch, Tracker } from "./tracker.ts";

const roots: string[] = [];
afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

/** A local store whose logBatch answers as `logBatch` says for a batch with metrics. */
async function storeWhose(logBatch: (batch: LogBatch) => Promise<void>): Promise<{ tracker: Tracker; runId: string }> {
  const root = await mkdtemp(join(tmpdir(), "cairn-compliance-words-"));
  roots.push(root);
  const store = new LocalStore({ root });
  const runId = await store.createRun({ experimentId: await store.ensureExperiment("words"), name: "r" });
  const tracker = Object.assign(Object.create(store) as Tracker, { logBatch: (_runId: string, batch: LogBatch) => logBatch(batch) });
  return { tracker, runId };
}

describe("the compliance suite's check that logBatch refuses a metric no tracker keeps", () => {
  const bad = { key: "m", value: 1, step: 1.5, timestamp: 1 };

  it("says what was expected of a tracker that takes it", async () => {
    const { tracker, runId } = await storeWhose(async () => {});
    // Before: "AssertionError: undefined: expected false to be true".
    await expect(expectMetricRejected(tracker, runId, bad)).rejects.toThrow(
      'logBatch took the metric { key: "m", value: `1` (number), step: `1.5` (number) } without complaint; a tracker must reject it with the MetricError checkMetric() throws. ' +
        "Call checkMetric(key, value, step) from @cairn/core on each metric of the batch first, and let its MetricError (a TrackingError) reject the call.",
    );
  });

  it("says what arrived instead from a tracker that rejects it with another error", async () => {
    const { tracker, runId } = await storeWhose(async () => {
      throw new Error("service said 400");
    });
    await expect(expectMetricRejected(tracker, runId, bad)).rejects.toThrow(
      'logBatch rejected the metric { key: "m", value: `1` (number), step: `1.5` (number) } with Error: service said 400, not a MetricError. Call checkMetric(',
    );
  });

  it("passes a tracker that rejects it as checkMetric does", async () => {
    const { tracker, runId } = await storeWhose(async () => {});
    const store = Object.getPrototypeOf(tracker) as LocalStore;
    await expect(expectMetricRejected(store, runId, bad)).resolves.toBeUndefined();
    await expect(expectMetricRejected(store, runId, { ...bad, step: 0, value: "1" as unknown as number })).resolves.toBeUndefined();
  });
});
