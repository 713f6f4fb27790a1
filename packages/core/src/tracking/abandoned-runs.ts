/**
 * Runs left RUNNING by a process that was killed (kill -9, a crash, a lost machine): whoever
 * opens a store or an experiment next closes the ones this host's dead processes left, through
 * the tracker's `closeAbandonedRuns` (each tracker knows how to find its own cheaply), and says
 * so once. This module decides when to ask and how to say it; the trackers do the closing.
 */
import { FAILED_KEY_TAG, KEY_TAG } from "../caching/task-cache.ts";
import type { RunRecord, Tracker } from "./tracker.ts";

/**
 * A task run closed here carries the key it ran for as a failed or cancelled run does: a later
 * plan finds it by {@link FAILED_KEY_TAG} in the search it makes anyway, and says the key was
 * interrupted, not new. Copied in the write that closes the run: no request of its own. The
 * closer of a dead queue worker's runs (@cairn/worker's dead-runs.ts) copies the same.
 */
export const ABANDONED_COPIED_TAGS: Readonly<Record<string, string>> = { [KEY_TAG]: FAILED_KEY_TAG };

/**
 * Stores and experiments this process looked at, and when: a second look in the same command
 * finds nothing new to close but costs a request. A process that lives on (an app that runs flows
 * on request) looks again once {@link LOOK_AGAIN_MS} have passed, for the runs of processes that
 * died since.
 */
const looked = new Map<string, number>();
/** How long a look at a store or experiment stands, in a process that lives on. */
export const LOOK_AGAIN_MS = 60_000;

/**
 * Asks the tracker to close the runs its dead processes left RUNNING in `experimentIds`; resolves
 * to the runs closed (parents first). Never rejects: a tracker that cannot do it now leaves them
 * for the next command, and the caller's work goes on. `warn` is told of runs left as they are
 * because their record cannot be read (the tracker's own default otherwise).
 */
export async function closeAbandonedRuns(tracker: Tracker, experimentIds: readonly string[], options?: { warn?: (message: string) => void }): Promise<RunRecord[]> {
  if (!tracker.closeAbandonedRuns) return [];
  const now = Date.now();
  const fresh = experimentIds.filter((id) => !(now - (looked.get(`${tracker.uri}\0${id}`) ?? -Infinity) < LOOK_AGAIN_MS));
  if (!fresh.length && experimentIds.length) return [];
  for (const id of fresh) looked.set(`${tracker.uri}\0${id}`, now);
  try {
    return await tracker.closeAbandonedRuns(fresh, { ...options, copyTags: ABANDONED_COPIED_TAGS });
  } catch {
    for (const id of fresh) looked.delete(`${tracker.uri}\0${id}`);
    return [];
  }
}

/** One sentence about the runs closed, or undefined when there were none. */
export function describeAbandonedRuns(runs: readonly RunRecord[]): string | undefined {
  if (!runs.length) return undefined;
  const flows = runs.filter((r) => r.parentRunId === undefined);
  const tasks = runs.length - flows.length;
  const parts = flows.slice(0, 3).map((r) => `flow run ${r.runId} (${r.name})`);
  if (flows.length > 3) parts.push(`${flows.length - 3} more flow run${flows.length - 3 === 1 ? "" : "s"}`);
  if (tasks) parts.push(`${tasks} task run${tasks === 1 ? "" : "s"}`);
  return (
    `Closed ${parts.join(" and ")} as KILLED: ${runs.length === 1 ? "it was" : "they were"} left RUNNING by a process of this host ` +
    `that no longer exists (killed, crashed, or it could not write the run's closing record: a full disk). The tag cairn.abandoned on each says which.`
  );
}
