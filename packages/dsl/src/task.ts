import {
  checkKnownKeys,
  DuplicateNodeError,
  durationMs,
  isRef,
  LONGEST_TIMER,
  LONGEST_TIMER_MS,
  type CodeFile,
  NO_RETRY,
  OptionError,
  type RefValue,
  setOwnProperty,
  type FlowNode,
  type TaskCacheOptions,
  type TaskContext,
  type TaskDefinition,
  UnknownNodeError,
} from "@cairn/core";
import { basename, isAbsolute } from "node:path";
import { SOURCE_CODE_ENTRY } from "@cairn/cache";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { type BuildContext, currentBuild, nodeToRef, proxyKind, refProxy } from "./build-context.ts";
import { asWritten, CAPTURED_ENTRY, functionDependencies } from "./code-deps.ts";
import { atUserCode, callSite, declaringModule, errorSource, projectRelativeName, resolveDeclaredPath, shown, type SourcePlace } from "./declared-path.ts";
import { envReadBy } from "./env-read.ts";
import { paramsReadBy } from "./params-read.ts";
import type { IsAny, MaybeNode, MaybeRef, Node, OrDefault, Ref, SchemaInput, SchemaOutput, Unset, WireInputs } from "./types.ts";

/** Options of one use of a task in a flow. */
export interface NodeOptions {
  /** Node id; must be unique in the flow. @default the task name, then `name-2`, `name-3`, ... */
  id?: string | undefined;
  /** Nodes (or node ids) that must finish first, beyond those whose outputs are wired in. */
  after?: ReadonlyArray<string | { readonly $id: string }> | undefined;
  /**
   * Runs the node only when this boolean holds; when it is false, the node and its dependants
   * are skipped (reason "condition false") and the flow still succeeds. Its outputs are typed
   * optional (`T | undefined` in the flow's outputs) whenever the options' type lets `if` hold a
   * condition: also a `NodeOptions` variable, or a ref that may be `undefined` (then no condition).
   * A predicate over an output: `when(ref, test)`.
   * @example const model = train({ data: d.data }, { if: check.passed });
   * @example const model = train({ data: d.data }, { if: when(check.rows, (n) => n > 1000) });
   */
  if?: Ref<boolean> | Condition | undefined;
}

/**
 * True when options of type `O` may hold a condition: an `if` whose type is more than
 * `undefined`. A `NodeOptions` variable (`if?:`) or `{ if: maybe }` may skip the node as surely as
 * `{ if: c.ok }` does, so each gives optional outputs; `{}` and `{ id }` do not.
 */
type MayHaveCondition<O> = "if" extends keyof O ? ([Exclude<O["if" & keyof O], undefined>] extends [never] ? false : true) : false;

/**
 * `unknown` when an input of `W` is a {@link MaybeRef} (at its top level), else `never`. An `any`
 * input (an output of a task that returns `any`) is not one: it would match both ways.
 */
type FromMaybe<W> = true extends { [K in keyof W]: IsAny<W[K]> extends true ? false : W[K] extends MaybeRef<any> ? true : false }[keyof W] ? unknown : never;

/** The keys of `W` that are not inputs of the task, each typed `never`: an unknown input is an error, as without generics. */
type NoExtra<W, In> = unknown extends In ? unknown : string extends keyof In ? unknown : { [K in Exclude<keyof W, keyof In>]: never };

/** Retry settings of `.retries()`. */
export interface RetryOptions {
  /** Delay before the first retry, in ms; doubles each time. @default 1000 */
  minDelayMs?: number | undefined;
  /** Upper bound of the delay, in ms. @default 30000 */
  maxDelayMs?: number | undefined;
}

/** What `.cache()` takes. */
export interface CacheSettings {
  /**
   * Entries expire after this long, by the store's clock: whole milliseconds >= 1, or a duration
   * such as "30m", "12h", "7d". Leave it out for entries that never expire (`Infinity` is refused).
   */
  ttl?: number | string | undefined;
  /** Extra value mixed into the cache key, e.g. a data snapshot date. */
  key?: string | undefined;
}

