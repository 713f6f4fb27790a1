/**
 * The MLflow project executor: runs one entry point of a local MLflow project (a folder
 * with an `MLproject` file) as a Cairn task.
 *
 * - The MLproject file is read with a YAML parser; its entry points and typed
 *   parameters (float, int, string, path, uri; a default makes one optional) are
 *   checked against the task's inputs before anything starts.
 * - Tracked by MLflow: `mlflow run DIR -e ENTRY -P k=v ... --env-manager local
 *   --experiment-id <experiment> --run-id <task run>` (through mlflow.projects.run, which the
 *   CLI calls, to skip the CLI's start-up; `cli: true` starts `python -m mlflow run` itself),
 *   so MLflow runs the project inside the task's own run (it logs nothing of its own then:
 *   Cairn sets the project tags).
 * - Otherwise (the embedded local store, or no tracking): the entry point's command is
 *   run directly with `bash -c`, parameters substituted MLproject-style, every value
 *   shell-quoted (executors/template.ts).
 *
 * Both ways the process gets Cairn's environment (CAIRN_INPUTS, CAIRN_OUTPUTS,
 * CAIRN_ARTIFACTS, ... see process.ts) and its outputs are what it writes to
 * CAIRN_OUTPUTS, plus `{ runId }`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, type Stats, statSync } from "node:fs";
import { lstat, readdir, readlink, realpath, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { digestFile, digestFileSync, FILES_RECORDED, isLeftOut, LEFT_OUT_FILE, LEFT_OUT_FOLDERS, pathExists, privateDigest, recordedFiles, sha256, VIRTUALENV_MARK } from "@cairn/cache";
import { fileURLToPath, pathToFileURL } from "node:url";
import { CairnError, closestName, describeValue, isArtifact, isPlainObject, systemTag, type TaskContext } from "@cairn/core";
import { parseTemplate, renderShell, runProcess, shellQuote, type CommandTemplate, type ProcessSpec } from "@cairn/process/spawn";
import type { Document } from "yaml";
import { mlflowPlainScalarText } from "./default-text.ts";

/** Parameter types of an MLproject entry point. */
export const MLPROJECT_PARAM_TYPES = ["float", "int", "string", "path", "uri"] as const;
export type MlflowParamType = (typeof MLPROJECT_PARAM_TYPES)[number];

/** One declared parameter of an entry point. */
export interface MlflowProjectParameter {
  readonly name: string;
  readonly type: MlflowParamType;
  /** The default, as YAML 1.2 reads it; a parameter without one is required. */
  readonly default?: string | number | boolean;
  /**
   * The default's text as `mlflow run` substitutes and logs it, beside `default`: MLflow reads
   * the file as YAML 1.1 and writes Python's str() of the value (`1.0` stays "1.0", `0x10` is
   * "16", `true` is "True"; see default-text.ts).
   */
  readonly defaultText?: string;
}

/** One entry point of an MLproject file. */
export interface MlflowEntryPoint {
  readonly name: string;
  /** The command template, `{param}` placeholders MLproject-style. */
  readonly command: string;
  readonly parameters: readonly MlflowProjectParameter[];
}

/** A parsed MLproject file. */
export interface MlflowProject {
  /** `name:` of the MLproject, else the folder's name. */
  readonly name: string;
  /** Absolute project folder. */
  readonly dir: string;
  /** Absolute path of the MLproject file. */
  readonly file: string;
  readonly entryPoints: Readonly<Record<string, MlflowEntryPoint>>;
  /** `conda_env`, `python_env` or `docker_env` when the project declares one (Cairn always uses `--env-manager local`). */
  readonly environment?: string;
  /** The file `conda_env` or `python_env` names (`python_env.yaml`), as written. */
  readonly environmentFile?: string;
  /** The image `docker_env` names, as written. */
  readonly dockerImage?: string;
}

/** The MLproject file is missing or invalid, or names no such entry point. */
export class MlflowProjectError extends CairnError {
  static override readonly code: string = "CAIRN_MLFLOW_PROJECT";
  override name = "MlflowProjectError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly project: string,
    readonly file: string,
    detail: string,
  ) {
    super(`MLflow project "${project}" (${file}): ${detail}`);
  }
}

/** The inputs of an MLflow project task do not fit its entry point's parameters. */
export class MlflowProjectParameterError extends CairnError {
  static override readonly code: string = "CAIRN_MLFLOW_PROJECT_PARAMETER";
  override name = "MlflowProjectParameterError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly project: string,
    readonly file: string,
    readonly entryPoint: string,
    /** The parameter at fault. */
    readonly parameter: string,
    /** `missing`, `unknown` or `type`. */
    readonly problem: "missing" | "unknown" | "type",
    detail: string,
    /** The entry point's parameters, as `name (type, required|default x)`. */
    readonly valid: readonly string[],
  ) {
    super(
      `MLflow project "${project}" (${file}), entry point "${entryPoint}": ${detail} ` +
        `Parameters of "${entryPoint}": ${valid.length ? valid.join(", ") : "none"}.`,
    );
  }
}

const ENV_KEYS = ["conda_env", "python_env", "docker_env"];

let yamlModule: typeof import("yaml") | undefined;
/** The YAML parser, loaded on first use: flows without MLflow projects or models never load it. */
function yaml(): typeof import("yaml") {
  return (yamlModule ??= createRequire(import.meta.url)("yaml") as typeof import("yaml"));
}

/** `text` parsed as YAML; throws its first error. */
export function parseYaml(text: string): unknown {
  return yaml().parse(text);
}

/** `text` parsed as YAML, with its nodes (how each scalar was written); throws its first error, as {@link parseYaml}. */
function parseYamlDocument(text: string): { value: unknown; document: Document.Parsed } {
  const document = yaml().parseDocument(text);
  if (document.errors.length) throw document.errors[0];
  return { value: document.toJS(), document };
}

/**
 * The text `mlflow run` gives the default of a parameter (see default-text.ts): a plain scalar's as
 * PyYAML reads it; a quoted one's, and one Cairn cannot find the node of (an alias, a key that is
 * not a string), as its value.
 */
