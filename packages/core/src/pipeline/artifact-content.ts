/**
 * What a task's artifact may be on disk, checked as its attempt ends: its content is recorded,
 * hashed and uploaded (an MLflow client follows links), so an artifact, and every entry of a
 * folder artifact, must be a file or a folder, or a link to one inside the task's artifacts
 * folder. A link out would hand over what it points to (`/etc/passwd`, all of `/etc`) as the
 * artifact. One rule for both kinds of task: a function task's (`ctx.artifacts`, see
 * RunningTaskContext.checkFolderNames) and a script's (`{"$artifact": name}`, see the process
 * executor), which word what it finds in their own errors.
 */
import { lstat, readdir, readlink, realpath, stat } from "node:fs/promises";
import { join, sep } from "node:path";

/** True when real path `path` is `folder` (a real path too) or inside it. */
export function isWithin(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder + sep);
}

/**
 * What the artifact at `path` is on disk: taken as it is (lstat), then followed, as a link is
 * followed when the artifact is recorded, hashed and uploaded. Undefined when nothing is there
 * (what is missing is the caller's to say). `other`: a FIFO, socket or device, whose reading
 * would never end (a FIFO with no writer) or hand over what is no content; `dangling`: a link
 * whose target does not exist, or a loop of links (`code`: realpath's error code).
 */
export type ArtifactOnDisk =
  | { readonly kind: "file"; readonly real: string; readonly size: number }
  | { readonly kind: "folder" | "other"; readonly real: string }
  | { readonly kind: "dangling"; readonly target: string; readonly code: string };

/** See {@link ArtifactOnDisk}. */
export async function artifactOnDisk(path: string): Promise<ArtifactOnDisk | undefined> {
  const entry = await lstat(path).catch(() => undefined);
  if (!entry) return undefined;
  let real: string;
  try {
    real = await realpath(path);
  } catch (error) {
    // Gone since the lstat: as missing.
    if (!entry.isSymbolicLink()) return undefined;
    return { kind: "dangling", target: await readlink(path), code: (error as NodeJS.ErrnoException).code ?? "" };
  }
  const s = entry.isSymbolicLink() ? await stat(real).catch(() => undefined) : entry;
  if (!s) return undefined;
  if (s.isFile()) return { kind: "file", real, size: s.size };
  return { kind: s.isDirectory() ? "folder" : "other", real };
}

/** Words for a link `artifactOnDisk` found dangling: `a link to x, which does not exist`. */
export function danglingWords(found: { readonly target: string; readonly code: string }): string {
  return found.code === "ELOOP" ? `a link to ${found.target}, which leads back to itself (a loop of links)` : `a link to ${found.target}, which does not exist`;
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
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "";
      return `"${rel}", ${danglingWords({ target, code })}: remove the link, or ${code === "ELOOP" ? "point it at a file or folder" : "put the file it names in its place"}`;
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