/** Settings every task kind shares. */
interface Settings {
  version?: string;
  retry: TaskDefinition["retry"];
  timeoutMs?: number;
  pool?: string;
  cache: TaskCacheOptions | false;
  env: readonly string[];
  codeFiles?: readonly CodeFile[];
}

/** Builder methods shared by task builders and finished tasks; each returns a copy. */
export interface TaskSettings<Self> {
  /** Declared version; part of the cache key. Bump it to invalidate cached results. */
  version(version: string): Self;
  /** Retries after a failed attempt, with exponential backoff. @default 0 */
  retries(count: number, options?: RetryOptions): Self;
  /** Timeout of one attempt, in ms; the attempt's `ctx.signal` aborts when it passes. */
  timeout(ms: number): Self;
  /** Named pool that bounds this kind of work (limits set with `run({ pools })` or `--pool name=N`). */
  pool(name: string): Self;
  /**
   * Cache settings, or `false` to always run (and store nothing).
   * @example .cache({ ttl: "7d", key: "snapshot-2026-11" })
   */
  cache(options: CacheSettings | false): Self;
  /** Environment variables whose values enter the cache key (values are hashed, never stored). */
  env(...names: string[]): Self;
  /**
   * Files or folders the task's code depends on beyond its own source (modules it imports,
   * a config file): their content enters the cache key, so editing one re-runs the task.
   * Relative paths resolve against the declaring module's folder, then the working directory.
   * @example task("features").codeFiles("./lib/features.ts", "./config").run(...)
   */
  codeFiles(...paths: Array<string | URL>): Self;
}

/** A finished task: call it inside `build` to add a node. */
export interface Task<In, Out> extends TaskSettings<Task<In, Out>> {
  /**
   * Adds a node. With a condition (`{ if }`), or wired to an output of a node that may be
   * skipped, its outputs may be missing: its refs are then {@link MaybeRef}s. (One signature,
   * not overloads: a mis-wired input is reported as that input's own error.)
   */
  <W extends WireInputs<In> = WireInputs<In>, O extends NodeOptions = {}>(
    ...args: {} extends In ? [inputs?: W & NoExtra<W, In>, options?: O] : [inputs: W & NoExtra<W, In>, options?: O]
  ): MayHaveCondition<O> extends true ? MaybeNode<Out> : [FromMaybe<W>] extends [never] ? Node<Out> : MaybeNode<Out>;
  /** The plain definition the engine runs. */
  readonly definition: TaskDefinition;
  /** @internal Phantom types for inference helpers. */
  readonly __types?: { input: In; output: Out };
}

/** A task being declared: set its input and output, then `.run(fn)`. */
export interface TaskBuilder<In = Unset, Arg = Unset, Out = Unset> extends TaskSettings<TaskBuilder<In, Arg, Out>> {
  /** Declares inputs with any Standard Schema (zod, valibot, ...): validated before each run. */
  input<S extends StandardSchemaV1>(schema: S): TaskBuilder<SchemaInput<S>, SchemaOutput<S>, Out>;
  /** Declares the inputs' type, without run-time validation. */
  input<T extends Record<string, unknown>>(): TaskBuilder<T, T, Out>;
  /** Declares outputs with a Standard Schema: validated after each run. */
  output<S extends StandardSchemaV1>(schema: S): TaskBuilder<In, Arg, SchemaOutput<S>>;
  /** Declares the outputs' type; `.run()`'s function must return it. */
  output<T>(): TaskBuilder<In, Arg, T>;
  /** The function that does the work; its return value is the task's output (inferred when `.output()` was not used). */
  run<R extends OrDefault<Out, unknown>>(
    fn: (inputs: OrDefault<Arg, {}>, ctx: TaskContext<any>) => R | Promise<R>,
  ): Task<OrDefault<In, {}>, Out extends Unset ? Awaited<R> : Out>;
}

/** The input type of a task, like zod's `infer`. */
export type InferInput<T> = T extends Task<infer I, unknown> ? I : never;
/** The output type of a task. */
export type InferOutput<T> = T extends Task<any, infer O> ? O : never;

