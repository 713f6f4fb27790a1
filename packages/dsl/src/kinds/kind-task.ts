/**
 * What the task kinds (script, shell, notebook, http) share: a typed, immutable task
 * with `.input()` / `.output()` and the usual settings, built on `makeTask`; file
 * resolution and digests; the Python used for scripts and notebooks.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { sha256 } from "@cairn/cache";
import { OptionError, validateWithSchema, OutputValidationError, type TaskCacheOptions, type TaskContext, type TaskDefinition } from "@cairn/core";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { makeTask, type NodeOptions, type RetryOptions, type Task } from "../task.ts";
import type { SchemaInput, SchemaOutput } from "../types.ts";

/** Outputs every use of the kind adds to the declared ones (a notebook's `{ notebook, html }`). */
type WithExtra<T, Extra> = {} extends Extra ? T : T & Extra;

/**
 * A task of another kind than `function` (script, shell, notebook, http): call it in
 * `build()` like any task; `.input()` and `.output()` declare its types (and schemas),
 * and every method returns a copy. (An intersection with Task, so that the inference
 * helpers InferInput / InferOutput see it as a Task.)
 */
export type KindTask<In, Out, Extra = {}> = KindMethods<In, Out, Extra> & Task<In, Out>;

/** The builder methods of a KindTask; the settings return KindTasks, so they chain with `.input()` / `.output()`. */
export interface KindMethods<In, Out, Extra> {
  version(version: string): KindTask<In, Out, Extra>;
  retries(count: number, options?: RetryOptions): KindTask<In, Out, Extra>;
  timeout(ms: number): KindTask<In, Out, Extra>;
  pool(name: string): KindTask<In, Out, Extra>;
  cache(options: TaskCacheOptions | false): KindTask<In, Out, Extra>;
  env(...names: string[]): KindTask<In, Out, Extra>;
  /** Files or folders the task's code depends on; their content enters the cache key. */
  codeFiles(...paths: Array<string | URL>): KindTask<In, Out, Extra>;
  /** Declares inputs with any Standard Schema (zod, valibot, ...): validated before each run. */
  input<S extends StandardSchemaV1>(schema: S): KindTask<SchemaInput<S>, Out, Extra>;
  /** Declares the inputs' type, without run-time validation. */
  input<T extends Record<string, unknown>>(): KindTask<T, Out, Extra>;
  /** Declares outputs with a Standard Schema: validated after each run. */
  output<S extends StandardSchemaV1>(schema: S): KindTask<In, WithExtra<SchemaOutput<S>, Extra>, Extra>;
  /** Declares the outputs' type, without run-time validation. */
  output<T>(): KindTask<In, WithExtra<T, Extra>, Extra>;
}

/** How a kind runs. */
export interface KindSpec {
  definition: TaskDefinition;
  /** Checks the inputs object of a call in build() (e.g. template placeholders); `schema` is the input schema, if any. */
  checkCall?: (inputs: Record<string, unknown>, schema: StandardSchemaV1 | undefined) => void;
  /**
   * For kinds that add outputs of their own (a notebook's `{ notebook, html }`): `.output(schema)`
   * does not go on the definition; instead the definition's run becomes `ownOutputs(schema)`,
   * which validates the part of the outputs the task itself produced.
   */
  ownOutputs?: (schema: StandardSchemaV1 | undefined) => TaskDefinition["run"];
}

const SETTINGS = ["version", "retries", "timeout", "pool", "cache", "env", "codeFiles"] as const;

/** Wraps a kind's definition as a callable, typed, copy-on-write task. */
export function kindTask<In, Out, Extra = {}>(spec: KindSpec): KindTask<In, Out, Extra> {
  const base = makeTask<In, Out>(spec.definition) as unknown as ((...a: unknown[]) => unknown) & Record<string, (...a: unknown[]) => { definition: TaskDefinition }>;
  const call = (inputs?: Record<string, unknown>, options?: NodeOptions) => {
    if (spec.checkCall && inputs && typeof inputs === "object") spec.checkCall(inputs, spec.definition.inputSchema);
    return base(inputs, options);
  };
  const methods: Record<string, unknown> = { definition: (base as unknown as { definition: TaskDefinition }).definition };
  for (const m of SETTINGS) {
    // The base method validates and returns a copy; keep its definition, rewrap as a kind task.
    methods[m] = (...args: unknown[]) => kindTask({ ...spec, definition: base[m]!(...args).definition });
  }
  const name = spec.definition.name;
  methods.input = (schema?: StandardSchemaV1) =>
    kindTask({ ...spec, definition: { ...spec.definition, ...(schema ? { inputSchema: checkSchema(schema, name, "input") } : {}) } });
  methods.output = (schema?: StandardSchemaV1) => {
    if (!schema) return kindTask(spec);
    checkSchema(schema, name, "output");
    if (spec.ownOutputs) return kindTask({ ...spec, definition: { ...spec.definition, run: spec.ownOutputs(schema) } });
    return kindTask({ ...spec, definition: { ...spec.definition, outputSchema: schema } });
  };
  return Object.assign(call, methods) as unknown as KindTask<In, Out, Extra>;
}

