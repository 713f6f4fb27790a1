/**
 * `mlflowModel(name, "models:/churn@champion")`: a task that scores rows with an MLflow
 * model, through `mlflow models predict` (default) or a model server started for the
 * task (`mode: "serve"`). The model URI is resolved when the task runs (an alias is
 * pinned to its current version); the input is checked against the model's signature
 * before anything starts. Outputs: `{ predictions, modelVersion? }`.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { NO_RETRY, OptionError, TaskFileError, type Artifact, type TaskDefinition } from "@cairn/core";
import { checkName, configDigest, kindTask, resolveTaskFile, type KindTask } from "@cairn/dsl/kind";
import { checkProcessOptions, processEnv, pythonEnvironment, pythonFor, pythonPath, type ProcessOptions } from "@cairn/process/spawn";
import { checkModelInputs, describeModelChange, parseModelUri, resolveModelCode, runMlflowModel, type ModelInputFormat } from "./run-model.ts";

/** Options of `mlflowModel()`. */
export interface MlflowModelOptions extends ProcessOptions {
  /** `predict`: `mlflow models predict` on a file; `serve`: `mlflow models serve` on a free port, one POST /invocations, then stopped. @default "predict" */
  mode?: "predict" | "serve" | undefined;
  /** How rows are sent (MLflow's scoring protocol). @default "dataframe_split" */
  format?: ModelInputFormat | undefined;
  /** The Python with mlflow. @default `$CAIRN_PYTHON`, the active virtualenv, the nearest .venv, python3 */
  python?: string | undefined;
  /** The MLflow server with the model registry. @default the flow's MLflow tracking server */
  registryUri?: string | undefined;
  /** Serve mode: how long the model server may take to start, in ms. @default 180000 */
  startTimeoutMs?: number | undefined;
}

/** Inputs of a model task. */
export type MlflowModelInputs = {
  /** Rows (records of column values), or an Artifact of a .csv (with a header) or .json file. */
  data: readonly Record<string, unknown>[] | Artifact;
};

/** Outputs of a model task. */
export type MlflowModelOutputs = {
  /** One prediction per row (what the model's predict returns, as JSON). */
  predictions: unknown[];
  /** The registry version that was scored, for models:/ URIs. */
  modelVersion?: string;
};

const MODES = new Set(["predict", "serve"]);
const FORMATS = new Set(["dataframe_split", "dataframe_records", "instances"]);

/**
 * Declares a task that scores its `data` input with an MLflow model.
 * @example
 * const score = mlflowModel("score", "models:/churn@champion");
 * // in build(): const s = score({ data: rows });  s.predictions, s.modelVersion
 */
export function mlflowModel(name: string, uri: string, options: MlflowModelOptions = {}): KindTask<MlflowModelInputs, MlflowModelOutputs> {
  checkName(name);
  if (typeof options !== "object" || options === null) throw new OptionError(`mlflowModel "${name}" options`, "{ mode?, format?, python?, registryUri? }", options);
  checkProcessOptions(name, options, { kind: "mlflowModel", keys: ["mode", "format", "python", "registryUri", "startTimeoutMs"] });
  const where = (k: string) => `task "${name}" option \`${k}\``;
  if (options.mode !== undefined && !MODES.has(options.mode)) throw new OptionError(where("mode"), `"predict" or "serve"`, options.mode);
  if (options.format !== undefined && !FORMATS.has(options.format)) throw new OptionError(where("format"), `"dataframe_split", "dataframe_records" or "instances"`, options.format);
  if (options.registryUri !== undefined && !/^https?:\/\//.test(options.registryUri)) throw new OptionError(where("registryUri"), "an http(s) URL of an MLflow server", options.registryUri);
  if (options.startTimeoutMs !== undefined && !(options.startTimeoutMs > 0)) throw new OptionError(where("startTimeoutMs"), "a number of milliseconds > 0", options.startTimeoutMs);

  const ref = parseModelUri(uri);
  // A local model folder resolves like a script file: against the declaring module's folder, then the working directory.
  const model = ref.kind === "local" && !uri.startsWith("file:") && !isAbsolute(uri) ? resolveLocalModel(name, uri) : ref.kind === "local" ? ref.path : uri;
  // A local folder's content is not read here: declaring a flow with a large model would stall
  // its loading. It enters the key where the key is made (resolveCode: the folder's digest, read
  // without blocking), so an edited file there is a miss all the same.
  const extras = [
    ...(options.mode === "serve" ? ["mode=serve"] : []),
    ...(options.format ? [`format=${options.format}`] : []),
    ...(options.env && Object.keys(options.env).length ? [`env=${configDigest(Object.entries(options.env).sort())}`] : []),
  ];
  const registry = options.registryUri ? { registryUri: options.registryUri } : {};

  const definition: TaskDefinition = {
    name,
    kind: "mlflow-model",
    code: [`mlflow-model:${ref.kind === "local" ? "local" : uri}`, ...extras].join(";"),
    retry: NO_RETRY,
    cache: {},
    env: [],
    // The version behind a models:/ or runs:/ URI is known only when the flow runs: it enters
    // the cache key, so a new version behind the same alias is a miss.
    resolveCode: (ctx) => resolveModelCode(model, ctx, registry),
    // The version an alias named is in what the key records: a move is said as one.
    describeResolved: (before, after) => describeModelChange(ref, before, after),
    // The Python that scores it (mlflow and the model's flavour), and the packages installed for it, by content.
    environment: () => pythonEnvironment(pythonFor(options.python).python),
    run: async (inputs, ctx) => {
      const { env } = processEnv(options, ctx, { PYTHONPATH: pythonPath() });
      const r = await runMlflowModel(
        {
          model,
          ...pythonFor(options.python),
          inputs,
          env,
          ...registry,
          ...(options.mode ? { mode: options.mode } : {}),
          ...(options.format ? { format: options.format } : {}),
          ...(options.cwd ? { cwd: options.cwd } : {}),
          ...(options.startTimeoutMs !== undefined ? { startTimeoutMs: options.startTimeoutMs } : {}),
          ...(options.killGraceMs !== undefined ? { killGraceMs: options.killGraceMs } : {}),
        },
        ctx,
      );
      return { predictions: r.predictions, ...(r.modelVersion !== undefined ? { modelVersion: r.modelVersion } : {}) };
    },
  };
  return kindTask({
    definition,
    // An input other than `data` fails the build, not the run after the upstream tasks ran; with an
    // input schema (which may rename inputs) it is checked at run time only.
    checkCall: (inputs, schema, call) => {
      if (schema) return;
      const items = call.via === "call" ? [] : call.itemInputs.filter((k) => k !== "data");
      const fix = !items.length ? undefined : call.via === "map" ? `Give map() \`as: "data"\`, and no other input.` : `A sweep's points may set only "data".`;
      checkModelInputs(name, inputs, fix);
    },
  });
}

function resolveLocalModel(taskName: string, uri: string): string {
  try {
    return dirname(resolveTaskFile(taskName, join(uri, "MLmodel")));
  } catch (error) {
    if (!TaskFileError.is(error)) throw error;
    const folder = error.tried.map(dirname).find((d) => existsSync(d) && statSync(d).isDirectory());
    throw new TaskFileError(taskName, uri, error.tried.map(dirname), folder ? "holds no MLmodel file (not an MLflow model folder)" : "is not a folder");
  }
}
