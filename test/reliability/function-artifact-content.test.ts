/**
 * What a function task's artifact may be on disk, and the names of the files in a folder it
 * outputs, with a real `mlflow server` (one for this file) and the embedded store. An artifact
 * is recorded, hashed and uploaded by its content: one that is, or a folder that holds, a link
 * out of the task's artifacts folder would hand over what it points to (`/etc/passwd`), so the
 * attempt's end refuses it, as a script's `$artifact` is refused. A name that passes the
 * attempt's end must also pass a download of the folder on another machine; and one refused
 * there (an entry made before the check) evicts the entry, so the next run computes it again.
 */
import { execFileSync } from "node:child_process";
import { readdir, readFile, rm, symlink, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "@cairn/mlflow/register";
import { flow, task, type Artifact } from "@cairn/dsl";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { runCollect, statuses, tmp } from "../cache/helpers.ts";

let server: MlflowServer;
/** A file and a folder outside any run's artifacts folder, made once: what a link out points to. */
let outsideDir: string;
let outside: string;
beforeAll(async () => {
  server = await startMlflowServer();
  outsideDir = await tmp("cairn-outside-");
  outside = join(outsideDir, "passwd");
  await writeFile(outside, SECRET_TEXT);
});
afterAll(async () => {
  await server?.stop();
});

/** The two stores: the check is the attempt's, whatever keeps the run. */
const STORES = { mlflow: () => ({ MLFLOW_TRACKING_URI: server.uri }), embedded: () => ({}) };
const SECRET_TEXT = "TOP SECRET HOST FILE";

/** Every file under `dir` whose content holds `text`. */
async function filesHolding(dir: string, text: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    if ((await readFile(path, "utf8").catch(() => "")).includes(text)) found.push(path);
  }
  return found;
}

/**
 * The reviewer's flow: `many` fills folder artifact `ds` (sub/f0.txt, then what `mode` adds),
 * or, for mode "file-link", outputs a single-file artifact that is a link; `count` counts it.
 */
function manyFlow() {
  const many = task("many")
    .input<{ mode: string }>()
    .run(async ({ mode }, ctx) => {
      const dir = await ctx.artifacts.path("ds");
      if (mode === "file-link") {
        await symlink(outside, dir);
        return { ds: ctx.artifacts.file("ds") };
      }
      if (mode === "folder-link") {
        await symlink(outsideDir, dir);
        return { ds: ctx.artifacts.file("ds") };
      }
      if (mode === "fifo") {
        execFileSync("mkfifo", [dir]);
        return { ds: ctx.artifacts.file("ds") };
      }
      if (mode === "dangling") {
        await symlink("/nonexistent/x", dir);
        return { ds: ctx.artifacts.file("ds") };
      }
      if (mode === "loop") {
        await symlink("ds", dir);
        return { ds: ctx.artifacts.file("ds") };
      }
      await mkdir(join(dir, "sub"), { recursive: true });
      await writeFile(join(dir, "sub/f0.txt"), "x");
      if (mode === "linkout") await symlink(outside, join(dir, "passwd"));
      if (mode === "linkout-deep") await symlink(outsideDir, join(dir, "sub", "etc"));
      if (mode === "linkin") {
        await symlink("sub/f0.txt", join(dir, "latest.txt"));
        await symlink("sub", join(dir, "current"));
      }
      if (mode === "colon") await writeFile(join(dir, "a:colon.txt"), "x");
      if (mode === "colon-folder") await mkdir(join(dir, "c:"));
      if (mode === "bs") await writeFile(join(dir, "back\\slash.txt"), "x");
      return { ds: ctx.artifacts.file("ds") };
    });
  const count = task("count")
    .input<{ ds: Artifact }>()
    .run(async ({ ds }) => ({ n: (await readdir(ds.path, { recursive: true })).length }));
  return {
    both: flow("manyflow")
      .params<{ mode: string }>()
      .build(({ params }) => {
        const m = many({ mode: params.mode });
        return { ds: m.ds, n: count({ ds: m.ds }).n };
      }),
    alone: flow("manyflow")
      .params<{ mode: string }>()
      .build(({ params }) => ({ ds: many({ mode: params.mode }).ds })),
  };
}

