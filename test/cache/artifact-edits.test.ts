/**
 * An artifact file a task wrote, edited in place afterwards where this root keeps it: the next
 * run never hands the edited bytes on as the hit's output. With the embedded store (no other
 * copy) the task runs again; with an MLflow server the recorded bytes are downloaded from the
 * run and the edited file is left alone. A hit whose file kept its size and mtime reads none of
 * its bytes, nor does one whose folder kept its files' names and stats: the reads of node:fs are
 * counted by path (everything else about them is real).
 */
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { type Artifact, flow, task } from "@cairn/dsl";
import "@cairn/mlflow/register";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { runCollect, statuses, tmp } from "./helpers.ts";

/** Paths whose content this process read (readFile, open, createReadStream) since the last reset. */
const reads = vi.hoisted(() => [] as string[]);
/** Folders this process read the entries of with their types (readdir withFileTypes: a folder walk) since the last reset. */
const walks = vi.hoisted(() => [] as string[]);
vi.mock("node:fs/promises", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs/promises")>();
  const readFile = ((path: unknown, ...rest: unknown[]) => (reads.push(String(path)), (fs.readFile as (...a: unknown[]) => unknown)(path, ...rest))) as typeof fs.readFile;
  const open = ((path: unknown, ...rest: unknown[]) => (reads.push(String(path)), (fs.open as (...a: unknown[]) => unknown)(path, ...rest))) as typeof fs.open;
  // A folder walk (listing or digest) reads each folder with its entries' types: counted by path.
  const readdir = ((path: unknown, ...rest: unknown[]) => {
    if ((rest[0] as { withFileTypes?: boolean } | undefined)?.withFileTypes) walks.push(String(path));
    return (fs.readdir as (...a: unknown[]) => unknown)(path, ...rest);
  }) as typeof fs.readdir;
  return { ...fs, default: { ...fs, readFile, open, readdir }, readFile, open, readdir };
});
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const createReadStream = ((path: unknown, ...rest: unknown[]) => (reads.push(String(path)), (fs.createReadStream as (...a: unknown[]) => unknown)(path, ...rest))) as typeof fs.createReadStream;
  return { ...fs, default: { ...fs, createReadStream }, createReadStream };
});

/** make writes out.txt ("payload"); use reads it. Another `version` is another input of use, so that it runs and reads its file. */
function artifactFlow(name: string) {
  const calls = { make: 0, use: 0 };
  const make = task(`${name}-make`).run(async (_, ctx) => (calls.make++, { file: await ctx.artifacts.write("out.txt", "payload") }));
  const use = task(`${name}-use`)
    .input<{ file: Artifact; version: number }>()
    .run(async ({ file, version }) => (calls.use++, { text: await readFile(file.path, "utf8"), version, from: file.path }));
  const build = (version: number) =>
    flow(name).build(() => {
      const made = make();
      return { file: made.file, used: use({ file: made.file, version }).$out };
    });
  return { calls, build };
}

const readsOf = (path: string) => reads.filter((p) => resolve(p) === resolve(path));
/** Reads of the files in the folder at `path`. */
const readsIn = (path: string) => reads.filter((p) => resolve(p).startsWith(`${resolve(path)}/`));

/** Files in the folder artifact: many, of one size, all at one time (a file system's clock ticks coarsely). */
const FOLDER_FILES = 300;
const FOLDER_TIME = 1_700_000_000;
const fileName = (i: number) => `part-${String(i).padStart(4, "0")}.bin`;

/**
 * make writes the folder model/ (FOLDER_FILES files of 100 bytes, in shards/ and at its top, all
 * stamped FOLDER_TIME); use reads every file in it. Another `version` is another input of use.
 */
