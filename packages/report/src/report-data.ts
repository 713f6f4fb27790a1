/**
 * What a report shows, read from what a flow run recorded: the flow run and its task runs from
 * the tracker (their `cairn.*` tags: status, attempts, queue time, why they ran, errors), the
 * flow's graph from the run's `cairn/graph.json`, failed tasks' error text and log tails from
 * their artifacts, cache hits' metrics from their source runs, and, for tasks that missed the
 * cache, what changed since the nearest earlier entry of the same task (the cache store's
 * entries). A run of last month, or one made on another machine that records to the same MLflow
 * server, reads the same. The one exception is a run's own report at its end, which takes its
 * hits' runs (each written whole by the run and by nothing else) and their source runs (read to
 * check them) from the run instead of asking the server again; the result is the same.
 */
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { setImmediate } from "node:timers/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CacheEntry, type CacheStore, earlierByTask, nearestEntry } from "@cairn/cache";
import {
  ATTEMPT_STARTS_TAG,
  CACHED_FROM_NAME_TAG,
  CACHED_FROM_TAG,
  CACHE_KEY_TAG,
  CANCEL_REASON_TAG,
  cancelledRunWhy,
  ERROR_FILE,
  ERROR_MESSAGE_TAG,
  ERROR_NAME_TAG,
  ERROR_SOURCE_TAG,
  ERROR_TAG,
  attemptErrors,
  expiredWords,
  type GraphJsonNode,
  MANIFEST_PATH,
  MISS_REASON_TAG,
  type MissReason,
  parseMissReason,
  POOL_TAG,
  QUEUED_AT_TAG,
  DURATION_TAG,
  SWEEP_VALUE_TAG,
  RAN_BECAUSE_TAG,
  type RunRecord,
  SKIPPED_REASON_TAG,
  STATUS_TAG,
  type Tracker,
  skippedWhy,
  sourceRunsOfHits,
  describeRunPlace,
  flowRunOf,
} from "@cairn/core";
import { ReportRunError } from "./errors.ts";

/** What happened to a task, as the report colours it. */
/** `waiting`: a task of a flow still running that has not started (no run of its own yet). */
export type TaskState = "succeeded" | "cached" | "failed" | "skipped" | "cancelled" | "running" | "waiting";

/** One output flowing into an input: an edge of the graph and its label. */
export interface InputEdge {
  /** The input (or the path inside it) that takes the value. */
  input: string;
  /** The upstream output, as `node.path`. */
  from: string;
  /** The upstream node id. */
  node: string;
  /** Not an input: the node's condition (`if`) or a map's list (`over`) takes it. */
  use?: "if" | "over";
}

/** One task of the run, as the report shows it. */
export interface ReportTask {
  /** Node id. */
  id: string;
  /** The task's name (several nodes of a map share one). */
  task: string;
  kind?: string;
  state: TaskState;
  /** Its run in the tracker, and that run's page when the tracker has a UI. */
  runId: string;
  url?: string;
  /** Epoch ms: queued (inputs ready), started (slot taken, run created), ended. */
  queuedAt?: number;
  startTime: number;
  endTime?: number;
  /** Its own work in ms, as the run's summary said it (DURATION_TAG): its attempts' wall time, not its record's. */
  durationMs?: number;
  /** Attempts made (none by a map's or sweep's own run: its items make them); when each began (retried tasks only). */
  attempts: number;
  attemptStarts: number[];
  pool?: string;
  /** The cache key it was stored under or hit with. */
  cacheKey?: string;
  cachedFrom?: { runId: string; name?: string; url?: string };
  /** Why it ran (or came from the cache), in `cairn explain`'s words, one line each. */
  why: string[];
  error?: { name: string; message: string; source?: string };
  /** What its attempts that failed and were retried failed with (`Name: message`), whatever its end; absent when none was. */
  retriedErrors?: Array<{ attempt: number; error: string }>;
  /** The end of its log (stderr, else stdout) and of its error's text, when it failed. */
  logTail?: string;
  errorText?: string;
  /** Its logged metrics (a hit's: its source run's), and its inputs as params. */
  metrics: Record<string, number>;
  params: Record<string, string>;
  dependsOn: string[];
  inputs: InputEdge[];
  /** An item of a map or sweep: its map node, its place in the list, and a trial's point (`lr=0.1,depth=3`). */
  item?: { node: string; index: number; key?: string };
  /**
   * A map or sweep node (its run is its items' parent): its kind, and a sweep's best trial and
   * selector, and the trial that stopped it by meeting stopWhen (those after it do not count);
   * `items`: its list's length, when its run says it (its `cairn.items` metric at its end, its tag
   * of the same name from its start; runs recorded before that tag say it at their end only).
   */
  group?: { kind: string; items?: number; best?: string; select?: { order: "max" | "min"; metric: string }; stoppedAt?: string; unread?: number };
  /** A sweep trial's value of its sweep's selected output (from its outputs), for the leaderboard. */
  score?: number;
  /**
   * Where `score` came from: `"value"`, the trial's own value (its tag or its outputs);
   * `"metric"`, its metric of that name, read when its value was not (its latest step's).
   */
  scoreFrom?: "value" | "metric";
}

