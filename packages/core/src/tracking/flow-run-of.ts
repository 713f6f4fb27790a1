/**
 * The flow run a run belongs to, found by walking up its parents: a task run's parent is its flow
 * run, but a map's item or a sweep's trial sits one level further down, under its map's or sweep's
 * run. `cairn report` and `cairn show` name the flow run itself, never a level in between that
 * would only say the same again.
 */
import type { RunRecord, Tracker } from "./tracker.ts";

/** Where a run sits: its flow run, and the map's or sweep's run between them, if any. */
export interface RunPlace {
  /** The id of the top run above it (its flow run); the run's own id for a flow run. */
  flowRunId: string;
  /** The map's or sweep's run it is an item or a trial of, when its parent is not the flow run. */
  group?: RunRecord;
}

/** Levels walked at most: a flow run, a map, an item; more only in a store a hand edited into a loop. */
const MAX_DEPTH = 16;

/**
 * Where `run` sits (see {@link RunPlace}). A parent the tracker no longer has (removed by hand, or
 * by a prune of an older Cairn) ends the walk: its id is the flow run's the run names.
 */
export async function flowRunOf(tracker: Pick<Tracker, "getRun">, run: RunRecord): Promise<RunPlace> {
  let group: RunRecord | undefined;
  let at = run;
  const seen = new Set([run.runId]);
  for (let depth = 0; at.parentRunId !== undefined && depth < MAX_DEPTH; depth++) {
    const parentId = at.parentRunId;
    if (seen.has(parentId)) break;
    seen.add(parentId);
    const parent = await tracker.getRun(parentId).catch(() => undefined);
    if (!parent) return { flowRunId: parentId, ...(group ? { group } : {}) };
    if (at === run && parent.parentRunId !== undefined) group = parent;
    at = parent;
  }
  return { flowRunId: at.runId, ...(group ? { group } : {}) };
}

/**
 * `task run R ("load") of flow run F`, `item run R ("extract[0]") of map run M ("extract") of flow
 * run F`, `trial run R (...) of sweep run S (...) of flow run F`: what a run is, for a message
 * that asks for its flow run.
 */
export function describeRunPlace(run: RunRecord, place: RunPlace): string {
  const self = `run ${run.runId} ("${run.name}")`;
  if (!place.group) return `task ${self} of flow run ${place.flowRunId}`;
  const sweep = place.group.tags["cairn.kind"] === "sweep";
  return `${sweep ? "trial" : "item"} ${self} of ${sweep ? "sweep" : "map"} run ${place.group.runId} ("${place.group.name}") of flow run ${place.flowRunId}`;
}
