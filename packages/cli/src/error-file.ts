/**
 * A failed task run's whole error, as its run keeps it in `cairn/error.txt` (masked when it was
 * written): what `cairn show` of the task run prints, and where the file and the run's logs are
 * on this machine, which `cairn run`'s failure summary names. A CI log shows a task's message and
 * the one frame where it was raised; the chain of causes and their stacks are in that file, and a
 * CI step can upload it only by a path it is told.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative } from "node:path";
import { ERROR_FILE, type Tracker } from "@cairn/core";

/** The error file's path among a run's artifacts. */
export const ERROR_ARTIFACT = `cairn/${ERROR_FILE}`;

/** Lines of the error file `cairn show` prints; the rest is counted and where it is said. */
export const SHOWN_ERROR_LINES = 200;

/**
 * The text of the run's `cairn/error.txt`, read from the run's folder on this machine or
 * downloaded from the tracker; undefined when the run has none (a run recorded before it was
 * written, a cancelled task) or it cannot be read.
 */
export async function readErrorFile(tracker: Tracker, runId: string): Promise<string | undefined> {
  if (tracker.artifactDir) return readFile(join(tracker.artifactDir(runId), "cairn", ERROR_FILE), "utf8").catch(() => undefined);
  const dir = await mkdtemp(join(tmpdir(), "cairn-show-"));
  try {
    return await readFile(await tracker.downloadArtifact(runId, ERROR_ARTIFACT, dir), "utf8");
  } catch {
    return undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The first {@link SHOWN_ERROR_LINES} lines of an error file's `text`, then, when there were more,
 * a line saying how many were left out and `where` the whole file is.
 */
export function shownErrorText(text: string, where: string): string {
  const lines = text.replace(/\s+$/, "").split("\n");
  if (lines.length <= SHOWN_ERROR_LINES) return lines.join("\n");
  return [...lines.slice(0, SHOWN_ERROR_LINES), `… (${lines.length - SHOWN_ERROR_LINES} more lines: ${where})`].join("\n");
}

/**
 * Where a run's error file is, for a person to open or a CI step to upload: its path on this
 * machine when the tracker keeps artifacts here, else the MLflow command that downloads it.
 */
export function errorFileAt(tracker: Tracker, runId: string, cwd = process.cwd()): string {
  if (tracker.artifactDir) return `the whole text is ${shortPath(join(tracker.artifactDir(runId), "cairn", ERROR_FILE), cwd)}`;
  return `the whole text is the run's artifact ${ERROR_ARTIFACT} (\`mlflow artifacts download --run-id ${runId} --artifact-path ${ERROR_ARTIFACT}\`)`;
}

/**
 * The files of a failed task's run on this machine that hold what its summary line cuts short:
 * its error file and its logs (a process task's), those that exist, each by a path relative to
 * `cwd` when inside it. None when the tracker keeps artifacts elsewhere (a server): `cairn show`
 * of the task run prints its error there.
 */
export function localRunFiles(tracker: Tracker, runId: string, cwd = process.cwd()): { error?: string; logs: string[] } {
  if (!tracker.artifactDir) return { logs: [] };
  const dir = tracker.artifactDir(runId);
  const error = join(dir, "cairn", ERROR_FILE);
  const logs = ["stdout.txt", "stderr.txt"].map((name) => join(dir, "logs", name)).filter((p) => existsSync(p));
  return { ...(existsSync(error) ? { error: shortPath(error, cwd) } : {}), logs: logs.map((p) => shortPath(p, cwd)) };
}

/** `path` relative to `cwd` when inside it (as a CI step names a file), else as it is. */
function shortPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}