/** A whole report's data. */
export interface ReportData {
  flow: {
    runId: string;
    name: string;
    /** The flow run's MLflow status. */
    status: string;
    /** Why it was cancelled, when it was and a reason was given (its `cairn.cancel_reason` tag). */
    cancelReason?: string;
    experimentId: string;
    startTime: number;
    endTime?: number;
    /** Its duration in ms as the run measured it (its DURATION_TAG), when known: `endTime - startTime` is off when the wall clock stepped during the run. */
    durationMs?: number;
    url?: string;
    params: Record<string, string>;
    metrics: Record<string, number>;
    /** Where the runs are recorded (a folder or a server URL without credentials). */
    trackerUri: string;
    host?: string;
    user?: string;
    source?: string;
    commit?: string;
  };
  /** In the flow's topological order when its graph was recorded, else by start time. */
  tasks: ReportTask[];
  /** When this data was read. */
  generatedAt: number;
}

/** Options of {@link readReportData}. */
export interface ReadReportOptions {
  /** The cache store whose entries explain misses; without it a miss is "no usable entry". */
  store?: CacheStore;
  /** The flow run is ending now with this status (the run's own record still says RUNNING). */
  ending?: { status: string; endTime: number; durationMs?: number };
  /** Failed tasks whose error text and log tail are read (one or two reads each). @default 50 */
  maxLogTails?: number;
  /** Source runs of the hits read already (by the ending run itself), by id: not asked for again. */
  sourceRuns?: ReadonlyMap<string, RunRecord>;
  /**
   * All the runs of the flow run's cache hits, as the ending run recorded them (EndingFlowRun.hits):
   * taken from here, and the tracker is asked for the other task runs only.
   */
  hits?: readonly RunRecord[];
  /**
   * `hits` are every task run of the flow run (EndingFlowRun.onlyHits): the tracker is not asked
   * for its task runs at all.
   */
  onlyHits?: boolean;
  /** The text of the flow run's `cairn/graph.json` as the ending run logged it: not read back. */
  graph?: string;
  /** The flow run as the ending run read it once its outputs were recorded (EndingFlowRun.flowRun): not read again. */
  flowRun?: RunRecord;
}

/** Lines of a log's end kept; characters at most. */
const TAIL_LINES = 40;
const TAIL_CHARS = 6000;
/** Bytes of a log read for its tail: a task may write gigabytes, of which the report shows the end. */
const TAIL_READ_BYTES = 64 * 1024;
/** Misses explained between two turns of the event loop. */
const YIELD_EVERY = 500;

/**
 * Reads the report data of flow run `runId` from `tracker`. Throws ReportRunError when there is
 * no such run or it is a task run (naming its flow run).
 */
