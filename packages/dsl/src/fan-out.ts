/**
 * Graphs that grow at run time: `map` (one node per item of a list known only when the flow
 * runs) and `sweep` (MLRun's hyper-parameter runs: the points of a search space, with a
 * selector that picks the best trial). Both add one map node to the flow (core's
 * `FlowNode.map`); the scheduler makes its item nodes, `task[0]`, `task[1]`, ..., when the list
 * is known, each with its own cache key, run, retries and timeout. The search spaces (`grid`,
 * `list`, `random`) and selectors (`max`, `min`) are plain data checked where they are made.
 */
import { CairnError, checkKnownKeys, closestName, knownKeys, OptionError, isRef, requiredKeys, type MapSpec } from "@cairn/core";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { currentBuild, deepRef, makeRef, nodeToRef, proxyToPrimitive } from "./build-context.ts";
import { KIND_CHECK_CALL, type KindCall } from "./kinds/kind-task.ts";
import { addNode, type Task } from "./task.ts";
import type { Ref, Wire, WireInputs } from "./types.ts";

/** The `with` inputs of a map or sweep: required when the rest of the task's inputs has a required one. */
export type WithInputs<R> = {} extends R ? { with?: WireInputs<R> } : { with: WireInputs<R> };

/** Options every map and sweep takes. */
export interface FanOutOptions {
  /** Node id of the map; its items are `id[0]`, `id[1]`, ... @default the task name, then `name-2`, ... */
  id?: string | undefined;
  /** Nodes (or node ids) that must finish first, beyond those whose outputs are wired in. */
  after?: ReadonlyArray<string | { readonly $id: string }> | undefined;
  /** Items in flight at once, beyond the flow's concurrency and the task's pool. @default the flow's concurrency */
  concurrency?: number | undefined;
  /**
   * Items that must succeed for the map to succeed: a fraction of the list below 1 (0.8: 80%,
   * rounded up), or a count (an integer >= 1). The map's `failed` lists the others.
   * @default every item
   */
  minSuccess?: number | undefined;
}

/** The keys of a map's and a sweep's options (`if` as for any node), to name a misspelt one. */
const FAN_OUT_OPTIONS = ["with", "id", "after", "if", "concurrency", "minSuccess"] as const;
const MAP_OPTIONS = ["over", "as", ...FAN_OUT_OPTIONS];
const SWEEP_OPTIONS = ["over", "select", "stopWhen", ...FAN_OUT_OPTIONS];

/** What `map` takes: the list, the input each item is passed as, and the task's other inputs. */
export type MapOptions<In, K extends keyof In> = FanOutOptions & {
  /** The list: an output or param that is an array (known at run time), or a literal array. */
  over: Wire<readonly In[K][]>;
  /** The task input each item is passed as. */
  as: K;
} & WithInputs<Omit<In, K>>;

/** What calling `map` returns: refs to its outputs, in item order. */
export interface MapNode<Items> {
  /**
   * Each item's outputs, in item order (with `minSuccess`, `null` where an item failed, in one
   * process as on a queue worker, where the inputs pass through JSON).
   */
  readonly outputs: Ref<Items>;
  /** The node ids of the items that failed (only with `minSuccess`). */
  readonly failed: Ref<string[]>;
  /** The map's node id; its items are `${$id}[k]`. */
  readonly $id: string;
  readonly $out: Ref<{ outputs: Items; failed: string[] }>;
}

/**
 * Runs `task` once per item of a list known only when the flow runs: one node per item,
 * `task[0]`, `task[1]`, ..., each with its own cache key (changing one item re-runs only that
 * item), run, retries and timeout. Its `outputs` is the items' outputs in item order; an empty
 * list gives `[]`. Its outputs are typed `(Out | null)[]` whenever `minSuccess` may be a number
 * (a `number | undefined` too: the first overload takes only options whose `minSuccess` cannot be one).
 * @example
 * const files = listFiles({ dir: params.dir });
 * const stats = map(featureStats, { over: files.paths, as: "path", with: { cols: params.cols } });
 * const ok = check({ stats: stats.outputs });
 */
