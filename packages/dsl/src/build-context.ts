import { fileURLToPath } from "node:url";
import { cairnBuild, describeRef, type FlowNode, isPlainObject, isRef, OptionError, type RefValue, setOwnProperty, type TaskDefinition } from "@cairn/core";
import { atUserCode } from "./declared-path.ts";

/** The flow build in progress: tasks called inside `build` add their nodes here. */
export interface BuildContext {
  readonly buildId: number;
  readonly flowName: string;
  readonly nodes: FlowNode[];
  /** How many nodes each task name has produced, for automatic ids. */
  readonly uses: Map<string, number>;
  /** The ids taken so far, each with the task whose call got it without an `{ id }` (undefined: it was given). */
  readonly ids: Map<string, string | undefined>;
  /** The first task definition of each name, to tell a second one that would share its cache entries. */
  readonly tasks: Map<string, TaskDefinition>;
}

/** A build in progress and the copy of Cairn that started it. */
interface BuildInProgress {
  readonly context: BuildContext;
  /** That copy's `cairnBuild().id`, "0.1.0+57ab83a". */
  readonly cairn: string;
  /** That copy's file of this module, to name it when another copy's build meets it. */
  readonly module: string;
}

/**
 * The build in progress and the last build id, on globalThis: a task kind's package may load a
 * copy of Cairn of its own (a folder linked with its own node_modules/cairn-dag, as its author
 * develops it), and its tasks, called inside the project's build(), must find that build.
 */
const BUILD_SLOT = Symbol.for("cairn.build-in-progress");
const BUILD_IDS = Symbol.for("cairn.last-build-id");
const slots = globalThis as { [BUILD_SLOT]?: BuildInProgress | undefined; [BUILD_IDS]?: number };
const THIS_MODULE = fileURLToPath(import.meta.url);

function current(): BuildInProgress | undefined {
  return slots[BUILD_SLOT];
}

/** Runs `fn` with a fresh build context and returns what it returned plus the nodes it made. */
export function withBuild<R>(flowName: string, fn: (ctx: BuildContext) => R): { result: R; context: BuildContext } {
  // OptionErrors, as every mistake in a flow's declaration: the flow is invalid (the CLI's exit 2), nothing ran.
  const outer = current();
  if (outer) {
    throw new OptionError(
      `flow "${flowName}" build()`,
      "called at the top level of a module",
      undefined,
      `Flow "${flowName}" was built inside the build function of flow "${outer.context.flowName}"${atUserCode()}. ` +
        `Build flows at the top level of a module, one after another.`,
    );
  }
  // Refs carry their build's id: one count for every copy, or two copies' flows would share ids.
  const buildId = (slots[BUILD_IDS] = (slots[BUILD_IDS] ?? 0) + 1);
  const context: BuildContext = { buildId, flowName, nodes: [], uses: new Map(), ids: new Map(), tasks: new Map() };
  slots[BUILD_SLOT] = { context, cairn: cairnBuild().id, module: THIS_MODULE };
  try {
    const result = fn(context);
    if (result instanceof Promise) {
      throw new OptionError(
        `flow "${flowName}" build function`,
        "a synchronous function",
        result,
        `The build function of flow "${flowName}" returned a Promise${atUserCode()}. build() must be synchronous: ` +
          `it only wires tasks together; do the async work inside tasks.`,
      );
    }
    return { result, context };
  } finally {
    slots[BUILD_SLOT] = undefined;
  }
}

/** The build in progress; throws a clear error when a task is called outside of one. */
export function currentBuild(taskName: string): BuildContext {
  const build = current();
  if (!build) {
    throw new OptionError(
      `task "${taskName}" call`,
      "inside a flow's build function",
      undefined,
      `Task "${taskName}" was called outside a flow's build function${atUserCode()}. Call tasks inside ` +
        `flow("name").build(({ params }) => { ... }) to add them to that flow; to run one task on its own, use a one-task flow.`,
    );
  }
  if (build.cairn !== cairnBuild().id) throw twoCairns(taskName, build);
  return build.context;
}

