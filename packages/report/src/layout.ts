/**
 * Where things go in a report, computed from its data alone: the graph laid out left to right
 * by dagre (nodes, edges with the output each carries), collapsed by task name when the flow is
 * too large to draw node by node; the critical path (the chain of tasks that set the flow's end);
 * and the timeline's lanes (tasks packed into rows by pool, none overlapping in a row).
 *
 * The layout depends on the graph's shape only (nodes, their sizes, edges and their labels), and
 * dagre's is the report's main cost: it is kept on disk by a digest of that shape
 * (`$TMPDIR/cairn-<uid>/report-layouts/`, as the flow compiler keeps its output), so the runs of a
 * flow after its first, and `cairn report` of any of them, reuse it. What happened in a run enters
 * the shape in one place only: a group's node is as wide as its counts line, in steps of
 * {@link WIDTH_STEP} px, so a flow's runs share a few layouts rather than one per outcome.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import type Dagre from "@dagrejs/dagre";
import { privateTempDir, readSmallFile, sha256, writeFileAtomic } from "@cairn/cache";
import type { InputEdge, ReportTask, TaskState } from "./report-data.ts";

/** A node of the drawn graph: one task, or a group of tasks of one name (a map's items, a large flow). */
export interface GraphNode {
  /** Key of the node in the drawing. */
  key: string;
  label: string;
  /** The tasks it stands for (one unless grouped). */
  tasks: ReportTask[];
  /**
   * The state it is coloured by: its task's; a map's or sweep's, its own run's (one whose items met
   * minSuccess succeeded, whatever some of them did: its counts say that); a node of a task name (a
   * large flow), the worst among its tasks, a map's items counted as their map.
   */
  state: TaskState;
  /** For groups: how many of its tasks are in each state (and of a map's list, how many never began). */
  counts?: Partial<Record<TaskState | "not started", number>>;
  /**
   * The line drawn under a group's label: its counts (`169 succeeded · 19 cached · 12 failed`), or,
   * when that would make the node wider than {@link COUNTS_MAX_WIDTH}, in short words (`169 ok · 19 hit · 12 fail`); the node is as wide as it.
   */
  countsLine?: string;
  critical: boolean;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** An edge of the drawn graph, with the outputs it carries. */
export interface GraphEdge {
  from: string;
  to: string;
  label: string;
  critical: boolean;
  points: Array<{ x: number; y: number }>;
  /** Where dagre left room for the label. */
  labelAt?: { x: number; y: number };
}

export interface GraphLayout {
  nodes: GraphNode[];
  edges: GraphEdge[];
  width: number;
  height: number;
  /** Nodes were grouped by task name (the flow has more tasks than {@link GraphOptions.maxNodes}). */
  grouped: boolean;
}

export interface GraphOptions {
  /** Above this many tasks, the graph draws one node per task name. @default 300 */
  maxNodes?: number;
  /**
   * Above this many nodes even when grouped (tasks of as many distinct names), the graph is not
   * drawn (the timeline and table still are): such a flow is most often as many independent tasks,
   * which dagre stacks in one column, 50 px a node. @default 300
   */
  maxGroups?: number;
}

/** States from the worst to the best: a node of a task name is coloured by the worst it holds. */
const SEVERITY: TaskState[] = ["failed", "cancelled", "skipped", "running", "waiting", "succeeded", "cached"];

const NODE_HEIGHT = 36;
const GROUP_HEIGHT = 36;
/** A character's width at the label's 12 px (0.6 em, wide for system-ui's letters and digits), and at the counts line's 10 px. */
const CHAR_WIDTH = 7.2;
const COUNTS_CHAR_WIDTH = 6;
/** Above this a group's counts line is said in short words: the graph is shrunk to fit the page, and one wide node shrinks it all. */
const COUNTS_MAX_WIDTH = 400;
/** A group's node grows in these steps: its width is part of the kept layout's key. */
const WIDTH_STEP = 40;
/** The counts line's short words. */
const SHORT: Record<string, string> = { succeeded: "ok", cached: "hit", failed: "fail", skipped: "skip", cancelled: "cancel", running: "run", waiting: "wait", "not started": "unstarted" };

/**
 * The graph's layout, or undefined when there is no node, or too many to draw even grouped. The
 * dagre layout is the cost of a report; a flow of more than `maxNodes` tasks is drawn one node
 * per task name instead (a map's items, a sweep's trials share one), each with its counts, unless
 * that leaves more than `maxGroups` nodes.
 */
export function layoutGraph(tasks: readonly ReportTask[], critical: ReadonlySet<string>, options: GraphOptions = {}): GraphLayout | undefined {
  const grouped = tasks.filter((t) => !t.item).length > (options.maxNodes ?? 300);
  const nodes = grouped ? groupByTask(tasks) : nodePerTask(tasks, critical);
  // No node: nothing to lay out (dagre's bounds of an empty graph are infinite).
  if (!nodes.length || nodes.length > (options.maxGroups ?? 300)) return undefined;
  const keyOf = new Map<string, string>();
  for (const n of nodes) for (const t of n.tasks) keyOf.set(t.id, n.key);
  // One edge per pair of nodes, labelled with every output it carries.
  const labels = new Map<string, Set<string>>();
  for (const t of tasks) {
    const to = keyOf.get(t.id)!;
    const carried = new Map<string, string[]>();
    for (const input of t.inputs) (carried.get(input.node) ?? carried.set(input.node, []).get(input.node)!).push(edgeLabel(input));
    for (const dep of t.dependsOn) {
      const from = keyOf.get(dep);
      if (from === undefined || from === to) continue;
      const pair = `${from}\u0000${to}`;
      let set = labels.get(pair);
      if (!set) labels.set(pair, (set = new Set()));
      for (const label of carried.get(dep) ?? ["(after)"]) set.add(label);
    }
  }
  const shape: Shape = {
    nodes: nodes.map((n) => [n.key, n.width, n.height]),
    edges: [...labels].map(([pair, set]) => {
      const [from, to] = pair.split("\u0000") as [string, string];
      return [from, to, [...set].slice(0, 3).join(", ") + (set.size > 3 ? `, +${set.size - 3}` : "")];
    }),
  };
  const placed = placeGraph(shape);
  const byKey = new Map(nodes.map((n) => [n.key, n]));
  nodes.forEach((n, i) => {
    [n.x, n.y] = placed.nodes[i]!;
  });
  const edges: GraphEdge[] = shape.edges.map(([from, to, label], i) => {
    const [points, labelAt] = placed.edges[i]!;
    return { from, to, label, critical: byKey.get(from)!.critical && byKey.get(to)!.critical, points, ...(labelAt ? { labelAt } : {}) };
  });
  return { nodes, edges, width: placed.width, height: placed.height, grouped };
}

/** What dagre lays out: nodes (key, width, height) and edges (from, to, label). */
interface Shape {
  nodes: Array<[string, number, number]>;
  edges: Array<[string, string, string]>;
}

/** Where dagre put them: each node's top-left corner, each edge's points and label, in the shape's order. */
interface Placed {
  nodes: Array<[number, number]>;
  edges: Array<[Array<{ x: number; y: number }>, { x: number; y: number } | undefined]>;
  width: number;
  height: number;
}

/** Bumped when what is kept changes shape. */
const LAYOUT_FORMAT = 1;

let layouts: string | undefined | null = null;

/** The folder of kept layouts, when it is this user's alone (see privateTempDir): a planted layout would be drawn into the report. */
function layoutDir(): string | undefined {
  if (layouts === null) layouts = privateTempDir("report-layouts");
  return layouts;
}

const requireHere = createRequire(import.meta.url);
let dagreVersion: string | undefined;
let dagreModule: typeof Dagre | undefined;

/**
 * dagre's version (part of a kept layout's key), from its package.json: a report whose layout is
 * kept (every run of a flow after its first) does not load dagre at all, where its import cost each
 * `cairn run` ~3 ms of compiling, and an installed one also the read of its 300 KB source map,
 * which Node parses once the flow's stack traces have source maps on (BENCHMARKS.md, twenty-ninth session).
 */
function dagreVersionNow(): string {
  return (dagreVersion ??= (requireHere("@dagrejs/dagre/package.json") as { version: string }).version);
}

/** dagre, required when a layout is made: its CommonJS build, the same layouts as its ES module one. */
function loadDagre(): typeof Dagre {
  return (dagreModule ??= requireHere("@dagrejs/dagre") as typeof Dagre);
}

/** Lays `shape` out with dagre, or reads the layout kept for the same shape. */
function placeGraph(shape: Shape): Placed {
  const name = `${sha256(JSON.stringify([LAYOUT_FORMAT, dagreVersionNow(), shape]))}.json`;
  const dir = layoutDir();
  try {
    const text = dir === undefined ? undefined : readSmallFile(join(dir, name));
    const kept = text === undefined ? undefined : (JSON.parse(text) as Placed);
    if (kept && kept.nodes.length === shape.nodes.length && kept.edges.length === shape.edges.length && Number.isFinite(kept.width) && Number.isFinite(kept.height)) return kept;
  } catch {
    // Unreadable: laid out now.
  }
  const dagre = loadDagre();
  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 28, edgesep: 8, marginx: 8, marginy: 8, ranker: shape.nodes.length > 150 ? "longest-path" : "network-simplex" });
  g.setDefaultEdgeLabel(() => ({}));
  for (const [key, width, height] of shape.nodes) g.setNode(key, { width, height });
  // dagre keeps room for each label, so that labels do not sit on one another.
  for (const [from, to, label] of shape.edges) g.setEdge(from, to, { label, width: Math.min(label.length * 5.5 + 4, 160), height: 12, labelpos: "c" });
  dagre.layout(g);
  const round = (n: number) => Math.round(n * 10) / 10;
  const placed: Placed = {
    nodes: shape.nodes.map(([key, width, height]) => {
      const p = g.node(key) as { x: number; y: number };
      return [round(p.x - width / 2), round(p.y - height / 2)];
    }),
    edges: shape.edges.map(([from, to]) => {
      const e = g.edge(from, to) as { points?: Array<{ x: number; y: number }>; x?: number; y?: number };
      return [((e.points ?? []) as Array<{ x: number; y: number }>).map((p) => ({ x: round(p.x), y: round(p.y) })), e.x !== undefined && e.y !== undefined ? { x: round(e.x), y: round(e.y) } : undefined];
    }),
    width: Math.ceil(g.graph().width ?? 0),
    height: Math.ceil(g.graph().height ?? 0),
  };
  // Written whole, then renamed into place: a reader never sees half of it. One that cannot be kept is laid out again next time.
  if (dir !== undefined) void writeFileAtomic(dir, name, JSON.stringify(placed)).catch(() => {});
  return placed;
}

