import type { FlowDefinition, FlowNode } from "../definition/flow-definition.ts";
import { type RefValue, forEachRef, isPlainObject, isRef } from "../definition/ref.ts";
import { requiredKeys } from "../definition/schema.ts";
import { assertSerializable, isSerializableValue } from "../definition/serializable.ts";
import {
  CycleError,
  DuplicateNodeError,
  FlowValidationError,
  MissingInputError,
  NotSerializableError,
  UnknownNodeError,
} from "../errors.ts";
import { closestName, ownValue } from "../internal.ts";

/** A validated flow: nodes by id, edges, a topological order and scheduling priorities. */
export interface FlowGraph {
  readonly definition: FlowDefinition;
  readonly nodes: ReadonlyMap<string, FlowNode>;
  /** Node ids in a topological order. */
  readonly order: readonly string[];
  /** Upstream node ids of each node. */
  readonly dependencies: ReadonlyMap<string, readonly string[]>;
  /** Downstream node ids of each node. */
  readonly dependants: ReadonlyMap<string, readonly string[]>;
  /** Length, in nodes, of the longest path from each node to a sink; the critical-path priority. */
  readonly priority: ReadonlyMap<string, number>;
  /** @internal The same graph by position in `definition.nodes`, for the scheduler. */
  readonly indexed: IndexedGraph;
}

/** The graph by node position: node `i` is `definition.nodes[i]`. */
export interface IndexedGraph {
  /** Position of each node id. */
  readonly index: ReadonlyMap<string, number>;
  readonly dependencies: ReadonlyArray<readonly number[]>;
  readonly dependants: ReadonlyArray<readonly number[]>;
  readonly priority: ArrayLike<number>;
  /** Positions in a topological order. */
  readonly order: readonly number[];
}

/**
 * Validates a flow definition and builds its graph. Everything a user can get
 * wrong in the wiring is caught here, before anything runs.
 */