export async function readReportData(tracker: Tracker, runId: string, options: ReadReportOptions = {}): Promise<ReportData> {
  const flowRun = options.flowRun?.runId === runId ? options.flowRun : await tracker.getRun(runId);
  if (!flowRun) throw new ReportRunError(`No run ${runId} in ${tracker.uri}. List flow runs with \`cairn runs\`.`, runId);
  if (flowRun.parentRunId !== undefined) {
    // Named at the top: an item's or a trial's parent is its map's or sweep's run, itself no flow run.
    const place = await flowRunOf(tracker, flowRun);
    throw new ReportRunError(`Expected a flow run, got ${describeRunPlace(flowRun, place)}: a report is of a flow run. Run \`cairn report ${place.flowRunId}\`.`, runId);
  }
  const experimentId = flowRun.experimentId;
  const hits = options.hits ? groupByParent(options.hits) : undefined;
  const [children, graph] = await Promise.all([
    hits && options.onlyHits ? [...(hits.get(runId) ?? [])] : childRuns(tracker, experimentId, runId, hits),
    (options.graph !== undefined ? Promise.resolve(options.graph) : readArtifact(tracker, runId, "cairn/graph.json")).then((text) => (text ? parseGraph(text) : undefined)),
  ]);
  // A map's or sweep's run holds its items' runs (MLflow's nested runs): one search per map.
  const groups = children.filter((r) => r.tags["cairn.kind"] === "map" || r.tags["cairn.kind"] === "sweep");
  // Pushed one by one: a map may have more items than the stack takes arguments.
  for (const items of await Promise.all(groups.map((g) => childRuns(tracker, experimentId, g.runId, hits)))) for (const item of items) children.push(item);
  // A node may have more than one run only when the flow run was resumed by hand; the latest wins.
  const byNode = new Map<string, RunRecord>();
  for (const run of children.sort((a, b) => a.startTime - b.startTime)) byNode.set(run.tags["cairn.node_id"] ?? run.name, run);

  const sources = await sourceRunsOfHits(tracker, [...byNode.values()], options.sourceRuns);
  const url = (r: { experimentId: string; runId: string }) => tracker.runUrl?.(r.experimentId, r.runId);
  // Items follow their map node, in item order.
  const itemsOf = new Map<string, string[]>();
  for (const [id, run] of byNode) {
    const parent = run.tags["cairn.parent_node"];
    if (parent !== undefined) (itemsOf.get(parent) ?? itemsOf.set(parent, []).get(parent)!).push(id);
  }
  const itemIndex = (id: string) => Number(byNode.get(id)!.tags["cairn.item"] ?? 0);
  for (const list of itemsOf.values()) list.sort((a, b) => itemIndex(a) - itemIndex(b));
  const order = graph
    ? graph.flatMap((n) => (byNode.has(n.id) ? [n.id, ...(itemsOf.get(n.id) ?? [])] : []))
    : [...byNode.keys()];
  // Nodes of the graph with no run (a run cut short before they were recorded) still show, as cancelled.
  const missing = graph?.filter((n) => !byNode.has(n.id)) ?? [];
  const graphById = new Map(graph?.map((n) => [n.id, n]));
  const tasks: ReportTask[] = order.map((id) => toTask(byNode.get(id)!, graphById.get(id), sources, url));
  for (const n of missing) tasks.push(unrecordedTask(n, flowRun));

  await Promise.all([explainMisses(tasks, flowRun.startTime, options.store), readFailures(tracker, tasks, options.maxLogTails ?? 50), readScores(tracker, tasks)]);

  const t = flowRun.tags;
  const flowUrl = url(flowRun);
  return {
    flow: {
      runId,
      name: flowRun.name,
      status: options.ending?.status ?? flowRun.status,
      ...(t[CANCEL_REASON_TAG] ? { cancelReason: t[CANCEL_REASON_TAG] } : {}),
      experimentId,
      startTime: flowRun.startTime,
      ...((options.ending?.endTime ?? flowRun.endTime) !== undefined ? { endTime: options.ending?.endTime ?? flowRun.endTime! } : {}),
      ...((options.ending?.durationMs ?? numberTag(t[DURATION_TAG])) !== undefined ? { durationMs: options.ending?.durationMs ?? numberTag(t[DURATION_TAG])! } : {}),
      ...(flowUrl ? { url: flowUrl } : {}),
      params: flowRun.params,
      metrics: flowRun.metrics,
      trackerUri: tracker.uri,
      ...(t["cairn.host"] ? { host: t["cairn.host"] } : {}),
      ...(t["mlflow.user"] ? { user: t["mlflow.user"] } : {}),
      ...(t["mlflow.source.name"] ? { source: t["mlflow.source.name"] } : {}),
      ...(t["mlflow.source.git.commit"] ? { commit: t["mlflow.source.git.commit"] } : {}),
    },
    tasks,
    generatedAt: Date.now(),
  };
}