function folderFlow(name: string) {
  const calls = { make: 0, use: 0 };
  const make = task(`${name}-make`).run(async (_, ctx) => {
    calls.make++;
    const folder = await ctx.artifacts.path("model");
    await mkdir(join(folder, "shards"), { recursive: true });
    for (let i = 0; i < FOLDER_FILES; i++) {
      const file = join(folder, i % 2 ? "shards" : "", fileName(i));
      await writeFile(file, Buffer.alloc(100, i % 251));
      await utimes(file, FOLDER_TIME, FOLDER_TIME);
    }
    return { model: await ctx.artifacts.file("model") };
  });
  const use = task(`${name}-use`)
    .input<{ model: Artifact; version: number }>()
    .run(async ({ model, version }) => {
      calls.use++;
      const top = await readdir(model.path);
      const shards = await readdir(join(model.path, "shards"));
      const bytes = (await Promise.all(shards.map((f) => readFile(join(model.path, "shards", f))))).reduce((n, b) => n + b.length, 0);
      return { files: top.length - 1 + shards.length, shardBytes: bytes, firstByte: (await readFile(join(model.path, fileName(0))))[0], version, from: model.path };
    });
  const build = (version: number) =>
    flow(name).build(() => {
      const made = make();
      return { model: made.model, used: use({ model: made.model, version }).$out };
    });
  return { calls, build, make };
}

describe("an artifact kept in this root, with the embedded store", () => {
  beforeEach(() => void reads.splice(0));

  it("a hit whose artifact kept its size and mtime reads none of its bytes", async () => {
    const root = await tmp();
    const f = artifactFlow("unread");
    const first = await runCollect(f.build(1), { root });
    expect(first.result.status).toBe("succeeded");
    const artifact = (first.result.outputs as { file: Artifact }).file;
    reads.splice(0);
    const again = await runCollect(f.build(1), { root });
    expect(statuses(again.result)).toEqual({ "unread-make": "cached", "unread-use": "cached" });
    expect(again.warnings).toEqual([]);
    // Before, every hit digested its artifact anew: the file was read whole.
    expect(readsOf(artifact.path)).toEqual([]);
    expect(f.calls).toEqual({ make: 1, use: 1 });
  });

  for (const [edit, bytes] of [["the same size", "PAYLOAD"], ["another size", "edited payload"]] as const) {
    it(`edited in place (${edit}): the task runs again, its warning names the file, and the dependant reads the bytes the task writes`, async () => {
      const root = await tmp();
      const f = artifactFlow("edited");
      const first = await runCollect(f.build(1), { root });
      const artifact = (first.result.outputs as { file: Artifact }).file;
      await writeFile(artifact.path, bytes);
      const again = await runCollect(f.build(2), { root });
      expect(statuses(again.result)).toEqual({ "edited-make": "succeeded", "edited-use": "succeeded" });
      expect(f.calls).toEqual({ make: 2, use: 2 });
      expect((again.result.outputs as { used: { text: string } }).used.text).toBe("payload");
      const warning = again.warnings.find((w) => /changed since it was cached/.test(w));
      // Before, the warning named the artifact within its run, not the file that was edited.
      expect(warning).toContain(`${artifact.path} no longer holds the bytes its run recorded`);
    });
  }

  it("a file edited with its size kept and its time set back (touch -r): the task runs again", async () => {
    const root = await tmp();
    const f = artifactFlow("restored");
    const first = await runCollect(f.build(1), { root });
    const artifact = (first.result.outputs as { file: Artifact }).file;
    // Its time to the nanosecond, kept aside and set back after the edit, as touch -d or -r does.
    const aside = join(root, "time-aside");
    await writeFile(aside, "");
    const touch = (...args: string[]) => promisify(execFile)("touch", args);
    await touch("-r", artifact.path, aside);
    const { mtimeNs } = await stat(artifact.path, { bigint: true });
    await writeFile(artifact.path, "PAYLOAD");
    await touch("-r", aside, artifact.path);
    expect((await stat(artifact.path, { bigint: true })).mtimeNs).toBe(mtimeNs);
    const again = await runCollect(f.build(2), { root });
    // Before, size and time were the stamped ones: the edited bytes were handed on as the hit's.
    expect(statuses(again.result)).toEqual({ "restored-make": "succeeded", "restored-use": "succeeded" });
    expect((again.result.outputs as { used: { text: string } }).used.text).toBe("payload");
    expect(again.warnings.find((w) => /changed since it was cached/.test(w))).toContain(`${artifact.path} no longer holds the bytes its run recorded`);
  });

  it("a file digested once more since its stamp (touched, same bytes) stays a hit, and the next hit reads it no more", async () => {
    const root = await tmp();
    const f = artifactFlow("touched");
    const first = await runCollect(f.build(1), { root });
    const artifact = (first.result.outputs as { file: Artifact }).file;
    const later = new Date(Date.now() + 5_000);
    const { utimes } = await import("node:fs/promises");
    await utimes(artifact.path, later, later);
    const again = await runCollect(f.build(1), { root });
    expect(statuses(again.result)).toEqual({ "touched-make": "cached", "touched-use": "cached" });
    expect(readsOf(artifact.path).length).toBeGreaterThan(0);
    reads.splice(0);
    const third = await runCollect(f.build(1), { root });
    expect(statuses(third.result)).toEqual({ "touched-make": "cached", "touched-use": "cached" });
    expect(readsOf(artifact.path)).toEqual([]);
    expect(f.calls).toEqual({ make: 1, use: 1 });
  });
});

