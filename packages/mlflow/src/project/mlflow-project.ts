/**
 * `mlflowProject(name, { uri: ".", entryPoint: "train" })`: a task that runs one entry
 * point of a local MLflow project. The inputs are the entry point's parameters, checked
 * against the MLproject file when the flow is built and again, with their values, before
 * anything starts. Tracked by MLflow, `mlflow run` runs the project inside the task's run;
 * otherwise the entry point's command runs directly. Outputs: what the entry point writes
 * to CAIRN_OUTPUTS (cairn_task.set_outputs), plus `{ runId }`.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isRef, NO_RETRY, OptionError, TaskFileError, type TaskDefinition } from "@cairn/core";
import type { StandardSchemaV1 } from "@standard-schema/spec";
// Relative until packages/core/src/executors/index.ts exports the MLflow project executor.
import {
  checkProjectInputs,
  entryPointTemplate,
  findMlproject,
  getEntryPoint,
  loadMlproject,
  MlflowProjectError,
  mlflowProjectFingerprint,
  pathParameterDigests,
  projectRunMode,
  runMlflowProject,
  unusedEnvironmentWarning,
  type MlflowEntryPoint,
  type MlflowProject,
} from "./run-project.ts";
import { checkName, configDigest, cwdFingerprint, kindTask, resolveTaskFile, validateOwnOutputs, type KindTask } from "@cairn/dsl/kind";
import { checkProcessOptions, processEnv, pythonEnvironment, pythonFor, pythonPath, type ProcessOptions } from "@cairn/process/spawn";

/** Options of `mlflowProject()`. */
export interface MlflowProjectOptions extends ProcessOptions {
  /**
   * The project folder, holding its MLproject file: absolute, a file: URL, or relative to the
   * folder of the module that declares the task (else the working directory). Local folders only.
   */
  uri: string | URL;
  /** Folder that relative `path` inputs resolve against; the entry point itself runs in the project folder, as with `mlflow run`. @default the working directory */
  cwd?: string | undefined;
  /** The entry point to run. @default "main" */
  entryPoint?: string | undefined;
  /** The Python with mlflow; its folder goes first on PATH, so `python` in the commands is this one. @default `$CAIRN_PYTHON`, the active virtualenv, the nearest .venv, python3 */
  python?: string | undefined;
  /**
   * `auto`: `mlflow run` when the flow is tracked by an MLflow server, else the entry point's command directly.
   * `direct`: always the command (no MLflow CLI start-up; the process still logs into the task's run through MLFLOW_RUN_ID).
   * @default "auto"
   */
  mode?: "auto" | "direct" | undefined;
  /** Tracked by MLflow, start `python -m mlflow run ...` instead of calling mlflow.projects.run in a small driver (the same run; the CLI adds 2-3 s of start-up). @default false */
  cli?: boolean | undefined;
}

/** Outputs every MLflow project task has. */
export type MlflowProjectOutputs = {
  /** The MLflow run the project ran in: the task's own run. */
  runId: string;
};

/**
 * Declares a task that runs an entry point of a local MLflow project.
 * @example
 * const train = mlflowProject("train", { uri: ".", entryPoint: "train" })
 *   .input<{ train_path: Artifact; c?: number }>()
 *   .output<{ model: Artifact }>();
 */
