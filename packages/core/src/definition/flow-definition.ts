import type { StandardSchemaV1 } from "@standard-schema/spec";
import type { RunScope } from "../run/run-scope.ts";
import type { TaskContext } from "../run/task-context.ts";
import type { RefValue } from "./ref.ts";

/** Per-task cache settings; read by the cache layer. */
export interface TaskCacheOptions {
  /** Entries expire after this many milliseconds. */
  ttlMs?: number;
  /** Extra value mixed into the cache key (e.g. a data snapshot date). */
  key?: string;
}

/** Retry policy of a task. */
export interface RetryPolicy {
  /** Retries after the first attempt. @default 0 */
  retries: number;
  /** Delay before the first retry, in ms; doubles each time. @default 1000 */
  minDelayMs: number;
  /** Upper bound of the delay, in ms. @default 30000 */
  maxDelayMs: number;
}

/** What the engine needs to know about one task. Plain data plus the function to run; never mutated. */
export interface TaskDefinition {
  /** Task name; the default node id. */
  readonly name: string;
  /** Kind of executor: `function` for task(), others for scripts, notebooks, ... */
  readonly kind: string;
  /** Declared version; part of the cache key. */
  readonly version?: string;
  /** Validates (and may transform) inputs before the task runs. */
  readonly inputSchema?: StandardSchemaV1;
  /** Validates outputs after the task runs. */
  readonly outputSchema?: StandardSchemaV1;
  /** Runs one attempt. */
  readonly run: (inputs: Record<string, unknown>, ctx: TaskContext) => unknown;
  /** Code fingerprint source: the function's source text, or a script's content digest. */
  readonly code: string;
  /** What `code` is, in `explain`'s words when it changes (``script `step.py` ``); absent: the task's function. Not in the key. */
  readonly codeName?: string;
  /**
   * When `code` holds one digest of many files (an MLflow project's folder): those files one by
   * one (relative path -> a short content digest, or only their count when too many), recorded
   * with the key's ingredients, not in the key, so `explain` names the files that changed. `noun`
   * names one (`project file`).
   */
  readonly codeContents?: { readonly noun: string; readonly files: Readonly<Record<string, string>> | number };
  /**
   * The parts `code` is made of, for `explain` (recorded as digests with the key's ingredients, not
   * in the key): `content`, the task's own file or command as `code` holds it; `options`, each
   * option's part by name (`cwd`, `args`). When only options differ, explain names them
   * (``option `cwd` of script `train.py` changed``) instead of "its content, or its options".
   */
  readonly codeOptions?: { readonly content: string; readonly options: Readonly<Record<string, string>> };
  /**
   * The `code` an earlier Cairn made for this very task, when a later one counts more of it (a
   * notebook's kernel and `parameters` cell): an entry whose own code is this one is said with
   * `why` (how keys changed), not as changed code. Not in the key.
   */
  readonly codeFormerly?: { readonly code: string; readonly why: string };
  readonly retry: RetryPolicy;
  /** Timeout of one attempt, in ms. */
  readonly timeoutMs?: number;
  /** Named pool that bounds this kind of work. */
  readonly pool?: string;
  /** `false` turns caching off for this task. */
  readonly cache: TaskCacheOptions | false;
  /** Environment variables that enter the cache key. */
  readonly env: readonly string[];
  /**
   * Environment variables the task's code reads from `process.env` itself by a literal name (the
   * DSL's function tasks, from the function's text): they enter the cache key as `env` ones do,
   * with their value in `process.env`, which is what the code reads. Not readable with `ctx.env()`.
   * Found by a pattern that also matches a string or a comment: what the task's code dependencies
   * find in its parsed text, when they give it (ENV_READ_ENTRY), counts instead.
   */
  readonly envRead?: readonly string[];
  /**
   * The task's code also reads `process.env` by names its text does not show (a computed name, a
   * destructuring, `process.env` handed on whole), which no key follows: a run whose `env` gives a
   * declared variable another value than `process.env` warns of it. Absent (a definition made by
   * hand): any mention of `process.env` in `code` counts as one.
   */
  readonly envReadUnnamed?: boolean;
  /**
   * Files or folders the task's code depends on (modules it imports, a config file): their
   * content digests enter the cache key when it is made, each under its `name` (the path as
   * the task declared it, the same on every machine), so `explain` can say which changed.
   */
  readonly codeFiles?: readonly CodeFile[];
  /**
   * Code the task's function uses beyond its own text, found without being declared (the
   * DSL's function tasks: helpers and constants of its module, the project's modules it
   * imports from): code-file name -> content digest, added to the key beside `codeFiles`.
   * Asked once per flow run, with the run's scope (files are read once per run too). Under
   * `SOURCE_CODE_ENTRY` (@cairn/cache) it may give the task's code as the source its module was
   * compiled from has it, which then stands for `code` in the key.
   */
  readonly codeDependencies?: (scope: RunScope) => Promise<Record<string, string>>;
  /**
   * The task's code files that no longer hold what its key counted (a script's file, its
   * notebook, the modules {@link codeDependencies} found), by name: edited after they were read,
   * while the task ran or before it started. Asked before the first attempt and when an attempt succeeds, with the run's scope;
   * a name given means the result is not stored (the run goes on with it, and the next run runs
   * the task again). Declared {@link codeFiles} are checked by the engine itself.
   */
  readonly codeEdited?: (scope: RunScope) => Promise<readonly string[]>;
  /**
   * The flow params the task's code reads through `ctx.params` (the DSL's function tasks, from
   * the function's text): their names, or `"all"` when which cannot be told (the context passed
   * on whole, a computed name). Their values enter the cache key beside the inputs.
   */
  readonly paramsRead?: () => Promise<readonly string[] | "all">;
  /**
   * Inputs that name a local file or folder the task reads (an MLflow project's `path`
   * parameters): input name -> the content digest of what it names now, from the task's resolved
   * inputs. Each enters the key beside the input's value (`{ $file: digest, path: value }`), so an
   * edited data file is a miss, and `explain` names the file. An input it leaves out counts as its value.
   */
  readonly inputFiles?: (inputs: Readonly<Record<string, unknown>>) => Promise<Readonly<Record<string, string>>>;
  /**
   * The part of the code fingerprint known only when the flow runs (the registry version
   * behind `models:/name@alias`). Asked before the cache lookup and added to the key, so
   * a change behind the same name is a miss. Memoise it per `flowRunId`.
   */
  readonly resolveCode?: (ctx: ResolveCodeContext) => Promise<string>;
  /**
   * The environment the task's code runs in, by content (a Python task's interpreter and its
   * installed packages), asked when its key is made, and only when `CAIRN_PYTHON_ENV_KEY` is on
   * (off, the key is what it is without one): it then enters the key, so another interpreter
   * or an upgraded package is a miss, and the key's record holds it (its list up to a size), so
   * `explain` names what changed (and a worker whose own differs refuses the task). By content,
   * not location: two checkouts whose environments hold the same packages share entries. An
   * interpreter that cannot start is an environment too (`python: not found (<path>)`), and the
   * run says why; one that started but whose answer cannot be read rejects (the task fails).
   */
  readonly environment?: () => Promise<TaskEnvironment>;
  /**
   * Words for a change between two values {@link resolveCode} gave, as the keys record them
   * (`model alias \`churn@champion\` moved from version 3 to version 4`), for `explain` and the
   * run report; undefined (or absent) for the generic words, which show where the two differ.
   */
  readonly describeResolved?: (before: string, after: string) => string | undefined;
  /**
   * Where in the user's own code an error an attempt threw was raised: `file:line:column` of
   * its first stack frame outside Cairn and outside packages, or undefined. Asked once per
   * failed attempt; the DSL's function tasks have it (an executor's errors are Cairn's own).
   */
  readonly errorSource?: (error: Error) => string | undefined;
  /**
   * Set by kinds whose outputs are JSON their process writes (a script's
   * `cairn_task.set_outputs()`): how it writes them, said in messages. An output another task
   * refers to that the process never wrote is then a MissingOutputError, not `undefined` (unless
   * an output schema checked the outputs: an output it lets be absent is `undefined`).
   */
  readonly writesOutputs?: string;
  /**
   * Outputs of the kind that the task's options leave out, by name, each with why and how to have
   * it (a notebook declared with `html: false` has no `html`): an output another task refers to
   * that is absent is then a MissingOutputError in these words, output schema or not.
   */
  readonly absentOutputs?: Readonly<Record<string, string>>;
}