describe("a folder artifact kept in this root, with the embedded store", () => {
  beforeEach(() => void reads.splice(0));

  it("a fresh task's folder is listed once for its names' checks and its stamp: four walks in all (one the link check's, entries only), not five", async () => {
    const root = await tmp();
    const f = folderFlow("folder-walks");
    const made = flow("folder-walks-make").build(() => ({ model: f.make().model }));
    walks.splice(0);
    const first = await runCollect(made, { root });
    expect(first.result.status, JSON.stringify(first.result.tasks)).toBe("succeeded");
    const model = (first.result.outputs as { model: Artifact }).model;
    // The check for links out (entries only, no stat of a file: ~7-40 ms for 5,000 files against
    // 140-200 ms for a listing; it must come first, as the listing follows links), the names'
    // listing (also the stamp's before the digest), the digest's walk, and the listing after it that shows the folder held.
    expect(walks.filter((p) => resolve(p) === resolve(model.path))).toHaveLength(4);
    // Stamped all the same: a hit reads none of its files.
    reads.splice(0);
    const again = await runCollect(made, { root });
    expect(statuses(again.result)).toEqual({ "folder-walks-make": "cached" });
    expect(readsIn(model.path)).toEqual([]);
  });

  it("a hit whose folder kept its files' names, sizes and times reads none of them, and an edit that keeps both is seen by its change time", async () => {
    const root = await tmp();
    const f = folderFlow("folder-unread");
    const first = await runCollect(f.build(1), { root });
    expect(first.result.status, JSON.stringify(first.result.tasks)).toBe("succeeded");
    const model = (first.result.outputs as { model: Artifact }).model;
    reads.splice(0);
    const again = await runCollect(f.build(1), { root });
    expect(statuses(again.result)).toEqual({ "folder-unread-make": "cached", "folder-unread-use": "cached" });
    expect(again.warnings).toEqual([]);
    // Before, every hit digested the folder anew: each of its files was read.
    expect(readsIn(model.path)).toEqual([]);
    // Same size, same time restored (touch -d): before, trusted unread and handed on as the hit's.
    const edited = join(model.path, fileName(0));
    await writeFile(edited, Buffer.alloc(100, 7));
    await utimes(edited, FOLDER_TIME, FOLDER_TIME);
    const third = await runCollect(f.build(2), { root });
    expect(statuses(third.result)).toEqual({ "folder-unread-make": "succeeded", "folder-unread-use": "succeeded" });
    expect(f.calls).toEqual({ make: 2, use: 2 });
    expect((third.result.outputs as { used: { firstByte: number } }).used.firstByte).toBe(0);
    expect(third.warnings.find((w) => /changed since it was cached/.test(w))).toContain(`(in the folder: ${fileName(0)} changed)`);
  });

  it("a file of the folder overwritten by cp -p from another of the same size and time (same inode, same time): the task runs again", async () => {
    const root = await tmp();
    const f = folderFlow("folder-cp");
    const first = await runCollect(f.build(1), { root });
    const model = (first.result.outputs as { model: Artifact }).model;
    await promisify(execFile)("cp", ["-p", join(model.path, fileName(2)), join(model.path, fileName(0))]);
    const again = await runCollect(f.build(2), { root });
    expect(statuses(again.result)).toEqual({ "folder-cp-make": "succeeded", "folder-cp-use": "succeeded" });
    expect((again.result.outputs as { used: { firstByte: number } }).used.firstByte).toBe(0);
    expect(again.warnings.find((w) => /changed since it was cached/.test(w))).toContain(`(in the folder: ${fileName(0)} changed)`);
  });

  it("a lookup says a file added to the folder since with a secret in its name masked", async () => {
    const { CACHE_KEY_TAG, LocalStore, TaskCache } = await import("@cairn/core");
    const { CacheStore } = await import("@cairn/cache");
    const secret = "Add3d-S3cret-55";
    const root = await tmp();
    const f = folderFlow("folder-secret-name");
    const first = await runCollect(f.build(1), { root });
    const model = (first.result.outputs as { model: Artifact }).model;
    await writeFile(join(model.path, `extra-${secret}.bin`), "new");
    const tracker = new LocalStore({ root });
    const made = (await tracker.getRun(first.result.tasks["folder-secret-name-make"]!.runId!))!;
    const key = made.tags[CACHE_KEY_TAG]!;
    const store = await CacheStore.fromUrl(undefined, { root });
    try {
      const secrets = { find: () => undefined, mask: (text: string) => text.replaceAll(secret, "***") };
      const cache = new TaskCache(store, tracker, made.experimentId, root, {}, {}, secrets);
      const { bad } = await cache.lookup(key, { readOnly: true });
      expect(bad?.reason).toContain("(in the folder: extra-***.bin added)");
      expect(bad?.reason).not.toContain(secret);
    } finally {
      await store.close();
    }
  });

  const changes: Array<[string, (folder: string) => Promise<void>, RegExp]> = [
    ["a file added", (folder) => writeFile(join(folder, "shards", "extra.bin"), "new"), /in the folder: shards\/extra\.bin added\)/],
    ["a file removed", (folder) => rm(join(folder, "shards", fileName(3))), new RegExp(`in the folder: shards/${fileName(3)} removed\\)`)],
    [
      "a file renamed",
      (folder) => rename(join(folder, fileName(2)), join(folder, "renamed.bin")),
      new RegExp(`in the folder: renamed\\.bin added; ${fileName(2)} removed\\)`),
    ],
    [
      "two files of one size and time swapped",
      async (folder) => {
        await rename(join(folder, fileName(0)), join(folder, "aside"));
        await rename(join(folder, fileName(2)), join(folder, fileName(0)));
        await rename(join(folder, "aside"), join(folder, fileName(2)));
      },
      new RegExp(`in the folder: ${fileName(0)}, ${fileName(2)} changed\\)`),
    ],
    [
      "a file edited in place",
      (folder) => writeFile(join(folder, fileName(4)), Buffer.alloc(100, 9)),
      new RegExp(`in the folder: ${fileName(4)} changed\\)`),
    ],
  ];
  for (const [change, make, named] of changes) {
    it(`${change}: the task runs again and its warning names the file`, async () => {
      const root = await tmp();
      const name = `folder-${change.split(" ").slice(-1)[0]}`;
      const f = folderFlow(name);
      const first = await runCollect(f.build(1), { root });
      const model = (first.result.outputs as { model: Artifact }).model;
      await make(model.path);
      const again = await runCollect(f.build(2), { root });
      expect(statuses(again.result)).toEqual({ [`${name}-make`]: "succeeded", [`${name}-use`]: "succeeded" });
      expect(f.calls).toEqual({ make: 2, use: 2 });
      expect((again.result.outputs as { used: { files: number; firstByte: number } }).used).toMatchObject({ files: FOLDER_FILES, firstByte: 0 });
      const warning = again.warnings.find((w) => /changed since it was cached/.test(w));
      expect(warning).toContain(`${model.path} no longer holds the bytes its run recorded (in the folder: `);
      expect(warning).toMatch(named);
    });
  }
});