interface BuilderState extends Settings {
  name: string;
  inputSchema?: StandardSchemaV1;
  outputSchema?: StandardSchemaV1;
}

/** A task's name (and a node id, a pool's name): ASCII, not starting with `.` or `-` (`..` would be a path, `-rf` a flag). */
export const TASK_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
/** {@link TASK_NAME} in words, for the errors that refuse a name. */
export const TASK_NAME_RULE = "a non-empty string of ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`";
/** A name a process environment can hold: no `=`, `$`, whitespace or NUL. */
const ENV_NAME = /^[^\s=$\0]+$/;

/**
 * Declares a task.
 * @example
 * const double = task("double").input<{ x: number }>().run(({ x }) => ({ y: x * 2 }));
 */
export function task(name: string): TaskBuilder {
  if (typeof name !== "string" || !TASK_NAME.test(name)) {
    throw new OptionError("task name", TASK_NAME_RULE, name);
  }
  return builder({ name, retry: NO_RETRY, cache: {}, env: [] });
}

function builder(state: BuilderState): TaskBuilder<any, any, any> {
  return {
    ...settingsMethods(state, builder),
    input: (schema?: StandardSchemaV1) => builder({ ...state, ...(schema ? { inputSchema: checkSchema(schema, state.name, "input") } : {}) }),
    output: (schema?: StandardSchemaV1) => builder({ ...state, ...(schema ? { outputSchema: checkSchema(schema, state.name, "output") } : {}) }),
    run: (fn: (inputs: any, ctx: TaskContext) => unknown) => {
      if (typeof fn !== "function") throw new OptionError(`task "${state.name}" .run()`, "a function", fn);
      const code = fn.toString();
      const envReads = envReadBy(code);
      const declaredIn = declaringModule({ generated: true });
      if (!declaredAt.has(fn as TaskDefinition["run"])) declaredAt.set(fn as TaskDefinition["run"], declaredIn);
      const codeDependenciesOf: CodeDependenciesOf = (definition) => async (scope) => {
        const place = declaredIn();
        if (place === undefined) return {};
        // A module tsc compiled counts as its TypeScript source, as `cairn run` and tsx count it.
        const written = await asWritten(place, code, scope);
        const found = await functionDependencies(written.place.file, written.fnText, scope, written.place);
        const captured = (found as { [CAPTURED_ENTRY]?: string[] })[CAPTURED_ENTRY];
        if (captured) warnCaptured(definition, captured, written.place);
        return written.fnText === code ? found : Object.assign(found, { [SOURCE_CODE_ENTRY]: written.fnText });
      };
      return makeTask(withCodeDependencies({
        name: state.name,
        kind: "function",
        ...(state.version !== undefined ? { version: state.version } : {}),
        ...(state.inputSchema ? { inputSchema: state.inputSchema } : {}),
        ...(state.outputSchema ? { outputSchema: state.outputSchema } : {}),
        run: fn as TaskDefinition["run"],
        errorSource,
        code,
        paramsRead: () => paramsReadBy(code),
        retry: state.retry,
        ...(state.timeoutMs !== undefined ? { timeoutMs: state.timeoutMs } : {}),
        ...(state.pool !== undefined ? { pool: state.pool } : {}),
        cache: state.cache,
        env: state.env,
        ...(envReads.names.length ? { envRead: envReads.names } : {}),
        envReadUnnamed: envReads.unnamed,
        ...(state.codeFiles ? { codeFiles: state.codeFiles } : {}),
      }, codeDependenciesOf));
    },
  } as TaskBuilder<any, any, any>;
}

/** Makes a function task's `codeDependencies` for one definition of it: each copy (`.version()` after `.run()`) gets its own. */
type CodeDependenciesOf = (definition: TaskDefinition) => NonNullable<TaskDefinition["codeDependencies"]>;

/** The maker of each function task's `codeDependencies`, by the one it made: a copy of the task makes its own. */
const codeDependenciesMakers = new WeakMap<NonNullable<TaskDefinition["codeDependencies"]>, CodeDependenciesOf>();