/**
 * Two copies of Cairn of different builds: their nodes, refs and definitions need not agree, so
 * a task of one is not added to a flow of the other. Copies of one build work together.
 */
function twoCairns(taskName: string, build: BuildInProgress): OptionError {
  const here = cairnBuild().id;
  return new OptionError(
    `task "${taskName}" call`,
    `a task of the Cairn that builds flow "${build.context.flowName}" (${build.cairn})`,
    `a task of another Cairn (${here})`,
    `Task "${taskName}" comes from a copy of Cairn other than the one building flow "${build.context.flowName}"${atUserCode()}: ` +
      `the task's Cairn ${here} is loaded from ${THIS_MODULE}, the flow's Cairn ${build.cairn} from ${build.module}. ` +
      `Install one Cairn: a package that ships a task kind should name cairn-dag as a peerDependency (and a devDependency ` +
      `to develop it), not a dependency; remove its own node_modules/cairn-dag, or give both the same version.`,
  );
}

const NODE_MARK = "__cairnNode";
/** What a ref proxy answers with what it stands for ("node" or "param"); anything else answers undefined. */
const PROXY_MARK = Symbol.for("cairn.refProxy"); // for, as a kind's own copy of Cairn makes node handles too

/** "node" for a node handle, "param" for a flow's `params`, else undefined. */
export function proxyKind(value: unknown): "node" | "param" | undefined {
  return typeof value === "object" && value !== null ? (value as { [PROXY_MARK]?: "node" | "param" })[PROXY_MARK] : undefined;
}

/**
 * A value as it is wired: a node handle returned by calling a task stands for its whole output
 * (its `$out` ref), at any depth of arrays and plain objects (`{ rs: [a, b] }`), since a handle
 * left inside would look like an empty object, with no edge to its node. The flow's `params`
 * itself stands for no value: refused, naming `where()` (made only then: this runs for every input of every node).
 */
export function nodeToRef(value: unknown, where: () => string = () => "a value", depth = 0): unknown {
  // Deeper than any value may nest (MAX_NESTING_DEPTH): left as it is, for the check that refuses it to name it.
  if (typeof value !== "object" || value === null || depth > 1000) return value;
  const plain = DEEP_REFS.get(value);
  if (plain) return plain;
  if (isRef(value)) return value;
  const proxy = proxyKind(value);
  if (proxy === "node") return (value as { $out: unknown }).$out;
  if (proxy === "param") {
    const at = where();
    const expected = "a value, a task's output or one param (`params.rows`); the flow's `params` as a whole is not a value";
    // In words: as a value, core would quote "the flow's params" and call it a string.
    throw new OptionError(at, expected, "the flow's params", `Expected \`${at}\` to be ${expected}, got the flow's params. Pass the one param it needs, such as params.rows.`);
  }
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const wired = nodeToRef(value[i], where, depth + 1);
      if (wired !== value[i]) (copy ??= value.slice())[i] = wired;
    }
    return copy ?? value;
  }
  if (!isPlainObject(value)) return value;
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    const wired = nodeToRef(value[key], where, depth + 1);
    if (wired === value[key]) continue;
    copy ??= { ...value };
    setOwnProperty(copy, key, wired); // an own "__proto__" stays an own property, as in the value given
  }
  return copy ?? value;
}

/**
 * The error for a reference turned into a string or a number inside build() (`${params.dir}/x`,
 * `d.rows * 2`): it stands for a value known only when the flow runs, and would otherwise be the
 * text "[object Object]" or NaN, silently.
 */
function usedAsValue(what: string, input: string): OptionError {
  return new OptionError(
    `${what} in build()`,
    "passed to a task as an input",
    undefined,
    `\`${what}\` is a reference to a value known only when the flow runs${atUserCode()}: inside build() it cannot be ` +
      `put into a string, used in arithmetic or compared. Pass it to a task as an input (\`{ ${input}: ${what} }\`) ` +
      `and build the string, or compute with it, in that task's function.`,
  );
}

/** A ref's Symbol.toPrimitive: one function for every ref, which names the ref it is called on. */
function refToPrimitive(this: RefValue): never {
  throw usedAsValue(describeRef(this), this.path.at(-1) ?? this.target);
}

