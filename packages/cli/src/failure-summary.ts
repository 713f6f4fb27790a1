/**
 * What `cairn run` writes to stderr when its flow fails or is cancelled: which tasks failed, the
 * first and last lines of each error, the run id and where to see more. A run started from cron or CI
 * often sends stdout away (`>/dev/null`, a log file) and keeps stderr for what needs a look, as
 * `make` and `npm` put their errors there: the run's own view stays on stdout as before. Where
 * both streams reach the same place (one terminal, `>log 2>&1`), the summary above says it
 * already, and this is not written a second time (see {@link sameDestination}).
 */
import { fstatSync } from "node:fs";
import { isAbsolute, relative } from "node:path";
import type { Writable } from "node:stream";
import type { ErrorInfo, FlowResult } from "@cairn/core";
import { formatDuration } from "./reporter.ts";
import { cutLongLines, printable, printableLine, wholeErrorAt } from "./printable.ts";

/** Failed tasks the summary names; the rest are counted. */
const MAX_TASKS = 5;

/**
 * Last lines of an error's message the summary shows below its first; the lines between are
 * counted. The last ones, not the next ones: a Python traceback's exception is at its end, and
 * the lines after the first are its `Traceback (most recent call last):` and frames.
 */
const TAIL_LINES = 3;

/**
 * The stderr summary of a run that did not succeed. `flow`: the flow's name; `more`: lines that
 * say where the whole story is (`cairn show RUN_ID`, the report), each said after `cairn: `;
 * `recorded`: whether the runs were recorded, so that a task's run keeps its whole error, said
 * where a line of it is cut (see cutLongLines).
 */
export function failureSummary(
  result: FlowResult<unknown>,
  flow: string,
  more: readonly string[],
  cwd = process.cwd(),
  recorded = true,
  files: (runId: string) => RunFiles = () => ({ logs: [] }),
): string {
  const failed = Object.values(result.tasks).filter((t) => t.status === "failed");
  const head = `cairn: flow "${printableLine(flow)}" ${result.status} in ${formatDuration(result.durationMs)}, run ${result.runId}`;
  const count = `${failed.length} ${failed.length === 1 ? "task" : "tasks"} failed`;
  // Why the flow ended, when its failed tasks do not say it: a cancel's reason, a record that could not be written.
  const why = result.error && result.error.name !== "TaskFailed" ? result.error : undefined;
  // A flow's own error has no error file: the JSON events are where it is whole.
  const flowWhole = wholeErrorAt(false);
  const taskWhole = wholeErrorAt(recorded);
  const lines = [why ? `${head}: ${why.name === "CancelledError" ? "" : `${printableLine(why.name)}: `}${firstLine(why, flowWhole)}` : failed.length ? `${head}: ${count}` : head];
  lines.push(...errorLines(why, "  ", cwd, flowWhole));
  if (why && failed.length) lines.push(`cairn: ${count}:`);
  for (const t of failed.slice(0, MAX_TASKS)) {
    lines.push(`  ${t.task}: ${t.error ? firstLine(t.error, taskWhole) : "(no error recorded)"}`, ...errorLines(t.error, "    ", cwd, taskWhole));
    const where = t.runId === undefined ? undefined : runFilesLine(files(t.runId));
    if (where) lines.push(`    ${where}`);
  }
  if (failed.length > MAX_TASKS) lines.push(`  … and ${failed.length - MAX_TASKS} more failed ${failed.length - MAX_TASKS === 1 ? "task" : "tasks"}`);
  for (const line of more) lines.push(`cairn: ${line}`);
  return `${lines.join("\n")}\n`;
}

/** A failed task run's files on this machine: its error file and its logs (see localRunFiles). */
export interface RunFiles {
  error?: string;
  logs: readonly string[];
}

/**
 * `whole error: PATH; logs: PATH, PATH`, the files of a failed task's run on this machine that
 * hold what its lines cut short, for a person to open or a CI step to upload; undefined for none.
 */
export function runFilesLine(files: RunFiles): string | undefined {
  const parts = [...(files.error ? [`whole error: ${printableLine(files.error)}`] : []), ...(files.logs.length ? [`logs: ${files.logs.map(printableLine).join(", ")}`] : [])];
  return parts.length ? parts.join("; ") : undefined;
}

/** `whole`: where the whole text is, said where a long line is cut. */
function firstLine(error: ErrorInfo, whole: string): string {
  return printable(cutLongLines(error.message.split("\n", 1)[0]!, whole));
}

/**
 * The last {@link TAIL_LINES} lines of `error`'s message after its first ({@link firstLine}), with the
 * number of lines left out before them, then where the user's code raised it (relative to `cwd`
 * when inside it), each after `indent`.
 */
function errorLines(error: ErrorInfo | undefined, indent: string, cwd: string, whole: string): string[] {
  if (!error) return [];
  const rest = error.message.split("\n").slice(1);
  // One line left out would take the line of its note: it is shown instead.
  const out = rest.length > TAIL_LINES + 1 ? rest.length - TAIL_LINES : 0;
  const lines = [...(out ? [`… (${out} lines left out)`] : []), ...rest.slice(out).map((line) => printable(cutLongLines(line, whole)))].map((line) => `${indent}${line}`);
  if (error.at) {
    const rel = relative(cwd, error.at);
    lines.push(`${indent}at ${printableLine(rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : error.at)}`);
  }
  return lines;
}

/**
 * Whether `a` and `b` write to the same place: the same stream, or two file descriptors on one
 * file, pipe or terminal (`cairn run f.ts >log 2>&1`, both on a screen). Streams without a file
 * descriptor (an app's own, given to `cli()`) are the same only when they are one object.
 */
export function sameDestination(a: Writable, b: Writable): boolean {
  if (a === b) return true;
  const fdA = (a as { fd?: unknown }).fd;
  const fdB = (b as { fd?: unknown }).fd;
  if (typeof fdA !== "number" || typeof fdB !== "number") return false;
  try {
    const [sa, sb] = [fstatSync(fdA), fstatSync(fdB)];
    return sa.dev === sb.dev && sa.ino === sb.ino && sa.rdev === sb.rdev;
  } catch {
    // A descriptor that cannot be looked at: the summary is written, which at worst says it twice.
    return false;
  }
}

/**
 * The lines under `cairn run`'s summary on stdout that name, for each failed task (the first
 * {@link MAX_TASKS}), the files of its run on this machine: the stderr summary names them under
 * each task, and where it is not written (both streams in one log) these say it. Empty when
 * nothing failed or the runs keep no files here (a server, `--no-tracking`).
 */
export function failedTaskFiles(result: FlowResult<unknown>, files: (runId: string) => RunFiles): string {
  const lines: string[] = [];
  for (const t of Object.values(result.tasks).filter((t) => t.status === "failed").slice(0, MAX_TASKS)) {
    const where = t.runId === undefined ? undefined : runFilesLine(files(t.runId));
    if (where) lines.push(`${printableLine(t.task)}: ${where}`);
  }
  return lines.length ? `${lines.join("\n")}\n` : "";
}