/** `definition` with `codeDependencies` made for it by `make` (the one of a copy, when `make` is not given). */
function withCodeDependencies(definition: TaskDefinition, make = definition.codeDependencies && codeDependenciesMakers.get(definition.codeDependencies)): TaskDefinition {
  if (!make) return definition;
  const codeDependencies: NonNullable<TaskDefinition["codeDependencies"]> = (scope) => made(scope);
  const own: TaskDefinition = { ...definition, codeDependencies };
  const made = make(own);
  codeDependenciesMakers.set(codeDependencies, make);
  return own;
}

/** Tasks warned about, by name, module and names: once per process, for an app that builds its flow for every run. */
const warnedCaptured = new Set<string>();

/**
 * Warns that a task's function uses names of the function it was declared in (a factory's
 * parameter), whose values are in no cache key: another value would hit the entry made with the
 * old one. Not when the task says what else its key holds (`.version()`, `.cache({ key })`) or
 * is not cached.
 */
function warnCaptured(definition: TaskDefinition, names: readonly string[], place: SourcePlace): void {
  if (definition.cache === false || definition.cache.key !== undefined || definition.version !== undefined) return;
  const id = `${definition.name}\0${place.file}\0${names.join(",")}`;
  if (warnedCaptured.has(id)) return;
  warnedCaptured.add(id);
  const listed = names.map((n) => `\`${n}\``).join(" and ");
  const one = names.length === 1;
  // JSON, not String(): an object's String() is "[object Object]" whatever it holds.
  const value = one ? `JSON.stringify(${names[0]!})` : `JSON.stringify([${names.join(", ")}])`;
  process.emitWarning(
    `Task "${definition.name}" (declared at ${shown(place.file)}:${place.line}) uses ${listed} of the function it is declared in (a factory's argument or variable), ` +
      `not ${one ? "an input or a name" : "inputs or names"} of ${basename(place.file)}'s top level: the value${one ? "" : "s"} of ${listed} ${one ? "is" : "are"} in no cache key, ` +
      `so when ${one ? "it changes" : "one changes"} the task still comes from the cache, with the result of the old value. ` +
      `Pass ${one ? "it as an input" : "them as inputs"}, or put ${one ? "it" : "them"} in the key with \`.version(${value})\` or \`.cache({ key: ${value} })\`, which also silences this warning.`,
    "CairnClosureWarning",
  );
}

/** The `after` of nodes without one: frozen, so one array serves them all. */
const NO_AFTER: readonly string[] = Object.freeze([]);

/** Wraps a definition as a callable task. Also used by other task kinds (scripts, notebooks, ...). */
export function makeTask<In, Out>(definition: TaskDefinition): Task<In, Out> {
  checkDefinition(definition);
  const call = (inputs: Record<string, unknown> = {}, options: NodeOptions = {}) => addNode(definition, inputs, checkNodeOptions(definition.name, options));
  const settings = settingsMethods(definition, (next) => makeTask(withCodeDependencies({ ...definition, ...next })));
  return Object.assign(call, settings, { definition: Object.freeze(definition) }) as unknown as Task<In, Out>;
}

/**
 * What the engine reads of a definition, checked where a kind (Cairn's or a plug-in's) makes it:
 * missed here, a wrong one fails later as a TypeError deep in a run, or caches under the text
 * "undefined" for every config.
 */
