/**
 * A failed script or shell step's run keeps what the step wrote, as `mlflow run` keeps what a
 * script logged before it crashed: the files left in its artifacts folder (sent to an MLflow
 * server under `cairn/attempts/<n>/`, never beside a successful retry's outputs;
 * in place on the embedded store), the outputs it set as a record
 * (`cairn/attempt-<n>-outputs.json`). Names are checked as a successful step's are; a failed
 * upload is a warning.
 */
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flow, script, shell, type RunEvent } from "cairn-dag";
import { LocalStore, type Tracker } from "@cairn/core";
import { readWithMlflow } from "../../packages/mlflow/test/mlflow-read.ts";
import { startMlflowServer, type MlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { hasVenv, tempRoot, VENV_PYTHON } from "./helpers.ts";

let server: MlflowServer | undefined;
const SECRET = "tok-s3cr3t-value-42";

/** Writes a model and a plot, sets its outputs, then exits with the code given as its first argument. */
const TRAIN = `
import os, sys, cairn_task
with open(cairn_task.artifact_path("model.pkl"), "wb") as f:
    f.write(b"weights")
with open(cairn_task.artifact_path("plots/loss.txt"), "w") as f:
    f.write("0.5\\n")
# A name holding a secret: never sent, as a successful step's folder would refuse it.
with open(os.path.join(os.environ["CAIRN_ARTIFACTS"], "key-" + os.environ["API_TOKEN"] + ".txt"), "w") as f:
    f.write("x")
# A link, whose target lies outside the folder: never sent.
os.symlink("/etc/hostname", os.path.join(os.environ["CAIRN_ARTIFACTS"], "outside.txt"))
cairn_task.set_outputs({"model": cairn_task.artifact("model.pkl"), "acc": 0.9})
sys.exit(int(sys.argv[1]))
`;

async function trainScript(): Promise<string> {
  const file = join(await tempRoot(), "train.py");
  await writeFile(file, TRAIN);
  return file;
}

const train = async (code = 1) => script("train", { file: await trainScript(), interpreter: VENV_PYTHON, secrets: ["API_TOKEN"], args: [String(code)] });

/**
 * What the server holds for `runId`, as MlflowClient reads it, in one reader process (Python's
 * start-up is seconds): every artifact path, folders walked, sorted; the text of each of
 * `downloads`; and the run.
 */
async function readRun(runId: string, downloads: string[] = []): Promise<{ listed: string[]; files: string[]; run: { status: string } }> {
  const dst = await tempRoot();
  const [listed, run, ...files] = await readWithMlflow(server!.uri, [
    { op: "list_artifacts_tree", run_id: runId },
    { op: "get_run", run_id: runId },
    ...downloads.map((path) => ({ op: "download_artifact", run_id: runId, path, dst })),
  ]);
  return { listed: (listed as string[]).sort(), files: files.map((f) => Buffer.from(f.base64 as string, "base64").toString("utf8")), run };
}

async function runCollecting(f: { run: (o: object) => Promise<{ on: (l: (e: RunEvent) => void) => void; wait: () => Promise<any> }> }, options: object) {
  const run = await f.run(options);
  const warnings: string[] = [];
  run.on((e) => {
    if (e.type === "log" && e.level === "warn") warnings.push(e.message);
  });
  return { result: await run.wait(), warnings };
}

beforeAll(async () => {
  if (hasVenv) server = await startMlflowServer();
}, 180_000);
afterAll(async () => {
  await server?.stop();
});

describe.skipIf(!hasVenv)("a failed step's run on an MLflow server", () => {
  const options = async () => ({ root: await tempRoot(), cache: false as const, secrets: { API_TOKEN: SECRET }, env: { ...process.env, MLFLOW_TRACKING_URI: server!.uri } });

  it("holds the files the script wrote and the outputs it set", async () => {
    const t = await train(1);
    const { result, warnings } = await runCollecting(flow("failed-files").build(() => ({ m: t().model })), await options());
    expect(result.status).toBe("failed");
    const task = result.tasks.train!;
    expect(task.error?.name).toBe("ProcessFailedError");
    const runId = task.runId!;
    const { listed, files, run } = await readRun(runId, ["cairn/attempts/1/model.pkl", "cairn/attempt-1-outputs.json"]);
    expect(listed).toEqual(["cairn/attempt-1-outputs.json", "cairn/attempts/1/model.pkl", "cairn/attempts/1/plots/loss.txt", "cairn/error.txt"]);
    expect(files[0]).toBe("weights");
    expect(JSON.parse(files[1]!)).toEqual({ model: { $artifact: "model.pkl" }, acc: 0.9 });
    expect(run.status).toBe("FAILED");
    // The file whose name holds the secret is named, masked, in a warning; the secret is nowhere.
    expect(warnings.join("\n")).toContain("file key-***.txt was not sent to the task's run");
    expect(JSON.stringify([warnings, run])).not.toContain(SECRET);
    expect(warnings.join("\n")).toContain("file outside.txt was not sent to the task's run: it is a link");
  }, 120_000);

  it("holds the files a shell step wrote", async () => {
    const t = shell("dump", 'mkdir -p "$CAIRN_ARTIFACTS/out"; echo partial > "$CAIRN_ARTIFACTS/out/rows.csv"; exit 1');
    const { result } = await runCollecting(flow("failed-shell").build(() => ({ o: t().$out })), await options());
    const runId = result.tasks.dump!.runId!;
    const { listed, files } = await readRun(runId, ["cairn/attempts/1/out/rows.csv"]);
    expect(listed).toEqual(["cairn/attempts/1/out/rows.csv", "cairn/error.txt"]);
    expect(files).toEqual(["partial\n"]);
  }, 60_000);

  it("keeps a failed attempt's files out of the folder its successful retry outputs, so another root hits its entry", async () => {
    // Attempt 1 writes ckpt/a.bin and ckpt/b.bin, sets the folder as its output and fails;
    // attempt 2 writes ckpt/a.bin alone and succeeds. Each run appends a line to `runs`.
    const dir = await tempRoot();
    const file = join(dir, "ckpt.py");
    const runs = join(dir, "runs");
    await writeFile(
      file,
      `
import os, sys, cairn_task
attempt = int(os.environ["CAIRN_ATTEMPT"])
with open(sys.argv[1], "a") as f:
    f.write("ran\\n")
with open(cairn_task.artifact_path("ckpt/a.bin"), "w") as f:
    f.write("a%d" % attempt)
if attempt == 1:
    with open(cairn_task.artifact_path("ckpt/b.bin"), "w") as f:
        f.write("b1")
cairn_task.set_outputs({"ckpt": cairn_task.artifact("ckpt")})
sys.exit(1 if attempt == 1 else 0)
`,
    );
    const t = script("ckpt", { file, interpreter: VENV_PYTHON, args: [runs] }).retries(1, { minDelayMs: 1, maxDelayMs: 1 });
    const f = flow("failed-attempt-ckpt").build(() => ({ ckpt: t().ckpt }));
    const env = { ...process.env, MLFLOW_TRACKING_URI: server!.uri };
    const first = await runCollecting(f, { root: await tempRoot(), env });
    expect(first.result.status).toBe("succeeded");
    const runId = first.result.tasks.ckpt!.runId!;
    const { listed, files } = await readRun(runId, ["ckpt/a.bin", "cairn/attempts/1/ckpt/a.bin"]);
    expect(listed.filter((p) => p.startsWith("ckpt/"))).toEqual(["ckpt/a.bin"]);
    expect(listed).toContain("cairn/attempts/1/ckpt/b.bin");
    expect(files).toEqual(["a2", "a1"]);

    // Another root (another machine) hits the entry and gets the folder the retry output.
    const other = await runCollecting(f, { root: await tempRoot(), env });
    expect(other.result.status).toBe("succeeded");
    expect(other.result.tasks.ckpt!.status).toBe("cached");
    expect(other.warnings.join("\n")).not.toMatch(/mismatch|digest|sha256/i);
    expect(readFileSync(runs, "utf8")).toBe("ran\nran\n");
  }, 120_000);
});

describe.skipIf(!hasVenv)("a failed step's run on the embedded store", () => {
  it("keeps the files in the run's folder, with the outputs it set", async () => {
    const root = await tempRoot();
    const store = new LocalStore({ root: join(root, "store") });
    const t = await train(3);
    const { result } = await runCollecting(flow("failed-files").build(() => ({ m: t().model })), { tracker: store, root, cache: false, secrets: { API_TOKEN: SECRET } });
    const runId = result.tasks.train!.runId!;
    const dir = store.artifactDir(runId);
    expect(readFileSync(join(dir, "model.pkl"), "utf8")).toBe("weights");
    expect(JSON.parse(readFileSync(join(dir, "cairn/attempt-1-outputs.json"), "utf8"))).toEqual({ model: { $artifact: "model.pkl" }, acc: 0.9 });
    const run = await store.getRun(runId);
    expect(run?.status).toBe("FAILED");
  }, 60_000);

  it("does not record outputs that hold a secret, and says so", async () => {
    const root = await tempRoot();
    const store = new LocalStore({ root: join(root, "store") });
    const t = shell("leaky", 'printf \'{"token": "%s"}\' "$API_TOKEN" > "$CAIRN_OUTPUTS"; exit 2', { secrets: ["API_TOKEN"] });
    const { result, warnings } = await runCollecting(flow("leaky").build(() => ({ o: t().$out })), { tracker: store, root, cache: false, secrets: { API_TOKEN: SECRET } });
    const runId = result.tasks.leaky!.runId!;
    expect(() => readFileSync(join(store.artifactDir(runId), "cairn/attempt-1-outputs.json"))).toThrow(/ENOENT/);
    expect(warnings.join("\n")).toContain("they hold a known secret");
  }, 60_000);
});

describe.skipIf(!hasVenv)("a failed step whose files cannot be sent", () => {
  it("still fails with its own error, the failed uploads as warnings", async () => {
    const root = await tempRoot();
    const store = new LocalStore({ root: join(root, "store") });
    // A tracker that keeps no artifacts locally and refuses the upload of the step's model.
    const tracker = new Proxy(store, {
      get(target, key, receiver) {
        if (key === "capabilities") return { ...target.capabilities, localArtifacts: false };
        // The step's own files only: the flow's record (its graph) is sent as ever.
        if (key === "logArtifact") return (runId: string, path: string, folder?: string) => (path.endsWith("model.pkl") ? Promise.reject(new Error("upload refused")) : target.logArtifact(runId, path, folder));
        const value = Reflect.get(target, key, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as Tracker;
    const t = await train(1);
    const { result, warnings } = await runCollecting(flow("unsent").build(() => ({ m: t().model })), { tracker, root, cache: false, secrets: { API_TOKEN: SECRET } });
    expect(result.tasks.train!.error?.name).toBe("ProcessFailedError");
    expect(warnings.join("\n")).toContain("the failed attempt's file model.pkl was not sent to the task's run: upload refused");
  }, 60_000);
});
