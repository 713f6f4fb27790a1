/**
 * A job on a Cairn queue, as both sides read it: its data (a dispatched task without its node),
 * what its worker notes on it while it runs (the task runs it opened, so that the runs of a
 * worker that died are closed), and BullMQ's reason for a job whose workers died too often.
 */
import type { DispatchedTask } from "@cairn/core";

/** The job's data: JSON, everything a worker needs besides its own checkout. */
export type JobData = Omit<DispatchedTask, "node">;

/** Noted on the job as its task's runs open: one per worker that took it. */
export interface JobProgress {
  runIds?: string[];
}

/** BullMQ's failed reason for a job that stalled more often than a worker's `maxStalledCount`. */
export const STALLED_REASON = "stalled more than allowable limit";