function checkDefinition(d: TaskDefinition): void {
  const where = (field: string) => `task definition \`${field}\`${typeof d?.name === "string" ? ` of "${d.name}"` : ""}`;
  if (typeof d !== "object" || d === null) throw new OptionError("task definition", "an object (see TaskDefinition)", d);
  if (typeof d.name !== "string" || !TASK_NAME.test(d.name)) throw new OptionError(where("name"), TASK_NAME_RULE, d.name);
  if (typeof d.kind !== "string" || !d.kind) throw new OptionError(where("kind"), "a non-empty string naming the kind (it is the `cairn.task_kind` tag)", d.kind);
  if (typeof d.code !== "string") throw new OptionError(where("code"), "a string: the fingerprint of what the task does (its cache key's code)", d.code);
  if (typeof d.run !== "function") throw new OptionError(where("run"), "a function (inputs, ctx) => outputs", d.run);
  if (!Array.isArray(d.env) || d.env.some((name) => typeof name !== "string")) throw new OptionError(where("env"), "an array of environment variable names ([] for none)", d.env);
  if (d.cache !== false && (typeof d.cache !== "object" || d.cache === null)) throw new OptionError(where("cache"), "false or an object ({} for the defaults)", d.cache);
  const retry = d.retry as Partial<TaskDefinition["retry"]> | undefined;
  if (typeof retry !== "object" || retry === null || !Number.isInteger(retry.retries)) {
    throw new OptionError(where("retry"), "{ retries, minDelayMs, maxDelayMs } (NO_RETRY for none)", d.retry);
  }
}

/** The keys of a task call's options, to name a misspelt one (map() and sweep() check their own). */
const NODE_OPTIONS = ["id", "after", "if"];

/** Other tools' words for a node option, which spelling alone does not lead to: `depends_on` (Terraform, Compose) and `needs` (GitHub Actions) are `after`. */
const NODE_OPTION_SYNONYMS: Readonly<Record<string, string>> = {
  dependson: "after",
  depends_on: "after",
  depends: "after",
  deps: "after",
  needs: "after",
  waitfor: "after",
  wait_for: "after",
  upstream: "after",
  when: "if",
  condition: "if",
  runif: "if",
  run_if: "if",
  onlyif: "if",
  only_if: "if",
  name: "id",
  nodeid: "id",
  node_id: "id",
};

/**
 * A task call's options, refused when they are not `{ id?, after?, if? }`: a misspelt key
 * (`dependsOn`, `iff`) was ignored without a word, so the node ran without waiting, or whatever
 * the condition. `cairn run` and tsx do not type-check, so this is the only check a flow gets.
 */
function checkNodeOptions(name: string, options: unknown): NodeOptions {
  const where = `task "${name}" options`;
  const expected = "{ id?, after?, if? } or nothing";
  // A handle, a reference or a condition given as the options themselves: named with what to write instead.
  const given =
    proxyKind(options) === "node"
      ? { got: `the node "${(options as { $id: string }).$id}"`, fix: `To run after it, pass { after: [node] }.` }
      : proxyKind(options) === "param" || isRef(options)
        ? { got: "a reference", fix: "To run only when it holds, pass { if: ref }." }
        : isCondition(options)
          ? { got: "a condition made by when()", fix: "Pass it as { if: when(...) }." }
          : undefined;
  if (given) throw new OptionError(where, expected, given.got, `Expected \`${where}\` to be ${expected}, got ${given.got}. ${given.fix}`);
  if (Array.isArray(options)) {
    throw new OptionError(where, expected, options, `Expected \`${where}\` to be ${expected}, got an array of ${options.length}. To run after other nodes, pass { after: [...] }.`);
  }
  if (typeof options !== "object" || options === null) throw new OptionError(where, expected, options);
  checkKnownKeys(options, NODE_OPTIONS, `task "${name}"`, (key) => NODE_OPTION_SYNONYMS[key.toLowerCase()]);
  return options as NodeOptions;
}

/**
 * Adds a node of `definition` to the build in progress: its id (the task name, then `name-2`,
 * ...), its inputs with node handles made refs, its `after` and condition, and `extra` (a map's
 * spec). Returns the node's handle. Shared by task calls, map() and sweep().
 */