describe("a function task's artifact that is, or holds, a link out of its artifacts folder", () => {
  it.each(Object.keys(STORES) as (keyof typeof STORES)[])("is refused as the attempt ends, naming the link and the fix, and nothing of it is uploaded (%s store)", async (store) => {
    const { both } = manyFlow();
    const cases: [string, string][] = [
      ["linkout", `is a folder holding "passwd", a link to ${outside}, outside the artifacts folder: copy what it points to into the folder instead`],
      ["linkout-deep", `is a folder holding "sub/etc", a link to ${outsideDir}, outside the artifacts folder`],
      ["file-link", `is a link to ${outside}, outside the task's artifacts folder`],
      ["folder-link", `is a link to ${outsideDir}, outside the task's artifacts folder`],
    ];
    for (const [mode, expected] of cases) {
      const root = await tmp("cairn-links-");
      const { result } = await runCollect(both, { root, env: STORES[store](), params: { mode }, cache: false });
      expect(statuses(result), mode).toEqual({ many: "failed", count: "skipped" });
      const error = result.tasks.many!.error!;
      expect(error.name, mode).toBe("UnsafePathError");
      expect(error.message, mode).toContain(`Task "many": the artifact "ds" from the task's outputs ${expected}`);
      // "ds" is a valid name: the rule for names is beside the point.
      expect(error.message, mode).not.toContain("An artifact name must be");
      if (mode === "file-link" || mode === "folder-link") expect(error.message).toContain('copy what it points to into the artifacts folder instead (`await cp(target, await ctx.artifacts.path("ds"), { recursive: true })`)');
      expect(result.tasks.many!.attempts, mode).toBe(1);
      // No copy of the target's content in the root (the link itself is not a file): no record, stamp or cache entry took it.
      expect(await filesHolding(root, SECRET_TEXT), mode).toEqual([]);
    }
    if (store === "mlflow") expect(await filesHolding(server.dir, SECRET_TEXT)).toEqual([]);
  }, 120_000);

  it.each(Object.keys(STORES) as (keyof typeof STORES)[])("one that is neither a file nor a folder, or a dangling link or a loop, is refused as the attempt ends, not read (%s store; before: a FIFO hung the run for good, a dangling link was a bare ENOENT)", async (store) => {
    const { both } = manyFlow();
    const cases: [string, string][] = [
      ["dangling", 'is a link to /nonexistent/x, which does not exist; remove the link, or write the file or folder at `await ctx.artifacts.path("ds")` instead'],
      ["loop", 'is a link to ds, which leads back to itself (a loop of links); remove the link'],
      ["fifo", 'is neither a file nor a folder (a FIFO, socket or device), which has no content to record, hash and upload; write a file or a folder at `await ctx.artifacts.path("ds")` instead'],
    ];
    for (const [mode, expected] of cases) {
      // The cache on: its digest of the artifact is what read the FIFO, waiting for a writer for good.
      const { result } = await runCollect(both, { root: await tmp("cairn-kinds-"), env: STORES[store](), params: { mode } });
      expect(statuses(result), mode).toEqual({ many: "failed", count: "skipped" });
      const error = result.tasks.many!.error!;
      expect(error.name, mode).toBe("UnsafePathError");
      expect(error.message, mode).toContain(`Task "many": the artifact "ds" from the task's outputs ${expected}`);
      // It ends with what to do about the entry, not with the rule for names, which "ds" keeps.
      expect(error.message, mode).toMatch(/ instead\.$/);
      expect(result.tasks.many!.attempts, mode).toBe(1);
    }
  }, 60_000);

  it.each(Object.keys(STORES) as (keyof typeof STORES)[])("links to a file or a folder inside it are kept as what they point to (%s store)", async (store) => {
    const { both } = manyFlow();
    const { result } = await runCollect(both, { root: await tmp("cairn-links-"), env: STORES[store](), params: { mode: "linkin" }, cache: false });
    expect(result.error).toBeUndefined();
    // sub, sub/f0.txt, latest.txt, current, current/f0.txt
    expect((await result.outputs!).n).toBe(5);
  });
});

