/**
 * Which runs of one experiment `LocalStore.pruneRuns` removes: the decision alone, over the
 * experiment's index lines and a way to read a run's status, so that it can be tested without
 * files. A flow run and the runs under it (its tasks, a sweep's trials) go together, once the
 * flow run is over and ended before the limit. Such a tree stays whole when a run of it is one a
 * kept cache entry names as its source (a hit reuses its files) or is still RUNNING (a live process
 * may still write it): its flow run's report and task counters speak of every run under it.
 */
import type { RunStatus } from "../tracker.ts";

/** What prune needs of an index line. */
export interface PrunableLine {
  runId: string;
  parentRunId?: string;
  startTime: number;
  /** Set on runs created RUNNING (createRun); absent on runs recorded already over. */
  writer?: string;
}

/** What prune needs of a run's record. */
export interface PrunableRun {
  status: RunStatus;
  startTime: number;
  endTime?: number;
}

/** Options of {@link choosePrunedRuns}. */
export interface PruneChoiceOptions {
  /** Epoch ms: trees whose top run ended before it may go. */
  endedBefore: number;
  /** Run ids that stay whatever their age: the source runs of the cache entries kept. */
  keep: ReadonlySet<string>;
  /** The run's record, or undefined when it has none (its process was killed before writing it). */
  runOf: (runId: string) => Promise<PrunableRun | undefined>;
  /** Whether the process that wrote an index line's `writer` may still run (it is not known to be gone). */
  writerMayRun: (writer: string) => boolean;
}

/** What {@link choosePrunedRuns} decided. */
export interface PruneChoice {
  /** The runs to remove, each tree's top run first. */
  remove: PrunableLine[];
  /** Runs of old trees kept whole because a kept cache entry names one of their runs (and none of them is RUNNING). */
  keptForCache: number;
  /** Runs of old trees kept whole because one of their runs is still RUNNING. */
  keptRunning: number;
}

const RUNNING: ReadonlySet<RunStatus> = new Set(["RUNNING", "SCHEDULED"]);

/** Decides, for one experiment's index lines (each run once), which runs go (see the module's header). */
export async function choosePrunedRuns(lines: readonly PrunableLine[], o: PruneChoiceOptions): Promise<PruneChoice> {
  const byId = new Map(lines.map((line) => [line.runId, line]));
  const children = new Map<string, PrunableLine[]>();
  for (const line of lines) {
    if (line.parentRunId === undefined || !byId.has(line.parentRunId)) continue;
    const siblings = children.get(line.parentRunId);
    if (siblings) siblings.push(line);
    else children.set(line.parentRunId, [line]);
  }
  const choice: PruneChoice = { remove: [], keptForCache: 0, keptRunning: 0 };
  // A run whose parent is not in the index (removed by a prune of an older Cairn, which kept a child alone) tops a tree of its own.
  for (const top of lines) {
    if (top.parentRunId !== undefined && byId.has(top.parentRunId)) continue;
    const tree = treeOf(top, children);
    const state = await topState(top, o);
    if (state === "young") continue;
    if (state === "running") {
      choice.keptRunning += tree.length;
      continue;
    }
    // A tree stays whole or goes whole: a kept run's flow run holds its report and its task counters,
    // which `cairn show` and `cairn report` read against the tree's runs (a failed task's error, the
    // skipped ones): a half-pruned tree would say "8 tasks" and list 5. A run still RUNNING wins the reason.
    let reason: "cache" | "running" | undefined;
    for (const line of tree) {
      if (o.keep.has(line.runId)) reason = "cache";
      // Only runs created RUNNING can still be so; a run recorded over (a cache hit's) never is.
      else if (line.writer !== undefined && line !== top && RUNNING.has((await o.runOf(line.runId))?.status ?? "FINISHED")) {
        reason = "running";
        break;
      }
    }
    if (reason === "running") choice.keptRunning += tree.length;
    else if (reason === "cache") choice.keptForCache += tree.length;
    else choice.remove.push(...tree);
  }
  return choice;
}

/** The run and every run under it, top first. */
function treeOf(top: PrunableLine, children: ReadonlyMap<string, PrunableLine[]>): PrunableLine[] {
  const tree = [top];
  const seen = new Set([top.runId]);
  for (let i = 0; i < tree.length; i++) {
    for (const child of children.get(tree[i]!.runId) ?? []) {
      if (seen.has(child.runId)) continue;
      seen.add(child.runId);
      tree.push(child);
    }
  }
  return tree;
}

/** Whether a tree's top run is over and ended before the limit ("old"), ended since ("young"), or may still run. */
async function topState(top: PrunableLine, o: PruneChoiceOptions): Promise<"old" | "young" | "running"> {
  const run = await o.runOf(top.runId);
  if (!run) {
    // No record: killed before its first write, or a run created this very second by another process.
    if (top.startTime >= o.endedBefore) return "young";
    return top.writer !== undefined && o.writerMayRun(top.writer) ? "running" : "old";
  }
  if (RUNNING.has(run.status)) return "running";
  return (run.endTime ?? run.startTime) < o.endedBefore ? "old" : "young";
}
