/**
 * Cairn's state folder (`root`: the embedded store, the cache, tasks' artifacts and downloads)
 * checked where it enters, before a store opens or a task runs: by run() for the `root` it is
 * given or its default `.cairn`, and by the CLI for `--root`. A root that is a file started the
 * run and failed its first task with a bare ENOTDIR; one under /proc passed an access() check on
 * /proc and then sent Node's recursive mkdir into a loop no signal stopped (ENOENT for the folder,
 * EEXIST for its parent, over and over). Here each missing folder is made once, by a plain mkdir,
 * and a probe file is written and removed. What fails comes back as the reason, which
 * `rootRefusal` words for run()'s `root` and, given the flag, for the CLI's `--root`.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";

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
  if (use === "write" && missing.length) return undefined;
  if (use === "read") return missing.length ? undefined : await stateFoldersProblem(root, use);
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
  return missing.length ? undefined : await stateFoldersProblem(root, use);
}

/**
 * The folders Cairn keeps in a root (relative to it); with `*`, each folder in the one before it
 * too (an experiment's, a namespace's index). Those that are there are checked, those that are not
 * are made by the run, under a root that took the probe.
 */
const STATE_FOLDERS = ["experiments", "experiments/*", "runs", "live", "artifacts", "downloads", "artifact-stamps", "cache", "cache/entries", "cache/leases", "cache/index", "cache/index/*"];

/**
 * Why a folder Cairn keeps in `root` cannot be used as `use` needs it (read, or also write), or
 * undefined. The probe writes in the root alone: a root made by another user under umask 077,
 * its top folder opened to all afterwards, took it, and its run failed later with exit 1
 * (`Cannot create experiment ...: EACCES`), as did `cairn plan` (CacheBackendError).
 */
async function stateFoldersProblem(root: string, use: RootUse): Promise<string | undefined> {
  const mode = use === "read" ? constants.R_OK | constants.X_OK : constants.R_OK | constants.W_OK | constants.X_OK;
  for (const folder of STATE_FOLDERS) {
    const [parent, star] = folder.endsWith("/*") ? [folder.slice(0, -2), true] : [folder, false];
    const paths = star
      ? await readdir(join(root, parent), { withFileTypes: true }).then(
          (entries) => entries.filter((e) => e.isDirectory()).map((e) => join(root, parent, e.name)),
          () => [],
        )
      : [join(root, folder)];
    for (const path of paths) {
      const found = await stat(path).catch(() => undefined);
      if (!found?.isDirectory()) continue;
      const denied = await access(path, mode).then(
        () => undefined,
        (error: unknown) => error as NodeJS.ErrnoException,
      );
      if (!denied) continue;
      const can = use === "read" ? "read" : "written to";
      const chmod = use === "read" ? "rX" : "rwX";
      // No chmod opens a read-only file system: the store belongs on a writable one.
      if (denied.code === "EROFS") return `${path} cannot be ${can} (${errorText(denied)}): its file system is read-only; point the store at a writable folder`;
      return (
        `${path} cannot be ${can} by ${currentUser()} (${errorText(denied)}; it is uid ${found.uid}'s, mode ${(found.mode & 0o777).toString(8).padStart(4, "0")}), ` +
        `and every folder under the root must be usable by each user that runs Cairn on it: as its owner, \`chmod -R a+${chmod}\` the root ` +
        `(or give the users one group and \`chmod -R g+${chmod}\` it), or give this user a root of its own`
      );
    }
  }
  return undefined;
}

/** `this user (nobody, uid 65534)`: who runs, for a refusal of the folders another user owns. */
function currentUser(): string {
  const uid = process.getuid?.();
  let name: string | undefined;
  try {
    name = userInfo().username;
  } catch {
    // A uid with no passwd entry (a container's): the uid alone says who.
  }
  return `this user (${[name, uid === undefined ? undefined : `uid ${uid}`].filter(Boolean).join(", ")})`;
}

/** A root refused (see `rootProblem`), for `rootRefusal` to word. */
export interface RootRefusal {
  /** The folder as its user gave it; undefined for the default `.cairn`. */
  given: string | undefined;
  /** The absolute folder that was checked. */
  root: string;
  /** How the command that refuses it uses it: a run that makes it only when a task writes there is still `make`. */
  use: RootUse;
  /** What `rootProblem` found. */
  why: string;
}

/**
 * The sentence that refuses a root: what was expected, what arrived and why, and how to fix it.
 * `flag`: the name its user gave it by (`--root`); without one it is run()'s `root`, or the
 * default `.cairn` when none was given. One wording for the engine and the CLI, so the two say
 * the same of the same folder.
 * @example
 * rootRefusal({ given: "afile", root: "/w/afile", use: "read", why: "it is a file, not a folder" }, "--root");
 * // "Expected --root to be a folder Cairn can read, got afile: it is a file, not a folder. Pass --root the folder a run used (...), or leave --root out ..."
 */
export function rootRefusal({ given, root, use, why }: RootRefusal, flag?: string): string {
  const can = use === "read" ? "read" : use === "write" ? "write to" : "make and write to";
  const what = given === undefined ? "Cairn's state folder (`root`), by default .cairn in the working directory," : (flag ?? "`root`");
  const got = given === undefined ? root : flag ? given : JSON.stringify(given);
  // run()'s `root` is named with the flag too: an engine message reaches `cairn run` users, who never wrote `root`.
  const pass = flag ? `Pass ${flag}` : "Pass `root` (`--root DIR` on the command line)";
  const fix =
    use === "read"
      ? `${pass} the folder a run used${flag ? " (the one that holds its cache/ and experiments/)" : ", the one that holds its cache/ and experiments/"}`
      : `${pass} a folder this user can write to${use === "make" && given !== undefined ? " (it is made when missing)" : ""}`;
  const other = given === undefined ? "or run from a folder where .cairn can be" : `or leave ${flag ?? "it"} out for .cairn in the working directory`;
  return `Expected ${what} to be a folder Cairn can ${can}, got ${got}: ${why}. ${fix}, ${other}.`;
}

/** `EACCES: permission denied`: the code and Node's words without the call and path it repeats. */
function errorText(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  const words = e.message.replace(/^[A-Z]+: /, "").replace(/, \w+ '.*'$/, "");
  return e.code ? `${e.code}: ${words}` : words;
}