function defaultText(document: Document.Parsed, path: readonly string[], value: string | number | boolean): string {
  const node = document.getIn(path, true);
  if (yaml().isScalar(node) && node.type === "PLAIN" && !node.tag && typeof node.source === "string") return mlflowPlainScalarText(node.source);
  return String(value);
}

/** Finds the MLproject file of a folder (MLflow matches the name case-insensitively). */
export function findMlproject(dir: string): string | undefined {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const name = names.find((n) => n === "MLproject") ?? names.find((n) => n.toLowerCase() === "mlproject");
  return name === undefined ? undefined : join(dir, name);
}

/** Reads and checks the MLproject file of `dir`. Throws MlflowProjectError. */
export function loadMlproject(dir: string): MlflowProject {
  const folder = resolve(dir);
  const file = findMlproject(folder);
  const label = basename(folder);
  if (!file) {
    throw new MlflowProjectError(
      label,
      folder,
      `there is no MLproject file in this folder. Cairn runs MLflow projects that declare their entry points in an MLproject file ` +
        `(name, entry_points with parameters and command); add one, or run a single script with script().`,
    );
  }
  let doc: unknown;
  let document: Document.Parsed;
  try {
    ({ value: doc, document } = parseYamlDocument(readFileSync(file, "utf8")));
  } catch (error) {
    throw new MlflowProjectError(label, file, `the file is not valid YAML: ${(error as Error).message}`);
  }
  if (!isPlainObject(doc)) throw new MlflowProjectError(label, file, `expected a YAML mapping with \`name\` and \`entry_points\`, got ${describeValue(doc)}.`);
  const name = typeof doc.name === "string" && doc.name ? doc.name : label;
  const bad = (detail: string) => new MlflowProjectError(name, file, detail);
  const raw = doc.entry_points ?? {};
  if (!isPlainObject(raw)) throw bad(`\`entry_points\` must be a mapping of entry point names to { parameters, command }, got ${describeValue(raw)}.`);
  const entryPoints: Record<string, MlflowEntryPoint> = {};
  for (const [epName, ep] of Object.entries(raw)) {
    if (!isPlainObject(ep)) throw bad(`entry point "${epName}" must be a mapping with \`command\` (and optional \`parameters\`), got ${describeValue(ep)}.`);
    if (typeof ep.command !== "string" || !ep.command.trim()) throw bad(`entry point "${epName}" has no \`command\` (a string such as "python train.py --alpha {alpha}").`);
    const params = ep.parameters ?? {};
    if (!isPlainObject(params)) throw bad(`\`parameters\` of entry point "${epName}" must be a mapping of parameter names to a type or { type, default }.`);
    const parameters: MlflowProjectParameter[] = [];
    for (const [pName, p] of Object.entries(params)) {
      const spec = typeof p === "string" ? { type: p } : isPlainObject(p) ? p : undefined;
      if (!spec) throw bad(`parameter "${pName}" of entry point "${epName}" must be a type name or { type, default }, got ${describeValue(p)}.`);
      const type = spec.type ?? "string";
      if (!MLPROJECT_PARAM_TYPES.includes(type as MlflowParamType)) {
        throw bad(`parameter "${pName}" of entry point "${epName}" has type ${describeValue(type)}; MLflow parameter types are ${MLPROJECT_PARAM_TYPES.join(", ")}.`);
      }
      const def = spec.default;
      if (def !== undefined && def !== null && typeof def !== "string" && typeof def !== "number" && typeof def !== "boolean") {
        throw bad(`the default of parameter "${pName}" of entry point "${epName}" must be a scalar, got ${describeValue(def)}.`);
      }
      const defaults = def !== undefined && def !== null ? { default: def, defaultText: defaultText(document, ["entry_points", epName, "parameters", pName, "default"], def) } : {};
      parameters.push({ name: pName, type: type as MlflowParamType, ...defaults });
    }
    entryPoints[epName] = { name: epName, command: ep.command, parameters };
  }
  const environment = ENV_KEYS.find((k) => doc[k] !== undefined);
  const environmentFile = environment ? doc[environment] : undefined;
  const dockerImage = environment === "docker_env" && isPlainObject(environmentFile) ? environmentFile.image : undefined;
  return {
    name,
    dir: folder,
    file,
    entryPoints,
    ...(environment ? { environment } : {}),
    ...(typeof environmentFile === "string" ? { environmentFile } : {}),
    ...(typeof dockerImage === "string" ? { dockerImage } : {}),
  };
}

/**
 * Words for a project that declares a Python environment (`python_env`, `conda_env`), which Cairn
 * does not create: its entry point runs under the local Python, as `mlflow run --env-manager local`
 * runs it. The same for `docker_env` when the entry point runs directly (`runsDirectly`: why), which
 * only `mlflow run` honours. Undefined for a project that declares none, or `docker_env` run by `mlflow run`.
 */
export function unusedEnvironmentWarning(project: MlflowProject, python: string, origin: string | undefined, runsDirectly?: string): string | undefined {
  const which = python.includes("/") ? `${python}, first on PATH` : `\`${python}\` as PATH finds it`;
  if (project.environment === "docker_env") {
    if (runsDirectly === undefined) return undefined;
    const image = project.dockerImage ? ` (image ${project.dockerImage})` : "";
    return (
      `MLflow project "${project.name}" declares docker_env${image}, which only \`mlflow run\` honours, and the entry point runs directly (${runsDirectly}): ` +
      `on this machine, not in the container, under the local Python, ${which}${origin ? ` (${origin})` : ""}, with the packages installed there. ` +
      `To run it in the container, track the flow with an MLflow server (MLFLOW_TRACKING_URI=http://...) and leave \`mode\` "auto" (Docker must be installed); ` +
      `or remove docker_env from ${basename(project.file)}.`
    );
  }
  if (project.environment !== "python_env" && project.environment !== "conda_env") return undefined;
  const file = project.environmentFile ? ` (${project.environmentFile})` : "";
  return (
    `MLflow project "${project.name}" declares ${project.environment}${file}, which Cairn does not create: ` +
    `its entry point runs under the local Python (as \`mlflow run --env-manager local\` does), ${which}${origin ? ` (${origin})` : ""}, ` +
    `with the packages installed there. Install what ${project.environmentFile ?? "it"} lists into that Python, or give the task \`python\` (or CAIRN_PYTHON) for one that has them.`
  );
}