export function addNode(definition: TaskDefinition, inputs: Record<string, unknown>, options: NodeOptions, extra?: Pick<FlowNode, "map">): Record<string, unknown> {
  const build = currentBuild(definition.name);
  if (typeof inputs !== "object" || inputs === null || Array.isArray(inputs)) {
    throw new OptionError(`task "${definition.name}" inputs`, "an object of inputs by name, e.g. load({ rows: 5 })", inputs);
  }
  checkSameNameTask(build, definition);
  const uses = (build.uses.get(definition.name) ?? 0) + 1;
  build.uses.set(definition.name, uses);
  if (options.id !== undefined && (typeof options.id !== "string" || !TASK_NAME.test(options.id))) {
    // As a task name: `[` and `]` are a map item's (`fit[0]`), and an id reaches run names, `--rerun` and CAIRN_TASK.
    throw new OptionError(`task "${definition.name}" option \`id\``, `${TASK_NAME_RULE}, like a task name`, options.id);
  }
  const id = options.id ?? (uses === 1 ? definition.name : `${definition.name}-${uses}`);
  // Found here, where it is known which id was given and which a call got without one (the
  // graph, which checks any definition, cannot tell), and at the line of the call.
  const automatic = options.id === undefined ? definition.name : undefined;
  if (build.ids.has(id)) {
    const other = build.ids.get(id);
    const dup = new DuplicateNodeError(build.flowName, id, (other === undefined) !== (automatic === undefined) ? (other ?? automatic) : undefined);
    dup.message += atUserCode();
    throw dup;
  }
  build.ids.set(id, automatic);
  const wired: Record<string, unknown> = {};
  for (const k of Object.keys(inputs)) {
    const value = nodeToRef(inputs[k], () => `task "${definition.name}" input \`${k}\``);
    // As Object.fromEntries did: an own "__proto__" input, not a prototype.
    setOwnProperty(wired, k, value);
  }
  const test = isCondition(options.if) ? options.if.test : undefined;
  const testAt = isCondition(options.if) ? (options.if as unknown as { [CONDITION_AT]?: () => string | undefined })[CONDITION_AT] : undefined;
  const condition = options.if === undefined ? undefined : isCondition(options.if) ? options.if.ref : nodeToRef(options.if, () => `task "${id}" option \`if\``);
  if (condition !== undefined && !isRef(condition) && typeof condition !== "boolean") {
    throw new OptionError(`task "${id}" option \`if\``, "a boolean output or param (a reference), or a boolean", options.if);
  }
  const node: FlowNode = {
    id,
    task: definition,
    inputs: Object.freeze(wired),
    after: options.after === undefined ? NO_AFTER : Object.freeze(afterIds(options.after, build, id)),
    ...(condition !== undefined ? { condition: condition as FlowNode["condition"] & object } : {}),
    ...(test ? { conditionTest: test as (value: unknown) => unknown } : {}),
    ...(testAt ? { conditionAt: testAt } : {}),
    ...extra,
  };
  build.nodes.push(node);
  return refProxy("node", id, build.buildId);
}

/** The node ids of an `after` option; a node handle made by another flow's build is refused, as a ref of one is. */
function afterIds(after: NodeOptions["after"], build: BuildContext, id: string): string[] {
  if (!Array.isArray(after)) throw new OptionError(`task "${id}" option \`after\``, "an array of nodes or node ids", after);
  return after.map((a) => {
    if (typeof a === "string") return a;
    // A handle of another flow would bind to this flow's node of the same id.
    if (proxyKind(a) === "node" && (a as unknown as { $out: RefValue }).$out.buildId !== build.buildId) {
      const error = new UnknownNodeError(build.flowName, id, "after", a.$id, "node", { after: true, otherFlow: true });
      error.message += atUserCode();
      throw error;
    }
    const target = typeof a === "object" && a !== null ? a.$id : undefined;
    if (typeof target !== "string") throw new OptionError(`task "${id}" option \`after\``, "an array of nodes or node ids", a);
    return target;
  });
}

/**
 * Refuses a second function task of a name whose first, in this flow, has the same code but
 * another function (a factory's: `makeScale(2)`, `makeScale(3)`): what the function closes over
 * is not in the cache key, so the two would share cache entries, and the second get the first's
 * result. The same function (a copy made by `.retries()` and the like), another version, cache
 * key or declared code files, or a declaration in another module, has a key of its own.
 */