describe("an artifact kept in this root, with an MLflow server", () => {
  let server: MlflowServer;
  beforeAll(async () => {
    server = await startMlflowServer();
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  for (const [edit, bytes] of [["the same size", "PAYLOAD"], ["another size", "edited payload"]] as const) {
    it(`edited in place (${edit}): the hit stays, the dependant reads the recorded bytes downloaded from the run, and the edited file is left`, async () => {
      const root = await tmp();
      const env = { MLFLOW_TRACKING_URI: server.uri };
      const f = artifactFlow(`mlflow-edited-${bytes.length}`);
      const first = await runCollect(f.build(1), { root, env });
      expect(first.result.status).toBe("succeeded");
      const artifact = (first.result.outputs as { file: Artifact }).file;
      const makeRun = first.result.tasks[`mlflow-edited-${bytes.length}-make`]!.runId!;
      await writeFile(artifact.path, bytes);
      const again = await runCollect(f.build(2), { root, env });
      // Before, the entry was evicted and make ran again.
      expect(statuses(again.result)).toEqual({ [`mlflow-edited-${bytes.length}-make`]: "cached", [`mlflow-edited-${bytes.length}-use`]: "succeeded" });
      expect(f.calls).toEqual({ make: 1, use: 2 });
      const used = (again.result.outputs as { used: { text: string; from: string } }).used;
      expect(used.text).toBe("payload");
      expect(used.from).toBe(join(root, "downloads", makeRun, "out.txt"));
      expect(await readFile(artifact.path, "utf8")).toBe(bytes);
      expect((again.result.outputs as { file: Artifact }).file.path).toBe(used.from);
      const warning = again.warnings.find((w) => w.includes(artifact.path));
      expect(warning).toMatch(/edited in place since it was cached .* downloaded from its run into this root's downloads and handed on instead, and the edited file is left as it is/);
      // The download is stamped: the run after reads neither file.
      reads.splice(0);
      const third = await runCollect(f.build(2), { root, env });
      expect(statuses(third.result)).toEqual({ [`mlflow-edited-${bytes.length}-make`]: "cached", [`mlflow-edited-${bytes.length}-use`]: "cached" });
      expect(readsOf(used.from)).toEqual([]);
      expect((await stat(used.from)).size).toBe(7);
    }, 120_000);
  }

  it("a folder with a file edited in place: the hit stays, the dependant reads the recorded folder downloaded from the run, and the warning names the file", async () => {
    const root = await tmp();
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const f = folderFlow("mlflow-folder");
    const first = await runCollect(f.build(1), { root, env });
    expect(first.result.status).toBe("succeeded");
    const model = (first.result.outputs as { model: Artifact }).model;
    const makeRun = first.result.tasks["mlflow-folder-make"]!.runId!;
    reads.splice(0);
    const hit = await runCollect(f.build(1), { root, env });
    expect(statuses(hit.result)).toEqual({ "mlflow-folder-make": "cached", "mlflow-folder-use": "cached" });
    expect(readsIn(model.path)).toEqual([]);
    await writeFile(join(model.path, "shards", fileName(1)), "edited");
    const again = await runCollect(f.build(2), { root, env });
    expect(statuses(again.result)).toEqual({ "mlflow-folder-make": "cached", "mlflow-folder-use": "succeeded" });
    expect(f.calls).toEqual({ make: 1, use: 2 });
    const used = (again.result.outputs as { used: { from: string; shardBytes: number } }).used;
    expect(used.from).toBe(join(root, "downloads", makeRun, "model"));
    expect(used.shardBytes).toBe(100 * (FOLDER_FILES / 2));
    const warning = again.warnings.find((w) => w.includes(model.path));
    expect(warning).toContain(`its artifact ${model.path} (in the folder: shards/${fileName(1)} changed) was edited in place since it was cached`);
    // The download is stamped too: the run after reads none of its files.
    reads.splice(0);
    const third = await runCollect(f.build(2), { root, env });
    expect(statuses(third.result)).toEqual({ "mlflow-folder-make": "cached", "mlflow-folder-use": "cached" });
    expect(readsIn(used.from)).toEqual([]);
  }, 120_000);
});