/**
 * The runs under `parentRunId`. With the run's own `hits`, those under it come from there and
 * the tracker is asked only for the others (whatever their `cairn.status`, or none).
 */
async function childRuns(tracker: Tracker, experimentId: string, parentRunId: string, hits: ReadonlyMap<string, RunRecord[]> | undefined): Promise<RunRecord[]> {
  const filter = { experimentIds: [experimentId], parentRunId, maxResults: Number.MAX_SAFE_INTEGER };
  if (!hits) return tracker.searchRuns(filter);
  const others = await tracker.searchRuns({ ...filter, withoutTag: { key: STATUS_TAG, value: "cached" } });
  return [...others, ...(hits.get(parentRunId) ?? [])];
}

function groupByParent(runs: readonly RunRecord[]): Map<string, RunRecord[]> {
  const by = new Map<string, RunRecord[]>();
  for (const run of runs) if (run.parentRunId !== undefined) (by.get(run.parentRunId) ?? by.set(run.parentRunId, []).get(run.parentRunId)!).push(run);
  return by;
}

function toTask(run: RunRecord, node: GraphJsonNode | undefined, sources: Map<string, RunRecord>, url: (r: { experimentId: string; runId: string }) => string | undefined): ReportTask {
  const t = run.tags;
  const state = stateOf(run);
  const source = t[CACHED_FROM_TAG] ? sources.get(t[CACHED_FROM_TAG]) : undefined;
  const queuedAt = numberTag(t[QUEUED_AT_TAG]);
  const group = t["cairn.kind"] === "map" || t["cairn.kind"] === "sweep";
  const task: ReportTask = {
    id: t["cairn.node_id"] ?? run.name,
    task: t["cairn.task"] ?? node?.task ?? run.name,
    state,
    runId: run.runId,
    startTime: run.startTime,
    // A map's or sweep's own run makes no attempt: its items do.
    attempts: group ? 0 : (numberTag(t["cairn.attempts"]) ?? (state === "succeeded" || state === "failed" ? 1 : 0)),
    attemptStarts: (t[ATTEMPT_STARTS_TAG] ?? "").split(",").map(Number).filter((n) => Number.isFinite(n) && n > 0),
    why: [],
    metrics: Object.keys(run.metrics).length || !source ? run.metrics : source.metrics,
    params: Object.keys(run.params).length || !source ? run.params : source.params,
    dependsOn: node?.dependsOn ?? [],
    inputs: node?.inputs ?? [],
  };
  if (t["cairn.parent_node"] !== undefined) {
    task.item = { node: t["cairn.parent_node"], index: Number(t["cairn.item"] ?? 0), ...(t["cairn.item_key"] !== undefined ? { key: t["cairn.item_key"] } : {}) };
    // A trial's selected output as it returned it (a hit's, on its source run): see readScores.
    const value = numberTag(t[SWEEP_VALUE_TAG] ?? source?.tags[SWEEP_VALUE_TAG]);
    if (value !== undefined && (state === "succeeded" || state === "cached")) {
      task.score = value;
      task.scoreFrom = "value";
    }
  }
  if (t["cairn.kind"] === "map" || t["cairn.kind"] === "sweep") {
    const select = /^(max|min):(.+)$/.exec(t["cairn.sweep.select"] ?? "");
    const items = run.metrics["cairn.items"] ?? numberTag(t["cairn.items"]);
    task.group = {
      kind: t["cairn.kind"],
      ...(items !== undefined ? { items } : {}),
      ...(t["cairn.sweep.best"] ? { best: t["cairn.sweep.best"] } : {}),
      ...(select ? { select: { order: select[1] as "max" | "min", metric: select[2]! } } : {}),
      ...(t["cairn.sweep.stopped_at"] ? { stoppedAt: t["cairn.sweep.stopped_at"] } : {}),
    };
    // Its items ran (or came from the cache), each for its own reason.
    task.why.push(`a ${t["cairn.kind"]}${items !== undefined ? ` of ${items} items` : ""}: each item ran or hit on its own${t["cairn.sweep.best"] ? `; the best trial is ${t["cairn.sweep.best"]}` : ""}${t["cairn.sweep.stopped_at"] ? `; stopped at ${t["cairn.sweep.stopped_at"]}, the first trial to meet stopWhen` : ""}`);
  }
  const kind = t["cairn.task_kind"] ?? node?.kind;
  if (kind) task.kind = kind;
  const link = url(run);
  if (link) task.url = link;
  if (queuedAt !== undefined) task.queuedAt = queuedAt;
  if (run.endTime !== undefined) task.endTime = run.endTime;
  const durationMs = numberTag(t[DURATION_TAG]);
  if (durationMs !== undefined) task.durationMs = durationMs;
  const pool = t[POOL_TAG] ?? node?.pool;
  if (pool) task.pool = pool;
  const key = t[CACHE_KEY_TAG] ?? t["cairn.cache_hit_key"];
  if (key) task.cacheKey = key;
  if (t[CACHED_FROM_TAG]) {
    const from = { runId: t[CACHED_FROM_TAG], experimentId: source?.experimentId ?? run.experimentId };
    const name = t[CACHED_FROM_NAME_TAG] ?? source?.name;
    const link = url(from);
    task.cachedFrom = { runId: from.runId, ...(name ? { name } : {}), ...(link ? { url: link } : {}) };
    task.why.push(`cached: a cache entry for these inputs and code exists, from run ${from.runId}${name ? ` (${name})` : ""}`);
  }
  const errorName = t[ERROR_NAME_TAG];
  const error = errorName !== undefined ? { name: errorName, message: t[ERROR_MESSAGE_TAG] ?? "" } : splitError(t[ERROR_TAG]);
  if (error && state === "failed") task.error = { ...error, ...(t[ERROR_SOURCE_TAG] ? { source: t[ERROR_SOURCE_TAG] } : {}) };
  const retried = attemptErrors(t);
  if (retried.length) task.retriedErrors = retried;
  if (state === "skipped") {
    const why = skippedWhy(t, task.id);
    task.why.push(t[SKIPPED_REASON_TAG] === "flow-failed" ? `${why} (the flow's error says why)` : why);
  } else if (state === "cancelled") {
    // A run cancelled while it ran records what stopped it (fail-fast after another task failed,
    // a signal, the flow failing), worded as plan words it, and so does one cancelled before it started; older runs do not.
    const why = cancelledRunWhy(t);
    task.why.push(why ? `cancelled: ${why}` : "cancelled: the flow run was cancelled before it finished");
  }
  switch (t[RAN_BECAUSE_TAG]) {
    case "forced":
      task.why.push("--rerun or --refresh: it ran whatever the cache held (it, or a task it depends on, was named)");
      break;
    case "cache-off":
      task.why.push("caching is off for this task");
      break;
    case "no-cache":
      task.why.push("caching was off for the run (--no-cache)");
      break;
    case "miss": {
      // What its lookup met, recorded then (runs recorded before this tag: rebuilt, see explainMisses).
      const reason = parseMissReason(t[MISS_REASON_TAG]);
      if (reason) task.why.push(...missWords(reason, task));
      break;
    }
  }
  return task;
}