export function map<In, Out, K extends keyof In & string>(task: Task<In, Out>, options: MapOptions<In, K> & { minSuccess?: undefined }): MapNode<Out[]>;
export function map<In, Out, K extends keyof In & string>(task: Task<In, Out>, options: MapOptions<In, K>): MapNode<Array<Out | null>>;
export function map(task: Task<any, any>, options: MapOptions<any, string>): MapNode<unknown> {
  const name = taskName(task, "map");
  const where = `map(${name})`;
  if (typeof options !== "object" || options === null) throw new OptionError(`${where} options`, "{ over, as, with?, concurrency?, minSuccess? }", options);
  checkKnownKeys(options, MAP_OPTIONS, where);
  if (typeof options.as !== "string" || !options.as) throw new OptionError(`${where} \`as\``, "the name of the task input each item is passed as", options.as);
  const over = nodeToRef(options.over, () => `map(${name}) \`over\``);
  if (!isRef(over) && !Array.isArray(over)) throw new OptionError(`${where} \`over\``, "an output or param that is an array, or an array", options.over);
  const withInputs = (options as { with?: Record<string, unknown> }).with ?? {};
  if (Object.hasOwn(withInputs, options.as)) throw new OptionError(`${where} \`with.${options.as}\``, `absent: each item is passed as "${options.as}"`, withInputs[options.as]);
  checkMapAs(where, name, options.as, task.definition.inputSchema, withInputs);
  const spec: MapSpec = { kind: "map", over, as: options.as, ...fanOutLimits(where, options) };
  // What a direct call of a kind task checks, with the item as the input it is passed as.
  const item = isRef(over) ? makeRef(over.source, over.target, [...over.path, "[item]"], over.buildId) : undefined;
  for (const value of item ? [item] : (over as unknown[])) checkKindCall(task, { ...withInputs, [options.as]: value }, { via: "map", itemInputs: [options.as] });
  return addNode(task.definition, withInputs, options, { map: spec }) as unknown as MapNode<unknown>;
}

/**
 * Refuses a map's `as` that is no input of the task, when its input schema shows its keys: the
 * item was passed under a name the task never reads, and the flow was refused for the input it
 * lacked, with a call's fix ("pass it when calling the task"), or with no schema failed its first
 * item. The fix named is the input it likely meant, else the one required input `with` leaves out.
 */
function checkMapAs(where: string, name: string, as: string, schema: StandardSchemaV1 | undefined, withInputs: Record<string, unknown>): void {
  const known = schema ? knownKeys(schema) : undefined;
  if (!known || known.includes(as)) return;
  const left = (requiredKeys(schema!) ?? []).filter((k) => !Object.hasOwn(withInputs, k));
  const meant = closestName(as, known) ?? (left.length === 1 ? left[0] : undefined);
  const inputs = known.join(", ") || "none";
  const fix = meant !== undefined ? `Pass each item as "${meant}" (\`as: "${meant}"\`).` : "Name in `as` the one each item is passed as.";
  throw new OptionError(
    `${where} \`as\``,
    `an input of task "${name}" (its inputs: ${inputs})`,
    as,
    `${where} \`as: ${JSON.stringify(as)}\` is not an input of task "${name}" (its inputs: ${inputs}). ${fix}`,
  );
}

/** Runs a kind task's build-time check of its inputs (KindSpec.checkCall), as a direct call does. */
function checkKindCall(task: object, inputs: Record<string, unknown>, how: KindCall): void {
  const check = (task as unknown as Record<symbol, unknown>)[KIND_CHECK_CALL];
  if (typeof check === "function") (check as (inputs: Record<string, unknown>, how: KindCall) => void)(inputs, how);
}

// ---------------------------------------------------------------- search spaces and selectors

declare const pointType: unique symbol;

/** A sweep's search space: its points, made by `grid`, `list` or `random`. */
export interface SearchSpace<P> {
  readonly kind: "grid" | "list" | "random";
  /** Every point, in the order trials are numbered. */
  readonly points: readonly P[];
  /** @internal Phantom: the type of one point. */
  readonly [pointType]?: P;
}

const SPACE_MARK = Symbol.for("cairn.searchSpace");

/**
 * The most points a search space holds. Each point is a trial with its own run and cache entry,
 * and the points are built at declaration: `random({ n: 1e308 })` passed the integer check and
 * ran the process out of memory, where a bound is a message.
 */
export const MAX_SPACE_POINTS = 100_000;

function tooManyPoints(where: string, count: number, fix: string): OptionError {
  return new OptionError(
    where,
    `at most ${MAX_SPACE_POINTS} points`,
    count,
    `Expected ${where} to hold at most ${MAX_SPACE_POINTS} points (each a trial with its own run and cache entry), got ${count}. ${fix}`,
  );
}

function space<P>(kind: SearchSpace<P>["kind"], points: P[]): SearchSpace<P> {
  return Object.freeze({ kind, points: Object.freeze(points), [SPACE_MARK]: true }) as SearchSpace<P>;
}