/**
 * What an edge says flows along it: the upstream output's path (`rows` of `load.rows`), or, when
 * the whole output flows, the input that takes it; a condition's, `if go`, a map's list, `over
 * rows`. An edge of `.after()` alone says `(after)`.
 */
export function edgeLabel(input: InputEdge): string {
  const path = input.from.startsWith(`${input.node}.`) ? input.from.slice(input.node.length + 1) : "";
  if (input.use) return path ? `${input.use} ${path}` : input.use;
  return path || input.input;
}

function single(t: ReportTask, critical: boolean): GraphNode {
  const label = t.id;
  // Room for a second line (a cache hit's source run) whatever the state: the layout is the shape's, kept across runs.
  return { key: t.id, label, tasks: [t], state: t.state, critical, x: 0, y: 0, width: textWidth(label, 150, 260), height: NODE_HEIGHT };
}

/** One node per task, but a map's or sweep's items, which collapse into their map's node with their counts by state. */
function nodePerTask(tasks: readonly ReportTask[], critical: ReadonlySet<string>): GraphNode[] {
  const groups = new Map(tasks.filter((t) => t.group).map((t) => [t.id, [] as ReportTask[]]));
  for (const t of tasks) if (t.item) groups.get(t.item.node)?.push(t);
  const nodes: GraphNode[] = [];
  for (const t of tasks) {
    if (t.item && groups.has(t.item.node)) continue;
    const items = groups.get(t.id);
    if (!items) {
      nodes.push(single(t, critical.has(t.id)));
      continue;
    }
    const counts: NonNullable<GraphNode["counts"]> = {};
    for (const m of items) counts[m.state] = (counts[m.state] ?? 0) + 1;
    // Its run counts its list: the items a stopped map never began have no run, nor yet those of one still running.
    const total = Math.max(items.length, t.group!.items ?? 0);
    if (total > items.length) counts[t.state === "running" ? "waiting" : "not started"] = total - items.length;
    const label = `${t.id} (${t.group!.kind}) ×${total}`;
    // Coloured by how the map ended, as its run says: minSuccess, not its worst item, decides that.
    nodes.push({ key: t.id, label, tasks: [t, ...items], state: t.state, critical: critical.has(t.id), x: 0, y: 0, height: GROUP_HEIGHT, ...withCounts(label, counts) });
  }
  return nodes;
}

