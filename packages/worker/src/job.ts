/**
 * A job on a Cairn queue, as both sides read it: its data (a dispatched task without its node,
 * and the names of the secrets the run knows from the start), what its workers note on it (the
 * task runs it opened, so that the runs of a worker that died are closed; the workers whose code
 * differed, so that it is handed to another before it fails), and BullMQ's reason for a job whose
 * workers died too often.
 */
import type { DispatchedTask } from "@cairn/core";

/** The job's data: JSON, everything a worker needs besides its own checkout. */
export type JobData = Omit<DispatchedTask, "node"> & {
  /**
   * The names (never the values) of the secrets the coordinator knows from the start (its
   * `--secrets FILE`, `run({ secrets })`): the worker reads each from its own environment or
   * `--secrets FILE` before the task starts, so that an output or log line carrying one is
   * refused or masked there, as in one process. A worker that cannot find a name hands the job
   * back for another, as for code that differs (SecretNotFoundError naming the worker once none took it).
   */
  readonly secretNames?: readonly string[];
  /**
   * The coordinator's Cairn, "0.1.0+57ab83a" (core's `cairnBuild()`): a worker of another refuses
   * the job before anything runs (BuildMismatchError). Absent from a coordinator older than this field.
   */
  readonly cairn?: string;
};

/** Noted on the job as its task's runs open: one per worker that took it. */
export interface JobProgress {
  runIds?: string[];
  /**
   * The workers (their ids, as `cairn workers` lists them) that could not run the task (other
   * code for it, no such task in their flow, no value for a secret of the run) and handed the job
   * back, each with why, when the first did (epoch ms), and how many times it was handed back: it
   * fails (StaleCodeError, UnknownQueuedTaskError, SecretNotFoundError) once every live worker of
   * its pool refused it and the grace period is over.
   */
  stale?: { since: number; by: string[]; times: number; why?: Record<string, string> };
}

/** BullMQ's failed reason for a job that stalled more often than a worker's `maxStalledCount`. */
export const STALLED_REASON = "stalled more than allowable limit";
