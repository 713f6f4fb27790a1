/**
 * What every task kind (script, shell, notebook, http, the MLflow kinds, your own) builds on:
 * a typed, immutable task with `.input()` / `.output()` and the usual settings, built on
 * `makeTask`; task names, file resolution and digests. Kind packages import it from
 * "@cairn/dsl/kind".
 */
import { dirname, relative, resolve, sep } from "node:path";
import { CacheValueError, DECLARATION_ENTRY, ENV_READ_ENTRY, kindRunEntry, sha256 } from "@cairn/cache";
import { KindOutputError, OptionError, validateWithSchema, OutputValidationError, type TaskCacheOptions, type TaskContext, type TaskDefinition } from "@cairn/core";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { asWritten, functionDependencies } from "../code-deps.ts";
import { errorSource, projectCallersOf, type SourcePlace } from "../declared-path.ts";
import type { EnvReads } from "../env-read.ts";
import { makeTask, type NodeOptions, type RetryOptions, type Task, TASK_NAME, TASK_NAME_RULE } from "../task.ts";
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

/**
 * How a kind's task is being used in build(), for its `checkCall`: called (`task({ ... })`), or
 * run per item by `map()` / per point by `sweep()`, whose items fill `itemInputs` (the map's
 * `as`, the space's keys) and whose other inputs are given as `with: { ... }`.
 */
export type KindCall = { readonly via: "call" } | { readonly via: "map" | "sweep"; readonly itemInputs: readonly string[] };

/** How a kind runs. */
export interface KindSpec {
  definition: TaskDefinition;
  /**
   * Checks the inputs of a use in build() (e.g. template placeholders), so that a mistake fails
   * the build rather than each run: `schema` is the input schema, if any; `call` says how the task
   * is used (a direct call, or map()/sweep(), whose item inputs hold refs or the space's values),
   * so that the error can say where to add an input.
   */
  checkCall?: (inputs: Record<string, unknown>, schema: StandardSchemaV1 | undefined, call: KindCall) => void;
  /**
   * For kinds that add outputs of their own (a notebook's `{ notebook, html }`): `.output(schema)`
   * does not go on the definition; instead the definition's run becomes `ownOutputs(schema)`,
   * which validates the part of the outputs the task itself produced.
   */
  ownOutputs?: (schema: StandardSchemaV1 | undefined) => TaskDefinition["run"];
  /**
   * The run may return any JSON value as the task's output (an `http` task's response: an array,
   * a number), not only an object of outputs. Without it, a run that returns anything but an
   * object (or nothing) fails its task with KindOutputError, naming the kind and what arrived.
   * @default false
   */
  anyOutput?: boolean;
}

const SETTINGS = ["version", "retries", "timeout", "pool", "cache", "env", "codeFiles"] as const;

/** Where map() and sweep() find a kind task's checkCall (a Symbol.for: it works across module copies). */
export const KIND_CHECK_CALL = Symbol.for("cairn.kind.checkCall");

/**
 * Wraps a kind's definition as a callable, typed, copy-on-write task. Call it from the kind's
 * own function (the one a flow calls, `sql(name, options)`), directly or through helpers: when
 * its caller is the project's own code (not a package's, nor Cairn's), the kind's code enters the
 * keys of its tasks: the text of `definition.run`, and, as for a function task, the top-level
 * declaration of each of the project's frames on the stack between `kindTask()` and the code
 * that declares the task (the helper that calls `kindTask()`, the kind's function), what they
 * and the run function refer to, and the project modules they import; so editing the kind
 * re-runs its tasks. The declaring statement itself (the flow's `const q = sql(...)`, its build
 * function) is the kind's user, not its code: only the names the run function uses count from
 * it. `definition.code` must still hold every option of the task that changes what it does
 * (see {@link configDigest}).
 */
export function kindTask<In, Out, Extra = {}>(spec: KindSpec): KindTask<In, Out, Extra> {
  // The kind's code is read from its own run function, before the check below wraps it.
  // An error the run throws names the first frame in the user's code, as a function task's does:
  // a kind of the project's shows its own line; Cairn's kinds and a package's have none there.
  const definition = withKindCode({ errorSource, ...spec.definition }, projectCallersOf(kindTask));
  // A run that is no function is refused by makeTask, naming the field: not wrapped into one.
  if (spec.anyOutput || typeof definition.run !== "function") return wrapKind({ ...spec, definition });
  const ownOutputs = spec.ownOutputs;
  return wrapKind({
    ...spec,
    definition: { ...definition, run: returningObject(definition) },
    ...(ownOutputs ? { ownOutputs: (schema) => returningObject({ ...definition, run: ownOutputs(schema) }) } : {}),
  });
}

/**
 * The definition's run, failing with KindOutputError when it returns anything but an object of
 * outputs or nothing: the types do not tie a kind's run to the task's outputs, and an array or a
 * number would otherwise be stored and cached as the outputs, its dependants reading `undefined`.
 */