/** One node per task name, with the counts of its tasks by state (a flow too large to draw task by task). */
export function groupByTask(tasks: readonly ReportTask[]): GraphNode[] {
  const groups = new Map<string, ReportTask[]>();
  for (const t of tasks) (groups.get(t.task) ?? groups.set(t.task, []).get(t.task)!).push(t);
  // An item whose map's run is there counts by its map's state, as its map's own node is coloured.
  const maps = new Map(tasks.filter((t) => t.group).map((t) => [t.id, t]));
  return [...groups].map(([name, members]) => {
    const counts: Partial<Record<TaskState, number>> = {};
    const judged = new Set<TaskState>();
    for (const m of members) {
      counts[m.state] = (counts[m.state] ?? 0) + 1;
      judged.add((m.item ? maps.get(m.item.node)?.state : undefined) ?? m.state);
    }
    const state = SEVERITY.find((s) => judged.has(s)) ?? "succeeded";
    const label = members.length > 1 ? `${name} ×${members.length}` : members[0]!.id;
    // One task alone is drawn as a task is: no counts line.
    const sized = members.length > 1 ? withCounts(label, counts) : { counts, width: textWidth(label, 170, 280) };
    return { key: `g:${name}`, label, tasks: members, state, critical: false, x: 0, y: 0, height: members.length > 1 ? GROUP_HEIGHT : NODE_HEIGHT, ...sized };
  });
}