/** A recorded miss reason in the report's words (those of `cairn explain`). */
function missWords(reason: MissReason, task: { task: string }): string[] {
  switch (reason.kind) {
    case "unusable": {
      const which = reason.waited ? "the cache entry for these inputs and code that another process computed while this run waited for it" : "its cache entry for these inputs and code";
      return [`${which} was there but unusable: ${reason.reason}${reason.evicted ? "; it was evicted" : "; it was left in the store"}`];
    }
    case "expired":
      return [`its cache entry for these inputs and code ${expiredWords(reason, "before this run looked it up")}`];
    case "foreign":
      if (reason.copy) return [`the cache entry for these inputs and code was recorded by another copy of the embedded store at ${reason.tracker.uri} (a .cairn restored from a CI cache or copied from another), whose runs are not here`];
      return [`the cache entry for these inputs and code was recorded in another tracker (${reason.tracker.kind} ${reason.tracker.uri}), whose runs this run could not check`];
    case "new":
      // Where it looked, as explain says it: the experiment's index too, where another machine's entries are.
      return [`no earlier cache entry of task "${task.task}" was in ${reason.searched ?? `the store (${reason.store})`} when it ran: it had not succeeded there with caching on, or its entries had expired or been removed`];
    case "unlisted":
      return [`no cache entry for these inputs and code (the store could not be listed to say more: ${reason.error})`];
    case "changed": {
      const { nearest } = reason;
      const lines = [`nearest earlier entry: run ${nearest.runId}, from ${new Date(nearest.createdAt).toISOString()}; since then:`];
      for (const change of nearest.changes) lines.push(`  - ${change}`);
      if (nearest.more) lines.push(`  - and ${nearest.more} more`);
      if (!nearest.changes.length) lines.push("  - nothing: an entry with these ingredients was listed, but the lookup did not find it usable (it expired, or was removed meanwhile)");
      return lines;
    }
  }
}