function returningObject(definition: TaskDefinition): TaskDefinition["run"] {
  const { run, kind, writesOutputs } = definition;
  const checked = (returned: unknown, ctx: TaskContext) => {
    // A class instance passes here: the engine's own check (NotSerializableError) names it better.
    if (returned === undefined || (typeof returned === "object" && returned !== null && !Array.isArray(returned))) return returned;
    throw new KindOutputError(ctx.nodeId, kind, returned, (text) => ctx.mask(text), writesOutputs);
  };
  return (inputs, ctx) => {
    const returned = run(inputs, ctx);
    return isThenable(returned) ? Promise.resolve(returned).then((value) => checked(value, ctx)) : checked(returned, ctx);
  };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null && typeof (value as { then?: unknown }).then === "function";
}

/**
 * The definition with the kind's code among its code dependencies (beside the ones it declares
 * itself, such as a script's imports). The frames are read when a key is made, as for a function
 * task: a kind whose `kindTask()` is called by Cairn's code or a package's has none, and adds
 * nothing. Names found from a frame in another module than the first are made relative to the
 * first's folder, so that two modules' `index.ts#make` stay apart.
 */
function withKindCode(definition: TaskDefinition, kindFrames: () => readonly SourcePlace[]): TaskDefinition {
  const own = definition.codeDependencies;
  const runText = typeof definition.run === "function" ? definition.run.toString() : "";
  return {
    ...definition,
    codeDependencies: async (scope) => {
      // Modules tsc compiled count as their TypeScript sources, as `cairn run` and tsx count them.
      const places = await Promise.all(kindFrames().map((place) => asWritten(place, runText, scope)));
      const kind: Record<string, string> = {};
      if (places.length) {
        // The run function's text wherever it is written (a helper may hand it on from another module).
        kind[kindRunEntry(definition.kind)] = sha256(places.find((p) => p.fnText !== runText)?.fnText ?? runText);
        const base = dirname(places[0]!.place.file);
        for (const [i, { place, fnText }] of places.entries()) {
          // The outermost frame declares the task (unless kindTask() is called there directly).
          const declaring = i > 0 && i === places.length - 1;
          const found = await functionDependencies(place.file, fnText, scope, declaring ? undefined : place);
          for (const [name, digest] of Object.entries(found)) kind[place.file === places[0]!.place.file ? name : rebased(name, place.file, base)] = digest;
          addEnvReads(kind, found);
          // kindTask() called where the task is declared: that statement (or build function) is the
          // task's own declaration, named so by explain (a symbol: not in the key). Called from a
          // kind's function, the frame is the kind's code, whatever task it declares.
          const declaration = (found as { [DECLARATION_ENTRY]?: string })[DECLARATION_ENTRY];
          if (places.length === 1 && declaration !== undefined) Object.assign(kind, { [DECLARATION_ENTRY]: declaration });
        }
      }
      return own ? { ...kind, ...(await own(scope)) } : kind;
    },
  };
}

/**
 * What the run function reads from `process.env`, as the frame `found` was read in says (each
 * frame parses the run function with its own module's names for `process.env`), added to what
 * `kind` already says: the names of every frame, and unnamed when any frame says so. The entry is
 * a symbol, which `Object.entries` leaves out: without it the kind's reads fell back to a pattern
 * over `definition.code`, a config digest, so `process.env.X` in the run entered no key.
 */
function addEnvReads(kind: Record<string, string>, found: Record<string, string>): void {
  const reads = (found as { [ENV_READ_ENTRY]?: EnvReads })[ENV_READ_ENTRY];
  if (!reads) return;
  const had = (kind as { [ENV_READ_ENTRY]?: EnvReads })[ENV_READ_ENTRY];
  const names = [...new Set([...(had?.names ?? []), ...reads.names])].sort();
  Object.assign(kind, { [ENV_READ_ENTRY]: { names, unnamed: (had?.unnamed ?? false) || reads.unnamed } satisfies EnvReads });
}

/** A code-dependency name found for a function of `file` (`x.ts#helper`, `lib/y.ts`, by path from its folder), by path from `base` instead. */
function rebased(name: string, file: string, base: string): string {
  const self = file.slice(file.lastIndexOf(sep) + 1);
  const toBase = (path: string) => relative(base, path).split(sep).join("/");
  if (name === self || name.startsWith(`${self}#`)) return toBase(file) + name.slice(self.length);
  return toBase(resolve(dirname(file), name));
}

