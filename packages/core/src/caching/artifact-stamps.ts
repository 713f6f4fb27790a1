/**
 * What this root knows of the artifacts it digested: each file's size, modification time and
 * change time (ns) when its digest was taken, as DVC keeps the first two for the files it tracks,
 * and for a folder the same of every file in it with their names (its {@link FolderListing}). A
 * hit whose artifact kept all of them since is trusted on its stats instead of reading the bytes
 * again; one whose stat or listing changed (an edit in place, through any of its hard links; a
 * file added, removed or renamed in a folder) is digested anew. The change time is there because
 * the modification time can be set back (`touch -d`, `cp -p` over a file of the same size): any
 * write sets the change time to now, and so does setting the other times. A stamp is a fact about a file here, not about an entry,
 * so it is kept in this root alone (`<root>/artifact-stamps/<run id>.json`, one file per run whose
 * artifacts it stamps), never in an entry a shared store or server holds: a stat says nothing of
 * another machine's copy. An artifact with no stamp (written by an older Cairn, or a stamp lost to
 * a race) is digested, as before.
 */
import type { BigIntStats } from "node:fs";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve as resolvePath } from "node:path";
import { describePath, type FolderListing, listFolder, partialPath, type PathDescription } from "@cairn/cache";
import { safePathSegment } from "../definition/artifact-path.ts";
import { makeFolder } from "../make-folder.ts";

/** A file's digest and the stat it had while it was read. */
interface FileStamp {
  digest: string;
  size: number;
  /** `mtimeNs` as a decimal string: nanoseconds pass `Number.MAX_SAFE_INTEGER`. */
  mtimeNs: string;
  /** `ctimeNs` likewise. Absent from the stamps of an older Cairn: such a stamp is not trusted, and the file is digested and stamped again. */
  ctimeNs?: string;
}

/** A folder's digest and the listing it had while it was read. No `size`: an older Cairn, which stamps files alone, never takes it for a file's. */
interface FolderStamp {
  digest: string;
  files: FolderListing;
}

type RunStamps = Record<string, FileStamp | FolderStamp>;

/** A stamp with the file or folder it is of (its absolute path). */
export type StampOf = (FileStamp | FolderStamp) & { path: string };

/** An artifact's digest as {@link ArtifactStamps.digestOf} found it. */
export interface StampedDigest {
  digest: string;
  /** For a stamped folder whose listing changed: how, by relative path. */
  changed?: FolderChanges;
}

/** What changed in a folder since its stamp, by relative path (with `/`), each sorted. */
export interface FolderChanges {
  /** Whose size, time or inode is not the stamped one. */
  edited: string[];
  added: string[];
  removed: string[];
}

export class ArtifactStamps {
  /** Each run's stamps as read (or written) by this process, by run id. */
  private readonly runs = new Map<string, Promise<RunStamps>>();
  /** The last write of each run's file: one at a time, each holding every stamp known when it began. */
  private readonly writes = new Map<string, Promise<void>>();
  /** A write of each run's file queued behind another and not begun yet (see {@link record}). */
  private readonly queued = new Map<string, Promise<void>>();

  /** `dir`: where the stamp files go (`<root>/artifact-stamps`). */
  constructor(private readonly dir: string) {}

  /**
   * The digest of the artifact at `path`, a file or folder of run `runId`, whose stat is `info`:
   * its stamp's when the file's size, mtime and ctime, or each of the folder's files' and their names,
   * are the stamped ones (no byte is read), else read and digested, and stamped anew when it did
   * not change while it was read (`record`; plan and explain, which change nothing, do not).
   */
  async digestOf(path: string, runId: string | undefined, info: BigIntStats, options: { record: boolean }): Promise<StampedDigest> {
    if (runId === undefined || !(info.isFile() || info.isDirectory())) return { digest: (await describePath(path)).digest };
    const known = (await this.read(runId))[resolvePath(path)];
    let listing: FolderListing | undefined;
    let changed: FolderChanges | undefined;
    if (info.isFile()) {
      if (known && sameStat(known, info)) return { digest: known.digest };
    } else {
      listing = await listFolder(path);
      if (known && isFolderStamp(known)) {
        changed = changedFiles(known.files, listing);
        if (!isChange(changed)) return { digest: known.digest };
      }
    }
    const { described, stamp } = await this.describe(path, info, listing);
    if (stamp && options.record) await this.add(runId, [stamp]).catch(() => {});
    return { digest: described.digest, ...(changed ? { changed } : {}) };
  }

