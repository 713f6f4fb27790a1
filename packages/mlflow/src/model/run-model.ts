/**
 * The MLflow model executor: scores rows with an MLflow model.
 *
 * - The model URI is resolved before anything starts: `models:/name/3` and
 *   `models:/name@alias` through the registry's REST API (an alias is pinned to the
 *   version it names now), `models:/m-<id>` (a logged model), `runs:/<run>/<path>`, or a
 *   local model folder. What it resolved to enters the cache key (`resolveModelCode`) and
 *   the task's run (tag `cairn.model_version`) and outputs (`modelVersion`).
 * - The input is checked against the model's signature (its MLmodel file, read through
 *   the artifact proxy) before anything starts; MLflow's own schema errors are rephrased.
 * - `predict` (default): `python -m mlflow models predict -m <uri> -i <file> -t json|csv
 *   --env-manager local`, through the process executor. `serve`: `python -m mlflow models
 *   serve` on a free loopback port, wait for /ping, POST /invocations, stop the server.
 *
 * The MLflow REST client is imported only when a model needs the registry, so local
 * runs never load it (see `@cairn/core/mlflow`).
 */
import { createWriteStream } from "node:fs";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, extname, isAbsolute, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { CairnError, CancelledError, describeValue, isArtifact, isPlainObject, MlflowApiError, scopeKey, systemTag, type Artifact, type RunScope, type TaskContext } from "@cairn/core";
import { checkWorkingFolder, endProcessGroup, makeTaskFolder, prepareProcessGroup, ProcessFailedError, runProcess, type ProcessSpec } from "@cairn/process/spawn";
import type { MlflowClient } from "../client/client.ts";
import { folderDigestAsync, parseYaml } from "../project/run-project.ts";
import { setTimeout as delay } from "node:timers/promises";

// ------------------------------------------------------------------ model URIs

/** A parsed model URI. */
export type ModelRef =
  | { readonly kind: "version"; readonly uri: string; readonly name: string; readonly version: string }
  | { readonly kind: "alias"; readonly uri: string; readonly name: string; readonly alias: string }
  | { readonly kind: "logged"; readonly uri: string; readonly modelId: string }
  | { readonly kind: "run"; readonly uri: string; readonly runId: string; readonly path: string }
  | { readonly kind: "local"; readonly uri: string; readonly path: string };

/** A model URI Cairn cannot use, a model the registry does not have, or a registry that is not there. */
export class MlflowModelError extends CairnError {
  static override readonly code: string = "CAIRN_MLFLOW_MODEL";
  override name = "MlflowModelError";
  constructor(
    readonly model: string,
    detail: string,
    private readonly canRetry = false,
    options?: { cause?: unknown },
  ) {
    super(`MLflow model "${model}": ${detail}`, options);
  }
  override get retryable(): boolean {
    return this.canRetry;
  }
}

/** The input does not fit the model's signature (checked by Cairn, or refused by MLflow). */
export class ModelInputError extends CairnError {
  static override readonly code: string = "CAIRN_MODEL_INPUT";
  override name = "ModelInputError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    readonly model: string,
    /** What is wrong, one line each. */
    readonly problems: readonly string[],
    /** The signature's columns, `name (type)`; empty when unknown. */
    readonly expected: readonly string[],
    /** The input's columns, `name (type)`. */
    readonly given: readonly string[],
  ) {
    super(
      `Task "${nodeId}": the input does not fit the signature of model ${model}:\n  - ${problems.join("\n  - ")}\n` +
        (expected.length ? `The model expects: ${expected.join(", ")}.\n` : "") +
        (given.length ? `Given: ${given.join(", ")}.\n` : "") +
        `Fix the rows (or the task that produces them), or use a model whose signature fits.`,
    );
  }
}

/**
 * Parses `models:/name/3`, `models:/name@alias`, `models:/m-<id>`, `runs:/<run>/<path>`,
 * or a local folder (a path or file: URL) holding an MLmodel file.
 */
export function parseModelUri(uri: string, cwd: string = process.cwd()): ModelRef {
  if (typeof uri !== "string" || !uri.trim()) throw new MlflowModelError(String(uri), "expected a model URI such as models:/churn/3, models:/churn@champion or runs:/<run id>/model.");
  if (uri.startsWith("models:/")) {
    const rest = uri.slice("models:/".length).replace(/\/+$/, "");
    const at = rest.lastIndexOf("@");
    if (at > 0) {
      const name = rest.slice(0, at);
      const alias = rest.slice(at + 1);
      if (alias && !alias.includes("/")) return { kind: "alias", uri, name, alias };
    }
    const slash = rest.lastIndexOf("/");
    if (slash < 0 && /^m-[0-9a-f]+$/.test(rest)) return { kind: "logged", uri, modelId: rest };
    if (slash > 0) {
      const name = rest.slice(0, slash);
      const version = rest.slice(slash + 1);
      if (/^\d+$/.test(version)) return { kind: "version", uri, name, version };
      throw new MlflowModelError(
        uri,
        `"${version}" is not a version number. Name a version (models:/${name}/3) or an alias (models:/${name}@champion); ` +
          `stages such as Production and "latest" are deprecated in MLflow and not supported.`,
      );
    }
    throw new MlflowModelError(uri, "expected models:/<name>/<version>, models:/<name>@<alias> or models:/m-<model id>.");
  }
  if (uri.startsWith("runs:/")) {
    const m = /^runs:\/([^/]+)\/(.+)$/.exec(uri);
    if (!m) throw new MlflowModelError(uri, "expected runs:/<run id>/<path of the model in the run>, e.g. runs:/0a1b.../model.");
    return { kind: "run", uri, runId: m[1]!, path: m[2]!.replace(/\/+$/, "") };
  }
  if (uri.startsWith("file:")) return { kind: "local", uri, path: fileURLToPath(uri) };
  if (/^[A-Za-z][A-Za-z0-9+.-]+:/.test(uri)) {
    throw new MlflowModelError(uri, "Cairn reads models from the registry (models:/), from runs (runs:/), or from a local folder; download others first.");
  }
  const path = isAbsolute(uri) ? uri : resolve(cwd, uri);
  return { kind: "local", uri: path, path };
}