/** A node of the recorded graph with no run of its own. */
function unrecordedTask(node: GraphJsonNode, flowRun: RunRecord): ReportTask {
  return {
    id: node.id,
    task: node.task,
    kind: node.kind,
    state: flowRun.status === "RUNNING" ? "waiting" : "cancelled",
    runId: "",
    startTime: flowRun.startTime,
    attempts: 0,
    attemptStarts: [],
    why: [flowRun.status === "RUNNING" ? "not started yet: it had no run when the report was written" : "no run was recorded for this task"],
    metrics: {},
    params: {},
    dependsOn: node.dependsOn,
    inputs: node.inputs ?? [],
    ...(node.pool ? { pool: node.pool } : {}),
  };
}

/** The state of a task run from its `cairn.status` tag, else (runs recorded before it) from its MLflow status. */
export function stateOf(run: RunRecord): TaskState {
  const tag = run.tags[STATUS_TAG];
  if (tag === "succeeded" || tag === "cached" || tag === "failed" || tag === "skipped" || tag === "cancelled") return tag;
  if (run.tags[CACHED_FROM_TAG]) return "cached";
  switch (run.status) {
    case "FINISHED":
      return "succeeded";
    case "FAILED":
      return "failed";
    case "KILLED":
      return "cancelled";
    default:
      return "running";
  }
}

/**
 * For each task that missed the cache and stored an entry: the nearest entry of the same task
 * made before the flow run started (fewest changed ingredients, among the newest), and what
 * changed since, in the words `cairn explain` uses; "no earlier entry" when there is none. The
 * store is listed once for the whole report.
 */
async function explainMisses(tasks: ReportTask[], flowStart: number, store: CacheStore | undefined): Promise<void> {
  const misses = tasks.filter((t) => (t.state === "succeeded" || t.state === "failed") && t.runId && t.why.length === 0);
  if (!misses.length) return;
  // Indexed once: a map's thousands of misses each look up their own entry and their task's
  // earlier ones without reading the whole listing again (that was O(misses x entries)).
  let own: Map<string, CacheEntry> | undefined;
  let earlierOf = new Map<string, CacheEntry[]>();
  if (store) {
    try {
      own = new Map();
      // Newest first (the store lists so); entries of this flow run's other nodes are not "earlier".
      // Only read: a report changes nothing in the store (which may be opened for reading only).
      const entries = await store.list({ keep: true });
      for (const entry of entries) {
        const id = `${entry.key}\0${entry.sourceRunId}`;
        if (!own.has(id)) own.set(id, entry);
      }
      earlierOf = earlierByTask(entries, flowStart);
    } catch {
      own = undefined; // a store that does not answer: the plain reason below
    }
  }
  for (const [i, task] of misses.entries()) {
    // A turn of the event loop now and then: a cancel (Ctrl-C) of the run whose report this is is heard.
    if (i > 0 && i % YIELD_EVERY === 0) await setImmediate();
    const entry = task.cacheKey ? own?.get(`${task.cacheKey}\0${task.runId}`) : undefined;
    if (!entry) {
      task.why.push(
        task.state === "failed"
          ? "no cache entry for these inputs and code (a failure stores none)"
          : own
            ? "no cache entry for these inputs and code"
            : "no cache entry for these inputs and code (the cache store was not read)",
      );
      continue;
    }
    const best = nearestEntry(earlierOf.get(task.task) ?? [], entry.ingredients);
    if (!best) {
      task.why.push(`no earlier cache entry of task "${task.task}" exists: it had never succeeded with caching on here`);
      continue;
    }
    task.why.push(`nearest earlier entry: run ${best.entry.sourceRunId}, from ${new Date(best.entry.createdAt).toISOString()}; since then:`);
    for (const change of best.changes) task.why.push(`  - ${change.message}`);
    if (!best.changes.length) task.why.push("  - nothing: that entry was there but unusable (evicted, expired, or its artifacts were gone)");
  }
}

