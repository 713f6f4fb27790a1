/**
 * What a task's artifact may be on disk, checked as its attempt ends: its content is recorded,
 * hashed and uploaded (an MLflow client follows links), so an artifact, and every entry of a
 * folder artifact, must be a file or a folder, or a link to one inside the task's artifacts
 * folder. A link out would hand over what it points to (`/etc/passwd`, all of `/etc`) as the
 * artifact. One rule for both kinds of task: a function task's (`ctx.artifacts`, see
 * RunningTaskContext.checkFolderNames) and a script's (`{"$artifact": name}`, see the process
 * executor), which word what it finds in their own errors.
 */
import { readdir, readlink, realpath, stat } from "node:fs/promises";
import { join, sep } from "node:path";

/** True when real path `path` is `folder` (a real path too) or inside it. */
export function isWithin(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder + sep);
}

/**
 * The first entry of `folder`, a folder artifact whose real path is `real`, that would not upload
 * as content of the artifacts folder whose real path is `home` (called `homeName` in the words),
 * described with what to do (`"sub/passwd", a link to /etc/passwd, outside CAIRN_ARTIFACTS: copy
 * what it points to into the folder instead`); undefined when there is none. Entries are taken as
 * they are (lstat): a link is followed only to check where it leads.
 */
export function unfitFolderEntry(folder: string, real: string, home: string, homeName: string): Promise<string | undefined> {
  return unfitEntry(folder, home, homeName, "", [home, real]);
}

/** `chain`: the real paths of the folders walked into so far, where a link back to one of them would loop. */
async function unfitEntry(dir: string, home: string, homeName: string, shown: string, chain: readonly string[]): Promise<string | undefined> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    return `"${shown || "."}", which Cairn cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): fix its permissions`;
  }
  for (const entry of entries) {
    const full = join(dir, entry.name);
    const rel = `${shown}${entry.name}`;
    if (entry.isFile()) continue;
    if (entry.isDirectory()) {
      const bad = await unfitEntry(full, home, homeName, `${rel}/`, [...chain, join(chain.at(-1)!, entry.name)]);
      if (bad) return bad;
      continue;
    }
    if (!entry.isSymbolicLink()) return `"${rel}", which is neither a file nor a folder (a FIFO, socket or device): remove it`;
    const target = await readlink(full);
    let real: string;
    try {
      real = await realpath(full);
    } catch {
      return `"${rel}", a link to ${target}, which does not exist: remove the link, or put the file it names in its place`;
    }
    if (!isWithin(real, home)) return `"${rel}", a link to ${real}, outside ${homeName}: copy what it points to into the folder instead`;
    const s = await stat(real);
    if (s.isDirectory()) {
      if (chain.includes(real)) return `"${rel}", a link to ${real}, a folder it is itself in (a loop): remove it`;
      const bad = await unfitEntry(full, home, homeName, `${rel}/`, [...chain, real]);
      if (bad) return bad;
    } else if (!s.isFile()) {
      return `"${rel}", a link to ${real}, which is neither a file nor a folder (a FIFO, socket or device): remove it`;
    }
  }
  return undefined;
}