/** What {@link TaskDefinition.environment} gives (recorded with the key as `CodeEnvironment` of @cairn/cache). */
export interface TaskEnvironment {
  /** Its name in `explain`'s words: `Python environment`. */
  readonly noun: string;
  /** Implementation and full version (`cpython 3.12.1`), or why there is none (`python: not found (/opt/py)`). */
  readonly interpreter: string;
  /** Installed packages: normalised name -> version. */
  readonly packages: Readonly<Record<string, string>>;
}

/** A file or folder a task's code depends on. */
export interface CodeFile {
  /** As declared, e.g. `./lib/features.ts`; names the file in keys and explanations. */
  readonly name: string;
  /** Absolute path, read when the key is made. */
  readonly path: string;
}

/** What {@link TaskDefinition.resolveCode} is given. */
export interface ResolveCodeContext {
  readonly flowRunId: string;
  /** The run's shared state, the same object as the tasks' `ctx.scope`. */
  readonly scope: RunScope;
  readonly tracking: TaskContext["tracking"];
  readonly signal?: AbortSignal;
}

/** One use of a task in a flow. */
export interface FlowNode {
  /** Unique within the flow. */
  readonly id: string;
  readonly task: TaskDefinition;
  /** Input values; may contain refs anywhere inside. */
  readonly inputs: Readonly<Record<string, unknown>>;
  /** Extra ordering dependencies by node id, beyond those implied by refs. */
  readonly after: readonly string[];
  /** A map or sweep: one item node per element of `map.over`, made when the list is known. */
  readonly map?: MapSpec;
  /** A conditional node: it runs only when this ref resolves to `true`; `false` skips it and its dependants. */
  readonly condition?: RefValue;
  /** A predicate over the condition's value (`when(ref, test)`): the node runs when it returns `true`. */
  readonly conditionTest?: (value: unknown) => unknown;
  /** Where the user's code called `when()` for {@link conditionTest}: `file:line:column`, worked out when asked (undefined when the stack showed none); a test that throws is reported there. */
  readonly conditionAt?: () => string | undefined;
  /** An item node, made at run time by the map node `item.parent`. */
  readonly item?: ItemInfo;
}

