/**
 * An artifact whose path is another root's on this machine (a worker's `--root`, handed back
 * through the queue): taken into this root's downloads, hard-linked, only when its digest is the
 * artifact's, else downloaded from its run; one where this root keeps it is used unread.
 */
import { mkdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import { describePath } from "../../packages/cache/src/hash.ts";
import { localArtifacts } from "../../packages/core/src/caching/task-cache.ts";
import type { Artifact } from "@cairn/dsl";
import type { Tracker } from "../../packages/core/src/tracking/tracker.ts";
import { tmp } from "./helpers.ts";

const RUN = "0123456789abcdef0123456789abcdef";

/** A tracker that records and hands out `text` as every artifact of every run, counting downloads. */
function server(text: string): { tracker: Tracker; downloads: string[] } {
  const downloads: string[] = [];
  const tracker = {
    kind: "mlflow",
    uri: "http://127.0.0.1:1",
    capabilities: { records: true, localArtifacts: false, sharedRuns: true, mlflowClients: true, remote: true },
    async downloadArtifact(runId: string, path: string, destDir: string) {
      downloads.push(`${runId}/${path}`);
      const to = join(destDir, basename(path));
      await writeFile(to, text);
      return to;
    },
  } as unknown as Tracker;
  return { tracker, downloads };
}

/** The artifact `model.txt` of RUN written with `text` in `root`'s artifacts folder, and its record (digest of `recorded`). */
async function written(root: string, text: string, recorded = text): Promise<Artifact> {
  const path = join(root, "artifacts", RUN, "model.txt");
  await mkdir(join(root, "artifacts", RUN), { recursive: true });
  await writeFile(path, recorded);
  const { digest, sizeBytes } = await describePath(path);
  await writeFile(path, text);
  return { kind: "cairn.artifact", path, artifactPath: "model.txt", runId: RUN, digest, size: sizeBytes };
}

describe("an artifact in another root on this machine", () => {
  it("is hard-linked into this root's downloads, and outlives the other root", async () => {
    const [other, here] = [await tmp(), await tmp()];
    const artifact = await written(other, "weights v1\n");
    const { tracker, downloads } = server("weights v1\n");
    const { file } = await localArtifacts({ file: artifact }, tracker, here);
    expect(file.path).toBe(join(here, "downloads", RUN, "model.txt"));
    expect((await stat(file.path)).ino).toBe((await stat(artifact.path)).ino);
    expect(downloads).toEqual([]);
    await rm(other, { recursive: true, force: true });
    expect(await readFile(file.path, "utf8")).toBe("weights v1\n");
  });

  it("a folder: each of its files hard-linked, the folder placed whole", async () => {
    const [other, here] = [await tmp(), await tmp()];
    const folder = join(other, "artifacts", RUN, "model");
    await mkdir(join(folder, "layers"), { recursive: true });
    await writeFile(join(folder, "config.json"), "{}");
    await writeFile(join(folder, "layers", "0.bin"), "abc");
    const { digest, sizeBytes } = await describePath(folder);
    const artifact: Artifact = { kind: "cairn.artifact", path: folder, artifactPath: "model", runId: RUN, digest, size: sizeBytes };
    const { tracker, downloads } = server("unused");
    const { dir } = await localArtifacts({ dir: artifact }, tracker, here);
    expect(dir.path).toBe(join(here, "downloads", RUN, "model"));
    expect((await stat(join(dir.path, "layers", "0.bin"))).ino).toBe((await stat(join(folder, "layers", "0.bin"))).ino);
    expect((await describePath(dir.path)).digest).toBe(digest);
    expect(downloads).toEqual([]);
  });

  it("edited since it was recorded: downloaded from its run instead, never taken", async () => {
    const [other, here] = [await tmp(), await tmp()];
    const artifact = await written(other, "edited\n", "weights v1\n");
    const { tracker, downloads } = server("weights v1\n");
    const { file } = await localArtifacts({ file: artifact }, tracker, here);
    expect(file.path).toBe(join(here, "downloads", RUN, "model.txt"));
    expect(await readFile(file.path, "utf8")).toBe("weights v1\n");
    expect(downloads).toEqual([`${RUN}/model.txt`]);
    expect(await readFile(artifact.path, "utf8")).toBe("edited\n"); // the other root's file is left alone
  });

  it("a link, not a file or a folder: downloaded, the link's target never read", async () => {
    const [other, here] = [await tmp(), await tmp()];
    const artifact = await written(other, "weights v1\n");
    await writeFile(join(other, "elsewhere.txt"), "weights v1\n");
    await rm(artifact.path);
    await symlink(join(other, "elsewhere.txt"), artifact.path);
    const { tracker, downloads } = server("weights v1\n");
    const { file } = await localArtifacts({ file: artifact }, tracker, here);
    expect(await readFile(file.path, "utf8")).toBe("weights v1\n");
    expect(downloads).toEqual([`${RUN}/model.txt`]);
  });

  it("where this root keeps it: used as it is, unread (a hit in one root costs no hashing)", async () => {
    const here = await tmp();
    // Its bytes no longer match its digest: only a read would tell, and none is made.
    const artifact = await written(here, "edited\n", "weights v1\n");
    const { tracker, downloads } = server("weights v1\n");
    const { file } = await localArtifacts({ file: artifact }, tracker, here);
    expect(file.path).toBe(artifact.path);
    expect(downloads).toEqual([]);
  });
});