function checkSameNameTask(build: BuildContext, definition: TaskDefinition): void {
  const first = build.tasks.get(definition.name);
  if (!first) {
    build.tasks.set(definition.name, definition);
    return;
  }
  if (first.run === definition.run || first.kind !== "function" || definition.kind !== "function" || first.code !== definition.code) return;
  if (first.cache === false || definition.cache === false || first.cache.key !== definition.cache.key || first.version !== definition.version) return;
  if (JSON.stringify(first.codeFiles ?? []) !== JSON.stringify(definition.codeFiles ?? []) || first.env.join() !== definition.env.join()) return;
  const [a, b] = [declaredAt.get(first.run)?.(), declaredAt.get(definition.run)?.()];
  if (a && b && a.file !== b.file) return; // each module's own code enters its key
  throw new OptionError(
    `task "${definition.name}"`,
    "one task per name in a flow",
    undefined,
    `Flow "${build.flowName}" uses two different tasks named "${definition.name}" with the same code${atUserCode()}: their functions ` +
      `differ only in what they close over (made by one factory function called twice?), which is not part of a task's ` +
      `cache key, so they would share cache entries and one would get the other's result. Give each its own name ` +
      `(task(\`${definition.name}-\${arg}\`) in the factory) or .version(), or pass what differs as an input.`,
  );
}

/** Where each function task's function was declared (`.run(fn)`), worked out when asked. */
const declaredAt = new WeakMap<TaskDefinition["run"], () => SourcePlace | undefined>();

declare const conditionBrand: unique symbol;

/** A condition made by {@link when}: a predicate over a referenced value. */
export interface Condition {
  readonly ref: unknown;
  readonly test: (value: never) => boolean;
  readonly [conditionBrand]: true;
}

const CONDITION_MARK = Symbol.for("cairn.condition");
/** Where `when()` was called (callSite): a test that throws is reported there. */
const CONDITION_AT = Symbol.for("cairn.condition.at");

function isCondition(value: unknown): value is Condition {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[CONDITION_MARK] === true;
}

/**
 * A condition over an output or param: the node runs when `test` returns `true` for its value,
 * and is skipped with its dependants when it returns `false` (anything else fails the node).
 * @example train({ data: d.data }, { if: when(stats.rows, (n) => n >= 1000) })
 */
export function when<T>(ref: Ref<T>, test: (value: T) => boolean): Condition {
  const target = nodeToRef(ref, () => "when() first argument");
  if (!isRef(target)) throw new OptionError("when() first argument", "an output or param (a reference)", ref);
  if (typeof test !== "function") throw new OptionError("when() second argument", "a function (value) => boolean", test);
  return Object.freeze({ ref: target, test, [CONDITION_MARK]: true, [CONDITION_AT]: callSite() }) as unknown as Condition;
}

