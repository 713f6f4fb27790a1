/**
 * mlflowModel(): registry versions and aliases resolved through a real MLflow server,
 * predictions through `mlflow models predict` and `mlflow models serve`, the input checked
 * against the model's signature, and MLflow's own schema errors rephrased.
 */
import { execFileSync } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunScope } from "@cairn/core";
import { flow, map, task } from "@cairn/dsl";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { mlflowModel } from "../../packages/mlflow/src/model/mlflow-model.ts";
import { parseModelUri, rephraseMlflowSchemaError, resolveModel } from "../../packages/mlflow/src/model/run-model.ts";
import { folderDigest } from "../../packages/mlflow/src/project/run-project.ts";
import { startMlflowServer, type MlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { fixture, hasVenv, runOptions, tempRoot, VENV_PYTHON } from "./helpers.ts";

const ROWS = [
  { a: 0.5, b: 1.0 },
  { a: 2.5, b: 0.0 },
];

describe("model URIs and MLflow's schema errors", () => {
  it("parses versions, aliases, logged models, run URIs and local folders; refuses stages", () => {
    expect(parseModelUri("models:/churn/3")).toMatchObject({ kind: "version", name: "churn", version: "3" });
    expect(parseModelUri("models:/churn@champion")).toMatchObject({ kind: "alias", name: "churn", alias: "champion" });
    expect(parseModelUri("models:/m-0123abcd")).toMatchObject({ kind: "logged", modelId: "m-0123abcd" });
    expect(parseModelUri("runs:/0a1b2c/model")).toMatchObject({ kind: "run", runId: "0a1b2c", path: "model" });
    expect(parseModelUri("model", "/tmp")).toMatchObject({ kind: "local", path: "/tmp/model" });
    expect(() => parseModelUri("models:/churn/Production")).toThrow(/"Production" is not a version number/);
  });

  it("rephrases MLflow's schema enforcement failure, from stderr and from a served model's error body", () => {
    const stderr =
      "mlflow.exceptions.MlflowException: Failed to enforce schema of data '     a    c\n0  0.5  1.0' with schema " +
      "'['a': double (required), 'b': double (required)]'. Error: Model is missing inputs ['b']. Note that there were extra inputs: ['c'].";
    expect(rephraseMlflowSchemaError(stderr)).toEqual({
      problem: "Model is missing inputs ['b']. Note that there were extra inputs: ['c'].",
      schema: "['a': double (required), 'b': double (required)]",
    });
    const body = JSON.stringify({
      error_code: "INVALID_PARAMETER_VALUE",
      message:
        "Failed to predict data '     a  c\n0  0.5  1'. \nError: Failed to enforce schema of data '     a  c\n0  0.5  1' with schema " +
        "'['a': double (required), 'b': double (required)]'. Error: Model is missing inputs ['b'].",
    });
    expect(rephraseMlflowSchemaError(body)?.problem).toBe("Model is missing inputs ['b'].");
    expect(rephraseMlflowSchemaError("Traceback: KeyError")).toBeUndefined();
  });

  it("a moved alias is said as one, in the versions the key records: not as the fingerprint's differing part", () => {
    const at = (version: number, run = "a".repeat(32), created = "1700000000000") => `models:/churn/${version};run=${run};source=models:/m-${version};created=${created}`;
    const alias = mlflowModel("score", "models:/churn@champion").definition;
    expect(alias.describeResolved?.(at(3), at(4))).toBe("model alias `churn@champion` moved from version 3 to version 4");
    expect(alias.describeResolved?.(at(3), at(3, "b".repeat(32), "1700000000001"))).toBe(
      "version 3 of model `churn` (alias `champion`) is another model than before: it was registered again (another run, source or creation time)",
    );
    const pinned = mlflowModel("score", "models:/churn/3").definition;
    expect(pinned.describeResolved?.(at(3), at(3, "b".repeat(32)))).toBe("version 3 of model `churn` is another model than before: it was registered again (another run, source or creation time)");
    // What it cannot read (a runs:/ or logged model's fingerprint) is left to the generic words.
    expect(alias.describeResolved?.("runs:/abc/model;model=m-1", "runs:/abc/model;model=m-2")).toBeUndefined();
  });

  it("an input other than `data` fails the build, before the upstream tasks run, in a call and in map()", () => {
    const score = mlflowModel("score", "models:/tiny/1");
    const rows = task("rows").run(() => ({ rows: ROWS }));
    // Before: the flow was built, `rows` ran, and only then did the model task fail on "model".
    expect(() => flow("extra").build(() => ({ out: score({ data: rows().rows, model: "models:/tiny/2" } as never).$out }))).toThrow(
      `Task "score": a model task takes one input, "data" (rows or an Artifact of a .csv or .json file); got also "model". Pass only { data: ... }.`,
    );
    expect(() => flow("extra-map").build(() => ({ out: map(score, { over: [ROWS], as: "rows" } as never).outputs }))).toThrow(
      `got also "rows". Give map() \`as: "data"\`, and no other input.`,
    );
    expect(() => flow("data-only").build(() => ({ out: score({ data: rows().rows as never }).$out }))).not.toThrow();
  });

  it("a registry URI without an MLflow server says how to get one", async () => {
    const score = mlflowModel("score", "models:/tiny/1");
    const result = await (await flow("no-registry").build(() => ({ out: score({ data: ROWS }).$out })).run(await runOptions({ cache: false }))).wait();
    expect(result.tasks.score!.error?.name).toBe("MlflowModelError");
    expect(result.tasks.score!.error?.message).toContain("needs an MLflow tracking server with a model registry");
    expect(result.tasks.score!.error?.message).toContain("MLFLOW_TRACKING_URI=http://127.0.0.1:5000");
  });

  it("a local model folder's fingerprint is its content digest, as before: the same cache key", async () => {
    const root = await tempRoot();
    const model = join(root, "model");
    await mkdir(join(model, "data"), { recursive: true });
    await writeFile(join(model, "MLmodel"), "artifact_path: model\nflavors:\n  python_function: {}\n");
    await writeFile(join(model, "data", "weights.bin"), Buffer.alloc(3 << 20, 1)); // streamed in chunks
    await writeFile(join(model, "requirements.txt"), "mlflow\n");
    const resolved = await resolveModel(parseModelUri(model), undefined);
    // Pinned: the digest the synchronous walk gave, which keys made before this one hold.
    const digest = "84782d27713a53fe8df9fead13d8aa0f12324a57689e55bb7001fbfbb0dff039";
    expect(resolved.fingerprint).toBe(`sha256:${digest}`);
    expect(resolved.label).toBe(`sha256:${digest.slice(0, 12)}`);
    await rm(root, { recursive: true, force: true });
  });

  it("a large local model folder is digested without blocking the event loop: timers keep firing meanwhile", async () => {
    const root = await tempRoot();
    const model = join(root, "model");
    for (let i = 0; i < 20; i++) {
      await mkdir(join(model, `part-${i}`), { recursive: true });
      await Promise.all(Array.from({ length: 50 }, (_, j) => writeFile(join(model, `part-${i}`, `w-${j}.bin`), Buffer.alloc(4096, i + j))));
    }
    await writeFile(join(model, "MLmodel"), "artifact_path: model\n");
    await writeFile(join(model, "weights.bin"), Buffer.alloc(32 << 20, 7));
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 1);
    const started = performance.now();
    const resolved = await resolveModel(parseModelUri(model), undefined);
    const ended = performance.now();
    clearInterval(timer);
    expect(resolved.fingerprint).toBe(`sha256:${folderDigest(model)}`);
    // Before, the folder was walked and read synchronously: no timer fired until it was done.
    const marks = [started, ...ticks, ended];
    const longestStall = Math.max(...marks.slice(1).map((t, i) => t - marks[i]!));
    expect(ticks.length).toBeGreaterThan(10);
    expect(longestStall).toBeLessThan((ended - started) / 4);
    await rm(root, { recursive: true, force: true });
  });
});