export function buildFlowGraph(definition: FlowDefinition): FlowGraph {
  const flowName = definition.name;
  const list = definition.nodes;
  const n = list.length;
  // Positions, not ids, from here on: on 10,000-node flows the Map lookups by id were most of
  // the cost of validating (bench/engine-overhead.ts). The id-keyed Maps are made when asked for.
  const index = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const id = list[i]!.id;
    if (index.has(id)) throw new DuplicateNodeError(flowName, id);
    index.set(id, i);
  }

  const dependencies: number[][] = new Array(n);
  const dependants: number[][] = new Array(n);
  for (let i = 0; i < n; i++) {
    dependencies[i] = [];
    dependants[i] = [];
  }
  const addEdge = (from: number, to: number) => {
    const deps = dependencies[to]!;
    if (deps.includes(from)) return;
    deps.push(from);
    dependants[from]!.push(to);
  };

  const refs: RefValue[] = [];
  /** An edge into node `i` from every node `value` refers to (through `input`, for the error). */
  const edgesInto = (i: number, input: string, value: unknown) => {
    refs.length = 0;
    collectRefs(value, refs);
    for (const ref of refs) {
      if (ref.source !== "node") {
        // A param ref of another flow would bind to this flow's param of the same name.
        if (ref.buildId !== definition.buildId) throw new UnknownNodeError(flowName, list[i]!.id, input, ref.target, "param");
        continue;
      }
      const from = ref.buildId === definition.buildId ? index.get(ref.target) : undefined;
      if (from === undefined) throw new UnknownNodeError(flowName, list[i]!.id, input, ref.target);
      addEdge(from, i);
    }
  };
  /** Throws FlowValidationError for a value that failed isSerializableValue, naming where it is and what in it fails. */
  const refuse = (value: unknown, where: string) => {
    try {
      assertSerializable(value, where, ALLOW_REFS);
    } catch (error) {
      if (NotSerializableError.is(error)) {
        // The literal itself, not a part of it, has no path: said as an output's check says it.
        const cause = error.path === "" ? new NotSerializableError(error.where, "(the whole input)", error.got) : error;
        throw new FlowValidationError(`${cause.message} (in flow "${flowName}")`, flowName, { cause });
      }
      throw error;
    }
  };
  for (let i = 0; i < n; i++) {
    const node = list[i]!;
    // Each literal is checked before it is walked for refs: the check also bounds how deep that
    // walk goes (MAX_NESTING_DEPTH), and catches cycles, which would overflow its stack.
    for (const input in node.inputs) {
      const value = node.inputs[input];
      if (!isSerializableValue(value, ALLOW_REFS)) refuse(value, `Task "${node.id}" input "${input}"`);
      edgesInto(i, input, value);
    }
    // A map's list and a condition are inputs of the node too, for ordering: their nodes run first.
    const map = node.map;
    if (map) {
      if (!isSerializableValue(map.over, ALLOW_REFS)) refuse(map.over, `${map.kind === "sweep" ? "Sweep" : "Map"} "${node.id}" \`over\``);
      edgesInto(i, "over", map.over);
    }
    if (node.condition !== undefined) {
      if (!isSerializableValue(node.condition, ALLOW_REFS)) refuse(node.condition, `Task "${node.id}" condition (\`if\`)`);
      edgesInto(i, "if", node.condition);
    }
    for (const dep of node.after) {
      const from = index.get(dep);
      if (from === undefined) throw new UnknownNodeError(flowName, node.id, "after", dep, "node", afterTypo(dep, index.keys()));
      addEdge(from, i);
    }
    const schema = node.task.inputSchema;
    const required = schema ? requiredKeys(schema) : undefined;
    for (const key of required ?? []) {
      if (ownValue(node.inputs, key) === undefined && !suppliedPerItem(node, key)) {
        // A map's or sweep's item gets it from `as` or the points, beside `with`: said so, as a call's fix is not its fix.
        const fanOut = map?.kind === "sweep" ? { kind: "sweep" as const } : map?.as !== undefined ? { kind: "map" as const, as: map.as } : undefined;
        throw new MissingInputError(flowName, node.id, key, fanOut);
      }
    }
  }
  for (const [name, value] of Object.entries(definition.outputs)) {
    // As an input literal: the build function's own values are stored, and handed to the caller, as they are.
    if (!isSerializableValue(value, ALLOW_REFS)) {
      try {
        assertSerializable(value, `Flow output "${name}"`, ALLOW_REFS);
      } catch (error) {
        if (!NotSerializableError.is(error)) throw error;
        // The output itself, not a part of it, has no path: said as a task output's check says it.
        const cause = error.path === "" ? new NotSerializableError(error.where, "(the whole output)", error.got) : error;
        throw new FlowValidationError(`${cause.message} (in flow "${flowName}")`, flowName, { cause });
      }
    }
    forEachRef(value, (ref) => {
      if (ref.buildId !== definition.buildId || (ref.source === "node" && !index.has(ref.target))) {
        throw new UnknownNodeError(flowName, "(flow outputs)", name, ref.target, ref.source);
      }
    });
  }

  const order = topologicalOrder(dependencies, dependants);
  if (order.length < n) {
    throw new CycleError(
      flowName,
      findCycle(
        list.map((node) => node.id),
        dependencies,
        order,
      ),
    );
  }
  // Copied to their own length: an array grown by push() from [] keeps room for many more entries
  // than a node has edges, twice a node for the whole run (BENCHMARKS.md, "Why the code is shaped so").
  for (let i = 0; i < n; i++) {
    dependencies[i] = dependencies[i]!.slice();
    dependants[i] = dependants[i]!.slice();
  }
  const priority = new Uint32Array(n);
  for (let k = n - 1; k >= 0; k--) {
    const i = order[k]!;
    let best = 0;
    for (const next of dependants[i]!) if (priority[next]! > best) best = priority[next]!;
    priority[i] = best + 1;
  }
  return new Graph(definition, { index, dependencies, dependants, priority, order });
}

const ALLOW_REFS = { allowRefs: true } as const;

/** What UnknownNodeError says of an `after` id that is no node's: the id likely meant. */
function afterTypo(id: string, ids: Iterable<string>): { after: true; meant?: string } {
  const meant = closestName(id, ids);
  return meant === undefined ? { after: true } : { after: true, meant };
}

/** An input a map or sweep gives each item: the map's `as`, or a key of a sweep's points. */
function suppliedPerItem(node: FlowNode, key: string): boolean {
  const map = node.map;
  if (!map) return false;
  if (map.as !== undefined) return map.as === key;
  return Array.isArray(map.over) && map.over.some((point) => isPlainObject(point) && Object.hasOwn(point, key));
}