function settingsMethods<S extends Settings & { name: string }, R>(state: S, next: (s: S) => R): TaskSettings<R> {
  const where = (method: string) => `task "${state.name}" .${method}()`;
  return {
    version(version) {
      if (typeof version !== "string" || !version) throw new OptionError(where("version"), "a non-empty string", version);
      return next({ ...state, version });
    },
    retries(count, options = {}) {
      if (!Number.isInteger(count) || count < 0) throw new OptionError(where("retries"), "an integer >= 0", count);
      if (typeof options !== "object" || options === null || Array.isArray(options)) {
        throw new OptionError(`${where("retries")} second argument`, "{ minDelayMs?, maxDelayMs? } or nothing", options);
      }
      // An unknown key is about its name, not a value: `{ delayMs: 100 }` once read as a bad value "delayMs".
      checkKnownKeys(options, ["minDelayMs", "maxDelayMs"], where("retries"));
      const minDelayMs = options.minDelayMs ?? 1000;
      const maxDelayMs = options.maxDelayMs ?? 30_000;
      if (!(minDelayMs >= 0 && minDelayMs <= LONGEST_TIMER_MS)) throw new OptionError(`${where("retries")} minDelayMs`, `a number of milliseconds from 0 to ${LONGEST_TIMER}`, minDelayMs);
      if (!(maxDelayMs >= minDelayMs && maxDelayMs <= LONGEST_TIMER_MS)) {
        throw new OptionError(`${where("retries")} maxDelayMs`, `a number of milliseconds from minDelayMs (${minDelayMs}) to ${LONGEST_TIMER}`, maxDelayMs);
      }
      return next({ ...state, retry: { retries: count, minDelayMs, maxDelayMs } });
    },
    timeout(ms) {
      if (!Number.isFinite(ms) || ms <= 0 || ms > LONGEST_TIMER_MS) {
        throw new OptionError(where("timeout"), `a number of milliseconds > 0 and at most ${LONGEST_TIMER}; leave .timeout() out for no limit`, ms);
      }
      return next({ ...state, timeoutMs: ms });
    },
    pool(name) {
      // As a task's name: `.pool(" ")` named a pool no `--pool NAME=N` could be written for.
      if (typeof name !== "string" || !TASK_NAME.test(name)) throw new OptionError(where("pool"), "a pool name: ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, like a task name", name);
      return next({ ...state, pool: name });
    },
    cache(options) {
      if (options === false) return next({ ...state, cache: false });
      if (typeof options !== "object" || options === null || Array.isArray(options)) throw new OptionError(where("cache"), "false or { ttl?, key? }", options);
      // A key it does not know was ignored: `{ ttlMs: 1 }` kept entries for good.
      checkKnownKeys(options, ["ttl", "key"], where("cache"), (key) => (key.toLowerCase().startsWith("ttl") ? "ttl" : undefined));
      // ms's long spellings too ("2 weeks", "1y"): flows were written against them.
      const ttlMs = typeof options.ttl === "string" ? durationMs(options.ttl, { longUnits: true }) : options.ttl;
      // A whole number, as the store keeps it: `Infinity` or `1.5` (`"2.5ms"`) passed here, and
      // then no entry of the task was ever stored, each run warning only; a duration not read
      // (`"10mss"`, `"one day"`) was taken for no ttl at all, and its entries never expired.
      if (options.ttl !== undefined && !(typeof ttlMs === "number" && Number.isSafeInteger(ttlMs) && ttlMs > 0)) {
        throw new OptionError(
          `${where("cache")} ttl`,
          'a whole number of milliseconds >= 1 or a duration of whole milliseconds such as "12h" or "7d" (leave ttl out for entries that never expire)',
          options.ttl,
        );
      }
      if (options.key !== undefined && typeof options.key !== "string") throw new OptionError(`${where("cache")} key`, "a string", options.key);
      const cache: TaskCacheOptions = { ...(ttlMs !== undefined ? { ttlMs } : {}), ...(options.key !== undefined ? { key: options.key } : {}) };
      return next({ ...state, cache });
    },
    env(...names) {
      // `.env("$HOME")` or `.env("my var")` named a variable that can never be set: it entered the key as absent.
      for (const n of names) {
        if (typeof n !== "string" || !ENV_NAME.test(n)) throw new OptionError(where("env"), "environment variable names, without `$`, `=` or spaces (`$HOME` is written HOME)", n);
      }
      return next({ ...state, env: [...new Set([...state.env, ...names])].sort() });
    },
    codeFiles(...paths) {
      if (!paths.length) throw new OptionError(where("codeFiles"), "one or more file or folder paths", undefined);
      const files = new Map((state.codeFiles ?? []).map((f) => [f.name, f]));
      for (const p of paths) {
        const path = resolveDeclaredPath(state.name, p, "file or folder");
        // An absolute path (`join(import.meta.dirname, "data/in.csv")`) inside the project is named
        // from its root: the name enters the key, and another checkout's path is another name.
        const given = String(p);
        const name = given.startsWith("file:") || isAbsolute(given) ? (projectRelativeName(path) ?? given) : given;
        files.set(name, { name, path });
      }
      return next({ ...state, codeFiles: [...files.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) });
    },
  };
}

function checkSchema(schema: StandardSchemaV1, task: string, which: string): StandardSchemaV1 {
  if (!schema || typeof (schema as Partial<StandardSchemaV1>)["~standard"]?.validate !== "function") {
    throw new OptionError(
      `task "${task}" .${which}()`,
      "a Standard Schema (zod, valibot, arktype, ...) or no argument with a type parameter",
      schema,
    );
  }
  return schema;
}
