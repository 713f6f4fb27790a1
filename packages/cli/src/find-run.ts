/**
 * The run a command line names: a whole run id, or, as git takes a short commit id, a prefix
 * of one that only one run's id starts with (at least {@link MIN_PREFIX} hex digits), of a
 * flow run or a task run, in the embedded store or an MLflow server. A prefix is one
 * `searchRuns` of the experiments in scope with `runIdPrefix`: the embedded store finds the
 * runs it names in its indexes and reads only theirs; MLflow cannot search by it, so there the
 * cost grows with the runs kept, which a whole id avoids. The runs are checked here again, so
 * that a tracker that does not know the filter still gives the right answer.
 */
import type { RunRecord, Tracker } from "@cairn/core";
import { formatUtc } from "./reporter.ts";
import { UsageError } from "./usage-error.ts";

/** The fewest hex digits of a run id a prefix may have. */
export const MIN_PREFIX = 4;
/** Run ids are 32 hex digits, in the embedded store and in MLflow. */
const FULL_ID = 32;
/** Candidates an ambiguous prefix's message lists. */
const SHOWN_CANDIDATES = 10;
/** Enough for every run of the experiments searched: a prefix must be unique among all of them. */
const ALL_RUNS = Number.MAX_SAFE_INTEGER;

/** No run, or more than one, has an id that starts with what was given; or it is not a run id. Exit code 2. */
export class RunIdError extends UsageError {
  static override readonly code: string = "CAIRN_RUN_ID";
  override name = "RunIdError";
  constructor(
    message: string,
    /** What the command line gave. */
    readonly given: string,
    /** The runs whose id starts with it (none, or several). */
    readonly candidates: readonly RunRecord[],
  ) {
    super(message);
  }
}

/** Where to look for a run: the tracker, and the experiments a prefix is looked for in. */
export interface RunScope {
  tracker: Tracker;
  /** The experiments to search for a prefix; asked only when what was given is not a whole, known id. */
  experimentIds(): Promise<string[]>;
  /** Said in the message when nothing matches, e.g. `experiment "etl"`. */
  label?: string;
}

/**
 * The run `given` names: its whole id (any case), or a unique prefix of at least
 * {@link MIN_PREFIX} hex digits. Throws RunIdError when it is not hex, too short, matches no
 * run, or matches several (listing them).
 */
export async function findRun(given: string, scope: RunScope): Promise<RunRecord> {
  const id = given.trim().toLowerCase();
  if (!/^[0-9a-f]+$/.test(id) || id.length > FULL_ID) {
    throw new RunIdError(
      `Expected a run id (32 hex digits) or its first ${MIN_PREFIX} or more, got "${given}". List runs with \`cairn runs\`.`,
      given,
      [],
    );
  }
  if (id.length < MIN_PREFIX) {
    throw new RunIdError(
      `Expected at least ${MIN_PREFIX} hex digits of a run id, got "${given}" (${id.length}). Give more of the id; \`cairn runs\` lists them.`,
      given,
      [],
    );
  }
  if (id.length === FULL_ID) {
    const run = await scope.tracker.getRun(id);
    if (run) return run;
  }
  const experimentIds = await scope.experimentIds();
  const matches = experimentIds.length
    ? (await scope.tracker.searchRuns({ experimentIds, runIdPrefix: id, maxResults: ALL_RUNS })).filter((r) => r.runId.startsWith(id))
    : [];
  if (matches.length === 1) return matches[0]!;
  const where = `${scope.tracker.uri}${scope.label ? ` (${scope.label})` : ""}`;
  if (!matches.length) {
    const what = id.length === FULL_ID ? `No run ${id}` : `No run id starts with "${id}"`;
    throw new RunIdError(`${what} in ${where}. List runs with \`cairn runs\`.`, given, []);
  }
  const listed = matches.slice(0, SHOWN_CANDIDATES).map(describe);
  if (matches.length > listed.length) listed.push(`and ${matches.length - listed.length} more`);
  throw new RunIdError(
    `The run id prefix "${id}" is ambiguous: ${matches.length} runs in ${where} start with it: ${listed.join("; ")}. ` +
      `Give more digits of the one you mean.`,
    given,
    matches,
  );
}

/** A run in a list of candidates: id, what it is, and when it started. */
function describe(run: RunRecord): string {
  const what = run.parentRunId === undefined ? `flow run "${run.name}"` : `task run "${run.name}" of flow run ${shortId(run.parentRunId)}`;
  return `${run.runId} (${what}, ${run.status}, started ${formatUtc(run.startTime)})`;
}

/** The first 8 hex digits of a run id, as tables may show it. */
export function shortId(runId: string): string {
  return runId.slice(0, 8);
}