function textWidth(label: string, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.round(label.length * CHAR_WIDTH + 34)));
}

/**
 * A group's counts, the line that says them and the node's width: the label's (at most 280, the
 * rest clipped, as a task's), or the counts line's when wider, so that every count is read whole. A
 * line wider than {@link COUNTS_MAX_WIDTH} is said in short words; the node's tooltip says it in full.
 */
function withCounts(label: string, counts: NonNullable<GraphNode["counts"]>): Pick<GraphNode, "counts" | "countsLine" | "width"> {
  const entries = Object.entries(counts);
  let countsLine = entries.map(([s, c]) => `${c} ${s}`).join(" · ") || "no items";
  if (countsWidth(countsLine) > COUNTS_MAX_WIDTH) countsLine = entries.map(([s, c]) => `${c} ${SHORT[s] ?? s}`).join(" · ");
  const needed = countsWidth(countsLine);
  const width = Math.max(textWidth(label, 170, 280), Math.ceil(needed / WIDTH_STEP) * WIDTH_STEP);
  return { counts, countsLine, width };
}

function countsWidth(line: string): number {
  // 10 px of margin each side, as the label has.
  return Math.round(line.length * COUNTS_CHAR_WIDTH + 20);
}

/**
 * The critical path: from the task that ended last, back through the dependency that ended
 * last, to a task with none: the chain that decided when the flow ended. Node ids of the graph,
 * first to last: a map's or sweep's items count as their node, which ended when its last item did.
 */
export function criticalPath(tasks: readonly ReportTask[]): string[] {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  // A group ended with its items (its own run is closed after them); an item's end is its group's.
  const itemsEnd = new Map<string, number>();
  for (const t of tasks) {
    const end = t.item && t.state !== "skipped" && t.state !== "cancelled" ? finishedAt(t) : undefined;
    if (t.item && end !== undefined) itemsEnd.set(t.item.node, Math.max(itemsEnd.get(t.item.node) ?? -Infinity, end));
  }
  const ended = (t: ReportTask | undefined) => (t && t.state !== "skipped" && t.state !== "cancelled" ? (itemsEnd.get(t.id) ?? finishedAt(t) ?? -Infinity) : -Infinity);
  let last: ReportTask | undefined;
  for (const t of tasks) if (!t.item && ended(t) > ended(last)) last = t;
  const path: string[] = [];
  const seen = new Set<string>();
  for (let t = last; t && !seen.has(t.id) && ended(t) > -Infinity; ) {
    seen.add(t.id);
    path.push(t.id);
    let next: ReportTask | undefined;
    for (const dep of t.dependsOn) if (ended(byId.get(dep)) > ended(next)) next = byId.get(dep);
    t = next;
  }
  return path.reverse();
}

