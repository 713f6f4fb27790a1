/**
 * Large task outputs travel beside the queue, not through it. A worker's outcome is the job's
 * return value, which BullMQ keeps in Redis twice (the job, and its queue's events stream, which
 * keeps the last outcomes after the job is gone), several times the outputs' size in all
 * (BENCHMARKS.md), and Redis refuses a value over 512 MB. The outputs are already in the task's
 * run in MLflow (`cairn/outputs.json`, written before the worker answers), so an outcome whose
 * outputs are over {@link INLINE_OUTPUTS_BYTES} names that run instead, and the coordinator reads
 * them from there, as Prefect's result storage and Dagster's IO managers keep large results out
 * of the broker.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DispatchedOutcome, MANIFEST_PATH, type Tracker } from "@cairn/core";
import { QueueOutputsUnreadableError } from "./errors.ts";

/** Outputs whose JSON is over this many bytes (about) go by reference: their run's manifest in MLflow. */
export const INLINE_OUTPUTS_BYTES = 1_000_000;

type Succeeded = Extract<DispatchedOutcome, { ok: true }>;

/** A job's return value: an outcome, or a succeeded one whose outputs are in the manifest of run `outputsIn`. */
export type SentOutcome = DispatchedOutcome | (Omit<Succeeded, "outputs"> & { readonly outputsIn: string });

/** The worker's side: `outcome` as it goes into Redis, its outputs by reference when large and in a run. */
export function toSent(outcome: SentOutcome, limit = INLINE_OUTPUTS_BYTES): SentOutcome {
  if (!outcome.ok || !("outputs" in outcome) || !outcome.runId) return outcome;
  if (!jsonBytesOver(outcome.outputs, limit)) return outcome;
  const { outputs: _outputs, ...rest } = outcome;
  return { ...rest, outputsIn: outcome.runId };
}

/** The coordinator's side: the outcome a job returned, its outputs read from MLflow when they were sent by reference. */
export async function fromSent(sent: SentOutcome, tracker: Tracker | undefined, nodeId: string): Promise<DispatchedOutcome> {
  if (!sent.ok || !("outputsIn" in sent)) return sent;
  const { outputsIn: runId, ...rest } = sent;
  try {
    return { ...rest, outputs: await readOutputs(tracker, runId) };
  } catch (cause) {
    const error = new QueueOutputsUnreadableError(nodeId, runId, tracker?.uri ?? "", INLINE_OUTPUTS_BYTES, { cause });
    return { ok: false, cancelled: false, attempts: rest.attempts, runId, ...(rest.durationMs !== undefined ? { durationMs: rest.durationMs } : {}), error: { name: error.name, message: error.message, code: error.code } };
  }
}

/** The outputs a task's run `runId` recorded (the values of its `cairn/outputs.json`); throws, saying why, when they cannot be read. */
export async function readOutputs(tracker: Tracker | undefined, runId: string): Promise<unknown> {
  let dir: string | undefined;
  try {
    if (!tracker) throw new Error("the queue was not opened with the run's tracker");
    dir = await mkdtemp(join(tmpdir(), "cairn-outputs-"));
    const file = await tracker.downloadArtifact(runId, MANIFEST_PATH, dir);
    const manifest = JSON.parse(await readFile(file, "utf8")) as { values?: unknown };
    if (!manifest || typeof manifest !== "object" || !("values" in manifest)) throw new Error(`${MANIFEST_PATH} holds no "values"`);
    return manifest.values;
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/**
 * Whether `value`'s JSON takes more than `limit` bytes, about: counted by walking the value
 * (strings by their length, escapes left out) and stopped as soon as it is over, since
 * serialising 100 MB only to measure it would cost the copy this module saves.
 */
export function jsonBytesOver(value: unknown, limit: number): boolean {
  let bytes = 0;
  const seen = new Set<object>();
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === "string") bytes += v.length + 2;
    else if (typeof v === "number" || typeof v === "boolean") bytes += String(v).length;
    else if (v === null || v === undefined) bytes += 4;
    else if (typeof v === "object" && !seen.has(v)) {
      seen.add(v);
      if (Array.isArray(v)) {
        bytes += 2 + v.length;
        for (const item of v) stack.push(item);
      } else {
        for (const [k, item] of Object.entries(v)) {
          bytes += k.length + 4;
          stack.push(item);
        }
      }
    }
    if (bytes > limit) return true;
  }
  return false;
}
