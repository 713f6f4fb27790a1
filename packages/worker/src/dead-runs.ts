/**
 * The task runs that workers which died under a job left RUNNING: closed by whoever meets the job
 * next (the worker that takes it again, or the coordinator that gives it up or takes it back),
 * each saying why, as the runs of a killed coordinator do.
 */
import { ABANDONED_COPIED_TAGS, ABANDONED_TAG, copiedTags, ERROR_MESSAGE_TAG, ERROR_NAME_TAG, ERROR_TAG, type RunRecord, type Tracker } from "@cairn/core";
import type { PoisonTaskError } from "./errors.ts";

/**
 * Closes each run of `runIds` still RUNNING as `status`, tagged {@link ABANDONED_TAG} with
 * `reason(run)` (the run as read, undefined when it could not be). A run closed already, by
 * another worker or the coordinator, is left as it is. A task run's key (`cairn.key`) is copied
 * to `cairn.failed_key` in the same write, as for a killed coordinator's runs: a later plan
 * finds the key interrupted, not new. `tags` go in the same write: a poison task's error, which
 * makes its runs failed ones (they did not stop of themselves), not interrupted.
 */
export async function closeDeadRuns(
  tracker: Tracker,
  runIds: readonly string[],
  status: "FAILED" | "KILLED",
  reason: (run: RunRecord | undefined) => string,
  tags: Readonly<Record<string, string>> = {},
): Promise<void> {
  await Promise.allSettled(
    runIds.map(async (runId) => {
      const run = await tracker.getRun(runId).catch(() => undefined);
      if (run && run.status !== "RUNNING") return;
      const closing = { ...tags, [ABANDONED_TAG]: reason(run), ...copiedTags(run?.tags ?? {}, ABANDONED_COPIED_TAGS) };
      await tracker.logBatch(runId, { tags: closing }).catch(() => {});
      await tracker.endRun(runId, status);
    }),
  );
}

/**
 * The error tags of a poison task's runs, as a failed run's (`cairn show` and the report give its
 * error; plan says the key failed). Its message names no input: no secret to mask.
 */
export function poisonTags(poison: PoisonTaskError): Record<string, string> {
  return { [ERROR_TAG]: `${poison.name}: ${poison.message}`, [ERROR_NAME_TAG]: poison.name, [ERROR_MESSAGE_TAG]: poison.message };
}
