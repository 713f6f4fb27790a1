/**
 * The task runs that workers which died under a job left RUNNING: closed by whoever meets the job
 * next (the worker that takes it again, or the coordinator that gives it up or takes it back),
 * each saying why, as the runs of a killed coordinator do.
 */
import { ABANDONED_COPIED_TAGS, ABANDONED_TAG, copiedTags, type RunRecord, type Tracker } from "@cairn/core";

/**
 * Closes each run of `runIds` still RUNNING as `status`, tagged {@link ABANDONED_TAG} with
 * `reason(run)` (the run as read, undefined when it could not be). A run closed already, by
 * another worker or the coordinator, is left as it is. A task run's key (`cairn.key`) is copied
 * to `cairn.failed_key` in the same write, as for a killed coordinator's runs: a later plan
 * finds the key interrupted, not new.
 */
export async function closeDeadRuns(tracker: Tracker, runIds: readonly string[], status: "FAILED" | "KILLED", reason: (run: RunRecord | undefined) => string): Promise<void> {
  await Promise.allSettled(
    runIds.map(async (runId) => {
      const run = await tracker.getRun(runId).catch(() => undefined);
      if (run && run.status !== "RUNNING") return;
      const tags = { [ABANDONED_TAG]: reason(run), ...copiedTags(run?.tags ?? {}, ABANDONED_COPIED_TAGS) };
      await tracker.logBatch(runId, { tags }).catch(() => {});
      await tracker.endRun(runId, status);
    }),
  );
}
