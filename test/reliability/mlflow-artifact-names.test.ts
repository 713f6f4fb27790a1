/**
 * Artifact names that an MLflow server refuses or renames, with a real `mlflow server` (one for
 * this file): its artifact endpoints decode a path until it stops changing and parse it as a
 * URL, so `C#.csv` is refused at the run's closing (HTTP 400), `a%20b.txt` is stored as
 * `a b.txt`, `x%2fy.txt` as `x/y.txt` (another artifact's place), a tab is dropped. Such a name
 * is refused where the task gives it, on the server and on the embedded store alike; the odd
 * names the server does keep (a space, "?", ";", "%" alone, Unicode) are stored under their
 * very names and found again by another machine.
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "@cairn/mlflow/register";
import { flow, task, type Artifact } from "@cairn/dsl";
import { shell } from "../../packages/process/src/index.ts";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { runCollect, statuses, tmp } from "../cache/helpers.ts";

let server: MlflowServer;
beforeAll(async () => {
  server = await startMlflowServer();
});
afterAll(async () => {
  await server?.stop();
});

const roots: string[] = [];
afterAll(async () => {
  await Promise.all(roots.map((r) => rm(r, { recursive: true, force: true })));
});
async function root(): Promise<string> {
  const r = await tmp("cairn-names-");
  roots.push(r);
  return r;
}

/** The two stores: the same rule holds on both, so that a flow that runs on one runs on the other. */
const STORES = { mlflow: () => ({ MLFLOW_TRACKING_URI: server.uri }), embedded: () => ({}) };

/** Names an MLflow server refuses or stores under another name, and what the error says of each. */
const UNSTORABLE: [string, string][] = [
  ["C#.csv", 'holds "#"'],
  ["a%20b.txt", 'holds "%20", which an MLflow server decodes (to " ")'],
  ["x%41y.txt", 'holds "%41"'],
  ["x%2fy.txt", 'holds "%2f"'],
  ["reports/a\tb.txt", "control character (U+0009)"],
  ["a\nb.txt", "control character (U+000A)"],
  ["a\u001bb.txt", "control character (U+001B)"],
  ["end?", 'ends with "?" or ";"'],
  ["semi;", 'ends with "?" or ";"'],
];

describe("a task's artifact names that an MLflow server cannot store", () => {
  it.each(Object.keys(STORES) as (keyof typeof STORES)[])("are refused where the task writes them, with the fix, on the %s store", async (store) => {
    const writer = task("writer")
      .input<{ name: string }>()
      .run(async ({ name }, ctx) => ({ a: await ctx.artifacts.write(name, "data") }));
    const f = flow("unstorable-names").build(() => Object.fromEntries(UNSTORABLE.map(([name], i) => [`o${i}`, writer({ name }, { id: `writer-${i}` }).a])));
    const { result } = await runCollect(f, { root: await root(), env: STORES[store](), cache: false, failurePolicy: "continue" });
    UNSTORABLE.forEach(([name, reason], i) => {
      const r = result.tasks[`writer-${i}`]!;
      expect(r.status, name).toBe("failed");
      expect(r.error?.name, name).toBe("UnsafePathError");
      expect(r.error?.message).toContain(`Task "writer-${i}"`);
      expect(r.error?.message).toContain(JSON.stringify(name));
      expect(r.error?.message).toContain("ctx.artifacts.write()");
      expect(r.error?.message).toContain(reason);
      expect(r.error?.message).toContain('rename the artifact (e.g. with "_" in its place)');
      expect(r.attempts).toBe(1); // a name does not get better on a retry
    });
  });

  it.each(Object.keys(STORES) as (keyof typeof STORES)[])("in a folder artifact the task filled, fail the task, not its run's closing (%s store)", async (store) => {
    const model = task("model").run(async (_: object, ctx) => {
      const dir = await ctx.artifacts.path("model");
      await mkdir(join(dir, "layers"), { recursive: true });
      await writeFile(join(dir, "layers", "w#1.bin"), "weights");
      return { model: ctx.artifacts.file("model") };
    });
    const { result } = await runCollect(
      flow("folder-names").build(() => ({ m: model({}).model })),
      { root: await root(), env: STORES[store](), cache: false },
    );
    const r = result.tasks.model!;
    expect(r.status).toBe("failed");
    expect(r.error?.name).toBe("UnsafePathError");
    expect(r.error?.message).toContain('"model/layers/w#1.bin"');
    expect(r.error?.message).toContain('the folder artifact "model"');
    expect(r.error?.message).toContain('holds "#"');
  });

  it("from a script's $artifact marker, and in the folder it names, are refused too", async () => {
    const env = STORES.mlflow();
    const marker = shell("emit", `: > "$CAIRN_ARTIFACTS/a%20b.txt"; printf '{"f":{"$artifact":"a%%20b.txt"}}' > "$CAIRN_OUTPUTS"`);
    const folder = shell("folder", `mkdir -p "$CAIRN_ARTIFACTS/out"; : > "$CAIRN_ARTIFACTS/out/C#.csv"; printf '{"f":{"$artifact":"out"}}' > "$CAIRN_OUTPUTS"`);
    const { result } = await runCollect(
      flow("script-names").build(() => ({ a: marker({}).exitCode, b: folder({}).exitCode })),
      { root: await root(), env, cache: false, failurePolicy: "continue" },
    );
    expect(result.tasks.emit!.error?.name).toBe("UnsafePathError");
    expect(result.tasks.emit!.error?.message).toContain('script output "f"');
    expect(result.tasks.emit!.error?.message).toContain('holds "%20"');
    expect(result.tasks.folder!.error?.name).toBe("UnsafePathError");
    expect(result.tasks.folder!.error?.message).toContain('"out/C#.csv"');
  });
});

