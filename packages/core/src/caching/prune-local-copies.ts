/**
 * The files a root keeps beside the record of runs, which only `cairn runs prune` removes:
 * copies of runs' artifacts (`downloads/<run>/`: artifacts of runs recorded elsewhere, fetched for
 * a hit or a flow's outputs; with an MLflow server also `artifacts/<run>/`, the files tasks wrote
 * here before they were uploaded), and `artifact-stamps/<run>.json`, which says of such files
 * what their digest is. A copy goes when no kept cache entry names its run as its source, nothing
 * was written in it since the limit, and its run is not RUNNING; a stamp file goes once its run
 * has no files left here. What goes is renamed aside first, so no process sees half of it.
 */
import { lstat, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { partialPath } from "@cairn/cache";

/** Options of {@link pruneLocalCopies}. */
export interface PruneLocalCopiesOptions {
  /** The state folder (`.cairn`). */
  root: string;
  /** Which folders of copies: `downloads` always; `artifacts` when the runs are recorded elsewhere (an MLflow server). */
  folders: readonly ("artifacts" | "downloads")[];
  /** Epoch ms: a copy last written before it may go. */
  writtenBefore: number;
  /** Run ids whose copies stay: the source runs of the cache entries kept. */
  keep: ReadonlySet<string>;
  /** Whether the run may still be RUNNING (its tracker says so, or cannot say); its copy stays. */
  mayRun: (runId: string) => Promise<boolean>;
  /** Count what would go; remove nothing. */
  dryRun?: boolean;
}

/** What {@link pruneLocalCopies} removed (or would). */
export interface PruneLocalCopiesResult {
  /** Runs whose copies went. */
  copies: number;
  copyBytes: number;
  /** Stamp files that went. */
  stamps: number;
  stampBytes: number;
}

/** Removes the copies and stamp files nothing needs any more (see the module's header). */
export async function pruneLocalCopies(o: PruneLocalCopiesOptions): Promise<PruneLocalCopiesResult> {
  const result: PruneLocalCopiesResult = { copies: 0, copyBytes: 0, stamps: 0, stampBytes: 0 };
  const gone = new Set<string>();
  for (const folder of o.folders) {
    const dir = join(o.root, folder);
    for (const runId of await namesIn(dir)) {
      if (o.keep.has(runId) || runId.includes(".")) continue; // partial names are swept by the downloads that made them
      const path = join(dir, runId);
      const { bytes, newest } = await footprint(path);
      if (newest >= o.writtenBefore || (await o.mayRun(runId))) continue;
      if (!o.dryRun) await removeAside(path);
      gone.add(`${folder}/${runId}`);
      result.copies++;
      result.copyBytes += bytes;
    }
  }
  const stamps = join(o.root, "artifact-stamps");
  for (const name of await namesIn(stamps)) {
    if (!name.endsWith(".json")) continue;
    const runId = name.slice(0, -".json".length);
    if (await hasFilesHere(o.root, runId, gone)) continue;
    const { bytes } = await footprint(join(stamps, name));
    if (!o.dryRun) await rm(join(stamps, name), { force: true });
    result.stamps++;
    result.stampBytes += bytes;
  }
  return result;
}

/** Whether the run still has artifacts or downloads in this root (`gone`: those this prune removes). */
async function hasFilesHere(root: string, runId: string, gone: ReadonlySet<string>): Promise<boolean> {
  for (const folder of ["artifacts", "downloads"]) {
    if (gone.has(`${folder}/${runId}`)) continue;
    if (await lstat(join(root, folder, runId)).then(() => true, () => false)) return true;
  }
  return false;
}

async function namesIn(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [] as string[]);
}

/** Bytes under `path` and the newest modification time (ms) of it and anything under it. */
async function footprint(path: string): Promise<{ bytes: number; newest: number }> {
  const info = await lstat(path).catch(() => undefined);
  if (!info) return { bytes: 0, newest: 0 };
  if (!info.isDirectory()) return { bytes: info.size, newest: info.mtimeMs };
  let bytes = 0;
  let newest = info.mtimeMs;
  for (const name of await namesIn(path)) {
    const inner = await footprint(join(path, name));
    bytes += inner.bytes;
    newest = Math.max(newest, inner.newest);
  }
  return { bytes, newest };
}

/** Renamed aside, then removed: a reader meets the copy whole or not at all. */
async function removeAside(path: string): Promise<void> {
  const aside = partialPath(path);
  try {
    await rename(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return; // removed meanwhile
    throw error;
  }
  await rm(aside, { recursive: true, force: true });
}
