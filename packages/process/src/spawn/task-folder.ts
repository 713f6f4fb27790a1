/**
 * The temp folder of one process attempt, `$TMPDIR/cairn-task-<owner>-XXXXXX`: it holds the
 * task's inputs (`inputs.json`), the outputs file and the copy of its stdout, and the attempt
 * removes it when it ends. The model kind's folders (`cairn-predict-…`, the rows it predicts on;
 * `cairn-model-…`, a downloaded file) are named and swept the same way. A `cairn` killed with SIGKILL (or by the OOM killer) runs no cleanup,
 * and nothing else would ever remove its folder, with the user's inputs in it. So the folder's
 * name says which process made it (see process-owner.ts: pid, start time, pid space, boot), and
 * the first attempt a process starts removes the folders whose maker is gone: a killed run's,
 * never a live run's (nor one whose pid another process now has: its start time differs), nor
 * another host's or another PID namespace's that shares the temp folder, nor another user's.
 */
import { lstat, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatOwner, ownerIsGone, parseOwner } from "@cairn/cache";

/** What every such folder's name starts with. */
const PREFIX = "cairn-";

/** What a temp folder is for: `cairn-<use>-…`. */
export type TempFolderUse = "task" | "predict" | "model";

/** A folder's name: `cairn-`, its use, its maker (`:` written `+`), and mkdtemp's six characters. */
const TASK_FOLDER = /^cairn-(?:task|predict|model)-(.+)-[A-Za-z0-9]{6}$/;

/** The most folders one sweep removes: a temp folder full of them is cleaned over several runs. */
const SWEEP_LIMIT = 256;

/** How long a process goes between two sweeps of one temp folder (a worker runs for weeks). */
const SWEEP_EVERY_MS = 60 * 60 * 1000;

/**
 * When this process last swept each temp folder (ms, monotonic), and the sweep under way: state
 * of the process, not of a run, as the folders are the machine's and every run of it shares them.
 */
const sweeps = new Map<string, { at: number; done: Promise<void> }>();

/**
 * Makes the temp folder of an attempt in `$TMPDIR` (`use`: what for, in its name), named after
 * this process, once the folders left there by processes that are gone are removed (at the first
 * attempt, then at most hourly). Throws what mkdtemp throws.
 */
export async function makeTaskFolder(use: TempFolderUse = "task"): Promise<string> {
  const dir = tmpdir();
  await sweepOnce(dir);
  // `+` for the owner's `:`, which Windows refuses in a file name; a host name that holds
  // another character a name cannot is written `_`: never judged gone then, as it is not this host.
  const owner = formatOwner().replaceAll(":", "+").replace(/[^A-Za-z0-9._+-]/g, "_");
  return mkdtemp(join(dir, `${PREFIX}${use}-${owner}-`));
}

/** The sweep of `dir` under way or done within {@link SWEEP_EVERY_MS}, else a new one. */
function sweepOnce(dir: string): Promise<void> {
  const last = sweeps.get(dir);
  if (last && performance.now() - last.at < SWEEP_EVERY_MS) return last.done;
  const done = sweepDeadTaskFolders(dir);
  sweeps.set(dir, { at: performance.now(), done });
  return done;
}

/**
 * Removes from `dir` (not below it) the task folders whose maker is a process of this machine
 * that no longer exists, at most {@link SWEEP_LIMIT} of them. Kept: a live process's, another
 * host's or PID namespace's, one whose maker cannot be told (an older Cairn's `cairn-task-XXXXXX`),
 * one that is not a real folder (a link is never followed) or not this user's. Best effort: a
 * folder that cannot be read or removed is left as it is. The names are read once and filtered
 * as text; each maker is judged once, however many folders it left.
 */
export async function sweepDeadTaskFolders(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const uid = process.getuid?.();
  const judged = new Map<string, boolean>();
  const gone = (owner: string): boolean => {
    let verdict = judged.get(owner);
    if (verdict === undefined) judged.set(owner, (verdict = ownerIsGone(parseOwner(owner.replaceAll("+", ":")))));
    return verdict;
  };
  const dead: string[] = [];
  for (const name of names) {
    if (dead.length >= SWEEP_LIMIT) break;
    if (!name.startsWith(PREFIX)) continue;
    const owner = TASK_FOLDER.exec(name)?.[1];
    if (owner !== undefined && gone(owner)) dead.push(name);
  }
  await Promise.all(
    dead.map(async (name) => {
      const path = join(dir, name);
      // lstat: a link by that name (another user's, in a shared /tmp) is not a folder and is left.
      const found = await lstat(path).catch(() => undefined);
      if (!found?.isDirectory() || (uid !== undefined && found.uid !== uid)) return;
      // rm removes links inside as links, never what they point to.
      await rm(path, { recursive: true, force: true }).catch(() => {});
    }),
  );
}
