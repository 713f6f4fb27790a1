import { CairnError, type FlowNode, type RefValue } from "@cairn/core";

/** The flow build in progress: tasks called inside `build` add their nodes here. */
export interface BuildContext {
  readonly buildId: number;
  readonly flowName: string;
  readonly nodes: FlowNode[];
  /** How many nodes each task name has produced, for automatic ids. */
  readonly uses: Map<string, number>;
}

let current: BuildContext | undefined;
let nextBuildId = 1;

/** Runs `fn` with a fresh build context and returns what it returned plus the nodes it made. */
export function withBuild<R>(flowName: string, fn: (ctx: BuildContext) => R): { result: R; context: BuildContext } {
  if (current) {
    throw new CairnError(
      `Flow "${flowName}" was built inside the build function of flow "${current.flowName}". ` +
        `Build flows at the top level of a module, one after another.`,
    );
  }
  const context: BuildContext = { buildId: nextBuildId++, flowName, nodes: [], uses: new Map() };
  current = context;
  try {
    const result = fn(context);
    if (result instanceof Promise) {
      throw new CairnError(
        `The build function of flow "${flowName}" returned a Promise. build() must be synchronous: ` +
          `it only wires tasks together; do the async work inside tasks.`,
      );
    }
    return { result, context };
  } finally {
    current = undefined;
  }
}

/** The build in progress; throws a clear error when a task is called outside of one. */
export function currentBuild(taskName: string): BuildContext {
  if (!current) {
    throw new CairnError(
      `Task "${taskName}" was called outside a flow's build function. Call tasks inside ` +
        `flow("name").build(({ params }) => { ... }) to add them to that flow; to run one task on its own, use a one-task flow.`,
    );
  }
  return current;
}

const NODE_MARK = "__cairnNode";

/** A node handle returned by calling a task stands for its whole output: its `$out` ref. */
export function nodeToRef(value: unknown): unknown {
  if (typeof value === "object" && value !== null && (value as Record<string, unknown>)[NODE_MARK] === true) {
    return (value as { $out: unknown }).$out;
  }
  return value;
}

/** Makes a ref object; the DSL types it as Ref<T>. */
export function makeRef(source: "node" | "param", target: string, path: string[], buildId: number): RefValue {
  return Object.freeze({ __cairnRef: true as const, source, target, path: Object.freeze(path), buildId });
}

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
