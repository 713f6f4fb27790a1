/**
 * An artifact file a task wrote, edited in place afterwards where this root keeps it: the next
 * run never hands the edited bytes on as the hit's output. With the embedded store (no other
 * copy) the task runs again; with an MLflow server the recorded bytes are downloaded from the
 * run and the edited file is left alone. A hit whose file kept its size and mtime reads none of
 * its bytes: the reads of node:fs are counted by path (everything else about them is real).
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { type Artifact, flow, task } from "@cairn/dsl";
import "@cairn/mlflow/register";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { runCollect, statuses, tmp } from "./helpers.ts";

/** Paths whose content this process read (readFile, open, createReadStream) since the last reset. */
const reads = vi.hoisted(() => [] as string[]);
vi.mock("node:fs/promises", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs/promises")>();
  const readFile = ((path: unknown, ...rest: unknown[]) => (reads.push(String(path)), (fs.readFile as (...a: unknown[]) => unknown)(path, ...rest))) as typeof fs.readFile;
  const open = ((path: unknown, ...rest: unknown[]) => (reads.push(String(path)), (fs.open as (...a: unknown[]) => unknown)(path, ...rest))) as typeof fs.open;
  return { ...fs, default: { ...fs, readFile, open }, readFile, open };
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
});