export function mlflowProject(name: string, options: MlflowProjectOptions): KindTask<Record<string, unknown>, MlflowProjectOutputs, MlflowProjectOutputs> {
  checkName(name);
  if (typeof options !== "object" || options === null) throw new OptionError(`mlflowProject "${name}" options`, "{ uri, entryPoint?, env?, python? }", options);
  checkProcessOptions(name, options, { kind: "mlflowProject", keys: ["uri", "entryPoint", "python", "mode", "cli"] });
  const where = (k: string) => `task "${name}" option \`${k}\``;
  const entryPointName = options.entryPoint ?? "main";
  if (typeof entryPointName !== "string" || !entryPointName) throw new OptionError(where("entryPoint"), "an entry point name", options.entryPoint);
  if (options.python !== undefined && (typeof options.python !== "string" || !options.python)) throw new OptionError(where("python"), "a Python executable", options.python);
  if (options.mode !== undefined && options.mode !== "auto" && options.mode !== "direct") throw new OptionError(where("mode"), `"auto" or "direct"`, options.mode);

  const dir = resolveProjectDir(name, options.uri);
  const project = loadMlproject(dir);
  const entryPoint = getEntryPoint(project, entryPointName);
  entryPointTemplate(project, entryPoint, name); // a bad command fails when the flow is declared
  const fingerprint = mlflowProjectFingerprint(project);
  const extras = [
    `entry=${entryPointName}`,
    ...(options.mode === "direct" ? ["mode=direct"] : []),
    // Relative `path` inputs resolve against it, and the Python's libraries run the project: both are part of what it computes, as given.
    ...(options.cwd ? [cwdFingerprint(options.cwd)] : []),
    ...(options.python ? [`python=${JSON.stringify(options.python)}`] : []),
    ...(options.env && Object.keys(options.env).length ? [`env=${configDigest(Object.entries(options.env).sort())}`] : []),
    ...rewrittenDefaults(entryPoint),
  ];

  const run = (schema: StandardSchemaV1 | undefined): TaskDefinition["run"] => async (inputs, ctx) => {
    const now = mlflowProjectFingerprint(project);
    if (now.code !== fingerprint.code) {
      ctx.logger.warn(`${project.dir} changed since the flow was loaded; its cache key still uses the old content. Reload the flow to pick up the change.`);
    }
    const { env } = processEnv(options, ctx, { PYTHONPATH: pythonPath() });
    const current = loadMlproject(project.dir); // the file as it is now: what runs is what is checked
    const python = pythonFor(options.python);
    const mode = options.mode ?? "auto";
    const direct =
      projectRunMode(mode, ctx.tracking.capabilities.mlflowClients) === "mlflow" ? undefined : mode === "direct" ? `the task's \`mode: "direct"\`` : "the flow is not tracked by an MLflow server";
    const unusedEnv = unusedEnvironmentWarning(current, python.python, python.pythonOrigin.what, direct);
    if (unusedEnv) ctx.logger.warn(unusedEnv);
    const r = await runMlflowProject(
      {
        project: current,
        entryPoint: entryPointName,
        ...python,
        inputs,
        env,
        mode,
        ...(options.cli ? { cli: true } : {}),
        ...(options.cwd ? { cwd: options.cwd } : {}),
        ...(fingerprint.gitCommit ? { gitCommit: fingerprint.gitCommit } : {}),
        ...(options.killGraceMs !== undefined ? { killGraceMs: options.killGraceMs } : {}),
      },
      ctx,
    );
    const outputs = await validateOwnOutputs(schema, r.outputs, ctx);
    return { ...outputs, runId: r.runId };
  };

  return kindTask({
    ownOutputs: run,
    definition: {
      name,
      kind: "mlflow-project",
      code: [`mlflow-project:${fingerprint.code}`, ...extras].join(";"),
      codeContents: { noun: "project file", files: fingerprint.files },
      writesOutputs: "with cairn_task.set_outputs({...}) in Python, or as JSON written to $CAIRN_OUTPUTS, before its entry point exits",
      // A `path` parameter counts by the content of the file it names, beside its text.
      inputFiles: (inputs) => pathParameterDigests(project, entryPoint, inputs, options.cwd),
      // The Python its entry points run with, and the packages installed for it, by content.
      environment: () => pythonEnvironment(pythonFor(options.python).python),
      retry: NO_RETRY,
      cache: {},
      env: [],
      run: run(undefined),
    },
    checkCall: (inputs, schema) => checkCall(project, entryPointName, inputs, schema, options.cwd),
  });
}

/**
 * For the key: the defaults whose text changed when Cairn began to give them as `mlflow run` does
 * (`1.0` had run and been logged as "1", `true` as "true"), so that results made with the old
 * text are not reused; the key of an entry point whose defaults read the same either way (most:
 * `3`, `0.5`, `plain`) stays as it was.
 */
function rewrittenDefaults(entryPoint: MlflowEntryPoint): string[] {
  const changed = entryPoint.parameters.filter((p) => p.default !== undefined && p.defaultText !== undefined && p.defaultText !== String(p.default));
  return changed.length ? [`defaults=${configDigest(changed.map((p) => [p.name, p.defaultText]))}`] : [];
}

/** At build(): no unknown parameter, no required one missing, literal values of the right type. */
function checkCall(project: MlflowProject, entryPointName: string, inputs: Record<string, unknown>, schema: StandardSchemaV1 | undefined, cwd?: string): void {
  if (schema) return; // the schema may rename or default inputs; checked at run time
  const ep = getEntryPoint(project, entryPointName);
  // Paths may be written by upstream tasks before this one runs: their existence is checked at run time.
  checkProjectInputs(project, ep, inputs, { deferred: (v) => containsRef(v), checkPaths: false, ...(cwd ? { cwd } : {}) });
}

function containsRef(value: unknown): boolean {
  if (isRef(value)) return true;
  if (Array.isArray(value)) return value.some(containsRef);
  if (value && typeof value === "object") return Object.values(value).some(containsRef);
  return false;
}

/** The absolute project folder; relative to the declaring module's folder, else the working directory. */
function resolveProjectDir(taskName: string, uri: string | URL): string {
  if (uri instanceof URL || (typeof uri === "string" && uri.startsWith("file:"))) return mustBeDir(taskName, String(uri), fileURLToPath(uri));
  if (typeof uri !== "string" || !uri) throw new OptionError(`task "${taskName}" option \`uri\``, "a local project folder (a path or a file: URL)", uri);
  if (/^[A-Za-z][A-Za-z0-9+.-]+:/.test(uri) || uri.startsWith("git@")) {
    throw new OptionError(`task "${taskName}" option \`uri\``, "a local project folder (remote git projects are not supported: clone it and pass the folder)", uri);
  }
  // Resolve "<uri>/MLproject" like a script file (declaring module's folder, then cwd), then take its folder.
  try {
    return dirname(resolveTaskFile(taskName, join(uri, "MLproject")));
  } catch (error) {
    if (!TaskFileError.is(error)) throw error;
    for (const candidate of error.tried) {
      const folder = dirname(candidate);
      if (existsSync(folder) && statSync(folder).isDirectory()) {
        if (findMlproject(folder)) return folder;
        throw new MlflowProjectError(taskName, folder, "there is no MLproject file in this folder. Add one with the project's entry points, or run a single script with script().");
      }
    }
    throw new TaskFileError(taskName, uri, error.tried.map(dirname), "is not a folder");
  }
}

function mustBeDir(taskName: string, shown: string, path: string): string {
  if (!existsSync(path) || !statSync(path).isDirectory()) throw new TaskFileError(taskName, shown, [path], "is not a folder");
  return path;
}