// ------------------------------------------------------------------ the registry

/**
 * The REST calls the model kind needs, over the one MLflow client (credentials and TLS from
 * MLflow's environment variables, its retries and error mapping).
 */
export class ModelRegistry {
  private constructor(
    readonly uri: string,
    private readonly client: MlflowClient,
  ) {}

  /** A registry at `uri` (http or https), configured from MLflow's environment variables. */
  static async connect(uri: string, env: NodeJS.ProcessEnv = process.env): Promise<ModelRegistry> {
    const { MlflowClient, mlflowOptionsFromEnv } = await import("../client/index.ts");
    const options = mlflowOptionsFromEnv(env, uri);
    return new ModelRegistry(options.uri, new MlflowClient(options));
  }

  /** GET `/api/2.0/mlflow/<endpoint>`; undefined when the server says the thing does not exist. */
  async get(endpoint: string, query: Record<string, string>, signal?: AbortSignal): Promise<Record<string, unknown> | undefined> {
    return this.call("GET", endpoint, { query, signal });
  }

  /** POST `/api/2.0/mlflow/<endpoint>` with a JSON body. */
  async post(endpoint: string, body: unknown, signal?: AbortSignal): Promise<Record<string, unknown> | undefined> {
    return this.call("POST", endpoint, { body, signal });
  }

  private async call(method: "GET" | "POST", endpoint: string, options: { query?: Record<string, string>; body?: unknown; signal?: AbortSignal | undefined }) {
    try {
      return await this.client.call(method, endpoint, options);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason ?? new CancelledError();
      // The server's own refusal (a bad filter, a permission) is the client's error, as MLflow said it.
      if (MlflowApiError.is(error)) throw error;
      throw new MlflowModelError(this.uri, `the MLflow server did not answer ${endpoint}: ${(error as Error).message}`, true, { cause: error });
    }
  }

