/**
 * Outputs too large to be values. A task's output is held whole by the run until it ends (its
 * result, what its dependants are handed), written whole as JSON to its cache entry and to its
 * run's `cairn/outputs.json`, and read back whole by every hit: a value of hundreds of megabytes
 * stalls the flow at each of these, with no word of why. A file does not: an artifact is stored
 * and handed on by its path and digest. So an output whose JSON passes a limit is said once per
 * task of a run, with that fix; the run goes on as before.
 */
import { quotesHint } from "@cairn/cache";
import { OptionError } from "../errors.ts";

/** The variable that sets the limit, in MB (0: never warn). */
export const LARGE_OUTPUT_VARIABLE = "CAIRN_LARGE_OUTPUT_MB";

/**
 * The limit when the variable is unset, in MB of JSON. No value a task hands on as data (metrics,
 * settings, ids, a table's summary) comes near it, while at this size each copy and read of the
 * output (the entry, the run's file, every hit's parse) takes tens of milliseconds and the run
 * holds it for its whole length: a table or a model's weights, which belong in a file.
 */
export const DEFAULT_LARGE_OUTPUT_MB = 10;

/** What the tasks of one run share: the limit, in bytes, and the tasks already warned of. */
export interface LargeOutputs {
  readonly limitBytes: number;
  readonly warned: Set<string>;
}

/** One MB as `cairn cache ls` prints sizes (powers of 1024). */
const MB = 1024 * 1024;

/**
 * The limit {@link LARGE_OUTPUT_VARIABLE} sets in `env` (else {@link DEFAULT_LARGE_OUTPUT_MB}),
 * checked where it enters: undefined when it is 0 (no warning).
 */
export function largeOutputsFromEnv(env: NodeJS.ProcessEnv): LargeOutputs | undefined {
  const raw = env[LARGE_OUTPUT_VARIABLE];
  const text = raw?.trim();
  if (text === undefined || text === "") return { limitBytes: DEFAULT_LARGE_OUTPUT_MB * MB, warned: new Set() };
  const mb = Number(text);
  if (!/^\d+$/.test(text) || mb > 1_000_000) {
    const expected = `an integer of MB from 0 to 1000000 (a task output larger than this as JSON is warned of; 0: never; default ${DEFAULT_LARGE_OUTPUT_MB})`;
    const fix = quotesHint(LARGE_OUTPUT_VARIABLE, raw) || ` Write the MB in digits (${LARGE_OUTPUT_VARIABLE}=50), or unset it for ${DEFAULT_LARGE_OUTPUT_MB}.`;
    throw new OptionError(LARGE_OUTPUT_VARIABLE, expected, raw, `Expected \`${LARGE_OUTPUT_VARIABLE}\` to be ${expected}, got ${JSON.stringify(raw)}.${fix}`);
  }
  return mb === 0 ? undefined : { limitBytes: mb * MB, warned: new Set() };
}

/**
 * The warning for `output` of task `id` (of task `taskName`), when its JSON passes the limit and
 * no node of that task was warned of in this run yet (a map's items, one line for all); else undefined.
 */
export function largeOutputWarning(large: LargeOutputs, id: string, taskName: string, output: unknown): string | undefined {
  if (large.warned.has(taskName)) return undefined;
  const bytes = jsonSize(output);
  if (bytes <= large.limitBytes) return undefined;
  large.warned.add(taskName);
  const limit = large.limitBytes / MB;
  return (
    `its output is about ${formatMb(bytes)} as JSON, over the ${limit} MB a value should stay under (${LARGE_OUTPUT_VARIABLE}): ` +
    `the run holds it until it ends, and its cache entry and its run's record write it whole, and every hit reads it whole, which holds up the flow. ` +
    `Write such data to a file and output that instead: \`ctx.artifacts.write(name, data)\` in a function task, ` +
    `\`cairn_task.artifact(name)\` or \`currentTask().artifact(name)\` in a script; an artifact is stored and handed on by its path and digest. ` +
    `Said once per task of a run; set ${LARGE_OUTPUT_VARIABLE} to another limit, or 0 to say nothing.`
  );
}

/** `bytes` in MB, one decimal below 10. */
function formatMb(bytes: number): string {
  const mb = bytes / MB;
  return `${mb < 10 ? mb.toFixed(1) : Math.round(mb).toLocaleString("en-US")} MB`;
}

/**
 * About how many bytes `value` (a checked output: JSON data and artifacts, no cycle) takes as
 * JSON, counted without making the text: a string by its length (escapes and characters beyond
 * ASCII make the text a little longer), a number by its digits.
 */
export function jsonSize(value: unknown): number {
  switch (typeof value) {
    case "string":
      return value.length + 2;
    case "number":
      return numberLength(value);
    case "boolean":
      return value ? 4 : 5;
    case "object":
      break;
    default:
      return 0; // undefined: left out, as JSON leaves it
  }
  if (value === null) return 4;
  let size = 2;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) size += jsonSize(value[i] ?? null) + 1;
    return size;
  }
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    if (item !== undefined) size += key.length + 4 + jsonSize(item);
  }
  return size;
}

/** Characters of a finite number's JSON: exact for integers below 2^53, an upper guess for fractions. */
function numberLength(n: number): number {
  if (!Number.isSafeInteger(n)) return 22;
  let digits = n < 0 ? 2 : 1;
  for (let rest = Math.abs(n); rest >= 10; rest = Math.floor(rest / 10)) digits++;
  return digits;
}