function wrapKind<In, Out, Extra>(spec: KindSpec): KindTask<In, Out, Extra> {
  const base = makeTask<In, Out>(spec.definition) as unknown as ((...a: unknown[]) => unknown) & Record<string, (...a: unknown[]) => { definition: TaskDefinition }>;
  const call = (inputs?: Record<string, unknown>, options?: NodeOptions) => {
    if (spec.checkCall && inputs && typeof inputs === "object") spec.checkCall(inputs, spec.definition.inputSchema, { via: "call" });
    return base(inputs, options);
  };
  const methods: Record<string, unknown> = { definition: (base as unknown as { definition: TaskDefinition }).definition };
  for (const m of SETTINGS) {
    // The base method validates and returns a copy; keep its definition, rewrap as a kind task.
    methods[m] = (...args: unknown[]) => wrapKind({ ...spec, definition: base[m]!(...args).definition });
  }
  const name = spec.definition.name;
  methods.input = (schema?: StandardSchemaV1) =>
    wrapKind({ ...spec, definition: { ...spec.definition, ...(schema ? { inputSchema: checkSchema(schema, name, "input") } : {}) } });
  methods.output = (schema?: StandardSchemaV1) => {
    if (!schema) return wrapKind(spec);
    checkSchema(schema, name, "output");
    // The schema checks the outputs the kind's process writes: one it lets be absent is not a missing one.
    if (spec.ownOutputs) return wrapKind({ ...spec, definition: { ...spec.definition, run: spec.ownOutputs(schema), writesOutputs: undefined } });
    return wrapKind({ ...spec, definition: { ...spec.definition, outputSchema: schema } });
  };
  const task = Object.assign(call, methods);
  if (spec.checkCall) {
    const check = spec.checkCall;
    Object.defineProperty(task, KIND_CHECK_CALL, { value: (inputs: Record<string, unknown>, how: KindCall) => check(inputs, spec.definition.inputSchema, how) });
  }
  return task as unknown as KindTask<In, Out, Extra>;
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

/** Checks a task name like task() does. */
export function checkName(name: string): void {
  if (typeof name !== "string" || !TASK_NAME.test(name)) {
    throw new OptionError("task name", TASK_NAME_RULE, name);
  }
}

/**
 * A short, stable digest of a kind's config (what changes what its tasks do: a query, a database,
 * a process's `env`), for `definition.code`. The same whatever the order of object keys; never
 * stored in clear. A sha256, computed where the task is declared (every load of the flow, every
 * worker): a secret does not belong in config but in the kind's `secrets` (read with
 * `ctx.secret()` when the task runs), whose values never enter a key.
 * The config must be JSON-like: strings, finite numbers, booleans, null, arrays and plain
 * objects (an object's `undefined` property counts as absent). A function, Map, Set, class
 * instance (a Date, a Buffer), symbol, BigInt or a cycle is refused with a CacheValueError naming
 * its path: its content cannot be digested faithfully, so put what matters into the config
 * instead (a version string for a function, `[...map]` for a Map, an ISO string for a Date).
 * @example
 * definition: { ..., code: configDigest({ db: options.db, query: options.query, version: "2" }) }
 */
export function configDigest(value: unknown): string {
  // (`undefined` alone has no JSON text.)
  return sha256(JSON.stringify(canonicalConfig(value, "config", [])) ?? "undefined").slice(0, 16);
}

/** `value` with every object's keys sorted (JSON.stringify's text is then the same for any key order); throws at what is not JSON-like. */
function canonicalConfig(value: unknown, path: string, parents: object[]): unknown {
  const refuse = (what: string, hint: string): never => {
    throw new CacheValueError(path, `got ${what}`, { hint: `configDigest() takes JSON-like config only: ${hint}` });
  };
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : refuse(String(value), "pass a finite number, or the value as a string.");
    case "undefined":
      return value;
    case "function":
      return refuse(`a function${value.name ? ` (${value.name})` : ""}`, "its code is not digested; put a version string (or the function's source) in the config instead, and bump it when the function changes.");
    case "bigint":
      return refuse(`a BigInt (${value}n)`, "pass it as a string, e.g. String(n).");
    case "symbol":
      return refuse(`a symbol (${String(value)})`, "pass a string instead.");
  }
  if (value === null) return null;
  const object = value as object;
  if (parents.includes(object)) return refuse("a cycle (an object that contains itself)", "pass a tree of plain values.");
  if (Array.isArray(object)) {
    if (Object.getPrototypeOf(object) !== Array.prototype) return refuse(`a ${describeKind(object)}`, "pass a plain array.");
    return Array.from(object, (item, i) => canonicalConfig(item, `${path}[${i}]`, [...parents, object]));
  }
  const proto = Object.getPrototypeOf(object) as unknown;
  if (object instanceof Map) return refuse("a Map", "pass [...map] (an array of [key, value] pairs) or Object.fromEntries(map).");
  if (object instanceof Set) return refuse("a Set", "pass [...set].sort() (an array).");
  if (proto !== Object.prototype && proto !== null) {
    return refuse(`a ${describeKind(object)} instance`, "pass its content as plain data (a Date as date.toISOString(), a class instance as the plain object of its fields).");
  }
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(object).sort()) {
    const item = canonicalConfig((object as Record<string, unknown>)[key], `${path}${/^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`}`, [...parents, object]);
    if (item !== undefined) Object.defineProperty(sorted, key, { value: item, enumerable: true, writable: true, configurable: true });
  }
  return sorted;
}

function describeKind(value: object): string {
  return (value.constructor as { name?: string } | undefined)?.name || "non-plain object";
}

/** sha256 of a file's content: @cairn/cache's digestFileSync, by the name kinds know it. */
export { digestFileSync as fileDigest } from "@cairn/cache";

export { resolveTaskFile, type ResolveTaskFileOptions } from "../declared-path.ts";