/** Validates the kind's own part of the outputs with `.output(schema)`, like the engine does for the whole output. */
export async function validateOwnOutputs(
  schema: StandardSchemaV1 | undefined,
  value: Record<string, unknown>,
  ctx: TaskContext,
): Promise<Record<string, unknown>> {
  if (!schema) return value;
  const r = await validateWithSchema(schema, value);
  if (!r.ok) throw new OutputValidationError(ctx.nodeId, r.issues);
  return r.value as Record<string, unknown>;
}

function checkSchema(schema: StandardSchemaV1, task: string, which: string): StandardSchemaV1 {
  if (!schema || typeof (schema as Partial<StandardSchemaV1>)["~standard"]?.validate !== "function") {
    throw new OptionError(`task "${task}" .${which}()`, "a Standard Schema (zod, valibot, arktype, ...) or no argument with a type parameter", schema);
  }
  return schema;
}

const TASK_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Checks a task name like task() does. */
export function checkName(name: string): void {
  if (typeof name !== "string" || !TASK_NAME.test(name)) {
    throw new OptionError("task name", "a non-empty string of letters, digits, `_`, `.` and `-`", name);
  }
}

/** Common settings of the process kinds. */
export interface ProcessOptions {
  /** Extra environment variables for the process (values enter the code fingerprint as a digest). */
  env?: Readonly<Record<string, string>>;
  /** Secrets (read with ctx.secret at run time) passed to the process as environment variables of the same name. */
  secrets?: readonly string[];
  /** Working directory. @default the working directory of the flow's process (notebooks: the notebook's folder) */
  cwd?: string;
  /** Time between SIGTERM and SIGKILL when the task is cancelled or times out, in ms. @default 5000 */
  killGraceMs?: number;
}

/** Checks the shared process options. */
export function checkProcessOptions(name: string, o: ProcessOptions): void {
  const where = (k: string) => `task "${name}" option \`${k}\``;
  if (o.env !== undefined) {
    if (typeof o.env !== "object" || o.env === null) throw new OptionError(where("env"), "an object of strings", o.env);
    for (const [k, v] of Object.entries(o.env)) if (typeof v !== "string") throw new OptionError(where(`env.${k}`), "a string", v);
  }
  if (o.secrets !== undefined && (!Array.isArray(o.secrets) || o.secrets.some((s) => typeof s !== "string" || !s))) {
    throw new OptionError(where("secrets"), "an array of secret names", o.secrets);
  }
  if (o.cwd !== undefined && (typeof o.cwd !== "string" || !o.cwd)) throw new OptionError(where("cwd"), "a folder path", o.cwd);
  if (o.killGraceMs !== undefined && !(o.killGraceMs >= 0)) throw new OptionError(where("killGraceMs"), "a number of milliseconds >= 0", o.killGraceMs);
}

/** The process environment for a run: static env, plus the secrets the task asked for (masked in its logs by ctx.mask, as every known secret). */
export function processEnv(o: ProcessOptions, ctx: TaskContext, extra: Record<string, string | undefined> = {}) {
  const env: Record<string, string | undefined> = { ...extra, ...o.env };
  for (const s of o.secrets ?? []) env[s] = ctx.secret(s);
  return { env };
}

/** A short, stable digest of config that changes what a process does (never stored in clear, values may be private). */
export function configDigest(value: unknown): string {
  return sha256(JSON.stringify(value)).slice(0, 16);
}

/** sha256 of a file's content. */
export function fileDigest(path: string): string {
  return sha256(readFileSync(path));
}

const KINDS_DIR = dirname(fileURLToPath(import.meta.url));
/** The folder of the dependency-free Python helper `cairn_task.py`, put on PYTHONPATH of Python children. */
export const PYTHON_HELPER_DIR = resolve(KINDS_DIR, "../../python");

export { resolveTaskFile } from "../declared-path.ts";

/**
 * The Python for scripts and notebooks: `$CAIRN_PYTHON`, else the active virtualenv
 * (`$VIRTUAL_ENV`), else the nearest `.venv` from the working directory up, else `python3`.
 */
export function defaultPython(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CAIRN_PYTHON) return env.CAIRN_PYTHON;
  const inVenv = (root: string) => [join(root, "bin", "python"), join(root, "Scripts", "python.exe")].find((p) => existsSync(p));
  if (env.VIRTUAL_ENV) {
    const p = inVenv(env.VIRTUAL_ENV);
    if (p) return p;
  }
  for (let d = process.cwd(); ; d = dirname(d)) {
    const p = inVenv(join(d, ".venv"));
    if (p) return p;
    if (dirname(d) === d) break;
  }
  return "python3";
}

/** PYTHONPATH with the Cairn helper folder first. */
export function pythonPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PYTHONPATH ? `${PYTHON_HELPER_DIR}${process.platform === "win32" ? ";" : ":"}${env.PYTHONPATH}` : PYTHON_HELPER_DIR;
}