  /**
   * {@link describePath} of the file or folder at `path`, and, for one that did not change while
   * it was read, its stamp (to {@link add}). `before`: its stat taken before the read, and a
   * folder's listing, when the caller has them.
   */
  async describe(path: string, before?: BigIntStats, listed?: FolderListing): Promise<{ described: PathDescription; stamp?: StampOf }> {
    const first = before ?? (await stat(path, { bigint: true }));
    if (first.isDirectory()) return this.describeFolder(path, listed ?? (await listFolder(path)));
    const described = await describePath(path);
    if (!first.isFile()) return { described };
    // A write during the read would give a digest of neither content: stamped only when the stat held.
    const after = await stat(path, { bigint: true }).catch(() => undefined);
    if (!after || after.size !== first.size || after.mtimeNs !== first.mtimeNs || after.ctimeNs !== first.ctimeNs) return { described };
    return { described, stamp: { path: resolvePath(path), digest: described.digest, size: Number(after.size), mtimeNs: String(after.mtimeNs), ctimeNs: String(after.ctimeNs) } };
  }

  /** {@link describe} of a folder whose listing before the read is `before`: stamped only when its listing held. */
  private async describeFolder(path: string, before: FolderListing): Promise<{ described: PathDescription; stamp?: StampOf }> {
    const described = await describePath(path);
    const after = await listFolder(path).catch(() => undefined);
    if (!after || isChange(changedFiles(before, after))) return { described };
    return { described, stamp: { path: resolvePath(path), digest: described.digest, files: after } };
  }

  /**
   * Adds stamps of run `runId`'s files to its stamp file (a task's artifacts in one call, so
   * that its thousands of files make one write). Best effort: see {@link record}.
   */
  async add(runId: string, stamps: readonly StampOf[]): Promise<void> {
    if (!stamps.length) return;
    const known = await this.read(runId);
    for (const { path, ...stamp } of stamps) known[path] = stamp;
    await this.record(runId, known);
  }

  private read(runId: string): Promise<RunStamps> {
    let stamps = this.runs.get(runId);
    if (!stamps) this.runs.set(runId, (stamps = this.load(runId)));
    return stamps;
  }

  /** The run's stamp file; none (a missing, damaged or unsafe one) is no stamp, and the files are digested. */
  private async load(runId: string): Promise<RunStamps> {
    try {
      const parsed = JSON.parse(await readFile(this.fileOf(runId), "utf8")) as unknown;
      return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as RunStamps) : {};
    } catch {
      return {};
    }
  }

  /**
   * Writes the run's stamps, whole under a partial name then renamed, so a reader never meets
   * half a file. A write that has not begun takes every stamp added before it begins. Two
   * processes stamping one run at once may lose one's stamp, which costs a digest later, never
   * a wrong answer: a stamp is trusted only with its stat.
   */
  private record(runId: string, stamps: RunStamps): Promise<void> {
    const queued = this.queued.get(runId);
    if (queued) return queued;
    const write = (this.writes.get(runId) ?? Promise.resolve()).then(() => {
      this.queued.delete(runId);
      return this.write(runId, stamps);
    });
    this.queued.set(runId, write);
    this.writes.set(runId, write.catch(() => {}));
    return write;
  }

  private async write(runId: string, stamps: RunStamps): Promise<void> {
    const file = this.fileOf(runId);
    const onDisk = await this.load(runId);
    const partial = partialPath(file);
    await makeFolder(this.dir);
    await writeFile(partial, JSON.stringify({ ...onDisk, ...stamps }));
    await rename(partial, file).catch(async (error: unknown) => {
      await rm(partial, { force: true });
      throw error;
    });
  }

  private fileOf(runId: string): string {
    return join(this.dir, `${safePathSegment(runId, { source: "a cache entry" })}.json`);
  }
}

function sameStat(stamp: FileStamp | FolderStamp, info: BigIntStats): boolean {
  return (
    typeof stamp.digest === "string" && "size" in stamp && stamp.size === Number(info.size) && stamp.mtimeNs === String(info.mtimeNs) && stamp.ctimeNs === String(info.ctimeNs)
  );
}

function isFolderStamp(stamp: FileStamp | FolderStamp): stamp is FolderStamp {
  return typeof stamp.digest === "string" && "files" in stamp && typeof stamp.files === "object" && stamp.files !== null;
}

/** How the folder listed `now` differs from when it was listed `then`. */
function changedFiles(then: FolderListing, now: FolderListing): FolderChanges {
  const names = Object.keys(now).sort();
  return {
    edited: names.filter((name) => Object.hasOwn(then, name) && then[name] !== now[name]),
    added: names.filter((name) => !Object.hasOwn(then, name)),
    removed: Object.keys(then).filter((name) => !Object.hasOwn(now, name)).sort(),
  };
}

function isChange(changes: FolderChanges): boolean {
  return changes.edited.length + changes.added.length + changes.removed.length > 0;
}
