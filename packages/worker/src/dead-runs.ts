/**
 * The task runs that workers which died under a job left RUNNING: closed by whoever meets the job
 * next (the worker that takes it again, or the coordinator that gives it up or takes it back),
 * each saying why, as the runs of a killed coordinator do.
 */
import type { RunRecord, Tracker } from "@cairn/core";

/** The tag that says why a run was closed by another process than its own (as every tracker's closer writes it). */
export const ABANDONED_TAG = "cairn.abandoned";

/**
 * Closes each run of `runIds` still RUNNING as `status`, tagged {@link ABANDONED_TAG} with
 * `reason(run)` (the run as read, undefined when it could not be). A run closed already, by
 * another worker or the coordinator, is left as it is.
 */
export async function closeDeadRuns(tracker: Tracker, runIds: readonly string[], status: "FAILED" | "KILLED", reason: (run: RunRecord | undefined) => string): Promise<void> {
  await Promise.allSettled(
    runIds.map(async (runId) => {
      const run = await tracker.getRun(runId).catch(() => undefined);
      if (run && run.status !== "RUNNING") return;
      await tracker.logBatch(runId, { tags: { [ABANDONED_TAG]: reason(run) } }).catch(() => {});
      await tracker.endRun(runId, status);
    }),
  );
}
