/**
 * What a folder of code leaves out of its digest, and how its files are recorded one by one. A
 * folder whose content is a task's code (an MLflow project's folder, a `.codeFiles()` folder)
 * also holds what running that code writes there, or what tools leave beside it: compiled Python,
 * a git checkout's own records, MLflow's default store, a Finder's `.DS_Store`. Counted, they made
 * a task miss when nothing it depends on changed (the first run's `import` wrote `__pycache__/`,
 * changing the key the next run made). The one list here is the rule both digests follow.
 * An artifact's folder is no code: its digest stays exact (see `describePath`).
 */
import { hash } from "node:crypto";

/** Folders whose content never enters a code folder's digest, at any depth; a virtualenv (a folder holding `pyvenv.cfg`, whatever its name) neither. */
export const LEFT_OUT_FOLDERS: ReadonlySet<string> = new Set([".git", "mlruns", "mlartifacts", "__pycache__", ".cairn", "node_modules", ".venv", ".ipynb_checkpoints", ".pytest_cache"]);

/**
 * Files (by name) that never enter a code folder's digest: compiled Python; MLflow 3's default
 * store (`sqlite:///mlflow.db`, with SQLite's journal files), which a step's own `mlflow.log_*`
 * creates in its folder when no tracking URI is set; `cairn report`'s page, written to the working
 * directory; macOS Finder's `.DS_Store`: what a run or a tool writes is not code.
 */
export const LEFT_OUT_FILE = /\.py[co]$|^mlflow\.db(-journal|-wal|-shm)?$|^cairn-report-.*\.html$|^\.DS_Store$/;

/** The file that makes a folder a virtualenv, left out whatever its name. */
export const VIRTUALENV_MARK = "pyvenv.cfg";

/** A path (relative to a code folder, `/`-separated) that never enters its digest: under a left-out folder, or a left-out file's name. */
export function isLeftOut(relativePath: string): boolean {
  const parts = relativePath.split("/");
  return parts.some((p) => LEFT_OUT_FOLDERS.has(p)) || LEFT_OUT_FILE.test(parts.at(-1)!);
}

/** A name in a code folder that is left out, with all below it (a folder's or a file's, or a link's by either). */
export function isLeftOutName(name: string): boolean {
  return LEFT_OUT_FOLDERS.has(name) || LEFT_OUT_FILE.test(name);
}

/** Files of a code folder recorded one by one with a cache entry; a larger folder's are only counted, to keep every entry small. */
export const FILES_RECORDED = 500;

/**
 * A code folder's digest entries (`<relative path>\0<digest>`) as what an entry records of them,
 * not in the key: relative path -> a short digest (12 hex digits of the sha256 of its digest),
 * so that `explain` names the files that changed; only their count when more than {@link FILES_RECORDED}.
 */
export function recordedFiles(entries: readonly string[]): Record<string, string> | number {
  if (entries.length > FILES_RECORDED) return entries.length;
  const files: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const entry of entries) {
    const cut = entry.indexOf("\0");
    files[entry.slice(0, cut)] = hash("sha256", entry.slice(cut + 1), "hex").slice(0, 12);
  }
  return files;
}