/**
 * Every combination of the values given per input (MLRun's grid strategy), first input
 * varying slowest. Widening an axis adds points; the old ones stay cached.
 * @example grid({ lr: [0.01, 0.1, 1], depth: [3, 5] }) // 6 points
 */
export function grid<const G extends Record<string, readonly unknown[]>>(axes: G): SearchSpace<{ -readonly [K in keyof G]: Widen<G[K][number]> }> {
  if (typeof axes !== "object" || axes === null || Array.isArray(axes)) throw new OptionError("grid()", "an object of input name -> array of values", axes);
  const names = Object.keys(axes);
  if (!names.length) throw new EmptySpaceError("grid({})", "it has no inputs", 'grid({ lr: [0.01, 0.1] })');
  let points: Record<string, unknown>[] = [{}];
  for (const name of names) {
    const values = axes[name];
    if (!Array.isArray(values)) throw new OptionError(`grid() \`${name}\``, "an array of values", values);
    if (!values.length) throw new EmptySpaceError(`grid() \`${name}\``, "it has no values", `grid({ ${name}: [ ... ] })`);
    const count = points.length * values.length;
    if (count > MAX_SPACE_POINTS) throw tooManyPoints("grid()", count, "Give its axes fewer values, or draw a sample of the combinations with random({ n, seed, space }).");
    points = points.flatMap((p) => values.map((v) => ({ ...p, [name]: v })));
  }
  return space("grid", points) as never;
}

/**
 * The points given, in order (MLRun's list strategy).
 * @example list([{ lr: 0.1, depth: 3 }, { lr: 0.01, depth: 5 }])
 */
export function list<P extends Record<string, unknown>>(points: readonly P[]): SearchSpace<P> {
  if (!Array.isArray(points)) throw new OptionError("list()", "an array of points (objects of input name -> value)", points);
  if (!points.length) throw new EmptySpaceError("list([])", "it has no points", "list([{ lr: 0.1 }])");
  if (points.length > MAX_SPACE_POINTS) throw tooManyPoints("list()", points.length, "Split the sweep in several, or give fewer points.");
  points.forEach((p, i) => {
    if (typeof p !== "object" || p === null || Array.isArray(p)) throw new OptionError(`list() point ${i}`, "an object of input name -> value", p);
  });
  return space("list", points.map((p) => ({ ...p }))) as never;
}

/**
 * A range `random` draws numbers from; `int` draws integers (of `ceil(min)..floor(max)`, which must
 * hold one), `log` draws evenly on a log scale (with `int`, log-uniform integers).
 */
export interface Range {
  readonly min: number;
  readonly max: number;
  readonly int?: boolean;
  readonly log?: boolean;
}

/**
 * `n` points drawn from `space` with a seeded generator (MLRun's random strategy): the same
 * seed draws the same points, so a re-run is all cache hits. Per input, an array of choices or a
 * {@link Range}.
 * @example random({ n: 20, seed: 1, space: { lr: { min: 0.001, max: 1, log: true }, depth: [3, 5, 8] } })
 */
export function random<const S extends Record<string, readonly unknown[] | Range>>(options: { n: number; seed: number; space: S }): SearchSpace<{ -readonly [K in keyof S]: S[K] extends readonly (infer E)[] ? Widen<E> : number }> {
  // A key it does not know was ignored: `{ n, seed, spaces }` read as no space at all.
  if (typeof options === "object" && options !== null) checkKnownKeys(options, ["n", "seed", "space"], "random()");
  const { n, seed, space: axes } = (options ?? {}) as { n: number; seed: number; space: S };
  if (!Number.isInteger(n) || n < 1 || n > MAX_SPACE_POINTS) throw new OptionError("random() `n`", `an integer from 1 to ${MAX_SPACE_POINTS} (the number of points, each a trial with its own run and cache entry)`, n);
  if (!Number.isInteger(seed)) throw new OptionError("random() `seed`", "an integer", seed);
  if (typeof axes !== "object" || axes === null || !Object.keys(axes).length) throw new EmptySpaceError("random() `space`", "it has no inputs", "random({ n: 10, seed: 1, space: { lr: { min: 0.001, max: 1 } } })");
  for (const [name, axis] of Object.entries(axes)) {
    // `{ min, max, logScale: true }` drew uniformly without a word.
    if (!Array.isArray(axis) && typeof axis === "object" && axis !== null) checkKnownKeys(axis, RANGE_KEYS, `random() \`space.${name}\``, rangeKeyMeant);
    if (Array.isArray(axis)) {
      if (!axis.length) throw new EmptySpaceError(`random() \`space.${name}\``, "it has no choices", `space: { ${name}: [1, 2] }`);
    } else if (!isRange(axis)) {
      throw new OptionError(`random() \`space.${name}\``, "an array of choices or { min, max, int?, log? } with min <= max (min > 0 for log)", axis);
    } else if (axis.int && Math.ceil(axis.min) > Math.floor(axis.max)) {
      throw new OptionError(`random() \`space.${name}\``, `a range that holds an integer with int: true (${axis.min}..${axis.max} holds none)`, axis);
    }
  }
  const next = mulberry32(seed);
  const points: Record<string, unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const point: Record<string, unknown> = {};
    for (const [name, axis] of Object.entries(axes)) {
      const u = next();
      if (Array.isArray(axis)) point[name] = axis[Math.floor(u * axis.length)];
      else {
        const r = axis as Range;
        if (r.int) point[name] = drawInt(r, u);
        else point[name] = drawFloat(r, u);
      }
    }
    points.push(point);
  }
  return space("random", points) as never;
}