describe("odd artifact names that an MLflow server keeps", () => {
  /** Each is stored under its very name: the encoding of every path part is the server's. */
  const NAMES = ["sp ace.txt", "q?x.txt", "semi;x.txt", "100%.txt", "pct%zz.txt", "café/日本.txt", "plus+&=~!*()'.txt", "a;/b?c/d.txt"];

  it("are stored under their very names, and a machine with an empty root gets them from its hit", async () => {
    const writer = task("writer").run(async (_: object, ctx) => {
      const files: Record<string, Artifact> = {};
      for (const [i, name] of NAMES.entries()) files[`f${i}`] = await ctx.artifacts.write(name, `content ${i}`);
      // A folder whose files have such names too: uploaded, listed and downloaded by their names.
      const dir = await ctx.artifacts.path("dir with space");
      await mkdir(join(dir, "x?y"), { recursive: true });
      await writeFile(join(dir, "x?y", "%zz;1.txt"), "inside");
      return { ...files, dir: ctx.artifacts.file("dir with space") };
    });
    const f = flow("kept-names").build(() => ({ w: writer({}) }));
    const a = await runCollect(f, { root: await root(), env: STORES.mlflow() });
    expect(a.result.status).toBe("succeeded");
    const runId = a.result.tasks.writer!.runId!;
    // On the server's disk, under the names the task gave.
    const experiments = await readdir(join(server.dir, "artifacts"));
    const runDir = experiments.map((e) => join(server.dir, "artifacts", e, runId, "artifacts")).find((d) => existsSync(d))!;
    const stored = (await readdir(runDir, { recursive: true })).map((p) => p.split("\\").join("/"));
    for (const name of NAMES) expect(stored, name).toContain(name);
    expect(stored).toContain("dir with space/x?y/%zz;1.txt");

    // Machine B: an empty root; the hit's artifacts come from the server, by their names.
    const b = await runCollect(f, { root: await root(), env: STORES.mlflow() });
    expect(statuses(b.result)).toEqual({ writer: "cached" });
    expect(b.warnings.join("\n")).not.toMatch(/missing|evicted/);
    const out = ((await b.run.outputs()) as unknown as { w: Record<string, Artifact> }).w;
    for (const [i, name] of NAMES.entries()) {
      expect(out[`f${i}`]!.artifactPath).toBe(name);
      expect(await readFile(out[`f${i}`]!.path, "utf8")).toBe(`content ${i}`);
    }
    expect(await readFile(join(out.dir!.path, "x?y", "%zz;1.txt"), "utf8")).toBe("inside");
  });
});