  /**
   * The names directly under `path` of an artifact location (a folder's with a trailing `/`), or
   * undefined when it cannot be listed (not proxied nor local, the listing failed): then nothing is known.
   */
  async listArtifacts(artifactUri: string, path: string | undefined, runId?: string): Promise<string[] | undefined> {
    const name = (p: string) => p.slice(p.lastIndexOf("/") + 1);
    if (artifactUri.startsWith("mlflow-artifacts:") || /^https?:\/\//.test(artifactUri)) {
      const files = await this.client.listArtifacts(artifactUri, path, runId).catch(() => undefined);
      return files?.map((f) => `${name(f.path)}${f.isDir ? "/" : ""}`);
    }
    const base = artifactUri.startsWith("file:") ? fileURLToPath(artifactUri) : isAbsolute(artifactUri) ? artifactUri : undefined;
    if (!base) return undefined; // s3://, gs://, ...: MLflow's own checks apply
    const entries = await readdir(path ? join(base, path) : base, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" || error.code === "ENOTDIR" ? [] : undefined));
    return entries?.map((e) => `${e.name}${e.isDirectory() ? "/" : ""}`).sort();
  }

  /** The text of one artifact file, or undefined when it cannot be read (not proxied, missing). */
  async readArtifact(artifactUri: string, path: string): Promise<string | undefined> {
    if (artifactUri.startsWith("mlflow-artifacts:") || /^https?:\/\//.test(artifactUri)) {
      const dir = await makeTaskFolder("model");
      try {
        await this.client.downloadArtifactFile(artifactUri, path, join(dir, "file"));
        return await readFile(join(dir, "file"), "utf8");
      } catch {
        return undefined;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    return readLocal(artifactUri, path);
  }
}

async function readLocal(artifactUri: string, path: string): Promise<string | undefined> {
  const base = artifactUri.startsWith("file:") ? fileURLToPath(artifactUri) : isAbsolute(artifactUri) ? artifactUri : undefined;
  if (!base) return undefined; // s3://, gs://, ...: MLflow's own checks apply
  return readFile(join(base, path), "utf8").catch(() => undefined);
}

// ------------------------------------------------------------------ resolution

/** What a model URI resolved to. */
export interface ResolvedModel {
  /** The URI as declared. */
  readonly declared: string;
  /** The URI that is scored: an alias pinned to its version (`models:/churn/3`), a run URI, a local folder. */
  readonly uri: string;
  /** Registered model name and version, for registry models. */
  readonly name?: string;
  readonly version?: string;
  /** The run that logged the model, when known. */
  readonly runId?: string;
  /** The model version's source (`models:/m-...`, `runs:/...`), when registered. */
  readonly source?: string;
  /** Where the model's files are, when known (for its MLmodel file). */
  readonly artifactUri?: string;
  /** For the cache key: changes whenever another model would be scored. */
  readonly fingerprint: string;
  /** For the tag `cairn.model_version`: `churn/3`, `runs:/<run>/model`, `sha256:...`. */
  readonly label: string;
}

/** Resolves a model URI; registry and run URIs need `registry`. Throws MlflowModelError. */
export async function resolveModel(ref: ModelRef, registry: ModelRegistry | undefined, signal?: AbortSignal): Promise<ResolvedModel> {
  if (ref.kind === "local") {
    const text = await readFile(join(ref.path, "MLmodel"), "utf8").catch(() => undefined);
    if (text === undefined) throw new MlflowModelError(ref.uri, `there is no MLflow model at ${ref.path} (no MLmodel file). Save one with mlflow.<flavor>.save_model(), or use a models:/ or runs:/ URI.`);
    // Not folderDigest: a large model folder digested synchronously stalled the event loop, and
    // with it other tasks' timers, lease renewals and the live view, at every key.
    const digest = await folderDigestAsync(ref.path);
    return { declared: ref.uri, uri: ref.path, artifactUri: ref.path, fingerprint: `sha256:${digest}`, label: `sha256:${digest.slice(0, 12)}` };
  }
  if (!registry) {
    throw new MlflowModelError(
      ref.uri,
      `a ${ref.kind === "run" ? "runs:/" : "models:/"} URI needs an MLflow tracking server with a model registry, and this flow is not tracked by one. ` +
        `Start one (\`mlflow server --host 127.0.0.1 --port 5000\`) and set MLFLOW_TRACKING_URI=http://127.0.0.1:5000, or score a local model folder.`,
    );
  }
  if (ref.kind === "version" || ref.kind === "alias") {
    const r =
      ref.kind === "version"
        ? await registry.get("model-versions/get", { name: ref.name, version: ref.version }, signal)
        : await registry.get("registered-models/alias", { name: ref.name, alias: ref.alias }, signal).catch(missingAlias);
    const mv = r?.model_version as Record<string, unknown> | undefined;
    if (!mv) throw new MlflowModelError(ref.uri, await notFound(ref, registry, signal));
    const version = String(mv.version);
    const source = typeof mv.source === "string" ? mv.source : undefined;
    const runId = typeof mv.run_id === "string" && mv.run_id ? mv.run_id : undefined;
    const dl = await registry.get("model-versions/get-download-uri", { name: ref.name, version }, signal);
    const artifactUri = typeof dl?.artifact_uri === "string" ? dl.artifact_uri : undefined;
    return {
      declared: ref.uri,
      uri: `models:/${ref.name}/${version}`,
      name: ref.name,
      version,
      ...(runId ? { runId } : {}),
      ...(source ? { source } : {}),
      ...(artifactUri ? { artifactUri } : {}),
      fingerprint: `models:/${ref.name}/${version};run=${runId ?? ""};source=${source ?? ""};created=${String(mv.creation_timestamp ?? "")}`,
      label: `${ref.name}/${version}`,
    };
  }
  if (ref.kind === "logged") {
    const r = await registry.get(`logged-models/${encodeURIComponent(ref.modelId)}`, {}, signal);
    const info = (r?.model as { info?: Record<string, unknown> } | undefined)?.info;
    if (!info) throw new MlflowModelError(ref.uri, `the MLflow server at ${registry.uri} has no logged model ${ref.modelId}.`);
    const runId = typeof info.source_run_id === "string" ? info.source_run_id : undefined;
    return {
      declared: ref.uri,
      uri: ref.uri,
      ...(runId ? { runId } : {}),
      ...(typeof info.artifact_uri === "string" ? { artifactUri: info.artifact_uri } : {}),
      fingerprint: `${ref.uri};run=${runId ?? ""}`,
      label: ref.uri,
    };
  }
  // runs:/<run>/<path>
  const run = await registry.get("runs/get", { run_id: ref.runId }, signal);
  const info = (run?.run as { info?: Record<string, unknown> } | undefined)?.info;
  if (!info) throw new MlflowModelError(ref.uri, `the MLflow server at ${registry.uri} has no run ${ref.runId}.`);
  // MLflow 3 keeps models logged in a run as logged models; MLflow 2 kept them in the run's artifacts.
  let artifactUri: string | undefined;
  let modelId: string | undefined;
  const found = await registry
    .post("logged-models/search", { experiment_ids: [String(info.experiment_id)], filter: `source_run_id = '${ref.runId}' AND name = '${ref.path.replaceAll("'", "")}'`, max_results: 1 }, signal)
    .catch(() => undefined);
  const logged = ((found?.models as Array<{ info?: Record<string, unknown> }> | undefined) ?? [])[0]?.info;
  if (logged && typeof logged.artifact_uri === "string") {
    artifactUri = logged.artifact_uri;
    modelId = typeof logged.model_id === "string" ? logged.model_id : undefined;
  } else if (typeof info.artifact_uri === "string") {
    const runArtifacts = info.artifact_uri.replace(/\/+$/, "");
    artifactUri = `${runArtifacts}/${ref.path}`;
    // Checked here, not left to `mlflow models predict`: it would fail only after its start-up, in a traceback.
    const underPath = await registry.listArtifacts(runArtifacts, ref.path, ref.runId);
    if (underPath && !underPath.includes("MLmodel")) throw new MlflowModelError(ref.uri, await noModelInRun(ref, String(info.experiment_id), runArtifacts, registry, signal));
  }
  return {
    declared: ref.uri,
    uri: ref.uri,
    runId: ref.runId,
    ...(artifactUri ? { artifactUri } : {}),
    fingerprint: `${ref.uri};model=${modelId ?? ""}`,
    label: ref.uri,
  };
}

/** Says what a run does hold, for a `runs:/<run>/<path>` that names no model in it. */
async function noModelInRun(ref: Extract<ModelRef, { kind: "run" }>, experimentId: string, runArtifacts: string, registry: ModelRegistry, signal?: AbortSignal): Promise<string> {
  const found = await registry
    .post("logged-models/search", { experiment_ids: [experimentId], filter: `source_run_id = '${ref.runId}'`, max_results: 50 }, signal)
    .catch(() => undefined);
  const logged = ((found?.models as Array<{ info?: Record<string, unknown> }> | undefined) ?? []).map((m) => m.info?.name).filter((n): n is string => typeof n === "string");
  const top = (await registry.listArtifacts(runArtifacts, undefined, ref.runId)) ?? [];
  const uris = (names: readonly string[]) => names.map((n) => `runs:/${ref.runId}/${n.replace(/\/$/, "")}`);
  const withModel: string[] = [];
  for (const entry of top.filter((e) => e.endsWith("/")).slice(0, 20)) if ((await registry.listArtifacts(runArtifacts, entry.slice(0, -1), ref.runId))?.includes("MLmodel")) withModel.push(entry);
  const models = [...new Set([...uris(logged), ...uris(withModel)])];
  return (
    `run ${ref.runId} has no MLflow model at "${ref.path}" (no model logged in it by that name, and no MLmodel file under its artifacts' ${ref.path}/). ` +
    (models.length ? `Models in the run: ${models.join(", ")}. ` : "") +
    `Its artifacts: ${top.length ? top.join(", ") : "none"}. ` +
    `Name the path the model was logged under (log_model(name=...) or artifact_path=...).`
  );
}

/**
 * MLflow answers a model's missing alias with HTTP 400 INVALID_PARAMETER_VALUE ("Registered model
 * alias nope not found."), not RESOURCE_DOES_NOT_EXIST as for a missing model or version: the same
 * "not there", said by {@link notFound} as those are. Any other refusal is MLflow's, as it said it.
 */
function missingAlias(error: unknown): undefined {
  if (MlflowApiError.is(error) && error.errorCode === "INVALID_PARAMETER_VALUE" && /not found|does not exist/i.test(error.serverMessage)) return undefined;
  throw error;
}

/** Says what the registry does have, for a version or alias it does not. */
async function notFound(ref: Extract<ModelRef, { kind: "version" | "alias" }>, registry: ModelRegistry, signal?: AbortSignal): Promise<string> {
  const model = (await registry.get("registered-models/get", { name: ref.name }, signal))?.registered_model as Record<string, unknown> | undefined;
  if (!model) return `the registry at ${registry.uri} has no registered model "${ref.name}". Register one (mlflow.register_model or log_model(registered_model_name=...)), or check the name.`;
  if (ref.kind === "alias") {
    const aliases = ((model.aliases as Array<{ alias: string; version: string }> | undefined) ?? []).map((a) => `@${a.alias} (version ${a.version})`);
    return `model "${ref.name}" has no alias "${ref.alias}". Aliases: ${aliases.length ? aliases.join(", ") : "none"}. Set one with MlflowClient().set_registered_model_alias().`;
  }
  const listed = await registry.get("model-versions/search", { filter: `name='${ref.name.replaceAll("'", "\\'")}'`, max_results: "200" }, signal).catch(() => undefined);
  const versions = ((listed?.model_versions as Array<{ version: string }> | undefined) ?? []).map((v) => Number(v.version)).sort((a, b) => a - b);
  return `model "${ref.name}" has no version ${ref.version}. Versions: ${versions.length ? versions.join(", ") : "none"}.`;
}

// ------------------------------------------------------------------ signature

/** One column of a column-based signature. */
export interface SignatureColumn {
  readonly name: string;
  readonly type: string;
  readonly required: boolean;
}

/** The column-based input signature of an MLmodel file, or undefined (none, or tensor-based: MLflow checks those itself). */
export function signatureColumns(mlmodelYaml: string): SignatureColumn[] | undefined {
  let doc: unknown;
  try {
    doc = parseYaml(mlmodelYaml);
  } catch {
    return undefined;
  }
  const inputs = (doc as { signature?: { inputs?: unknown } } | null)?.signature?.inputs;
  if (typeof inputs !== "string") return undefined;
  let cols: unknown;
  try {
    cols = JSON.parse(inputs);
  } catch {
    return undefined;
  }
  if (!Array.isArray(cols) || !cols.length) return undefined;
  const out: SignatureColumn[] = [];
  for (const c of cols) {
    if (!isPlainObject(c) || typeof c.name !== "string") return undefined; // tensors or unnamed columns
    out.push({ name: c.name, type: typeof c.type === "string" ? c.type : JSON.stringify(c.type), required: c.required !== false });
  }
  return out;
}

/** Columns and the JSON types seen in each, of the input about to be scored; undefined when not tabular. */
export interface InputShape {
  readonly columns: readonly string[];
  /** JSON types seen per column (`number`, `integer`, `string`, `boolean`); absent for a CSV file. */
  readonly types?: Readonly<Record<string, readonly string[]>>;
}

/** The problems of `shape` against `signature`: missing required columns, values of the wrong type. */
export function checkSignature(signature: readonly SignatureColumn[], shape: InputShape): string[] {
  const problems: string[] = [];
  for (const col of signature) {
    if (!shape.columns.includes(col.name)) {
      if (col.required) problems.push(`missing column "${col.name}" (${col.type}, required)`);
      continue;
    }
    const seen = shape.types && Object.hasOwn(shape.types, col.name) ? shape.types[col.name] : undefined;
    if (!seen) continue;
    const ok = compatible(col.type);
    if (!ok) continue;
    const bad = seen.filter((t) => !ok.includes(t));
    if (bad.length) problems.push(`column "${col.name}" holds ${bad.map(article).join(" and ")} values; the model expects ${col.type}`);
  }
  if (problems.length) {
    const extra = shape.columns.filter((c) => !signature.some((s) => s.name === c));
    if (extra.length) problems.push(`columns the model does not know (ignored by MLflow): ${extra.map((c) => `"${c}"`).join(", ")}`);
  }
  return problems;
}

function compatible(type: string): string[] | undefined {
  switch (type) {
    case "double":
    case "float":
      return ["number", "integer"];
    case "long":
    case "integer":
      return ["integer"];
    case "boolean":
      return ["boolean"];
    case "string":
    case "binary":
      return ["string"];
    case "datetime":
      return ["string", "number", "integer"];
    default:
      return undefined; // arrays, objects, maps: left to MLflow
  }
}

function article(t: string): string {
  return t === "integer" ? "an integer" : t === "number" ? "a non-integer number" : `a ${t}`;
}

function jsonType(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined; // missing values: MLflow decides
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  if (typeof v === "string" || typeof v === "boolean") return typeof v;
  return Array.isArray(v) ? "array" : "object";
}

function shapeOfRecords(rows: readonly Record<string, unknown>[]): InputShape {
  // A Map: a column may be named `constructor` or `__proto__`, which a plain object's lookup takes from its prototype.
  const types = new Map<string, Set<string>>();
  for (const row of rows) {
    for (const [k, v] of Object.entries(row)) {
      let seen = types.get(k);
      if (!seen) types.set(k, (seen = new Set()));
      const t = jsonType(v);
      if (t) seen.add(t);
    }
  }
  return { columns: [...types.keys()], types: Object.fromEntries([...types].map(([k, s]) => [k, [...s]])) };
}

/** `a (number), b (string)` for messages. */
function describeShape(shape: InputShape): string[] {
  return shape.columns.map((c) => {
    const t = shape.types?.[c];
    return t && t.length ? `${c} (${t.join("|")})` : c;
  });
}

/**
 * Rephrases MLflow's schema-enforcement failure (from `mlflow models predict` stderr or a
 * served model's error body), or undefined when `text` holds none.
 */
export function rephraseMlflowSchemaError(text: string): { problem: string; schema?: string } | undefined {
  const flat = text.replace(/\\n/g, "\n");
  const m = /Failed to enforce schema of data[\s\S]*? with schema '([^\n]*?)'\.\s*Error:\s*([\s\S]*?)(?:",|"\}|\n\S+Error|\n\s*\n|$)/.exec(flat);
  if (m) return { problem: m[2]!.trim().replace(/\s+/g, " "), schema: m[1]! };
  const other = /(Incompatible input types[^\n]*|Model is missing inputs[^\n]*)/.exec(flat);
  return other ? { problem: other[1]!.trim() } : undefined;
}

// ------------------------------------------------------------------ the input

/** The input, ready for MLflow: a file to pass to `predict`, or a body to POST. */
interface PreparedInput {
  /** `json` or `csv`. */
  contentType: "json" | "csv";
  /** The body / file content. */
  body: string;
  shape?: InputShape;
}

/** Wire formats of MLflow's scoring protocol. */
export type ModelInputFormat = "dataframe_split" | "dataframe_records" | "instances";

const PAYLOAD_KEYS = ["dataframe_split", "dataframe_records", "instances", "inputs"];

/** Reads `data` (rows, or an Artifact of a .csv or .json file) into what MLflow takes. */
export async function prepareModelInput(nodeId: string, data: unknown, format: ModelInputFormat): Promise<PreparedInput> {
  if (Array.isArray(data)) {
    if (!data.length) throw new CairnError(`Task "${nodeId}": input "data" holds no rows; pass at least one record to score.`);
    const bad = data.findIndex((r) => !isPlainObject(r));
    if (bad >= 0) {
      throw new CairnError(`Task "${nodeId}": input "data" must be an array of records (objects of column values), but data[${bad}] is ${describeValue(data[bad])}.`);
    }
    const rows = data as Record<string, unknown>[];
    const shape = shapeOfRecords(rows);
    return { contentType: "json", body: JSON.stringify({ [format]: toFormat(rows, shape.columns, format) }), shape };
  }
  if (isArtifact(data)) return prepareArtifact(nodeId, data, format);
  throw new CairnError(
    `Task "${nodeId}": input "data" must be an array of records ([{ column: value, ... }]) or an Artifact of a .csv or .json file, got ${describeValue(data)}.`,
  );
}

function toFormat(rows: Record<string, unknown>[], columns: readonly string[], format: ModelInputFormat): unknown {
  if (format === "dataframe_split") return { columns, data: rows.map((r) => columns.map((c) => (Object.hasOwn(r, c) ? r[c] : null) ?? null)) };
  return rows;
}

async function prepareArtifact(nodeId: string, artifact: Artifact, format: ModelInputFormat): Promise<PreparedInput> {
  const ext = extname(artifact.path).toLowerCase();
  const text = await readFile(artifact.path, "utf8");
  if (ext === ".csv") {
    const header = text.split(/\r?\n/, 1)[0] ?? "";
    return { contentType: "csv", body: text, shape: { columns: splitCsvLine(header) } };
  }
  if (ext !== ".json") throw new CairnError(`Task "${nodeId}": the data artifact ${artifact.artifactPath} is neither .csv nor .json; write the rows as CSV (with a header) or JSON.`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new CairnError(`Task "${nodeId}": the data artifact ${artifact.artifactPath} is not valid JSON (${(error as Error).message}).`);
  }
  if (Array.isArray(value)) return prepareModelInput(nodeId, value, format);
  if (isPlainObject(value)) {
    const key = PAYLOAD_KEYS.find((k) => k in value);
    if (key) {
      let shape: InputShape | undefined;
      const v = value[key];
      if (key === "dataframe_split" && isPlainObject(v) && Array.isArray(v.columns) && Array.isArray(v.data)) {
        const cols = v.columns.map(String);
        shape = shapeOfRecords((v.data as unknown[]).filter(Array.isArray).map((row) => Object.fromEntries(cols.map((c, i) => [c, (row as unknown[])[i]]))));
        shape = { ...shape, columns: cols };
      } else if ((key === "dataframe_records" || key === "instances") && Array.isArray(v) && v.every(isPlainObject)) {
        shape = shapeOfRecords(v as Record<string, unknown>[]);
      }
      return { contentType: "json", body: text, ...(shape ? { shape } : {}) };
    }
  }
  throw new CairnError(
    `Task "${nodeId}": the data artifact ${artifact.artifactPath} holds neither an array of records nor an MLflow scoring payload ({"dataframe_split": ...}, {"dataframe_records": ...}, {"instances": ...}, {"inputs": ...}).`,
  );
}

function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') (cur += '"'), i++;
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") out.push(cur), (cur = "");
    else cur += c;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}

// ------------------------------------------------------------------ running

/** What to score. */
export interface MlflowModelSpec {
  /** The model URI as declared. */
  model: string;
  /** The Python with mlflow (its folder goes first on PATH: `models serve` starts uvicorn from there). */
  python: string;
  /** Where `python` came from (the task's option, CAIRN_PYTHON, a .venv), said when it cannot start. */
  pythonOrigin?: ProcessSpec["origin"];
  inputs: Readonly<Record<string, unknown>>;
  /** @default "predict" */
  mode?: "predict" | "serve";
  /** @default "dataframe_split" */
  format?: ModelInputFormat;
  /** The registry: @default the task's MLflow tracking server, if any */
  registryUri?: string;
  /** Serve mode: how long the server may take to answer /ping, in ms. @default 180000 */
  startTimeoutMs?: number;
  /** Folder a relative local model path resolves against. @default process.cwd() */
  cwd?: string;
  env?: ProcessSpec["env"];
  killGraceMs?: number;
}

/** Resolutions of declared models, kept on the flow run's scope, so the cache key and the run use the same version. */
const RESOLUTIONS = scopeKey<Map<string, Promise<ResolvedModel>>>("cairn mlflow-model resolutions");

/** The registry the task would use: the explicit one, else the task's MLflow tracking server. */
export function registryUriFor(ctx: Pick<TaskContext, "tracking">, explicit?: string): string | undefined {
  return explicit ?? (ctx.tracking.capabilities.mlflowClients ? ctx.tracking.uri : undefined);
}

/**
 * Resolves `model` once per flow run (memoised on the run's scope by declared URI and registry),
 * so that the cache key computed before the run and the run itself see the same version.
 */
export function resolveModelOnce(
  model: string,
  ctx: { readonly scope: RunScope; readonly tracking: TaskContext["tracking"]; readonly signal?: AbortSignal },
  options: { registryUri?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ResolvedModel> {
  const registryUri = registryUriFor(ctx, options.registryUri);
  const resolutions = ctx.scope.state(RESOLUTIONS, () => new Map());
  const key = `${model}\0${registryUri ?? ""}\0${options.cwd ?? ""}`;
  let p = resolutions.get(key);
  if (!p) {
    p = (async () => {
      const ref = parseModelUri(model, options.cwd);
      const registry = ref.kind === "local" || !registryUri ? undefined : await ModelRegistry.connect(registryUri, options.env);
      return resolveModel(ref, registry, ctx.signal);
    })();
    p.catch(() => resolutions.delete(key)); // a failure is not remembered: the next attempt asks again
    resolutions.set(key, p);
  }
  return p;
}

/**
 * The part of a model task's code fingerprint known only at run time: what the model URI
 * resolves to now (registry version, its run and source; a local folder's digest).
 */
export async function resolveModelCode(
  model: string,
  ctx: { readonly scope: RunScope; readonly tracking: TaskContext["tracking"]; readonly signal?: AbortSignal },
  options: { registryUri?: string; cwd?: string } = {},
): Promise<string> {
  return (await resolveModelOnce(model, ctx, options)).fingerprint;
}

/**
 * A change of a registry model's fingerprint ({@link resolveModel}) in words, for `explain` and
 * the run report: an alias that moved (`model alias \`churn@champion\` moved from version 3 to
 * version 4`), a version registered again, or a local model folder whose files changed. Undefined
 * for what it cannot read (a `runs:/` or logged model's fingerprint), which keeps the generic words.
 */
export function describeModelChange(ref: ModelRef, before: string, after: string): string | undefined {
  if (ref.kind === "local") return `the files of the local model folder changed (content ${before.slice(0, 19)}… → ${after.slice(0, 19)}…)`;
  if (ref.kind !== "alias" && ref.kind !== "version") return undefined;
  const a = registryFingerprint(before);
  const b = registryFingerprint(after);
  if (!a || !b || a.name !== ref.name || b.name !== ref.name) return undefined;
  if (a.version !== b.version) return ref.kind === "alias" ? `model alias \`${ref.name}@${ref.alias}\` moved from version ${a.version} to version ${b.version}` : undefined;
  const alias = ref.kind === "alias" ? ` (alias \`${ref.alias}\`)` : "";
  return `version ${b.version} of model \`${ref.name}\`${alias} is another model than before: it was registered again (another run, source or creation time)`;
}

/** The name and version a registry model's fingerprint holds (see {@link resolveModel}), or undefined. */
function registryFingerprint(fingerprint: string): { name: string; version: string } | undefined {
  const m = /^models:\/(.+)\/(\d+);run=[^;]*;source=.*;created=[^;]*$/s.exec(fingerprint);
  return m ? { name: m[1]!, version: m[2]! } : undefined;
}

/**
 * A model task takes one input, `data`: any other is refused, when the flow is built
 * (`mlflowModel`'s checkCall) and again before the task runs. `fix`: how to drop the others, when
 * the caller knows better than "pass only data" (an item input of map() or sweep()).
 */
export function checkModelInputs(nodeId: string, inputs: Readonly<Record<string, unknown>>, fix?: string): void {
  const extra = Object.keys(inputs).filter((k) => k !== "data" && inputs[k] !== undefined);
  if (!extra.length) return;
  throw new CairnError(
    `Task "${nodeId}": a model task takes one input, "data" (rows or an Artifact of a .csv or .json file); got also ${extra.map((k) => `"${k}"`).join(", ")}. ` +
      (fix ?? `Pass only { data: ... }.`),
  );
}

/** Runs one attempt of a model task; see the module comment. */
export async function runMlflowModel(spec: MlflowModelSpec, ctx: TaskContext): Promise<{ predictions: unknown[]; modelVersion?: string; model: ResolvedModel }> {
  const format = spec.format ?? "dataframe_split";
  checkModelInputs(ctx.nodeId, spec.inputs);
  // Everything is checked before any process starts: the model, then the input against its signature.
  const model = await resolveModelOnce(spec.model, ctx, { ...(spec.registryUri ? { registryUri: spec.registryUri } : {}), ...(spec.cwd ? { cwd: spec.cwd } : {}) });
  // Cairn's tags, which ctx.log.tag() refuses to a task.
  systemTag(ctx, "cairn.model_version", model.label);
  systemTag(ctx, "cairn.model_uri", model.uri);
  if (model.runId) systemTag(ctx, "cairn.model_run_id", model.runId);
  const input = await prepareModelInput(ctx.nodeId, spec.inputs.data, format);
  const registryUri = registryUriFor(ctx, spec.registryUri);
  const signature = await readSignature(model, registryUri);
  if (signature && input.shape) {
    const problems = checkSignature(signature, input.shape);
    if (problems.length) throw new ModelInputError(ctx.nodeId, describeModel(model), problems, signature.map((c) => `${c.name} (${c.type})`), describeShape(input.shape));
  }

  const env: Record<string, string | undefined> = { MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR: "false", ...spec.env };
  if (registryUri) env.MLFLOW_TRACKING_URI = env.MLFLOW_REGISTRY_URI = registryUri;
  if (spec.python.includes("/")) {
    const path = env.PATH ?? process.env.PATH;
    const bin = dirname(resolve(spec.python));
    env.PATH = path ? `${bin}:${path}` : bin;
  }
  const fail = (text: string) => {
    const r = rephraseMlflowSchemaError(text);
    if (!r) return undefined;
    const expected = signature?.map((c) => `${c.name} (${c.type})`) ?? (r.schema ? [r.schema] : []);
    return new ModelInputError(ctx.nodeId, describeModel(model), [`MLflow refused the input: ${r.problem}`], expected, input.shape ? describeShape(input.shape) : []);
  };
  const predictions =
    spec.mode === "serve" ? await serve(spec, model, input, env, ctx, fail) : await predict(spec, model, input, env, ctx, fail);
  return { predictions, ...(model.version ? { modelVersion: model.version } : {}), model };
}

function describeModel(m: ResolvedModel): string {
  const what = m.name ? `"${m.name}" version ${m.version}` : m.uri;
  return m.declared !== m.uri ? `${what} (${m.declared})` : what;
}

async function readSignature(model: ResolvedModel, registryUri: string | undefined): Promise<SignatureColumn[] | undefined> {
  if (!model.artifactUri) return undefined;
  const text = registryUri && !isAbsolute(model.artifactUri)
    ? await (await ModelRegistry.connect(registryUri)).readArtifact(model.artifactUri, "MLmodel")
    : await readLocal(model.artifactUri, "MLmodel");
  return text === undefined ? undefined : signatureColumns(text);
}

async function predict(
  spec: MlflowModelSpec,
  model: ResolvedModel,
  input: PreparedInput,
  env: Record<string, string | undefined>,
  ctx: TaskContext,
  fail: (text: string) => ModelInputError | undefined,
): Promise<unknown[]> {
  const work = await makeTaskFolder("predict");
  try {
    const inFile = join(work, `input.${input.contentType}`);
    const outFile = join(work, "predictions.json");
    await writeFile(inFile, input.body);
    const args = ["models", "predict", "-m", model.uri, "-i", inFile, "-t", input.contentType, "-o", outFile, "--env-manager", "local"];
    try {
      await runProcess(
        {
          command: spec.python,
          ...(spec.pythonOrigin ? { origin: spec.pythonOrigin } : {}),
          args: ["-m", "mlflow", ...args],
          display: ["mlflow", ...args].join(" "),
          inputs: spec.inputs,
          env,
          tailLines: 60,
          ...(spec.cwd ? { cwd: spec.cwd } : {}),
          ...(spec.killGraceMs !== undefined ? { killGraceMs: spec.killGraceMs } : {}),
        },
        ctx,
      );
    } catch (error) {
      if (ProcessFailedError.is(error)) throw fail(error.stderrTail.join("\n")) ?? error;
      throw error;
    }
    return predictionsOf(await readFile(outFile, "utf8"), ctx.nodeId);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function predictionsOf(text: string, nodeId: string): unknown[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CairnError(`Task "${nodeId}": MLflow returned predictions that are not JSON: ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (isPlainObject(value) && Array.isArray(value.predictions)) return value.predictions;
  if (isPlainObject(value) && isPlainObject(value.predictions)) return [value.predictions];
  if (Array.isArray(value)) return value;
  return [value];
}

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

async function serve(
  spec: MlflowModelSpec,
  model: ResolvedModel,
  input: PreparedInput,
  env: Record<string, string | undefined>,
  ctx: TaskContext,
  fail: (text: string) => ModelInputError | undefined,
): Promise<unknown[]> {
  if (ctx.signal.aborted) throw ctx.signal.reason ?? new CancelledError();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = ["models", "serve", "-m", model.uri, "-h", "127.0.0.1", "-p", String(port), "-w", "1", "--env-manager", "local"];
  const display = ["mlflow", ...args].join(" ");
  if (spec.cwd !== undefined) await checkWorkingFolder(ctx.nodeId, display, spec.cwd);
  const tracked = ctx.tracking.capabilities.mlflowClients;
  // Loaded on first use, as in process.ts: flows without processes never load execa.
  const { execa } = await import("execa");
  const guard = prepareProcessGroup();
  const child = execa(spec.python, ["-m", "mlflow", ...args], {
    cwd: spec.cwd ?? process.cwd(),
    env: { PYTHONUNBUFFERED: "1", ...env, MLFLOW_RUN_ID: undefined, ...(tracked ? { MLFLOW_TRACKING_URI: env.MLFLOW_TRACKING_URI ?? ctx.tracking.uri } : {}), ...guard.env } as unknown as Record<string, string>,
    extendEnv: true,
    detached: true,
    cleanup: false,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    buffer: false,
    reject: false,
  });
  const pid = child.pid;
  // Killed with Node however Node ends (kill -9 included), like every process group Cairn starts.
  guard.adopt(pid);
  const log = createWriteStream(await ctx.artifacts.path("logs/serve.txt")).on("error", () => {});
  const tail: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      log.write(`${ctx.mask(line)}\n`);
      ctx.logger.debug(line);
    });
  }
  let exited = false;
  void child.then(() => {
    exited = true;
  });
  try {
    const deadline = Date.now() + (spec.startTimeoutMs ?? 180_000);
    for (;;) {
      if (ctx.signal.aborted) throw ctx.signal.reason ?? new CancelledError();
      if (exited) {
        throw new ProcessFailedError(ctx.nodeId, display, child.exitCode ?? undefined, child.signalCode ?? undefined, tail.slice(-20));
      }
      const ok = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline) {
        throw new CairnError(`Task "${ctx.nodeId}": \`${display}\` did not answer ${url}/ping within ${spec.startTimeoutMs ?? 180_000} ms. Its last lines:\n  | ${tail.slice(-20).join("\n  | ")}`);
      }
      await delay(250);
    }
    const res = await fetch(`${url}/invocations`, {
      method: "POST",
      headers: { "Content-Type": input.contentType === "csv" ? "text/csv" : "application/json" },
      body: input.body,
      signal: ctx.signal,
    });
    const text = await res.text();
    if (!res.ok) {
      throw fail(text) ?? new CairnError(`Task "${ctx.nodeId}": the served model answered HTTP ${res.status}: ${text.slice(0, 1000)}`);
    }
    return predictionsOf(text, ctx.nodeId);
  } finally {
    if (pid !== undefined) await endProcessGroup(pid, spec.killGraceMs ?? 5000);
    await new Promise<void>((r) => log.end(() => r()));
  }
}