/** The error text and log tail of failed tasks (at most `max` of them, read side by side). */
async function readFailures(tracker: Tracker, tasks: ReportTask[], max: number): Promise<void> {
  const failed = tasks.filter((t) => t.state === "failed" && t.runId).slice(0, max);
  await Promise.all(
    failed.map(async (task) => {
      const [errorText, stderr] = await Promise.all([
        readArtifact(tracker, task.runId, `cairn/${ERROR_FILE}`),
        readArtifact(tracker, task.runId, "logs/stderr.txt", TAIL_READ_BYTES),
      ]);
      if (errorText) task.errorText = head(errorText);
      // The last attempt's part (a retry appends after `=== attempt N ===`); stdout's only when stderr's has nothing to show.
      const own = stderr === undefined ? undefined : lastAttempt(stderr);
      const log = own?.trim() ? own : lastAttempt((await readArtifact(tracker, task.runId, "logs/stdout.txt", TAIL_READ_BYTES)) ?? "");
      if (log?.trim()) task.logTail = tail(log);
    }),
  );
}

/** What a log holds after its last `=== attempt N ===` line (all of it when there is none): the attempt the task ended with. */
function lastAttempt(log: string): string {
  const marks = [...log.matchAll(/^=== attempt \d+ ===$/gm)];
  const last = marks.at(-1);
  return last === undefined ? log : log.slice(last.index + last[0].length).replace(/^\r?\n/, "");
}

/** Trials whose outputs a report reads for their value (one read each) when their runs do not carry it in a tag. */
const MAX_SCORED_TRIALS = 500;

/**
 * Each sweep trial's value of the selected output: its run's tag {@link SWEEP_VALUE_TAG} (a hit's,
 * its source run's), which toTask has read already; else, for runs recorded before trials were
 * tagged with it, from its outputs manifest (`cairn/outputs.json`), one read each, for at most
 * {@link MAX_SCORED_TRIALS} trials, the sweep's best (`cairn.sweep.best`) first. Not from the
 * metric of that name alone: such a run logged the output at step 0, so a per-epoch metric of the
 * same name (`val_loss` at steps 0..4) hid it, and its latest value was the last epoch's. A trial
 * past that many takes its metric, or has no value: those are the sweep's `group.unread`, and its
 * leaderboard then does not claim to show the best. A trial whose value cannot be read has none.
 */
async function readScores(tracker: Tracker, tasks: ReportTask[]): Promise<void> {
  const sweeps = new Map(tasks.filter((t) => t.group?.select).map((t) => [t.id, t]));
  if (!sweeps.size) return;
  const unscored: ReportTask[] = [];
  for (const t of tasks) {
    if (!t.item || !sweeps.has(t.item.node) || (t.state !== "succeeded" && t.state !== "cached")) continue;
    if (t.score === undefined) unscored.push(t);
  }
  const selectOf = new Map([...sweeps].map(([id, t]) => [id, t.group!.select!.metric]));
  const metricOf = (t: ReportTask) => {
    const value = t.metrics[selectOf.get(t.item!.node)!];
    return typeof value === "number" && Number.isFinite(value) ? value : undefined;
  };
  const isBest = (t: ReportTask) => sweeps.get(t.item!.node)!.group!.best === t.id;
  const trials = [...unscored.filter(isBest), ...unscored.filter((t) => !isBest(t))].slice(0, MAX_SCORED_TRIALS);
  /** The trial's metric of the selected name, as its score, when it has one. */
  const byMetric = (t: ReportTask) => {
    t.score = metricOf(t);
    if (t.score !== undefined) t.scoreFrom = "metric";
  };
  for (const t of unscored.slice(trials.length)) {
    byMetric(t);
    const group = sweeps.get(t.item!.node)!.group!;
    group.unread = (group.unread ?? 0) + 1;
  }
  await Promise.all(
    trials.map(async (trial) => {
      const runId = trial.cachedFrom ? trial.cachedFrom.runId : trial.runId;
      const text = await readArtifact(tracker, runId, MANIFEST_PATH);
      try {
        const value = (JSON.parse(text ?? "null") as { values?: Record<string, unknown> } | null)?.values?.[selectOf.get(trial.item!.node)!];
        if (typeof value === "number") {
          trial.score = value;
          trial.scoreFrom = "value";
        }
      } catch {
        // Unreadable outputs: the trial is listed by its metric, or without a value.
      }
      if (trial.score === undefined) byMetric(trial);
    }),
  );
}