/** What a map or sweep node expands into, and how its items are run and judged. */
export interface MapSpec {
  /** `map` over a list, or `sweep` over the points of a search space. */
  readonly kind: "map" | "sweep";
  /** The list: a ref (known at run time) or a literal array. */
  readonly over: unknown;
  /** The input each item is passed as; absent for a sweep, whose points are spread over the inputs. */
  readonly as?: string;
  /** Items in flight at once, beyond the flow's and the pool's limits. */
  readonly concurrency?: number;
  /** Items that must succeed: a count (integer >= 1) or a fraction in (0, 1]. @default every item */
  readonly minSuccess?: number;
  /** A sweep's selector: the numeric output to maximise or minimise. */
  readonly select?: { readonly metric: string; readonly order: "max" | "min" };
  /** A sweep's stop condition over one trial's outputs: no further trial starts once it holds. */
  readonly stopWhen?: (outputs: unknown) => boolean;
}

/** Where an item node comes from. */
export interface ItemInfo {
  /** The map (or sweep) node's id. */
  readonly parent: string;
  /** Position in the list, 0-based. */
  readonly index: number;
  /** A sweep trial's point, as `lr=0.1,depth=3`; absent for a map. */
  readonly key?: string;
  /** A sweep trial's selected output: logged as a metric on its run when the trial ran. */
  readonly metric?: string;
  /** The map's own run, the item's run's parent; the flow run when absent. */
  readonly parentRunId?: string;
}

/** A whole flow, as the DSL hands it to the engine. */
export interface FlowDefinition {
  readonly name: string;
  readonly paramsSchema?: StandardSchemaV1;
  /**
   * Declared with `.params<T>()`: the params are typed, not checked. A param given that the flow
   * does not read is then said in a warning instead of refused (the type is what the caller
   * compiled against, and may name params no task reads yet).
   */
  readonly paramsTyped?: true;
  readonly nodes: readonly FlowNode[];
  /** Flow outputs; may contain refs. */
  readonly outputs: Readonly<Record<string, unknown>>;
  /** Id of the build that produced these nodes; refs from other builds are rejected. */
  readonly buildId: number;
}

/** Default retry policy: no retries. */
export const NO_RETRY: RetryPolicy = { retries: 0, minDelayMs: 1000, maxDelayMs: 30_000 };
