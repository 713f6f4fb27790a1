import type { RunRecord, Tracker } from "../tracking/tracker.ts";
import { CACHED_FROM_TAG } from "./task-cache.ts";

/**
 * The source runs of the cache hits among `runs` (their `cairn.cached_from`), by id, for
 * commands that show hits beside what they reused (`cairn show`, the run report): those in
 * `known` (read already, e.g. by the run itself), then one `getRuns` where the tracker has it,
 * else one `getRun` each; gone runs are left out.
 */
export async function sourceRunsOfHits(tracker: Tracker, runs: readonly RunRecord[], known?: ReadonlyMap<string, RunRecord>): Promise<Map<string, RunRecord>> {
  const found = new Map<string, RunRecord>();
  const ids: string[] = [];
  for (const id of new Set(runs.map((r) => r.tags[CACHED_FROM_TAG]))) {
    if (id === undefined || id === "") continue;
    const run = known?.get(id);
    if (run) found.set(id, run);
    else ids.push(id);
  }
  if (!ids.length) return found;
  const experiments = [...new Set(runs.map((r) => r.experimentId))];
  const none = () => new Map<string, RunRecord | undefined>();
  const batch = tracker.getRuns ? await tracker.getRuns(ids, experiments).catch(none) : none();
  await Promise.all(
    ids.map(async (id) => {
      // A source in another experiment is not in the batch's answer: asked on its own.
      const run = batch.has(id) ? batch.get(id) : await tracker.getRun(id).catch(() => undefined);
      if (run) found.set(id, run);
    }),
  );
  return found;
}
