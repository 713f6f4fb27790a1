/**
 * What this root knows of the artifact files it digested: each file's size and modification
 * time (ns) when its digest was taken, as DVC keeps them for the files it tracks. A hit whose
 * artifact kept both since is trusted on one stat instead of reading the file again; one whose
 * stat changed (an edit in place, through any of its hard links) is digested anew. A stamp is a
 * fact about a file here, not about an entry, so it is kept in this root alone
 * (`<root>/artifact-stamps/<run id>.json`, one file per run whose artifacts it stamps), never in
 * an entry a shared store or server holds: a stat says nothing of another machine's copy. A file
 * with no stamp (written by an older Cairn, or a stamp lost to a race) is digested, as before.
 */
import type { BigIntStats } from "node:fs";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve as resolvePath } from "node:path";
import { describePath, partialPath, type PathDescription } from "@cairn/cache";
import { safePathSegment } from "../definition/artifact-path.ts";
import { makeFolder } from "../make-folder.ts";

/** A file's digest and the stat it had while it was read. */
interface FileStamp {
  digest: string;
  size: number;
  /** `mtimeNs` as a decimal string: nanoseconds pass `Number.MAX_SAFE_INTEGER`. */
  mtimeNs: string;
}

type RunStamps = Record<string, FileStamp>;

/** A stamp with the file it is of (its absolute path). */
export type StampOf = FileStamp & { path: string };

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
   * its stamp's when the file's size and mtime are the stamped ones (no byte is read), else read
   * and digested, and stamped anew when the file did not change while it was read (`record`; plan
   * and explain, which change nothing, do not). A folder is always digested (its files' stats are
   * not stamped).
   */
  async digestOf(path: string, runId: string | undefined, info: BigIntStats, options: { record: boolean }): Promise<string> {
    if (runId === undefined || !info.isFile()) return (await describePath(path)).digest;
    const known = (await this.read(runId))[resolvePath(path)];
    if (known && sameStat(known, info)) return known.digest;
    const { described, stamp } = await this.describe(path, info);
    if (stamp && options.record) await this.add(runId, [stamp]).catch(() => {});
    return described.digest;
  }

  /**
   * {@link describePath} of the file or folder at `path`, and, for a file that did not change
   * while it was read, its stamp (to {@link add}). `before`: its stat taken before the read, when
   * the caller has it.
   */
  async describe(path: string, before?: BigIntStats): Promise<{ described: PathDescription; stamp?: StampOf }> {
    const first = before ?? (await stat(path, { bigint: true }));
    const described = await describePath(path);
    if (!first.isFile()) return { described };
    // A write during the read would give a digest of neither content: stamped only when the stat held.
    const after = await stat(path, { bigint: true }).catch(() => undefined);
    if (!after || after.size !== first.size || after.mtimeNs !== first.mtimeNs) return { described };
    return { described, stamp: { path: resolvePath(path), digest: described.digest, size: Number(after.size), mtimeNs: String(after.mtimeNs) } };
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

function sameStat(stamp: FileStamp, info: BigIntStats): boolean {
  return typeof stamp.digest === "string" && stamp.size === Number(info.size) && stamp.mtimeNs === String(info.mtimeNs);
}