/** A FlowGraph whose id-keyed views are made on first use: the scheduler needs only the indexed form. */
class Graph implements FlowGraph {
  private nodes_?: Map<string, FlowNode>;
  private order_?: string[];
  private dependencies_?: Map<string, string[]>;
  private dependants_?: Map<string, string[]>;
  private priority_?: Map<string, number>;

  constructor(
    readonly definition: FlowDefinition,
    readonly indexed: IndexedGraph,
  ) {}

  get nodes(): ReadonlyMap<string, FlowNode> {
    return (this.nodes_ ??= new Map(this.definition.nodes.map((node) => [node.id, node])));
  }

  get order(): readonly string[] {
    const list = this.definition.nodes;
    return (this.order_ ??= this.indexed.order.map((i) => list[i]!.id));
  }

  get dependencies(): ReadonlyMap<string, readonly string[]> {
    return (this.dependencies_ ??= this.byId(this.indexed.dependencies));
  }

  get dependants(): ReadonlyMap<string, readonly string[]> {
    return (this.dependants_ ??= this.byId(this.indexed.dependants));
  }

  get priority(): ReadonlyMap<string, number> {
    const list = this.definition.nodes;
    return (this.priority_ ??= new Map(list.map((node, i) => [node.id, this.indexed.priority[i]!])));
  }

  private byId(edges: ReadonlyArray<readonly number[]>): Map<string, string[]> {
    const list = this.definition.nodes;
    return new Map(list.map((node, i) => [node.id, edges[i]!.map((j) => list[j]!.id)]));
  }
}

/** Every ref inside a literal value (objects and arrays are walked), pushed onto `out`: forEachRef without paths or callbacks. */
function collectRefs(value: unknown, out: RefValue[]): void {
  if (typeof value !== "object" || value === null) return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) collectRefs(value[i], out);
  } else if (isRef(value)) {
    out.push(value);
  } else if (isPlainObject(value)) {
    for (const k of Object.keys(value)) collectRefs(value[k], out);
  }
}

/** Kahn's algorithm, stable in declaration order; shorter than the node count when there is a cycle. */
function topologicalOrder(dependencies: ReadonlyArray<readonly number[]>, dependants: ReadonlyArray<readonly number[]>): number[] {
  const n = dependencies.length;
  const left = new Uint32Array(n);
  const order: number[] = [];
  for (let i = 0; i < n; i++) {
    left[i] = dependencies[i]!.length;
    if (left[i] === 0) order.push(i);
  }
  for (let k = 0; k < order.length; k++) {
    for (const next of dependants[order[k]!]!) {
      if (--left[next]! === 0) order.push(next);
    }
  }
  return order;
}

/**
 * One concrete cycle, as node ids in edge order, beginning at its smallest id. Every node Kahn's
 * algorithm left unordered waits on another left one, so walking dependencies among them (the
 * smallest id first) must repeat a node; the repeat closes a cycle. A loop, not a recursion: a
 * cycle through thousands of nodes is reported as a short one is, not as a stack overflow.
 */
function findCycle(ids: readonly string[], dependencies: ReadonlyArray<readonly number[]>, order: readonly number[]): string[] {
  const ordered = new Uint8Array(ids.length);
  for (const i of order) ordered[i] = 1;
  const smallest = (candidates: Iterable<number>) => {
    let best = -1;
    for (const i of candidates) if (!ordered[i] && (best < 0 || ids[i]! < ids[best]!)) best = i;
    return best;
  };
  const seenAt = new Map<number, number>();
  const path: number[] = [];
  let current = smallest(ids.keys());
  while (!seenAt.has(current)) {
    seenAt.set(current, path.length);
    path.push(current);
    current = smallest(dependencies[current]!);
  }
  // The walk went against the edges: reversed, the loop is in edge order.
  const cycle = path.slice(seenAt.get(current)).reverse().map((i) => ids[i]!);
  const first = cycle.indexOf(cycle.reduce((a, b) => (b < a ? b : a)));
  return [...cycle.slice(first), ...cycle.slice(0, first)];
}