/** The keys of a {@link Range}. */
const RANGE_KEYS = ["min", "max", "int", "log"];

/** What a range's key likely meant beyond spelling: `logScale`, `integer`, `minimum`. */
function rangeKeyMeant(key: string): string | undefined {
  const lower = key.toLowerCase();
  return RANGE_KEYS.find((k) => lower.startsWith(k));
}

function isRange(value: unknown): value is Range {
  if (typeof value !== "object" || value === null) return false;
  const { min, max, log } = value as Range;
  return Number.isFinite(min) && Number.isFinite(max) && min <= max && (!log || min > 0);
}

/**
 * A number of `min..max` from `u` in [0, 1), uniform or with `log` log-uniform, as drawn: not
 * rounded, since rounding to a few digits merged the draws of a narrow range (0.9999..0.99999 to
 * 6 digits gave 55 distinct points of 100) and left one far from 0 (1000000..1000009 gave
 * 1000010). Held to the range, which the exp of a log may miss by an ulp.
 */
function drawFloat(r: Range, u: number): number {
  const drawn = r.log ? Math.exp(Math.log(r.min) + u * (Math.log(r.max) - Math.log(r.min))) : r.min + u * (r.max - r.min);
  return Math.min(r.max, Math.max(r.min, drawn));
}

/**
 * An integer of `ceil(min)..floor(max)` from `u` in [0, 1): each equally likely, or with `log`
 * evenly on a log scale (Optuna's `suggest_int(log=True)`: drawn from [lo - 0.5, hi + 0.5] and
 * rounded, so each integer gets the share of the log scale nearest to it).
 */
function drawInt(r: Range, u: number): number {
  const lo = Math.ceil(r.min);
  const hi = Math.floor(r.max);
  const drawn = r.log ? Math.round(Math.exp(Math.log(lo - 0.5) + u * (Math.log(hi + 0.5) - Math.log(lo - 0.5)))) : lo + Math.floor(u * (hi - lo + 1));
  return Math.min(hi, Math.max(lo, drawn));
}

/** A small seeded generator (mulberry32): the same seed gives the same points on every machine. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Literal types widened to their primitive: `0.1` → number, `"adam"` → string. */
type Widen<T> = T extends number ? number : T extends string ? string : T extends boolean ? boolean : T;

/** A sweep's selector: the numeric output to maximise or minimise. */
export interface Selector<M extends string> {
  readonly metric: M;
  readonly order: "max" | "min";
}

/** Selects the trial with the largest value of output `metric`. */
export function max<const M extends string>(metric: M): Selector<M> {
  return selector(metric, "max");
}

/** Selects the trial with the smallest value of output `metric`. */
export function min<const M extends string>(metric: M): Selector<M> {
  return selector(metric, "min");
}

function selector<M extends string>(metric: M, order: "max" | "min"): Selector<M> {
  if (typeof metric !== "string" || !metric) throw new OptionError(`${order}()`, "the name of a numeric output of the task", metric);
  return Object.freeze({ metric, order });
}

/** The names of the outputs of `O` that are numbers; any name when `O` is not known. */
export type NumericOutputs<O> = unknown extends O
  ? string
  : O extends Record<string, unknown>
    ? string extends keyof O
      ? string
      : { [K in keyof O]-?: NonNullable<O[K]> extends number ? K : never }[keyof O] & string
    : never;