describe("a file in a folder artifact whose name a download of the folder would refuse", () => {
  it.each(Object.keys(STORES) as (keyof typeof STORES)[])("is refused as the attempt ends (%s store)", async (store) => {
    const { both } = manyFlow();
    const cases: [string, string][] = [
      ["colon", `the artifact name "ds/a:colon.txt" from the folder artifact "ds" (a file or folder in it) is a file whose name in its folder "ds" starts with a drive ("a:"), which Cairn refuses when it downloads the folder`],
      ["colon-folder", `the artifact name "ds/c:" from the folder artifact "ds" (a file or folder in it) is a folder whose name in its folder "ds" starts with a drive ("c:"), which Cairn refuses when it downloads the folder (a cache hit on another machine); rename the folder`],
      ["bs", `the artifact name "ds/back\\\\slash.txt" from the folder artifact "ds" (a file or folder in it) holds "\\" in a file's name, which an MLflow server reads as "/" (it would store the file as "ds/back/slash.txt"`],
    ];
    for (const [mode, expected] of cases) {
      const { result } = await runCollect(both, { root: await tmp("cairn-names-"), env: STORES[store](), params: { mode }, cache: false });
      expect(statuses(result), mode).toEqual({ many: "failed", count: "skipped" });
      expect(result.tasks.many!.error?.name, mode).toBe("UnsafePathError");
      expect(result.tasks.many!.error?.message, mode).toContain(expected);
      // A name refused: the message says the rule for names.
      expect(result.tasks.many!.error?.message, mode).toContain(`An artifact name must be a relative path inside the run's artifacts folder`);
    }
  }, 60_000);

  it("made before the check (an entry on the server): the task that reads it fails, the entry is evicted, and the next run computes it", async () => {
    const { both, alone } = manyFlow();
    const env = { MLFLOW_TRACKING_URI: server.uri };
    // Machine A computes `many` and goes away; a file the attempt's end would refuse is then added to its folder on the server.
    const rootA = await tmp("cairn-evict-a-");
    const a = await runCollect(alone, { root: rootA, env, params: { mode: "plain" } });
    expect(a.result.status).toBe("succeeded");
    await rm(rootA, { recursive: true, force: true });
    const source = (await MlflowTracker.fromEnv(env).getRun(a.result.tasks.many!.runId!))!;
    await writeFile(join(server.dir, "artifacts", source.experimentId, source.runId, "artifacts", "ds", "a:colon.txt"), "x");

    // Machine B: `many` is a hit through the index; `count` downloads its folder and meets the name.
    const b = await runCollect(both, { root: await tmp("cairn-evict-b-"), env, params: { mode: "plain" } });
    expect(statuses(b.result)).toEqual({ many: "cached", count: "failed" });
    const error = b.result.tasks.count!.error!;
    expect(error.name).toBe("UnsafePathError");
    expect(error.message).toContain(`Task "count": the artifact name "a:colon.txt" from MLflow's artifact listing of run ${source.runId}`);
    expect(error.message).toContain('starts with a drive ("a:")');
    expect(error.message).toContain("An artifact name must be a relative path");
    expect(error.message).toContain(`The cache entry that holds it (task "many", key `);
    expect(error.message).toContain(`was evicted: run the flow again and "many" runs again.`);

    // Machine C: the entry is gone from the index: `many` runs again, and `count` reads what it wrote.
    const c = await runCollect(both, { root: await tmp("cairn-evict-c-"), env, params: { mode: "plain" } });
    expect(statuses(c.result)).toEqual({ many: "succeeded", count: "succeeded" });
    expect((await c.result.outputs!).n).toBe(2);
  }, 120_000);
});