/** The entry point, or MlflowProjectError listing the valid ones. */
export function getEntryPoint(project: MlflowProject, entryPoint: string): MlflowEntryPoint {
  const ep = Object.hasOwn(project.entryPoints, entryPoint) ? project.entryPoints[entryPoint] : undefined;
  if (ep) return ep;
  const names = Object.keys(project.entryPoints);
  throw new MlflowProjectError(
    project.name,
    project.file,
    `there is no entry point "${entryPoint}"${suggest(entryPoint, names)}. Entry points: ${names.length ? names.map((n) => `"${n}"`).join(", ") : "none"}.`,
  );
}

/** Parses an entry point's command as a shell template (a placeholder inside quotes is refused). */
export function entryPointTemplate(project: MlflowProject, entryPoint: MlflowEntryPoint, taskName: string): CommandTemplate {
  const template = parseTemplate(entryPoint.command, taskName, { shell: true });
  const declared = entryPoint.parameters.map((p) => p.name);
  for (const p of template.placeholders) {
    if (!declared.includes(p)) {
      throw new MlflowProjectError(
        project.name,
        project.file,
        `the command of entry point "${entryPoint.name}" uses {${p}}, which is not one of its parameters (${declared.join(", ") || "none"}). Declare it under \`parameters\`.`,
      );
    }
  }
  return template;
}

/** `name (type, required)` / `name (type, default x)`. */
export function describeParameters(entryPoint: MlflowEntryPoint): string[] {
  return entryPoint.parameters.map((p) => `${p.name} (${p.type}, ${p.default === undefined ? "required" : `default ${JSON.stringify(p.default)}`})`);
}

/** Options of `checkProjectInputs`. */
export interface CheckInputsOptions {
  /** Values not known yet (references to upstream outputs at build time): present, but not type-checked. */
  deferred?: (value: unknown) => boolean;
  /** Folder that relative `path` values resolve against. @default process.cwd() */
  cwd?: string;
  /** Check that local `path` values exist. @default true */
  checkPaths?: boolean;
  /** Allow remote URIs (s3:, runs:, mlflow-artifacts: ...) for `path` parameters, which `mlflow run` downloads. @default true */
  remotePaths?: boolean;
}

/**
 * Checks the inputs against the entry point's parameters: none unknown, none required
 * missing, every value of its type. Returns the values as `mlflow run -P` gets them
 * (the given ones only; local paths absolute; artifacts as their path or file: URI).
 * Throws MlflowProjectParameterError.
 */