/** The last {@link TAIL_LINES} lines of `text`, at most {@link TAIL_CHARS} characters. */
export function tail(text: string): string {
  // A log read from its end (readArtifact's lastBytes) starts with what was left out of it.
  const skipped = /^… \((\d+) bytes before\)\n/.exec(text);
  const lines = (skipped ? text.slice(skipped[0].length) : text).replace(/\s+$/, "").split("\n");
  let out = lines.slice(-TAIL_LINES).join("\n");
  if (out.length > TAIL_CHARS) out = `…${out.slice(-TAIL_CHARS)}`;
  const before = lines.length > TAIL_LINES ? `${lines.length - TAIL_LINES} lines` : "";
  if (skipped) return `… (${before ? `${before} and ` : ""}${skipped[1]} bytes before)\n${out}`;
  return before ? `… (${before} before)\n${out}` : out;
}

function head(text: string): string {
  const lines = text.replace(/\s+$/, "").split("\n");
  const out = lines.slice(0, TAIL_LINES).join("\n");
  return out.length > TAIL_CHARS ? `${out.slice(0, TAIL_CHARS)}…` : lines.length > TAIL_LINES ? `${out}\n… (${lines.length - TAIL_LINES} more lines)` : out;
}

/**
 * An artifact's text, or undefined when the run has none at that path. With `lastBytes`, only its
 * end: a longer file is read from the first line that starts in its last `lastBytes` bytes, after
 * a line `… (N bytes before)`.
 */
export async function readArtifact(tracker: Tracker, runId: string, path: string, lastBytes?: number): Promise<string | undefined> {
  const read = (file: string) => (lastBytes === undefined ? readFile(file, "utf8") : readEnd(file, lastBytes));
  if (tracker.artifactDir) return read(join(tracker.artifactDir(runId), ...path.split("/"))).catch(() => undefined);
  const dir = await mkdtemp(join(tmpdir(), "cairn-report-"));
  try {
    const file = await tracker.downloadArtifact(runId, path, dir);
    return await read(file);
  } catch {
    return undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The text of the last `bytes` bytes of `file` (from its first whole line, if it has one), after a note of what was left out. */
async function readEnd(file: string, bytes: number): Promise<string> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    if (size <= bytes) return await handle.readFile("utf8");
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, size - bytes);
    let start = buffer.subarray(0, bytesRead).indexOf(10) + 1;
    if (start === 0 || start === bytesRead) start = 0;
    while (start < bytesRead && (buffer[start]! & 0xc0) === 0x80) start++; // not from the middle of a character
    return `… (${size - bytes + start} bytes before)\n${buffer.subarray(start, bytesRead).toString("utf8")}`;
  } finally {
    await handle.close();
  }
}

function parseGraph(text: string): GraphJsonNode[] | undefined {
  try {
    const parsed = JSON.parse(text) as { nodes?: unknown };
    if (!Array.isArray(parsed.nodes)) return undefined;
    return parsed.nodes.filter((n): n is GraphJsonNode => typeof n === "object" && n !== null && typeof (n as GraphJsonNode).id === "string" && Array.isArray((n as GraphJsonNode).dependsOn));
  } catch {
    return undefined;
  }
}


function numberTag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** `Name: message` of runs recorded before the name and message had tags of their own. */
function splitError(text: string | undefined): { name: string; message: string } | undefined {
  if (!text) return undefined;
  const at = text.indexOf(": ");
  return at > 0 ? { name: text.slice(0, at), message: text.slice(at + 2) } : { name: "Error", message: text };
}