/**
 * When a task's own work ended: its run's start plus its duration as its run recorded it (the
 * table's run time), else its run record's end. The record is closed after the work, once its
 * outputs are uploaded and its cache entry stored, which with a server takes many times a short
 * task's work: bars ended there overlap the tasks that depend on them.
 */
export function finishedAt(t: ReportTask): number | undefined {
  return t.durationMs !== undefined ? t.startTime + t.durationMs : t.endTime;
}

/** One bar of the timeline. */
export interface TimelineBar {
  task: ReportTask;
  /** Row, counted from the top over all groups. */
  row: number;
  /** Where its queue wait is drawn from: its queue time, or later when the lane's bar before it was still running then. */
  queueFrom: number;
}

/** The timeline's rows: a group per pool (the flow's own slots first), each packed into lanes. */
export interface TimelineLayout {
  bars: TimelineBar[];
  groups: Array<{ name: string; firstRow: number; rows: number }>;
  rows: number;
  start: number;
  end: number;
  /** Tasks with no bar: cache hits (a mark each, on their own row), skipped ones. */
  hits: ReportTask[];
  hitRow?: number;
}

/**
 * Packs the tasks that ran into lanes: in queue order, each into the first lane of its pool free
 * since its queue time began (so its queue wait and run overlap no other bar), else the first
 * free when its run started, its wait drawn from when that lane became free (its tooltip says the
 * whole wait); so a pool has as many lanes as it had tasks running at once, however many waited.
 * Cache hits get one row of marks. `flowEnd`: the flow's end, or for a flow still running the
 * report's time, where running bars end.
 */
export function layoutTimeline(tasks: readonly ReportTask[], flowStart: number, flowEnd: number | undefined): TimelineLayout {
  // A map's own run spans its items', which have the bars.
  const ran = tasks.filter((t) => t.runId && !t.group && (t.state === "succeeded" || t.state === "failed" || t.state === "running" || (t.state === "cancelled" && t.attempts > 0)));
  const hits = tasks.filter((t) => t.state === "cached");
  const byPool = new Map<string, ReportTask[]>();
  for (const t of ran.sort((a, b) => barStart(a) - barStart(b))) {
    const pool = t.pool ?? "";
    (byPool.get(pool) ?? byPool.set(pool, []).get(pool)!).push(t);
  }
  const bars: TimelineBar[] = [];
  const groups: TimelineLayout["groups"] = [];
  let row = 0;
  let end = flowEnd ?? flowStart;
  for (const name of [...byPool.keys()].sort()) {
    const lanes: number[] = []; // when each lane is free again
    for (const t of byPool.get(name)!) {
      const from = barStart(t);
      const to = finishedAt(t) ?? flowEnd ?? from;
      end = Math.max(end, to);
      let lane = lanes.findIndex((free) => free <= from);
      if (lane < 0) lane = lanes.findIndex((free) => free <= t.startTime);
      if (lane < 0) lane = lanes.push(from) - 1;
      const queueFrom = Math.max(from, lanes[lane]!);
      lanes[lane] = to;
      bars.push({ task: t, row: row + lane, queueFrom });
    }
    groups.push({ name, firstRow: row, rows: Math.max(lanes.length, 1) });
    row += Math.max(lanes.length, 1);
  }
  for (const h of hits) end = Math.max(end, h.endTime ?? h.startTime);
  const layout: TimelineLayout = { bars, groups, rows: row, start: flowStart, end: Math.max(end, flowStart + 1), hits };
  if (hits.length) {
    layout.hitRow = row;
    layout.rows = row + 1;
  }
  return layout;
}

/** Where a task's bar begins: when it was queued, else when its run started. */
export function barStart(t: ReportTask): number {
  return t.queuedAt !== undefined && t.queuedAt <= t.startTime ? t.queuedAt : t.startTime;
}