export function checkProjectInputs(
  project: MlflowProject,
  entryPoint: MlflowEntryPoint,
  inputs: Readonly<Record<string, unknown>>,
  options: CheckInputsOptions = {},
): Record<string, string> {
  const valid = describeParameters(entryPoint);
  const names = entryPoint.parameters.map((p) => p.name);
  const fail = (param: string, problem: "missing" | "unknown" | "type", detail: string) =>
    new MlflowProjectParameterError(project.name, project.file, entryPoint.name, param, problem, detail, valid);
  for (const key of Object.keys(inputs)) {
    if (!names.includes(key) && inputs[key] !== undefined) {
      throw fail(key, "unknown", `got the input "${key}", which is not a parameter of this entry point${suggest(key, names)}.`);
    }
  }
  const out: Record<string, string> = {};
  for (const p of entryPoint.parameters) {
    const value = inputs[p.name];
    if (value === undefined || value === null) {
      if (p.default === undefined) {
        throw fail(p.name, "missing", `the required parameter "${p.name}" (${p.type}) has no value and no default. Pass it as an input: { ${p.name}: ... }.`);
      }
      continue;
    }
    if (options.deferred?.(value)) continue;
    const text = paramValue(p, value, options);
    if (typeof text !== "string") throw fail(p.name, "type", `parameter "${p.name}" must be ${text.expected}, got ${describeValue(value)}.${text.hint ? ` ${text.hint}` : ""}`);
    out[p.name] = text;
  }
  return out;
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INT = /^[+-]?\d+$/;

function paramValue(p: MlflowProjectParameter, value: unknown, o: CheckInputsOptions): string | { expected: string; hint?: string } {
  switch (p.type) {
    case "float":
      if (typeof value === "number" && Number.isFinite(value)) return String(value);
      if (typeof value === "string" && NUMBER.test(value.trim())) return value.trim();
      return { expected: "a float (a finite number)" };
    case "int":
      if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
      if (typeof value === "string" && INT.test(value.trim())) return value.trim();
      return { expected: "an int (a whole number)" };
    case "string":
      if (typeof value === "string") return value;
      if (typeof value === "number" && Number.isFinite(value)) return String(value);
      if (typeof value === "boolean") return String(value);
      return { expected: "a string (or a number or boolean)" };
    case "path": {
      let local: string | undefined;
      if (isArtifact(value)) local = value.path;
      else if (typeof value === "string" && value) {
        local = localPath(value, o.cwd);
        if (local === undefined && o.remotePaths === false) {
          return {
            expected: "a local file or folder",
            hint: `A remote URI is downloaded by \`mlflow run\`, which Cairn uses only when the flow is tracked by an MLflow server; pass a local path or an upstream Artifact.`,
          };
        }
        if (local === undefined) return value;
      } else return { expected: "a path (a string or an Artifact)" };
      if (o.checkPaths !== false && !existsSync(local)) return { expected: "an existing file or folder", hint: `Nothing exists at ${local}.` };
      return local;
    }
    case "uri":
      if (isArtifact(value)) return pathToFileURL(value.path).href;
      if (typeof value === "string") {
        const scheme = SCHEME.exec(value)?.[1];
        if (scheme && scheme.length > 1) return value;
      }
      return { expected: "a URI with a scheme (s3://..., runs:/..., file:///...) or an Artifact" };
  }
}

/** The local file a `path` value names (a file: URL, or a path resolved against `cwd`); undefined for a remote URI (s3:, runs:). */
function localPath(value: string, cwd: string | undefined): string | undefined {
  const scheme = SCHEME.exec(value)?.[1];
  if (scheme && scheme.length > 1 && scheme !== "file") return undefined;
  return scheme === "file" ? fileURLToPath(value) : resolve(cwd ?? process.cwd(), value);
}

/**
 * For the cache key: the content digest of the local file or folder each given `path` parameter
 * names, by parameter (a folder as {@link folderDigest} counts it, without blocking), so an edited data file outside
 * the project runs it again. Left out: a file of the project (its fingerprint counts it), a remote
 * URI, an Artifact (it counts by content already), a value that names nothing (the run says so).
 */
export async function pathParameterDigests(project: MlflowProject, entryPoint: MlflowEntryPoint, inputs: Readonly<Record<string, unknown>>, cwd?: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let root: string | undefined;
  for (const p of entryPoint.parameters) {
    const value = inputs[p.name];
    const local = p.type === "path" && typeof value === "string" && value ? localPath(value, cwd) : undefined;
    if (local === undefined) continue;
    let real: string;
    try {
      real = await realpath(local);
    } catch (error) {
      if (nothingThere(error)) continue; // nothing there (yet): the run refuses it, naming the path
      throw unreadablePath(project, p.name, local, error);
    }
    root ??= await realpath(project.dir);
    if (await walkAsync(countedByProject(real, root))) continue;
    try {
      // Not folderDigest: a large data folder digested synchronously at every key stalled the
      // event loop, and with it every other run of an app that embeds Cairn.
      out[p.name] = (await stat(real)).isDirectory() ? await folderDigestAsync(real) : await digestFile(real);
    } catch (error) {
      // Counted by its text only, an edit there would give a hit on the old content: no key rather than a wrong one.
      throw unreadablePath(project, p.name, local, error);
    }
  }
  return out;
}

/** An error that means the path names nothing (yet), rather than something that cannot be read. */
function nothingThere(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/** A `path` parameter names a file or folder whose content cannot be read to make the task's key. */
function unreadablePath(project: MlflowProject, parameter: string, path: string, error: unknown): MlflowProjectError {
  const cause = error instanceof Error ? error.message : String(error);
  return new MlflowProjectError(
    project.name,
    project.file,
    `parameter \`${parameter}\` names ${path}, whose content could not be read to make the task's cache key (${cause}). ` +
      `Make every file under it readable (or give a path that names readable data) and run again.`,
  );
}

/** The values every placeholder of the command gets: the given ones, else the defaults. */
export function effectiveParameters(entryPoint: MlflowEntryPoint, given: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of entryPoint.parameters) {
    const v = given[p.name] ?? p.defaultText ?? (p.default !== undefined ? String(p.default) : undefined);
    if (v !== undefined) out[p.name] = v;
  }
  return out;
}

// ------------------------------------------------------------------ fingerprint

/**
 * TypeScript files never enter a project's digest either: they are the flow's own code, which the
 * usual layout keeps in the project folder (flow.ts, steps.ts), and the tasks' keys hold already
 * (the code that declares them). An entry point's Python does not run them, so editing the flow,
 * or adding another flow beside it, does not run every step again. A step that reads one as data
 * declares it with `.codeFiles()`. Unless an entry point's command names a TypeScript file
 * (`npx tsx train.ts`, `deno run y.ts`): then the project runs its TypeScript, which counts.
 */
const FLOW_CODE = /\.[mc]?ts$/;

/** `path` (relative, `/`-separated) is one of the flow's TypeScript files (see FLOW_CODE). */
function isFlowCode(path: string): boolean {
  return FLOW_CODE.test(path);
}

/** Never the flow's code: for a project whose entry points run TypeScript. */
function noFlowCode(): boolean {
  return false;
}

/** Whether some entry point's command names a TypeScript file (a word ending in .ts, .mts or .cts): then the project's TypeScript is its code. */
export function runsTypeScript(project: Pick<MlflowProject, "entryPoints">): boolean {
  return Object.values(project.entryPoints).some((e) => e.command.split(/[\s;&|<>()'"`=]+/).some(isFlowCode));
}

/** What a project's code is. */
export interface ProjectFingerprint {
  /**
   * For the cache key: `git-tree:<tree id of the folder>` for a clean git checkout (`git-files:<digest>`
   * of its listing without the flow's TypeScript when it holds some), followed by
   * `+ignored:<digest>` when files git ignores are in it (`+linked:<digest>` for links' targets out
   * of it), else `sha256:<content digest>` (`+private:<digest>` for those two); the digests after
   * `+` are scrypt (see privateFilesDigest).
   */
  readonly code: string;
  /** HEAD commit, when the folder is a clean git checkout. */
  readonly gitCommit?: string;
  /**
   * What `code` is made of, file by file, to name the files that changed (not in the key):
   * relative path -> a short digest (of the git blob of a file unchanged since HEAD, else of its
   * content), or only how many when more than {@link PROJECT_FILES_RECORDED}.
   */
  readonly files: Record<string, string> | number;
}

/** Files of a project recorded one by one with its cache entries; a larger folder's only counted (an entry of each run keeps them). */
export const PROJECT_FILES_RECORDED = FILES_RECORDED;

/**
 * The code fingerprint of a project folder: when it is inside a git repository and
 * `git status --porcelain` shows no change and no untracked file under it (but those left out
 * below), the git tree id of
 * the folder (the same files give the same id, whatever else the repository's commits change)
 * and the HEAD commit, plus a digest of the files under it that git ignores (a local config
 * or data file the project reads); otherwise a digest of its content (sorted relative paths and
 * the sha256 of each file). Both leave out .git, mlruns, __pycache__, .cairn, node_modules,
 * .venv and any other virtualenv, MLflow's default store mlflow.db, `cairn report`'s pages and .DS_Store
 * (a link by one of these names, or to a virtualenv, too),
 * so what a run writes there changes nothing, and the flow's TypeScript (FLOW_CODE), changed, new or committed.
 */
export function projectFingerprint(dir: string, options: { readonly typeScript?: boolean } = {}): ProjectFingerprint {
  const flowCode = options.typeScript ? noFlowCode : isFlowCode;
  const git = gitState(dir, flowCode);
  if (git?.clean) {
    const ignored = privateFilesDigest(git.ignored);
    const linked = privateFilesDigest(git.linked);
    const code = `${git.tree}${ignored ? `+ignored:${ignored}` : ""}${linked ? `+linked:${linked}` : ""}`;
    const blobs = [...git.blobs].map(([rel, id]) => `${rel}\0${id}`);
    return { code, gitCommit: git.commit, files: recordedFiles([...blobs, ...keyedBy(ignored, git.ignored), ...keyedBy(linked, git.linked)]) };
  }
  const entries: string[] = [];
  const links: string[] = [];
  folderDigest(dir, (entry) => !flowCode(pathOf(entry)), entries, links);
  // Files git ignores and links' targets out of the folder may be secrets (`.env`): see privateFilesDigest.
  const secret = [...(git?.ignoredPaths ?? []), ...links];
  const isPrivate = (entry: string) => secret.some((p) => pathOf(entry) === p || pathOf(entry).startsWith(`${p}/`));
  const shared = entries.filter((e) => !isPrivate(e));
  const kept = entries.filter(isPrivate);
  const hidden = privateFilesDigest(kept);
  const code = `sha256:${sha256(shared.join("\n"))}${hidden ? `+private:${hidden}` : ""}`;
  // A file as it is in HEAD has its blob's id, as in a clean checkout: only the files that changed since differ.
  return { code, files: recordedFiles([...shared.map((e) => blobOf(e, git?.blobs)), ...keyedBy(hidden, kept)]) };
}

/**
 * The digest of files that may hold a secret (a `.env` git ignores, a link's target out of the
 * folder), recorded in the key: {@link privateDigest} (scrypt) of their entries, so that a short
 * one cannot be found again from the cache or MLflow by trying guesses at sha256's speed, as a
 * plain digest of its content would let. One scrypt for them all, however many. "" for none.
 */
function privateFilesDigest(entries: readonly string[]): string {
  return entries.length ? privateDigest(sha256(entries.join("\n")), "mlflow-project-files") : "";
}

/**
 * Such files' entries with their digest replaced by one keyed with `key` (their privateFilesDigest),
 * for the per-file record: it changes when the file does (and when another of them does: one of them
 * changed, explain names them all), and tells nothing of its content without the scrypt.
 */
function keyedBy(key: string, entries: readonly string[]): string[] {
  return entries.map((e) => `${pathOf(e)}\0${sha256(`${key}\0${e}`)}`);
}

/** {@link projectFingerprint} of a parsed project (its TypeScript counts when an entry point runs some); a linked file or folder it cannot read fails as an MlflowProjectError naming it. */
export function mlflowProjectFingerprint(project: MlflowProject): ProjectFingerprint {
  try {
    return projectFingerprint(project.dir, { typeScript: runsTypeScript(project) });
  } catch (error) {
    if (!(error instanceof UnreadableProjectFile)) throw error;
    throw new MlflowProjectError(project.name, project.file, `its code fingerprint (part of the task's cache key) could not be made: ${error.message}. Make the target readable, or remove the link, and load the flow again.`);
  }
}

/** The relative path of a digest entry (`<relative path>\0<digest>`). */
function pathOf(entry: string): string {
  return entry.slice(0, entry.indexOf("\0"));
}

/** `<relative path>\0<git blob id>` for a file unchanged since HEAD, else the entry. */
function blobOf(entry: string, blobs: ReadonlyMap<string, string> | undefined): string {
  const rel = entry.slice(0, entry.indexOf("\0"));
  const id = blobs?.get(rel);
  return id === undefined ? entry : `${rel}\0${id}`;
}

/**
 * `clean`: no change and no untracked file under `dir`, but the flow's TypeScript; `tree`: then
 * `git-tree:<id>`, or `git-files:<digest>` of its listing when the flow's TypeScript (FLOW_CODE) is
 * in it; `linked`: what the committed links out of the folder point to (git records a link by its
 * target's name). `blobs`: the files unchanged since HEAD, by relative path, with their blob ids.
 */
type GitState =
  | { clean: true; commit: string; tree: string; ignored: string[]; linked: string[]; blobs: Map<string, string> }
  | { clean: false; blobs: Map<string, string>; ignoredPaths: string[] };

function gitState(dir: string, flowCode: (path: string) => boolean): GitState | undefined {
  const run = (args: string[]) => execFileSync("git", ["-C", dir, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 10_000 });
  try {
    // `--ignored=matching` names an ignored folder in one line (`.venv/`) without git walking into it.
    const status = run(["status", "--porcelain", "-z", "--untracked-files=all", "--ignored=matching", "--", "."]).split("\0").filter(Boolean);
    const [prefix = "", commit = "", tree = ""] = run(["rev-parse", "--show-prefix", "HEAD", "HEAD:./"]).split("\n");
    const relative = (entry: string) => entry.slice(3 + prefix.length).replace(/\/$/, "");
    const listed = run(["ls-tree", "-r", "-z", "--full-tree", tree]).split("\0").filter(Boolean); // `<mode> <type> <id>\t<path>`
    const kept = listed.filter((line) => !flowCode(line.slice(line.indexOf("\t") + 1)));
    const changed = new Set(status.filter((entry) => !entry.startsWith("!! ")).map((entry) => entry.slice(3 + prefix.length)));
    const blobs = new Map<string, string>();
    for (const line of kept) {
      const rel = line.slice(line.indexOf("\t") + 1);
      if (!changed.has(rel)) blobs.set(rel, line.slice(0, line.indexOf("\t")).split(" ")[2]!);
    }
    // A change or an untracked file; the flow's TypeScript, changed or new, is no change of the
    // project, nor an untracked file a run writes (mlflow.db, mlruns/: not in the tree either).
    const runWrote = (entry: string) => entry.startsWith("?? ") && isLeftOut(relative(entry));
    if (status.some((entry) => !entry.startsWith("!! ") && !flowCode(entry) && !runWrote(entry))) {
      return { clean: false, blobs, ignoredPaths: status.filter((entry) => entry.startsWith("!! ")).map(relative) };
    }
    // Git ignores them, the project may still read them: their content counts as a folder's content does.
    const root = realpathSync(dir);
    const ignored: string[] = [];
    for (const entry of status) {
      if (!entry.startsWith("!! ")) continue; // the flow's TypeScript, changed or new
      const rel = relative(entry);
      if (isLeftOut(rel)) continue;
      walkSync(digestEntries(join(dir, rel), rel, ignored, root));
    }
    // Git records a link by its target's name: a committed link out of the folder adds what it points to.
    const linked: string[] = [];
    for (const entry of run(["ls-files", "-s", "-z", "--", "."]).split("\0")) {
      if (!entry.startsWith("120000 ")) continue;
      const rel = entry.slice(entry.indexOf("\t") + 1);
      if (isLeftOut(rel)) continue;
      const target = walkSync(followedLink(join(dir, rel), root));
      if (target !== undefined) walkSync(digestTarget(target, rel, linked, root, []));
    }
    const listing = kept.length === listed.length ? `git-tree:${tree}` : `git-files:${sha256(kept.join("\n"))}`;
    return { clean: true, commit, tree: listing, ignored: ignored.filter((entry) => !flowCode(pathOf(entry))).sort(), linked: linked.sort(), blobs };
  } catch (error) {
    if (error instanceof UnreadableProjectFile) throw error;
    return undefined; // not a git checkout, no commit yet, or no git
  }
}

/**
 * sha256 over the sorted relative paths and file digests of a folder (see `isLeftOut` of @cairn/cache, the rule a `.codeFiles()` folder follows too); only the
 * entries `keep` keeps, when given; those it counts are added to `kept`. Synchronous, for where
 * nothing can wait (a kind is declared); {@link folderDigestAsync} gives the same digest without blocking.
 */
export function folderDigest(dir: string, keep?: (entry: string) => boolean, kept: string[] = [], links?: string[]): string {
  return walkSync(folderWalk(dir, keep, kept, links));
}

/** {@link folderDigest} of a whole folder, read with the asynchronous calls: the event loop runs on between them. */
export function folderDigestAsync(dir: string): Promise<string> {
  return walkAsync(folderWalk(dir));
}

/**
 * The folder walk, written once for both ways of reading: it yields each file-system call it
 * needs ({@link FsCall}) and gets its answer back (or its error thrown), so the synchronous and
 * the asynchronous digest of a folder cannot drift apart.
 */
type Walk<T> = Generator<FsCall, T, unknown>;

/** What each file-system call of a walk answers. */
interface FsAnswers {
  lstat: Stats;
  stat: Stats;
  readdir: string[];
  realpath: string;
  readlink: string;
  /** sha256 of a file's content. */
  digest: string;
  exists: boolean;
}

interface FsCall {
  readonly op: keyof FsAnswers;
  readonly path: string;
}

const SYNC_FS: { readonly [K in keyof FsAnswers]: (path: string) => FsAnswers[K] } = {
  lstat: (path) => lstatSync(path),
  stat: (path) => statSync(path),
  readdir: (path) => readdirSync(path),
  realpath: (path) => realpathSync(path),
  readlink: (path) => readlinkSync(path),
  digest: digestFileSync,
  exists: existsSync,
};

const ASYNC_FS: { readonly [K in keyof FsAnswers]: (path: string) => Promise<FsAnswers[K]> } = {
  lstat: (path) => lstat(path),
  stat: (path) => stat(path),
  readdir: (path) => readdir(path),
  realpath: (path) => realpath(path),
  readlink: (path) => readlink(path),
  digest: digestFile,
  exists: pathExists,
};

/** Inside a walk: asks for one file-system call and gets its answer. */
function* call<K extends keyof FsAnswers>(op: K, path: string): Walk<FsAnswers[K]> {
  return (yield { op, path }) as FsAnswers[K];
}

/** Runs a walk with the synchronous calls. */
function walkSync<T>(walk: Walk<T>): T {
  let step = walk.next();
  while (!step.done) {
    let answer: unknown;
    try {
      answer = SYNC_FS[step.value.op](step.value.path);
    } catch (error) {
      step = walk.throw(error);
      continue;
    }
    step = walk.next(answer);
  }
  return step.value;
}

/** Runs a walk with the asynchronous calls. */
async function walkAsync<T>(walk: Walk<T>): Promise<T> {
  let step = walk.next();
  while (!step.done) {
    let answer: unknown;
    try {
      answer = await ASYNC_FS[step.value.op](step.value.path);
    } catch (error) {
      step = walk.throw(error);
      continue;
    }
    step = walk.next(answer);
  }
  return step.value;
}

function* folderWalk(dir: string, keep?: (entry: string) => boolean, kept: string[] = [], links?: string[]): Walk<string> {
  const entries: string[] = [];
  const root = yield* call("realpath", resolve(dir));
  for (const name of yield* call("readdir", resolve(dir))) yield* digestEntries(join(resolve(dir), name), name, entries, root, [], links);
  entries.sort();
  const counted = keep ? entries.filter(keep) : entries;
  for (const entry of counted) kept.push(entry);
  return sha256(counted.join("\n"));
}

/**
 * Adds `<relative path>\0<sha256>` for the file at `abs`, or for every file under the folder at `abs` (see `isLeftOut` of @cairn/cache).
 * `root`: the project folder's real path; `seen`: the real paths of the linked folders the walk is in (a cycle stops).
 */
function* digestEntries(abs: string, rel: string, entries: string[], root: string, seen: readonly string[] = [], links?: string[]): Walk<void> {
  const name = basename(abs);
  const s = yield* call("lstat", abs);
  if (s.isDirectory()) {
    if (LEFT_OUT_FOLDERS.has(name) || (yield* call("exists", join(abs, VIRTUALENV_MARK)))) return;
    for (const child of yield* call("readdir", abs)) yield* digestEntries(join(abs, child), `${rel}/${child}`, entries, root, seen, links);
  } else if (s.isSymbolicLink()) {
    // Left out as the same folder or file would be: `.venv -> ../.venv`, `mlruns -> /disk/mlruns`.
    if (LEFT_OUT_FOLDERS.has(name) || LEFT_OUT_FILE.test(name)) return;
    const target = yield* followedLink(abs, root);
    if (target === undefined) entries.push(`${rel}\0link:${yield* call("readlink", abs)}`);
    else {
      links?.push(rel);
      yield* digestTarget(target, rel, entries, root, seen);
    }
  } else if (s.isFile() && !LEFT_OUT_FILE.test(name)) {
    entries.push(`${rel}\0${yield* call("digest", abs)}`);
  }
}

/**
 * The real path a link counts by, or undefined when its name is enough: a link to a file or folder
 * of the project that counts itself (not one left out), or a dangling one (whose target, once there,
 * counts). A link out of the folder (`data/iris.csv -> ../../shared/iris.csv`) counts by its target's
 * content, as a `.codeFiles()` folder's links do: an edit there runs the project again.
 */
function* followedLink(abs: string, root: string): Walk<string | undefined> {
  let real: string;
  try {
    real = yield* call("realpath", abs);
  } catch (error) {
    if (dangling(error)) return undefined;
    throw new UnreadableProjectFile(`the link ${abs} could not be followed (${messageOf(error)})`);
  }
  return (yield* countedByProject(real, root)) ? undefined : real;
}

/** A link's target is not there (or is a loop of links): the link counts by its target's name. */
function dangling(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP";
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A file or folder the fingerprint must count could not be read (a link's target without
 * permission): the fingerprint fails rather than leave it out, which would give hits on its old content.
 */
export class UnreadableProjectFile extends Error {
  override name = "UnreadableProjectFile";
}

/** The real path `real` is the project folder (real path `root`) or a file or folder of it that its fingerprint counts. */
function* countedByProject(real: string, root: string): Walk<boolean> {
  const inside = relative(root, real);
  if (inside === "") return true;
  return inside !== ".." && !inside.startsWith("../") && !isAbsolute(inside) && !isLeftOut(inside) && !(yield* inVirtualenv(root, inside));
}

/** The file or folder a link points to, under the link's own relative path. */
function* digestTarget(real: string, rel: string, entries: string[], root: string, seen: readonly string[]): Walk<void> {
  try {
    const s = yield* call("stat", real);
    if (s.isFile()) {
      entries.push(`${rel}\0${yield* call("digest", real)}`);
    } else if (s.isDirectory() && seen.includes(real)) {
      entries.push(`${rel}\0link-cycle`);
    } else if (s.isDirectory() && !(yield* call("exists", join(real, VIRTUALENV_MARK)))) {
      // A linked virtualenv is left out as one in the folder is.
      for (const child of yield* call("readdir", real)) yield* digestEntries(join(real, child), `${rel}/${child}`, entries, root, [...seen, real]);
    }
  } catch (error) {
    if (error instanceof UnreadableProjectFile) throw error;
    throw new UnreadableProjectFile(`\`${rel}\` links to ${real}, which could not be read (${messageOf(error)})`);
  }
}

/** A path of the project (relative) under a virtualenv, which the digest leaves out. */
function* inVirtualenv(root: string, rel: string): Walk<boolean> {
  const parts = rel.split("/");
  for (let i = 1; i < parts.length; i++) if (yield* call("exists", join(root, ...parts.slice(0, i), VIRTUALENV_MARK))) return true;
  return false;
}

// ------------------------------------------------------------------ running

/** What to run. */
export interface MlflowProjectRunSpec {
  project: MlflowProject;
  entryPoint: string;
  /** The Python that has mlflow (used as `python -m mlflow run`; its folder goes first on PATH, so `python` in commands is this one). */
  python: string;
  /** Where `python` came from (the task's option, CAIRN_PYTHON, a .venv), said when it cannot start. */
  pythonOrigin?: ProcessSpec["origin"];
  inputs: Readonly<Record<string, unknown>>;
  /** Folder relative `path` inputs resolve against. @default process.cwd() */
  cwd?: string;
  /** HEAD commit of the project, for the `mlflow.source.git.commit` tag. */
  gitCommit?: string;
  /** `auto` (default): `mlflow run` when the task is tracked by MLflow, else the command directly. */
  mode?: "auto" | "mlflow" | "direct";
  /** Start `python -m mlflow run ...` itself instead of calling mlflow.projects.run (the same thing, without the CLI's start-up). @default false */
  cli?: boolean;
  env?: ProcessSpec["env"];
  killGraceMs?: number;
}

/**
 * What `mlflow run DIR -e ENTRY -P k=v --env-manager local --experiment-id E --run-id R` does,
 * through the Python API it calls (mlflow.projects.run), without loading MLflow's CLI: that
 * halves the start-up (about 2 s instead of 4-5 s per step).
 */
const MLFLOW_RUN_DRIVER = String.raw`
import json, re, sys
a = json.loads(sys.argv[1])
import mlflow.projects
from mlflow.exceptions import ExecutionException
try:
    mlflow.projects.run(a["uri"], entry_point=a["entryPoint"], parameters=a["parameters"], experiment_id=a["experimentId"],
                        env_manager="local", run_id=a["runId"], synchronous=True)
except ExecutionException as e:
    # "Run (ID '...') failed" says no more than the exit code: left out, the entry point's own error stays the last line.
    if not re.fullmatch(r"Run \(ID '[^']*'\) failed", str(e).strip()):
        sys.stderr.write("mlflow.exceptions.ExecutionException: %s\n" % e)
    sys.exit(1)
`;

/** How an entry point runs: `mlflow run` (`mode` "mlflow", or "auto" in a flow tracked by an MLflow server), else its command directly. */
export function projectRunMode(mode: MlflowProjectRunSpec["mode"], tracked: boolean): "mlflow" | "direct" {
  return mode === "mlflow" || mode === "direct" ? mode : tracked ? "mlflow" : "direct";
}

/** Runs one attempt of an MLflow project entry point; see the module comment. */
export async function runMlflowProject(
  spec: MlflowProjectRunSpec,
  ctx: TaskContext,
): Promise<{ outputs: Record<string, unknown>; runId: string; mode: "mlflow" | "direct" }> {
  const { project } = spec;
  const ep = getEntryPoint(project, spec.entryPoint);
  const tracked = ctx.tracking.capabilities.mlflowClients;
  const mode = projectRunMode(spec.mode, tracked);
  if (mode === "mlflow" && !tracked) {
    throw new MlflowProjectError(project.name, project.file, `mode "mlflow" needs a flow tracked by an MLflow server (MLFLOW_TRACKING_URI=http://...); this one is tracked by "${ctx.tracking.kind}".`);
  }
  // Everything is checked before anything starts.
  const given = checkProjectInputs(project, ep, spec.inputs, { ...(spec.cwd ? { cwd: spec.cwd } : {}), remotePaths: mode === "mlflow" });
  const template = entryPointTemplate(project, ep, ctx.nodeId);

  // MLflow's source tags, which ctx.log.tag() refuses to a task (Cairn sets them on every run): a project run has its own.
  systemTag(ctx, "mlflow.source.type", "PROJECT");
  systemTag(ctx, "mlflow.source.name", project.dir);
  ctx.log.tag("mlflow.project.entryPoint", ep.name);
  ctx.log.tag("mlflow.project.backend", "local");
  ctx.log.tag("mlflow.project.env", "local");
  if (spec.gitCommit) systemTag(ctx, "mlflow.source.git.commit", spec.gitCommit);
  logDefaults(ep, spec.inputs, given, ctx);

  const env: Record<string, string | undefined> = { ...spec.env };
  quietArtifactDownloads(env);
  if (spec.python.includes("/")) {
    const bin = dirname(isAbsolute(spec.python) ? spec.python : resolve(spec.python));
    const path = env.PATH ?? process.env.PATH;
    env.PATH = path ? `${bin}:${path}` : bin;
  }
  const common = {
    inputs: spec.inputs,
    env,
    cwd: project.dir,
    cwdOrigin: `the folder of the MLflow project "${project.name}"`,
    ...(spec.killGraceMs !== undefined ? { killGraceMs: spec.killGraceMs } : {}),
  };
  let r;
  if (mode === "mlflow") {
    // `mlflow run` reads MLFLOW_EXPERIMENT_NAME too, and refuses it next to --experiment-id.
    env.MLFLOW_EXPERIMENT_NAME = undefined;
    const args = ["run", project.dir, "-e", ep.name, "--env-manager", "local", "--experiment-id", ctx.tracking.experimentId, "--run-id", ctx.runId];
    for (const [k, v] of Object.entries(given)) args.push("-P", `${k}=${v}`);
    const display = ["mlflow", ...args].map((word) => shellQuote(word)).join(" ");
    const call = { uri: project.dir, entryPoint: ep.name, parameters: given, experimentId: ctx.tracking.experimentId, runId: ctx.runId };
    const origin = spec.pythonOrigin ? { origin: spec.pythonOrigin } : {};
    r = spec.cli
      ? await runProcess({ ...common, ...origin, command: spec.python, args: ["-m", "mlflow", ...args], display }, ctx)
      : await runProcess({ ...common, ...origin, command: spec.python, args: ["-c", MLFLOW_RUN_DRIVER, JSON.stringify(call)], display }, ctx);
  } else {
    const line = renderShell(template, effectiveParameters(ep, given), ctx.nodeId);
    r = await runProcess({ ...common, command: "bash", args: ["-c", line], display: line }, ctx);
  }
  return { outputs: r.outputs ?? {}, runId: ctx.runId, mode };
}

// ------------------------------------------------------------------ helpers

/**
 * The defaults the entry point runs with, as params of the task's run: `mlflow run` logs every
 * parameter's value, given or default, but not into a run it is handed (`--run-id`), and Cairn
 * logs only the inputs. Each shell-quoted as `mlflow run` logs it: it gives every text Python's
 * shlex.quote before it substitutes and logs it (`'a b'`, `'it'"'"'s'`, `''`), whose `'` differs
 * from the shell's usual `'\''` that a param's reader would see. Not in the cache key (a default
 * is the MLproject's, whose content is).
 */
function logDefaults(ep: MlflowEntryPoint, inputs: Readonly<Record<string, unknown>>, given: Readonly<Record<string, string>>, ctx: TaskContext): void {
  for (const [name, value] of Object.entries(effectiveParameters(ep, given))) {
    if (inputs[name] === undefined && !Object.hasOwn(given, name)) ctx.log.param(name, shellQuote(value, { style: "python" }));
  }
}

const PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR";

/**
 * MLflow draws a tqdm bar for every artifact download (a step reading the previous step's
 * outputs): about ten carriage-return lines each, which the task's log keeps line by line.
 * Off for the step's process unless the user set the variable (the task's `env` or Cairn's own).
 */
function quietArtifactDownloads(env: Record<string, string | undefined>): void {
  if (PROGRESS_BAR in env || process.env[PROGRESS_BAR] !== undefined) return;
  env[PROGRESS_BAR] = "false";
}

/** ` (did you mean "x"?)` for a close name, else "". */
function suggest(name: string, names: readonly string[]): string {
  const near = closestName(name, names);
  return near === undefined ? "" : ` (did you mean "${near}"?)`;
}
