/**
 * The task runs that workers which died under a job left RUNNING: closed by whoever meets the job
 * next (the worker that takes it again, or the coordinator that gives it up or takes it back),
 * each saying why, as the runs of a killed coordinator do.
 */
import { parseOwner } from "@cairn/cache";
import { ABANDONED_COPIED_TAGS, ABANDONED_TAG, copiedTags, ERROR_MESSAGE_TAG, ERROR_NAME_TAG, ERROR_TAG, type RunRecord, STATUS_TAG, type Tracker, WORKER_TAG } from "@cairn/core";
import type { PoisonTaskError } from "./errors.ts";

/**
 * Closes each run of `runIds` still RUNNING as `status`, tagged {@link ABANDONED_TAG} with why
 * (`why` of the dead worker as {@link describeWorker} gives it, then who closed the run and
 * when: the same words whoever closes it). A run closed already, by another worker or the
 * coordinator, is left as it is. A task run's key (`cairn.key`) is copied to `cairn.failed_key`
 * in the same write, as for a killed coordinator's runs: a later plan finds the key interrupted,
 * not new. Its `cairn.status` is made the status it is closed with: a worker that died after
 * tagging its run `succeeded`, before closing it, left a FAILED run a search by that tag found.
 * `tags` go in the same write: a poison task's error, which makes its runs failed ones (they did
 * not stop of themselves), not interrupted.
 */
export async function closeDeadRuns(
  tracker: Tracker,
  runIds: readonly string[],
  status: "FAILED" | "KILLED",
  why: (worker: string) => string,
  closer: string,
  tags: Readonly<Record<string, string>> = {},
): Promise<void> {
  await Promise.allSettled(
    runIds.map(async (runId) => {
      const run = await tracker.getRun(runId).catch(() => undefined);
      if (run && run.status !== "RUNNING") return;
      const reason = `${why(describeWorker(run))} Closed as ${status} by ${closer} at ${new Date().toISOString()}.`;
      const closing = { ...tags, [STATUS_TAG]: status === "FAILED" ? "failed" : "cancelled", [ABANDONED_TAG]: reason, ...copiedTags(run?.tags ?? {}, ABANDONED_COPIED_TAGS) };
      await tracker.logBatch(runId, { tags: closing }).catch(() => {});
      await tracker.endRun(runId, status);
    }),
  );
}

/** What is known of a dead worker that closers all say: `Its worker (…) stopped answering while it ran task "a" (…)`. */
export function stoppedWhileRunning(worker: string, nodeId: string): string {
  return `Its worker${worker} stopped answering while it ran task "${nodeId}" (killed, crashed, or cut off from Redis for longer than CAIRN_QUEUE_LOCK_MS)`;
}

/**
 * ` (w-vm1-42, pid 42 on vm-1)`: the worker that opened `run`, from its `cairn.worker` and
 * `cairn.owner` tags (either alone when the other is missing); empty when the run could not be read.
 */
export function describeWorker(run: RunRecord | undefined): string {
  const owner = parseOwner(run?.tags["cairn.owner"]);
  const who = [run?.tags[WORKER_TAG], owner ? `pid ${owner.pid} on ${owner.host}` : undefined].filter(Boolean).join(", ");
  return who ? ` (${who})` : "";
}

/**
 * The error tags of a poison task's runs, as a failed run's (`cairn show` and the report give its
 * error; plan says the key failed). Its message names no input: no secret to mask.
 */
export function poisonTags(poison: PoisonTaskError): Record<string, string> {
  return { [ERROR_TAG]: `${poison.name}: ${poison.message}`, [ERROR_NAME_TAG]: poison.name, [ERROR_MESSAGE_TAG]: poison.message };
}
