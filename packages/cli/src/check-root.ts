/**
 * `--root DIR` checked where it enters, before a flow is loaded or a store opened. A root that is
 * a file started the run and failed its first task with a bare ENOTDIR (the read commands: a
 * CacheBackendError, exit 1); one under /proc passed an access() check on /proc and then sent
 * Node's recursive mkdir into a loop no signal stopped (ENOENT for the folder, EEXIST for its
 * parent, over and over). Here each missing folder is made once, by a plain mkdir, and a probe
 * file is written and removed: what fails is said, naming the flag and the path (exit 2).
 */
import { randomBytes } from "node:crypto";
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { UsageError } from "./usage-error.ts";

/**
 * How a command uses its root: `make` (run, worker) makes it when missing and writes in it;
 * `write` (cache clear and prune) writes in it when it is there (a missing one has nothing to
 * remove, and is not made); `read` (plan, explain, cache ls, runs, show, report) makes nothing.
 */
export type RootUse = "make" | "write" | "read";

/**
 * Checks the folder `--root` names and resolves to its absolute path: it, or where it would be
 * made, must be a folder; one that is there (or, for `make`, made) must take a probe file unless
 * the command only reads.
 */
export async function checkRoot(given: string, use: RootUse): Promise<string> {
  const root = resolve(given);
  const refuse = (why: string) => {
    const fix =
      use === "read"
        ? "Pass --root the folder a run used (the one that holds its cache/ and experiments/), or leave --root out for .cairn in the working directory."
        : `Pass --root a folder this user can write to${use === "make" ? " (it is made when missing)" : ""}, or leave --root out for .cairn in the working directory.`;
    const can = use === "make" ? "make and write to" : use === "write" ? "write to" : "read";
    return new UsageError(`Expected --root to be a folder Cairn can ${can}, got ${given}: ${why}. ${fix}`);
  };
  const missing: string[] = [];
  let dir = root;
  for (;;) {
    // ENOTDIR: a file on the way, which the loop finds and names as it goes up.
    const found = await stat(dir).catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" || error.code === "ENOTDIR" ? undefined : error));
    if (found instanceof Error) throw refuse(`${dir} cannot be looked at (${errorText(found)})`);
    if (found) {
      if (!found.isDirectory()) throw refuse(dir === root ? "it is a file, not a folder" : `${dir} is a file, not a folder`);
      break;
    }
    missing.unshift(dir);
    if (dirname(dir) === dir) break;
    dir = dirname(dir);
  }
  if (use === "read" || (use === "write" && missing.length)) return root;
  // One plain mkdir per missing folder, parents first: bounded, where a recursive one on /proc never ends.
  for (const folder of missing) {
    try {
      await mkdir(folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") continue; // made meanwhile (another run)
      throw refuse(`${folder} cannot be made (${errorText(error)})`);
    }
  }
  const probe = resolve(root, `.cairn-probe-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await writeFile(probe, "", { flag: "wx" });
  } catch (error) {
    throw refuse(`a file cannot be written in it (${errorText(error)})`);
  } finally {
    await rm(probe, { force: true }).catch(() => {});
  }
  return root;
}

/** `EACCES: permission denied`: the code and Node's words without the call and path it repeats. */
function errorText(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  const words = e.message.replace(/^[A-Z]+: /, "").replace(/, \w+ '.*'$/, "");
  return e.code ? `${e.code}: ${words}` : words;
}