// ---------------------------------------------------------------- sweep

/**
 * One row of a sweep's leaderboard: what the trial gave, not how the run got it, so that a task
 * fed `trials` is a cache hit when the trials' results are the same. Whether a trial ran or came
 * from the cache, and its run, are in the flow's result under its id (`result.tasks["train[3]"]`).
 */
export interface SweepTrial<P> {
  /** The trial's node id, `train[3]`. */
  trial: string;
  /** Its point. */
  params: P;
  /** The selected output, when it succeeded. */
  metric?: number;
  /** `succeeded` (also when its outputs came from the cache), `failed`, `cancelled`, ... */
  status: string;
}

/**
 * A compile error for a space axis that is no input of the task (`detph` for `depth`): a schema
 * would strip it, and every trial would run with the default while the leaderboard named it.
 */
type NoUnknownAxes<P, In> = [Exclude<keyof P, KeysOfAny<In>>] extends [never] ? unknown : { readonly "an axis that is not an input of the task": Exclude<keyof P, KeysOfAny<In>> };
/** The keys of every member of a union (`keyof` of a union gives only the keys all members share). */
type KeysOfAny<T> = T extends unknown ? keyof T : never;

/** What `sweep` takes. */
export type SweepOptions<In, Out, P> = FanOutOptions & {
  /** The search space: `grid({...})`, `list([...])` or `random({ n, seed, space })`; each axis an input of the task. */
  over: SearchSpace<P> & NoUnknownAxes<P, In>;
  /** Which trial is best: `max("accuracy")` or `min("loss")`, on a numeric output of the task. */
  select: Selector<NumericOutputs<Out>>;
  /** Stops starting trials once one's outputs satisfy it (trials already running finish). */
  stopWhen?: (outputs: Out) => boolean;
} & WithInputs<Omit<In, keyof P>>;

/** What calling `sweep` returns: the best trial's outputs and point, and every trial. */
export interface SweepNode<Out, P> {
  /** The best trial's outputs. */
  readonly outputs: Ref<Out>;
  /** One ref per output of the best trial, as a task call gives them: `best.best.model`. */
  readonly best: Out extends Record<string, unknown> ? { readonly [K in keyof Out]-?: Ref<Out[K]> } : never;
  /** The best trial's point. */
  readonly params: Ref<P>;
  /** The best trial's node id, `train[3]`. */
  readonly trial: Ref<string>;
  /** The best trial's selected output. */
  readonly metric: Ref<number>;
  /** Every trial that ran, in order: its point, metric, status and whether it was cached. */
  readonly trials: Ref<SweepTrial<P>[]>;
  readonly $id: string;
  readonly $out: Ref<{ outputs: Out; params: P; trial: string; metric: number; trials: SweepTrial<P>[] }>;
}

/**
 * Runs `task` once per point of a search space and picks the best trial by `select` (MLRun's
 * hyper-parameter runs). Each trial is a map item with its own cache key: widening a grid runs
 * only the new points, and a re-run is all hits and picks the same best. With MLflow, the sweep
 * is a run nested under the flow's run, with one child run per trial; the best trial's params
 * and metrics are logged on it, tagged `cairn.sweep.best`.
 * @example
 * const best = sweep(train, {
 *   with: { data: d.data },
 *   over: grid({ lr: [0.01, 0.1, 1], depth: [3, 5] }),
 *   select: max("accuracy"),
 * });
 * return { model: best.outputs, params: best.params };
 */
