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
   * back for another, as for code that differs (SecretNotFoundError naming the worker once none
   * took it); so does one whose value differs from the coordinator's, by `secretDigests`
   * (SecretMismatchError).
   */
  readonly secretNames?: readonly string[];
  /**
   * The coordinator's Cairn, "0.1.0+57ab83a" (core's `cairnBuild()`): a worker of another refuses
   * the job before anything runs (BuildMismatchError). Absent from a coordinator older than this field.
   */
  readonly cairn?: string;
  /**
   * The export conditions the coordinator resolves packages with (core's NODE_CONDITIONS:
   * `["development", "node", ...]`): a worker whose code for the task differs and whose
   * conditions differ says that it was started with others, not that its checkout is old.
   * Absent from a coordinator older than this field.
   */
  readonly conditions?: readonly string[];
  /**
   * Where its inputs and params hold -0, which JSON (and so Redis) writes as 0: each a path of
   * keys from the job's data (`["inputs", "deep", "list", 1]`). The worker puts -0 back there
   * (restoreNegativeZeros), so that a task that tells -0 from 0, as its key does, gets on a
   * worker what it gets in one process. Absent when there is none.
   */
  readonly negativeZeros?: ReadonlyArray<ReadonlyArray<string | number>>;
  /**
   * Where its inputs are when they were too large to travel in the job (inputs-by-reference.ts):
   * a file of its flow run in MLflow, which the worker reads before the task starts; `inputs` is
   * then empty. Absent when they travel in the job.
   */
  readonly inputsIn?: InputsReference;
};

/** A task's inputs left in a run's artifacts: run `runId`'s file `path` (JSON of the inputs object). */
export interface InputsReference {
  readonly runId: string;
  readonly path: string;
}

/** `data` with the paths of the -0 numbers of its inputs and params noted (see JobData.negativeZeros). */
export function withNegativeZerosNoted(data: JobData): JobData {
  const found: Array<Array<string | number>> = [];
  const visit = (value: unknown, path: Array<string | number>): void => {
    if (Object.is(value, -0)) found.push(path);
    else if (Array.isArray(value)) value.forEach((item, i) => visit(item, [...path, i]));
    else if (value !== null && typeof value === "object") for (const [key, item] of Object.entries(value)) visit(item, [...path, key]);
  };
  visit(data.inputs, ["inputs"]);
  visit(data.params, ["params"]);
  return found.length ? { ...data, negativeZeros: found } : data;
}

/**
 * Puts -0 back where `data.negativeZeros` says (in place: `data` is a job's freshly parsed
 * JSON). Only where a 0 is, through the data's own properties: a path that leads elsewhere
 * (another Cairn's, or a crafted job's) changes nothing.
 */
export function restoreNegativeZeros(data: JobData): JobData {
  for (const path of Array.isArray(data.negativeZeros) ? data.negativeZeros : []) {
    if (!Array.isArray(path) || (path[0] !== "inputs" && path[0] !== "params")) continue;
    let parent: unknown = data;
    for (const key of path.slice(0, -1)) parent = ownProperty(parent, key);
    const last = path.at(-1);
    if (last !== undefined && ownProperty(parent, last) === 0) (parent as Record<string | number, unknown>)[last] = -0;
  }
  return data;
}

function ownProperty(value: unknown, key: unknown): unknown {
  if (value === null || typeof value !== "object" || (typeof key !== "string" && typeof key !== "number")) return undefined;
  return Object.hasOwn(value, key) ? (value as Record<string | number, unknown>)[key] : undefined;
}

/** Noted on the job as its task's runs open: one per worker that took it. */
export interface JobProgress {
  runIds?: string[];
  /**
   * The workers (their ids, as `cairn workers` lists them) that could not run the task (other
   * code for it, no such task in their flow, no value or another value for a secret of the run)
   * and handed the job back, each with why, when the first did (epoch ms), and how many times it
   * was handed back: it fails (StaleCodeError, UnknownQueuedTaskError, SecretNotFoundError,
   * SecretMismatchError) once every live worker of
   * its pool refused it and the grace period is over.
   */
  stale?: { since: number; by: string[]; times: number; why?: Record<string, string> };
}

/** BullMQ's failed reason for a job that stalled more often than a worker's `maxStalledCount`. */
export const STALLED_REASON = "stalled more than allowable limit";

/**
 * What is wrong with a job's data for a worker, in words (`` `tracker` is missing ``, `` `code` is
 * null, expected an object ``); empty when it has the shape a coordinator of this Cairn sends. A
 * job of another program or Cairn, or one altered in Redis, failed deep in the worker with a
 * TypeError only Redis showed: it is refused first, saying what was wrong.
 */
export function jobDataProblems(data: unknown): string[] {
  if (data === null || typeof data !== "object" || Array.isArray(data)) return [`the job's data is ${describe(data)}, expected an object`];
  const d = data as Record<string, unknown>;
  const problems: string[] = [];
  const expect = (name: string, expected: string, ok: (v: unknown) => boolean, optional = false) => {
    const value = d[name];
    if (value === undefined) {
      if (!optional) problems.push(`\`${name}\` is missing, expected ${expected}`);
    } else if (!ok(value)) problems.push(`\`${name}\` is ${describe(value)}, expected ${expected}`);
  };
  const text = (v: unknown) => typeof v === "string" && v.length > 0;
  const record = (v: unknown) => v !== null && typeof v === "object" && !Array.isArray(v);
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string");
  for (const name of ["flowName", "flowRunId", "experimentId", "nodeId", "taskName"]) expect(name, "a non-empty string", text);
  expect("tracker", "an object { kind, uri } of strings", (v) => record(v) && typeof (v as Record<string, unknown>).kind === "string" && text((v as Record<string, unknown>).uri));
  expect("code", "an object { code: string, taskVersion: string or null, ... }", (v) => {
    const c = v as Record<string, unknown>;
    return record(v) && typeof c.code === "string" && (typeof c.taskVersion === "string" || c.taskVersion === null);
  });
  expect("params", "an object", record);
  expect("inputs", "an object", record);
  expect("key", "an object { key: string, ingredients: object }", (v) => record(v) && text((v as Record<string, unknown>).key) && record((v as Record<string, unknown>).ingredients), true);
  expect("item", "an object { parent: string, index: number }", (v) => record(v) && text((v as Record<string, unknown>).parent) && Number.isInteger((v as Record<string, unknown>).index), true);
  expect("pool", "a string", (v) => typeof v === "string", true);
  expect("cairn", "a string", (v) => typeof v === "string", true);
  expect("forceRun", "a boolean", (v) => typeof v === "boolean", true);
  expect("secretNames", "an array of strings", strings, true);
  expect("askedSecrets", "an array of strings", strings, true);
  expect("secretDigests", "an object", record, true);
  expect("runTags", "an object of strings", (v) => record(v) && Object.values(v as object).every((x) => typeof x === "string"), true);
  expect("inputsIn", "an object { runId, path }", record, true);
  return problems;
}

/** A value's type in a few words, for a message: never the value, which is whatever was written to Redis. */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}