/** Symbol.toPrimitive of a node handle, `params` or a sweep's `best`, which stand for `what`. */
export function proxyToPrimitive(what: string, input: string): () => never {
  return () => {
    throw usedAsValue(what, input);
  };
}

/**
 * A ref whose every property is a ref one step deeper (`best.params.lr`: a sweep's point, outputs,
 * trials); wired anywhere, it is its plain ref (nodeToRef looks it up here first). Its own fields
 * are not readable through it: an output may be called `path` or `source`.
 */
export function deepRef(ref: RefValue): unknown {
  // Its target is an empty object of its own: a frozen ref's fields would have to be returned as they are.
  const proxy = new Proxy(Object.create(null) as object, {
    get: (_, key) => {
      if (typeof key !== "string") return Reflect.get(ref, key);
      if (key === "then" || key === "toJSON") return undefined;
      return deepRef(makeRef(ref.source, ref.target, [...ref.path, key], ref.buildId));
    },
  });
  DEEP_REFS.set(proxy, ref);
  return proxy;
}
const DEEP_REFS = new WeakMap<object, RefValue>();

/**
 * Makes a ref object; the DSL types it as Ref<T>. Its Symbol.toPrimitive refuses it in a string
 * or arithmetic; a symbol key, not enumerable, unseen by JSON, `Object.keys` and hashing.
 */
export function makeRef(source: "node" | "param", target: string, path: string[], buildId: number): RefValue {
  // The symbol is in the literal, then made not enumerable: added to the object afterwards, it
  // took a property store of its own, which the flow keeps for its life (BENCHMARKS.md, "Why the code is shaped so").
  const ref = { __cairnRef: true as const, source, target, path: Object.freeze(path), buildId, [Symbol.toPrimitive]: refToPrimitive };
  Object.defineProperty(ref, Symbol.toPrimitive, TO_PRIMITIVE);
  return Object.freeze(ref);
}

/** Not enumerable, not writable: one descriptor for every ref (a 10,000-node flow makes tens of thousands). */
const TO_PRIMITIVE: PropertyDescriptor = Object.freeze({ value: refToPrimitive, enumerable: false, writable: false, configurable: false });

/** What a ref proxy stands for; its target object. Hidden: the proxy reports no own keys. */
interface RefTarget {
  source: "node" | "param";
  target: string;
  buildId: number;
  /** Refs handed out so far, by key: the same key gives the same ref. */
  refs?: Map<string, RefValue>;
}

/** One handler for every ref proxy: 10,000-node flows made 10,000 handlers and 30,000 closures before. */
const REF_HANDLER: ProxyHandler<RefTarget> = {
  get(t, key) {
    if (key === PROXY_MARK) return t.source;
    // Only the symbol: a template literal, `+` and String() ask it first, and `toString` or
    // `valueOf` stays what any other name is, a param or an output that may be named so.
    if (key === Symbol.toPrimitive) return t.source === "param" ? proxyToPrimitive("params", "params") : proxyToPrimitive(t.target, t.target);
    if (typeof key !== "string" || key === "then" || key === "toJSON") return undefined;
    const { source, target, buildId } = t;
    if (source === "node" && key === "$id") return target;
    if (key === NODE_MARK) return source === "node";
    if (source === "node" && key === "$out") key = "";
    const refs = (t.refs ??= new Map());
    let ref = refs.get(key);
    if (!ref) {
      ref = source === "param" ? makeRef("param", key, [], buildId) : makeRef("node", target, key === "" ? [] : [key], buildId);
      refs.set(key, ref);
    }
    return ref;
  },
  has: () => false,
  ownKeys: () => [],
  getOwnPropertyDescriptor: () => undefined,
};

/** A proxy whose every property is a ref: to an output of node `target`, or (for `param`) to the param of that name. */
export function refProxy(source: "node" | "param", target: string, buildId: number): Record<string, unknown> {
  const t = Object.create(null) as RefTarget;
  t.source = source;
  t.target = target;
  t.buildId = buildId;
  return new Proxy(t, REF_HANDLER) as unknown as Record<string, unknown>;
}
