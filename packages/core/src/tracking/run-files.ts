import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { TrackingError } from "../errors.ts";
import { makeFolder } from "../make-folder.ts";
import { fsFix } from "./local/fs-fix.ts";
import type { Tracker } from "./tracker.ts";

/** A tracker that can hand out a run's artifact folder, so files are written in place instead of copied. */
export interface LocalArtifactTracker extends Tracker {
  artifactDir(runId: string): string;
}

/** True when the tracker keeps artifacts in a local folder the engine may write to (`capabilities.localArtifacts`). */
export function hasLocalArtifacts(tracker: Tracker): tracker is LocalArtifactTracker {
  return tracker.capabilities.localArtifacts && typeof tracker.artifactDir === "function";
}

/** Writes small text files (manifests, graphs) as artifacts of a run, under `folder`. */
export async function writeRunFiles(tracker: Tracker, runId: string, folder: string, files: Record<string, string>): Promise<void> {
  if (!tracker.capabilities.records) return;
  if (hasLocalArtifacts(tracker)) {
    const dir = join(tracker.artifactDir(runId), folder);
    // fs errors name no path (`ENOSPC: no space left on device, write`) and no fix: say which file of which run, and what to do.
    const failed = (path: string) => (error: unknown) => {
      throw new TrackingError(`Cannot write ${path} of run ${runId} in ${tracker.uri}: ${(error as Error).message.replace(/\.$/, "")}; ${fsFix(error, "write")}.`, {
        cause: error,
      });
    };
    await makeFolder(dir).catch(failed(dir));
    await Promise.all(Object.entries(files).map(([name, content]) => writeFile(join(dir, name), content).catch(failed(join(dir, name)))));
    return;
  }
  if (tracker.logText) {
    // Sent at once, from memory: each is one request, and none waits for another.
    await Promise.all(Object.entries(files).map(([name, content]) => tracker.logText!(runId, folder ? `${folder}/${name}` : name, content)));
    return;
  }
  const tmp = await mkdtemp(join(tmpdir(), "cairn-files-"));
  try {
    // Sent at once: each is one request, and none waits for another.
    await Promise.all(
      Object.entries(files).map(async ([name, content]) => {
        const path = join(tmp, name);
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, content);
        await tracker.logArtifact(runId, path, folder);
      }),
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
