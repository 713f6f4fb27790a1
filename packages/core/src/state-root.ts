/**
 * Cairn's state folder (`root`: the embedded store, the cache, tasks' artifacts and downloads)
 * checked where it enters, before a store opens or a task runs: by run() for the `root` it is
 * given or its default `.cairn`, and by the CLI for `--root`. A root that is a file started the
 * run and failed its first task with a bare ENOTDIR; one under /proc passed an access() check on
 * /proc and then sent Node's recursive mkdir into a loop no signal stopped (ENOENT for the folder,
 * EEXIST for its parent, over and over). Here each missing folder is made once, by a plain mkdir,
 * and a probe file is written and removed. What fails comes back as the reason; the caller words
 * it for its user (run()'s `root`, the CLI's `--root`).
 */
import { randomBytes } from "node:crypto";
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";

/**
 * How a root is used: `make` (a run, a worker) makes it when missing and writes in it; `write`
 * (cache clear and prune) writes in it when it is there (a missing one has nothing to remove,
 * and is not made); `read` (plan, explain, cache ls, runs, show, report) makes nothing.
 */
export type RootUse = "make" | "write" | "read";

/**
 * Why the folder `root` (an absolute path) cannot serve as Cairn's state folder for `use`, or
 * undefined when it can: it, or where it would be made, must be a folder; one that is there (or,
 * for `make`, made here) must take a probe file unless only read.
 * @example
 * const why = await rootProblem(resolve(".cairn"), "make"); // "it is a file, not a folder"
 */
export async function rootProblem(root: string, use: RootUse): Promise<string | undefined> {
  const missing: string[] = [];
  let dir = root;
  for (;;) {
    // ENOTDIR: a file on the way, which the loop finds and names as it goes up.
    const found = await stat(dir).catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" || error.code === "ENOTDIR" ? undefined : error));
    if (found instanceof Error) return `${dir} cannot be looked at (${errorText(found)})`;
    if (found) {
      if (!found.isDirectory()) return dir === root ? "it is a file, not a folder" : `${dir} is a file, not a folder`;
      break;
    }
    missing.unshift(dir);
    if (dirname(dir) === dir) break;
    dir = dirname(dir);
  }
  if (use === "read" || (use === "write" && missing.length)) return undefined;
  // One plain mkdir per missing folder, parents first: bounded, where a recursive one on /proc never ends.
  for (const folder of missing) {
    try {
      await mkdir(folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") continue; // made meanwhile (another run)
      return `${folder} cannot be made (${errorText(error)})`;
    }
  }
  const probe = resolve(root, `.cairn-probe-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await writeFile(probe, "", { flag: "wx" });
  } catch (error) {
    return `a file cannot be written in it (${errorText(error)})`;
  } finally {
    await rm(probe, { force: true }).catch(() => {});
  }
  return undefined;
}

/** `EACCES: permission denied`: the code and Node's words without the call and path it repeats. */
function errorText(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  const words = e.message.replace(/^[A-Z]+: /, "").replace(/, \w+ '.*'$/, "");
  return e.code ? `${e.code}: ${words}` : words;
}