export function sweep<In, Out, P extends Partial<In>>(task: Task<In, Out>, options: SweepOptions<In, Out, P>): SweepNode<Out, P> {
  const name = taskName(task, "sweep");
  const where = `sweep(${name})`;
  if (typeof options !== "object" || options === null) throw new OptionError(`${where} options`, "{ over, select, with?, stopWhen?, concurrency?, minSuccess? }", options);
  checkKnownKeys(options, SWEEP_OPTIONS, where);
  const over = options.over as SearchSpace<unknown> | undefined;
  if (!over || (over as unknown as Record<symbol, unknown>)[SPACE_MARK] !== true) {
    throw new OptionError(`${where} \`over\``, "a search space: grid({...}), list([...]) or random({ n, seed, space })", options.over);
  }
  if (!over.points.length) throw new EmptySpaceError(`${where} \`over\``, "it has no points", "grid({ lr: [0.01, 0.1] })");
  const select = options.select as Selector<string> | undefined;
  if (!select || typeof select.metric !== "string" || (select.order !== "max" && select.order !== "min")) {
    throw new OptionError(`${where} \`select\``, 'max("metric") or min("metric")', options.select);
  }
  if (options.stopWhen !== undefined && typeof options.stopWhen !== "function") throw new OptionError(`${where} \`stopWhen\``, "a function (outputs) => boolean", options.stopWhen);
  const withInputs = (options as { with?: Record<string, unknown> }).with ?? {};
  // Every point's keys: a list's points need not share them.
  let clash: string | undefined;
  for (const point of over.points) if ((clash = Object.keys(point as object).find((k) => Object.hasOwn(withInputs, k)))) break;
  if (clash) throw new OptionError(`${where} \`with.${clash}\``, `absent: "${clash}" is swept (it is in the search space)`, withInputs[clash]);
  const spec: MapSpec = {
    kind: "sweep",
    over: over.points,
    select: { metric: select.metric, order: select.order },
    ...(options.stopWhen ? { stopWhen: options.stopWhen as (o: unknown) => boolean } : {}),
    ...fanOutLimits(where, options),
  };
  for (const point of over.points) {
    checkKindCall(task, { ...withInputs, ...(point as object) }, { via: "sweep", itemInputs: Object.keys(point as object) });
  }
  const handle = addNode(task.definition, withInputs, options, { map: spec });
  const id = handle.$id as string;
  const buildId = currentBuild(name).buildId;
  const refs = new Map<string, unknown>();
  // `best.best.model`: a ref to the best trial's output `model` (path outputs.model of the sweep's node).
  const best = new Proxy(Object.create(null) as object, {
    get: (_, key) => {
      if (key === Symbol.toPrimitive) return proxyToPrimitive(`${id}.best`, "best");
      if (typeof key !== "string" || key === "then" || key === "toJSON") return undefined;
      let ref = refs.get(key);
      if (!ref) refs.set(key, (ref = makeRef("node", id, ["outputs", key], buildId)));
      return ref;
    },
  });
  // `s.params.lr`, `s.outputs.model`, `s.trials.length`: what Optuna users write
  // (`study.best_params["lr"]`). A ref is a frozen object, where such a read gave undefined,
  // wired in as a literal; each of these reads a ref one step deeper instead.
  const deeper = new Map<string, unknown>();
  return new Proxy(handle, {
    get: (target, key) => {
      if (key === "best") return best;
      const ref = Reflect.get(target, key);
      if (typeof key !== "string" || !DEEP_KEYS.has(key) || !isRef(ref)) return ref;
      let deep = deeper.get(key);
      if (!deep) deeper.set(key, (deep = deepRef(ref)));
      return deep;
    },
  }) as unknown as SweepNode<Out, P>;
}

/** The parts of a sweep's outputs that hold objects or arrays, where `s.params.lr` reads one step deeper. */
const DEEP_KEYS = new Set(["params", "outputs", "trials"]);


/** A search space with no points: a sweep over it would run nothing. */
export class EmptySpaceError extends CairnError {
  static override readonly code: string = "CAIRN_EMPTY_SPACE";
  override name = "EmptySpaceError";
  constructor(
    readonly where: string,
    readonly why: string,
    example: string,
  ) {
    super(`The search space of ${where} is empty: ${why}. Give at least one value per input, e.g. ${example}.`);
  }
}

function taskName(task: unknown, fn: string): string {
  const name = (task as { definition?: { name?: unknown } } | undefined)?.definition?.name;
  if (typeof task !== "function" || typeof name !== "string") throw new OptionError(`${fn}() first argument`, "a task (made with task(), script(), ...)", task);
  return name;
}

/** `concurrency` and `minSuccess`, checked where they enter. */
function fanOutLimits(where: string, options: FanOutOptions): Pick<MapSpec, "concurrency" | "minSuccess"> {
  const { concurrency, minSuccess } = options;
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) throw new OptionError(`${where} \`concurrency\``, "an integer >= 1", concurrency);
  if (minSuccess !== undefined && !(typeof minSuccess === "number" && ((minSuccess > 0 && minSuccess < 1) || (Number.isInteger(minSuccess) && minSuccess >= 1)))) {
    throw new OptionError(`${where} \`minSuccess\``, "a fraction of the items in (0, 1) (0.8: 80%) or a count, an integer >= 1", minSuccess);
  }
  return { ...(concurrency !== undefined ? { concurrency } : {}), ...(minSuccess !== undefined ? { minSuccess } : {}) };
}