let server: MlflowServer | undefined;
let tracker: MlflowTracker;
let versions: Array<{ version: string; run_id: string }> = [];

describe.skipIf(!hasVenv)("mlflowModel() against a registry", () => {
  beforeAll(async () => {
    server = await startMlflowServer();
    tracker = MlflowTracker.fromEnv({}, server.uri);
    const out = execFileSync(VENV_PYTHON, [fixture("register_tiny.py"), "tiny"], { env: { ...process.env, MLFLOW_TRACKING_URI: server.uri }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    versions = JSON.parse(out.trim().split("\n").at(-1)!) as typeof versions;
  }, 240_000);
  afterAll(async () => {
    await server?.stop();
  });

  const tracking = () => ({ kind: "mlflow", uri: server!.uri, experimentId: "0", capabilities: tracker.capabilities });

  it("predicts with models:/tiny/1 and records the version as a tag and an output", async () => {
    const score = mlflowModel("score", "models:/tiny/1", { python: VENV_PYTHON });
    const result = await (await flow("predict").build(() => ({ out: score({ data: ROWS }).$out })).run(await runOptions({ tracker, cache: false }))).wait();
    expect(result.error).toBeUndefined();
    expect((result.outputs as { out: unknown }).out).toEqual({ predictions: [0, 1], modelVersion: "1" });
    const run = (await tracker.client.getRun(result.tasks.score!.runId!))!;
    expect(run.tags).toMatchObject({ "cairn.model_version": "tiny/1", "cairn.model_uri": "models:/tiny/1" });
  }, 120_000);

  it("an input that does not fit the signature fails before anything starts, saying what was expected", async () => {
    const score = mlflowModel("score", "models:/tiny@champion", { python: VENV_PYTHON });
    const started = performance.now();
    const data = [{ a: "high", c: 1 }];
    const result = await (await flow("mismatch").build(() => ({ out: score({ data }).$out })).run(await runOptions({ tracker, cache: false }))).wait();
    const error = result.tasks.score!.error!;
    expect(error.name).toBe("ModelInputError");
    expect(error.message).toContain(`the input does not fit the signature of model "tiny" version 1 (models:/tiny@champion)`);
    expect(error.message).toContain(`missing column "b" (double, required)`);
    expect(error.message).toContain(`column "a" holds a string values; the model expects double`);
    expect(error.message).toContain(`The model expects: a (double), b (double).`);
    expect(error.message).toContain(`Given: a (string), c (integer).`);
    expect(result.tasks.score!.attempts).toBe(1);
    expect(performance.now() - started).toBeLessThan(10_000); // no MLflow process was started
  }, 60_000);

  it("runs:/<run>/model finds the logged model and its signature", async () => {
    const uri = `runs:/${versions[0]!.run_id}/model`;
    const score = mlflowModel("score", uri, { python: VENV_PYTHON });
    const result = await (await flow("by-run").build(() => ({ out: score({ data: [{ a: 1 }] }).$out })).run(await runOptions({ tracker, cache: false }))).wait();
    expect(result.tasks.score!.error?.name).toBe("ModelInputError");
    expect(result.tasks.score!.error?.message).toContain(`signature of model ${uri}:`);
    expect(result.tasks.score!.error?.message).toContain(`missing column "b" (double, required)`);
  });

  it("a missing working folder is named, in predict and in serve mode, before any process starts", async () => {
    const missing = `/nonexistent-cairn-model-cwd-${process.pid}`;
    for (const mode of ["serve", "predict"] as const) {
      const score = mlflowModel("score", "models:/tiny/1", { python: VENV_PYTHON, mode, cwd: missing });
      const result = await (await flow(`nocwd-${mode}`).build(() => ({ out: score({ data: ROWS }).$out })).run(await runOptions({ tracker, cache: false }))).wait();
      expect(result.tasks.score!.error?.name).toBe("ProcessStartError");
      expect(result.tasks.score!.error?.message).toContain(`Its working folder ${missing} (the task's \`cwd\` option) does not exist`);
    }
  }, 60_000);

  it("a version the registry does not have lists the ones it has", async () => {
    const score = mlflowModel("score", "models:/tiny/9", { python: VENV_PYTHON });
    const result = await (await flow("missing").build(() => ({ out: score({ data: ROWS }).$out })).run(await runOptions({ tracker, cache: false }))).wait();
    expect(result.tasks.score!.error?.message).toContain(`model "tiny" has no version 9. Versions: 1, 2.`);
  });

  it("an alias the model does not have lists the ones it has, as a missing version does (MLflow answers it with HTTP 400, not 404)", async () => {
    const score = mlflowModel("score", "models:/tiny@nope", { python: VENV_PYTHON });
    const result = await (await flow("no-alias").build(() => ({ out: score({ data: ROWS }).$out })).run(await runOptions({ tracker, cache: false }))).wait();
    const error = result.tasks.score!.error!;
    // Before: MLflow's own words, `MLflow registered-models/alias failed with HTTP 400 INVALID_PARAMETER_VALUE: ...`.
    expect(error.name).toBe("MlflowModelError");
    expect(error.message).toMatch(/model "tiny" has no alias "nope"\. Aliases: @champion \(version \d\)\. Set one with/);
  });

  it("runs:/<run>/<path> that names no model in the run fails before any process starts, naming what the run has", async () => {
    const runId = versions[0]!.run_id;
    const score = mlflowModel("score", `runs:/${runId}/nomodel`, { python: VENV_PYTHON });
    const started = performance.now();
    const result = await (await flow("no-model-path").build(() => ({ out: score({ data: ROWS }).$out })).run(await runOptions({ tracker, cache: false }))).wait();
    const error = result.tasks.score!.error!;
    // Before: `mlflow models predict` started, and failed 12-22 s later with "Failed to download artifacts from path 'nomodel'".
    expect(error.name).toBe("MlflowModelError");
    expect(error.message).toContain(`run ${runId} has no MLflow model at "nomodel"`);
    expect(error.message).toContain(`Models in the run: runs:/${runId}/model.`);
    expect(error.message).toContain("Its artifacts: ");
    expect(performance.now() - started).toBeLessThan(10_000); // no MLflow process was started
  }, 60_000);

  it("models:/tiny@champion resolves to the alias's version; moving the alias changes the resolved code; serve mode scores it", async () => {
    const score = mlflowModel("score", "models:/tiny@champion", { python: VENV_PYTHON, mode: "serve", format: "dataframe_records" });
    const def = score.definition;
    const flowA = new RunScope();
    const before = await def.resolveCode!({ flowRunId: "flow-a", scope: flowA, tracking: tracking() });
    expect(before).toMatch(/^models:\/tiny\/1;run=[0-9a-f]{32};source=models:\/m-/);

    const res = await fetch(`${server!.uri}/api/2.0/mlflow/registered-models/alias`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "tiny", alias: "champion", version: "2" }),
    });
    expect(res.ok).toBe(true);
    expect(await def.resolveCode!({ flowRunId: "flow-a", scope: flowA, tracking: tracking() })).toBe(before); // one flow run sees one version
    const after = await def.resolveCode!({ flowRunId: "flow-b", scope: new RunScope(), tracking: tracking() });
    expect(after).toMatch(/^models:\/tiny\/2;/);

    const result = await (await flow("serve").build(() => ({ out: score({ data: ROWS }).$out })).run(await runOptions({ tracker, cache: false }))).wait();
    expect(result.error).toBeUndefined();
    // Version 2 was trained on flipped labels.
    expect((result.outputs as { out: unknown }).out).toEqual({ predictions: [1, 0], modelVersion: "2" });
    const run = (await tracker.client.getRun(result.tasks.score!.runId!))!;
    expect(run.tags["cairn.model_version"]).toBe("tiny/2");
  }, 180_000);

  it("caches by the resolved version: the same alias is a hit, a moved alias is a miss", async () => {
    const moveChampion = async (version: string) => {
      const res = await fetch(`${server!.uri}/api/2.0/mlflow/registered-models/alias`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "tiny", alias: "champion", version }),
      });
      expect(res.ok).toBe(true);
    };
    const score = mlflowModel("score", "models:/tiny@champion", { python: VENV_PYTHON });
    const scoring = flow("score-cached").build(() => ({ out: score({ data: ROWS }).$out }));
    const options = await runOptions({ tracker });
    await moveChampion("1");
    const first = await (await scoring.run(options)).wait();
    expect(first.error).toBeUndefined();
    expect(first.tasks.score!.status).toBe("succeeded");
    expect((first.outputs as { out: { modelVersion: string } }).out.modelVersion).toBe("1");

    const second = await (await scoring.run(options)).wait();
    expect(second.tasks.score!.status).toBe("cached");
    expect(second.tasks.score!.cachedFrom).toBe(first.tasks.score!.runId);

    await moveChampion("2");
    const third = await (await scoring.run(options)).wait();
    expect(third.tasks.score!.status).toBe("succeeded"); // a new version behind the alias is a miss
    expect((third.outputs as { out: unknown }).out).toEqual({ predictions: [1, 0], modelVersion: "2" });
    // Why, as its lookup saw it: the alias moved, in the versions the key records (before: the
    // fingerprint's differing part, `what the task's code resolves to ... changed from ".../1;run=...`).
    const why = JSON.parse((await tracker.client.getRun(third.tasks.score!.runId!))!.tags["cairn.miss_reason"]!) as { kind: string; nearest?: { changes: string[] } };
    expect(why).toMatchObject({ kind: "changed", nearest: { changes: ["model alias `tiny@champion` moved from version 1 to version 2"] } });
  }, 180_000);
});
