/**
 * A report's data as one HTML file: inline CSS and SVG, no script, no request to anywhere (a
 * Content-Security-Policy that allows none says so to the browser too), so that it reads the
 * same in a browser, with JavaScript off, and in MLflow's sandboxed artifact view. Every text
 * that came from a run (task names, params, errors, logs) goes through {@link escapeHtml}.
 */
import { setImmediate } from "node:timers/promises";
import { barStart, criticalPath, finishedAt, type GraphLayout, layoutGraph, layoutTimeline, type TimelineLayout } from "./layout.ts";
import type { ReportData, ReportTask, TaskState } from "./report-data.ts";

/** Options of {@link renderReport}. */
export interface RenderOptions {
  /** Above this many tasks the graph groups nodes by task name. @default 300 */
  maxGraphNodes?: number;
  /** Rows of the task table and per-task sections kept (failed first, then the longest). @default 1000 */
  maxRows?: number;
  /** Bars of the timeline kept (the longest). @default 5000 */
  maxBars?: number;
}

const STATES: TaskState[] = ["succeeded", "cached", "failed", "skipped", "cancelled", "running", "waiting"];

/**
 * `text` safe inside HTML text and double- or single-quoted attributes. The bidi embeddings,
 * overrides and isolates (U+202A–U+202E, U+2066–U+2069) are shown as their escapes (`\u202e`),
 * as the terminal shows them: one would show the text after it reversed, so that what is read
 * is not what the run recorded.
 */
export function escapeHtml(text: unknown): string {
  return String(text)
    .replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!)
    .replace(/[\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}
const e = escapeHtml;

/** The report as one self-contained HTML document. */
export function renderReport(data: ReportData, options: RenderOptions = {}): string {
  const parts = reportParts(data, options);
  for (;;) {
    const next = parts.next();
    if (next.done) return next.value;
  }
}

/**
 * {@link renderReport}'s document, the same to the byte, made between turns of the event loop: a
 * flow of 10,000 tasks takes ~200 ms of CPU to render (more on a busy machine), which would
 * otherwise hold up all else the process does at the end of a run (its display, a Ctrl-C, the
 * tracker's requests under way) at once.
 */
export async function renderReportInTurns(data: ReportData, options: RenderOptions = {}): Promise<string> {
  const parts = reportParts(data, options);
  for (;;) {
    const next = parts.next();
    if (next.done) return next.value;
    await setImmediate();
  }
}

/** Rows, bars or sections made between two turns of the event loop. */
const TURN_EVERY = 250;

/** The report's document, yielding where a turn of the event loop may come (between steps, and every {@link TURN_EVERY} items of the long lists). */
function* reportParts(data: ReportData, options: RenderOptions): Generator<void, string> {
  const tasks = data.tasks;
  const critical = new Set(criticalPath(tasks));
  const index = new Map(tasks.map((t, i) => [t.id, i]));
  const anchor = (t: ReportTask) => `t-${index.get(t.id)}`;
  const kept = keptRows(tasks, options.maxRows ?? 1000);
  const shown = new Set(kept);
  yield;
  const graph = layoutGraph(tasks, critical, { maxNodes: options.maxGraphNodes ?? 300 });
  const graphHtml = graph ? graphSvg(graph, (t) => anchor(t), shown) : undefined;
  yield;
  const flow = data.flow;
  // A flow still running: its running bars end at the report's time.
  const timeline = layoutTimeline(tasks, flow.startTime, flow.endTime ?? (flow.status === "RUNNING" ? data.generatedAt : undefined));
  const timelineHtml = yield* timelineSvg(timeline, options.maxBars ?? 5000, anchor);
  const tableHtml = yield* taskTable(kept, anchor);
  const sections: string[] = [];
  for (const t of kept) {
    sections.push(taskSection(t, anchor(t)));
    if (sections.length % TURN_EVERY === 0) yield;
  }
  const counts = countStates(tasks);
  // Each state's count links to its first task with a section; the failed ones are named too.
  const firstIn = new Map<TaskState, ReportTask>();
  for (const t of kept) if (!firstIn.has(t.state)) firstIn.set(t.state, t);
  const failed = kept.filter((t) => t.state === "failed" && !t.group);
  const title = `${flow.name} · run ${flow.runId.slice(0, 8)} · ${flow.status}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="cairn report">
<title>${e(title)}</title>
<style>${CSS}</style></head>
<body>
<header>
<h1>${e(flow.name)} <span class="badge fs-${e(flow.status)}" data-flow-status="${e(flow.status)}">${e(flow.status)}</span></h1>
${flow.cancelReason !== undefined ? `<p class="cancel-reason" data-cancel-reason>Cancelled: ${e(clip(flow.cancelReason, 1000))}</p>` : ""}
<p class="meta">run ${runRef(flow.runId, flow.url)} · started ${e(iso(flow.startTime))}${flow.endTime !== undefined ? ` · took ${e(duration(flow.durationMs ?? Math.max(0, flow.endTime - flow.startTime)))}` : ""} · ${e(tasks.length)} tasks · recorded in <code>${e(flow.trackerUri)}</code>${flow.user ? ` · by ${e(flow.user)}` : ""}${flow.host ? ` on ${e(flow.host)}` : ""}</p>
${flow.source ? `<p class="meta">source <code>${e(flow.source)}</code>${flow.commit ? ` at <code>${e(flow.commit.slice(0, 12))}</code>` : ""}</p>` : ""}
<p class="counts">${STATES.filter((s) => counts[s])
    .map((s) => (firstIn.has(s) ? `<a class="chip st-${s}" data-count="${s}" href="#${anchor(firstIn.get(s)!)}">${counts[s]} ${s}</a>` : `<span class="chip st-${s}" data-count="${s}">${counts[s]} ${s}</span>`))
    .join(" ")}</p>
${failed.length ? `<p class="failed-list">Failed: ${failed.slice(0, 20).map((t) => `<a href="#${anchor(t)}" data-failed="${e(t.id)}">${e(clip(t.id, 80))}</a>`).join(", ")}${failed.length > 20 ? ` and ${e(failed.length - 20)} more (in the table below)` : ""}</p>` : ""}
${keyValues("params", flow.params)}${keyValues("metrics", flow.metrics)}
</header>
<main>
<section id="graph"><h2>Graph</h2>
${legend()}
${graphHtml ?? (!tasks.length ? `<p class="note">The flow has no task.</p>` : `<p class="note">${e(tasks.length)} tasks in ${e(new Set(tasks.map((t) => t.task)).size)} task names: too many to draw; the timeline and the table below have them all.</p>`)}
${graph?.grouped ? `<p class="note">${e(tasks.length)} tasks: one node per task name, with the count of its tasks in each state.</p>` : ""}
${critical.size ? `<p class="note">Critical path (bold): ${[...critical].map((id) => `<a href="#${anchor(tasks[index.get(id)!]!)}">${e(id)}</a>`).join(" → ")}</p>` : ""}
</section>
<section id="timeline"><h2>Timeline</h2>
${timelineLegend(timeline)}
${timelineHtml}
</section>
${tasks.filter((t) => t.group?.kind === "sweep").map((s) => leaderboard(s, tasks.filter((t) => t.item?.node === s.id), anchor)).join("\n")}
<section id="tasks"><h2>Task runs</h2>
${kept.length < tasks.length ? `<p class="note">Showing ${e(kept.length)} of ${e(tasks.length)} tasks: the failed ones first, then the longest of the others, in flow order.</p>` : ""}
${tableHtml}
</section>
<section id="details"><h2>Tasks</h2>
${sections.join("\n")}
</section>
</main>
<footer><p class="meta">Written by cairn report at ${e(iso(data.generatedAt))} from the run's record.</p></footer>
</body></html>
`;
}

function countStates(tasks: readonly ReportTask[]): Partial<Record<TaskState, number>> {
  const counts: Partial<Record<TaskState, number>> = {};
  for (const t of tasks) counts[t.state] = (counts[t.state] ?? 0) + 1;
  return counts;
}

/** The tasks the table and sections show: all in flow order, or the failed ones first, then the longest of the rest in flow order. */
function keptRows(tasks: readonly ReportTask[], max: number): ReportTask[] {
  if (tasks.length <= max) return [...tasks];
  const rank = (t: ReportTask) => (t.state === "failed" ? Infinity : runTime(t) ?? -1);
  const chosen = new Set([...tasks].sort((a, b) => rank(b) - rank(a)).slice(0, max));
  return [...tasks.filter((t) => chosen.has(t) && t.state === "failed"), ...tasks.filter((t) => chosen.has(t) && t.state !== "failed")];
}

function legend(): string {
  return `<p class="legend">${STATES.map((s) => `<span class="chip st-${s}">${s}</span>`).join(" ")} <span class="chip crit-key">critical path</span></p>`;
}

function graphSvg(g: GraphLayout, anchor: (t: ReportTask) => string, shown: ReadonlySet<ReportTask>): string {
  const parts: string[] = [];
  // Up to twice the page's width a graph is shrunk to fit; a larger one keeps its size and scrolls.
  const fit = g.width <= 2 * PAGE_WIDTH ? ' class="graph fit"' : ' class="graph"';
  parts.push(`<svg${fit} xmlns="http://www.w3.org/2000/svg" width="${g.width}" height="${g.height}" viewBox="0 0 ${g.width} ${g.height}" role="img" aria-label="the flow's graph">`);
  parts.push(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#778"/></marker></defs>`);
  for (const edge of g.edges) {
    const d = edge.points.map((p, i) => `${i ? "L" : "M"}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join("");
    const mid = edge.labelAt ? { x: edge.labelAt.x, y: edge.labelAt.y + 8 } : edge.points[Math.floor(edge.points.length / 2)];
    parts.push(
      `<g class="edge${edge.critical ? " crit" : ""}" data-from="${e(edge.from)}" data-to="${e(edge.to)}"><path d="${d}" marker-end="url(#arrow)"/>` +
        (mid && edge.label ? `<text x="${mid.x.toFixed(1)}" y="${(mid.y - 4).toFixed(1)}">${e(edge.label)}</text>` : "") +
        `<title>${e(edge.from)} → ${e(edge.to)}: ${e(edge.label)}</title></g>`,
    );
  }
  for (const n of g.nodes) {
    const first = n.tasks[0]!;
    // A group links to the section of its first failed task (a map that succeeded may have some), else of one in the state it is drawn in, else of its first.
    const target = n.tasks.find((t) => t.state === "failed" && !t.group && shown.has(t)) ?? n.tasks.find((t) => t.state === n.state && !t.group && shown.has(t)) ?? first;
    // Failed tasks in a group drawn in another state (a map whose minSuccess was met): a red dot on its corner, over no text, beside its counts.
    const failedMark = n.counts?.failed && n.state !== "failed" ? `<circle class="failed-mark" cx="${(n.x + n.width).toFixed(1)}" cy="${n.y.toFixed(1)}" r="5"/>` : "";
    const href = `#${anchor(target)}`;
    // In full for the tooltip; the node's line may say it in short words (see layout's withCounts).
    const countText = n.countsLine !== undefined && n.counts ? Object.entries(n.counts).map(([s, c]) => `${c} ${s}`).join(" · ") || "no items" : "";
    // A second line: a group's counts, or the run a cache hit came from.
    const sub = n.countsLine ?? (first.state === "cached" && n.tasks.length === 1 && first.cachedFrom ? `cached from ${first.cachedFrom.runId.slice(0, 8)}` : "");
    const tip = n.tasks.length === 1 ? `${first.id}: ${first.state}${first.why.length ? `\n${whyInShort(first)}` : ""}` : `${n.label}: ${countText}`;
    parts.push(
      `<g class="node st-${n.state}${n.critical ? " crit" : ""}" data-task="${e(n.tasks.length === 1 ? first.id : n.key)}" data-state="${n.state}"${n.tasks.length > 1 || first.group ? ` data-count="${n.tasks.length - (first.group ? 1 : 0)}"` : ""}>` +
        `<a href="${href}">` +
        (n.critical ? `<rect class="ring" x="${(n.x - 4).toFixed(1)}" y="${(n.y - 4).toFixed(1)}" width="${n.width + 8}" height="${n.height + 8}" rx="9"/>` : "") +
        `<rect x="${n.x.toFixed(1)}" y="${n.y.toFixed(1)}" width="${n.width}" height="${n.height}" rx="6"/>` +
        `<text x="${(n.x + 10).toFixed(1)}" y="${(n.y + (sub ? 15 : 21)).toFixed(1)}">${e(clip(n.label, Math.floor((n.width - 20) / 7.2)))}</text>` +
        (sub ? `<text class="counts" x="${(n.x + 10).toFixed(1)}" y="${(n.y + 29).toFixed(1)}">${e(sub)}</text>` : "") +
        failedMark +
        `<title>${e(tip)}</title></a></g>`,
    );
  }
  parts.push("</svg>");
  return `<div class="scroll">${parts.join("\n")}</div>`;
}

/** The page's content width in CSS pixels (see `header,main,footer` in the CSS). */
const PAGE_WIDTH = 1160;
const ROW = 20;
const LABEL_W = 110;
const PLOT_W = 980;

/** What the timeline's shapes mean: a run's colour is its task's end, so each end drawn has its key. */
function timelineLegend(t: TimelineLayout): string {
  const ends = new Set(t.bars.map((b) => b.task.state));
  const runs = BAR_STATES.filter(([s]) => ends.has(s)).map(([s, words]) => `<span class="key r st-${s}" data-state="${s}"></span> ${words}`);
  return `<p class="note"><span class="key q"></span> queued (from its inputs being ready: the cache lookup, then the wait for a slot)${runs.length ? ` · its run, coloured by how it ended: ${runs.join(" ")}` : ""} · <span class="key rt"></span> an attempt that failed and was retried · <span class="hit-key">◆</span> cache hit</p>`;
}

/** The states a timeline bar ends in (tasks that ran), and the legend's words for each. */
const BAR_STATES: Array<[TaskState, string]> = [
  ["succeeded", "succeeded"],
  ["failed", "failed"],
  ["cancelled", "cancelled"],
  ["running", "still running"],
];

function* timelineSvg(t: TimelineLayout, maxBars: number, anchor: (task: ReportTask) => string): Generator<void, string> {
  if (!t.rows) return `<p class="note">No task ran.</p>`;
  const span = t.end - t.start;
  const x = (ms: number) => LABEL_W + ((ms - t.start) / span) * PLOT_W;
  const height = t.rows * ROW + 28;
  const parts: string[] = [`<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="${LABEL_W + PLOT_W + 10}" height="${height}" role="img" aria-label="the run's timeline">`];
  // The axis: about eight ticks at round durations.
  const step = niceStep(span / 8);
  for (let ms = 0; ms <= span; ms += step) {
    const px = x(t.start + ms).toFixed(1);
    parts.push(`<line class="tick" x1="${px}" x2="${px}" y1="0" y2="${t.rows * ROW}"/><text class="axis" x="${px}" y="${t.rows * ROW + 16}">${e(duration(ms))}</text>`);
  }
  for (const g of t.groups) {
    parts.push(`<text class="lane" x="4" y="${g.firstRow * ROW + 14}">${e(g.name ? `pool ${clip(g.name, 10)}` : "slots")}</text>`);
    if (g.firstRow) parts.push(`<line class="sep" x1="0" x2="${LABEL_W + PLOT_W}" y1="${g.firstRow * ROW}" y2="${g.firstRow * ROW}"/>`);
  }
  const bars = t.bars.length > maxBars ? [...t.bars].sort((a, b) => (runTime(b.task) ?? 0) - (runTime(a.task) ?? 0)).slice(0, maxBars) : t.bars;
  for (const { task, row, queueFrom } of bars) {
    const y = row * ROW + 3;
    const from = barStart(task);
    const end = finishedAt(task) ?? t.end;
    const tip = `${task.id}: ${task.state}` + (task.queuedAt !== undefined ? `, queued ${duration(Math.max(0, task.startTime - from))}` : "") + `, ran ${duration(task.durationMs ?? Math.max(0, end - task.startTime))}` + (task.attempts > 1 ? `, ${task.attempts} attempts` : "");
    let bar = `<g class="bar st-${task.state}" data-task="${e(task.id)}" data-state="${task.state}" data-attempts="${task.attempts}"><a href="#${anchor(task)}">`;
    // The wait is drawn from when the lane was free (the tooltip says all of it).
    if (task.startTime > queueFrom) bar += `<rect class="q" x="${x(queueFrom).toFixed(1)}" y="${y}" width="${Math.max(x(task.startTime) - x(queueFrom), 0.5).toFixed(1)}" height="${ROW - 6}"/>`;
    // Attempts before the last one failed and were retried; the last is coloured by the task's state.
    const starts = task.attemptStarts.length > 1 ? task.attemptStarts : [task.startTime];
    for (let i = 0; i < starts.length; i++) {
      const a = i === 0 ? task.startTime : starts[i]!;
      const b = i + 1 < starts.length ? starts[i + 1]! : end;
      const last = i === starts.length - 1;
      bar += `<rect class="${last ? "r" : "r rt"}" data-attempt="${i + 1}" x="${x(a).toFixed(1)}" y="${y}" width="${Math.max(x(b) - x(a), 1).toFixed(1)}" height="${ROW - 6}"/>`;
      if (i > 0) bar += `<text class="retry" x="${(x(a) + 2).toFixed(1)}" y="${y + 11}">↻${i + 1}</text>`;
    }
    const w = x(end) - x(task.startTime);
    if (w > task.id.length * 6.5 + 24) bar += `<text class="label" x="${(x(task.startTime) + 4).toFixed(1)}" y="${y + 11}">${e(task.id)}</text>`;
    bar += `<title>${e(tip)}</title></a></g>`;
    parts.push(bar);
    if (parts.length % TURN_EVERY === 0) yield;
  }
  if (t.hitRow !== undefined) {
    parts.push(`<text class="lane" x="4" y="${t.hitRow * ROW + 14}">cache hits</text>`);
    for (const h of t.hits.slice(0, maxBars)) {
      const cx = x(h.endTime ?? h.startTime);
      const cy = t.hitRow * ROW + ROW / 2;
      parts.push(`<g class="hit st-cached" data-task="${e(h.id)}"><a href="#${anchor(h)}"><path d="M${cx.toFixed(1)},${cy - 6}l6,6l-6,6l-6,-6z"/><title>${e(h.id)}: cached from run ${e(h.cachedFrom?.runId ?? "?")}</title></a></g>`);
    }
  }
  parts.push("</svg>");
  const dropped = t.bars.length - bars.length;
  return `<div class="scroll">${parts.join("\n")}</div>${dropped > 0 ? `<p class="note">${e(dropped)} shorter bars left out.</p>` : ""}`;
}

/**
 * A sweep's trials, best first by its selector (trials whose value is unknown last), linked to
 * their runs. A sweep stopped by stopWhen ranks the trials up to the one that stopped it, as the
 * sweep did; the trials that had started meanwhile are named below, as not counted.
 */
function leaderboard(sweep: ReportTask, all: readonly ReportTask[], anchor: (t: ReportTask) => string): string {
  const select = sweep.group?.select;
  const sign = select?.order === "min" ? 1 : -1;
  const cut = /\[(\d+)\]$/.exec(sweep.group?.stoppedAt ?? "");
  const trials = cut ? all.filter((t) => t.item!.index <= Number(cut[1])) : all;
  const past = cut ? all.filter((t) => t.item!.index > Number(cut[1])).sort((a, b) => a.item!.index - b.item!.index) : [];
  const ranked = [...trials].sort((a, b) => (a.score === undefined ? 1 : 0) - (b.score === undefined ? 1 : 0) || (a.score !== undefined && b.score !== undefined ? sign * (a.score - b.score) : 0) || (a.item!.index - b.item!.index));
  const shown = ranked.slice(0, 100);
  const rows = shown.map((t, i) => {
    const best = sweep.group?.best === t.id;
    return (
      `<tr data-trial="${e(t.id)}"${best ? ' class="best"' : ""}><td class="num">${i + 1}</td><td><a href="#${anchor(t)}">${e(t.id)}</a>${best ? " ★" : ""}</td>` +
      `<td><code>${e(t.item?.key ?? "")}</code></td><td class="num">${t.score === undefined ? "" : e(formatNumber(t.score))}</td>` +
      `<td><span class="chip st-${t.state}">${t.state}</span></td><td>${runRef(t.runId, t.url, 12)}</td></tr>`
    );
  });
  const metric = select ? `${select.order} ${select.metric}` : "metric";
  // Trials whose value was not read (records made before trials were tagged with it, past the reads a report makes): the best among them is not known.
  const unread = sweep.group?.unread ?? 0;
  // Only trials scored by their own value: not those ranked by their metric, nor those without a value (failed ones, an output that is no number).
  const scored = ranked.filter((t) => t.scoreFrom === "value").length;
  const note = unread
    ? `Ranked by the ${scored} trial${scored === 1 ? "" : "s"} whose value was read, of ${ranked.length}; the value of ${unread} was not (their runs were recorded before Cairn tagged each trial with it, and a report reads at most 500 trials' outputs): they are ranked by their metric of that name where they have one, whose latest value may be a later step's, so a better trial may be among them.${shown.length < ranked.length ? ` ${shown.length} shown.` : ""}`
    : ranked.length > shown.length
      ? `The best ${shown.length} of ${ranked.length} trials.`
      : "";
  return `<section class="leaderboard" id="sweep-${anchor(sweep)}" data-sweep="${e(sweep.id)}"><h2>Sweep ${e(sweep.id)}: ${e(trials.length)} trial${trials.length === 1 ? "" : "s"}</h2>
${note ? `<p class="note">${e(note)}</p>` : ""}
${cut ? `<p class="note stopped">Stopped at ${e(sweep.group!.stoppedAt!)}, the first trial to meet stopWhen.${past.length ? ` Started before that was known, and not counted: ${past.slice(0, 20).map((t) => `<a href="#${anchor(t)}" data-past-trial="${e(t.id)}">${e(t.id)}</a>`).join(", ")}${past.length > 20 ? ` and ${past.length - 20} more` : ""}.` : ""}</p>` : ""}
<div class="scroll rows"><table><thead><tr><th>#</th><th>trial</th><th>point</th><th>${e(metric)}</th><th>state</th><th>run</th></tr></thead><tbody>
${rows.join("\n")}
</tbody></table></div></section>`;
}

function* taskTable(tasks: readonly ReportTask[], anchor: (t: ReportTask) => string): Generator<void, string> {
  const metricKeys = [...new Set(tasks.flatMap((t) => Object.keys(t.metrics)))].slice(0, 8);
  const head = ["task", "state", "run time", "queued", "attempts", "cache key", ...metricKeys, "run"];
  const rows: string[] = [];
  for (const t of tasks) {
    const cells = [
      `<td><a href="#${anchor(t)}">${e(t.id)}</a></td>`,
      `<td><span class="chip st-${t.state}">${t.state}</span></td>`,
      `<td class="num">${e(fmt(runTime(t)))}</td>`,
      `<td class="num">${e(fmt(queueTime(t)))}</td>`,
      // A map's or sweep's own run makes none: its items do.
      `<td class="num">${t.group ? "-" : t.attempts}</td>`,
      `<td><code>${e(t.cacheKey?.slice(0, 12) ?? "")}</code></td>`,
      // Own keys only: a metric another task named `constructor` is not Object.prototype's here.
      ...metricKeys.map((k) => `<td class="num">${Object.hasOwn(t.metrics, k) ? e(formatNumber(t.metrics[k]!)) : ""}</td>`),
      `<td>${runRef(t.runId, t.url, 12)}</td>`,
    ];
    rows.push(`<tr data-task="${e(t.id)}">${cells.join("")}</tr>`);
    if (rows.length % TURN_EVERY === 0) yield;
  }
  // In a box at most 75% of the window tall (`.rows`): a thousand rows scroll under their sticky
  // header, and the box's horizontal scrollbar (to the `run` column) is in sight, not 25,000 px down.
  return `<div class="scroll rows"><table><thead><tr>${head.map((h) => `<th>${e(h)}</th>`).join("")}</tr></thead><tbody>\n${rows.join("\n")}\n</tbody></table></div>`;
}

function taskSection(t: ReportTask, id: string): string {
  const facts: string[] = [];
  // A task that did not run (skipped, cancelled before it started) has no run time to give.
  if (runTime(t) !== undefined) facts.push(`run time ${fmt(runTime(t))}`);
  if (queueTime(t) !== undefined) facts.push(`queued ${fmt(queueTime(t))}`);
  facts.push(t.group ? "no attempt of its own (its items make them)" : `${t.attempts} attempt${t.attempts === 1 ? "" : "s"}`);
  if (t.kind) facts.push(`kind ${t.kind}`);
  if (t.pool) facts.push(`pool ${t.pool}`);
  const run = t.runId ? runRef(t.runId, t.url) : "none";
  const cached = t.cachedFrom
    ? `<p>cached from run ${runRef(t.cachedFrom.runId, t.cachedFrom.url)}${t.cachedFrom.name ? ` (${e(t.cachedFrom.name)})` : ""}</p>`
    : "";
  return `<details class="task st-${t.state}" id="${id}" data-task="${e(t.id)}" data-state="${t.state}"${t.state === "failed" ? " open" : ""}>
<summary><span class="chip st-${t.state}">${t.state}</span> <b>${e(t.id)}</b>${t.task !== t.id ? ` <span class="meta">(task ${e(t.task)})</span>` : ""} <span class="meta">${e(clip(whyInShort(t), 160))}</span></summary>
<p class="meta">${e(facts.join(" · "))} · run ${run}${t.cacheKey ? ` · key <code title="${e(t.cacheKey)}">${e(t.cacheKey.slice(0, 12))}</code>` : ""}</p>
${cached}
${t.why.length ? `<div class="why"><b>Why:</b><pre class="why-text">${e(t.why.join("\n"))}</pre></div>` : ""}
${t.error ? `<div class="error"><b>${e(t.error.name)}</b>${t.error.source ? ` at <code>${e(t.error.source)}</code>` : ""}<pre class="error-text">${e(t.error.message)}</pre></div>` : ""}
${t.retriedErrors ? `<div class="error retried"><b>Retried attempts</b><pre class="retried-errors">${e(retriedText(t))}</pre></div>` : ""}
${t.logTail ? `<div class="log"><b>Log tail</b><pre class="log-tail">${e(t.logTail)}</pre></div>` : ""}
${t.errorText && t.state === "failed" ? `<details class="stack"><summary>error text and stack</summary><pre>${e(t.errorText)}</pre></details>` : ""}
${keyValues("inputs", t.params)}${keyValues("metrics", t.metrics)}
</details>`;
}

/**
 * A run's id, linked to its page in the tracker's UI when it has one (its first `chars`
 * characters shown, the whole id its tooltip), else the whole id. The page opens in a new tab: in MLflow's
 * artifact view the report is in a frame sandboxed without popups, where a link that loaded
 * MLflow's UI would load it inside the frame, in place of the report; there the click is refused
 * and the report stays.
 */
function runRef(runId: string, url: string | undefined, chars = runId.length): string {
  return url ? `<a href="${e(url)}" target="_blank" rel="noopener" title="${e(runId)}">${e(runId.slice(0, chars))}</a>` : `<code>${e(runId)}</code>`;
}

/** What each retried attempt failed with, in order, each after `attempt 1 of 3 failed: ` (`Error: read ECONNRESET`). */
function retriedText(t: ReportTask): string {
  return (t.retriedErrors ?? []).map((r) => `attempt ${r.attempt} of ${t.attempts} failed: ${clip(r.error, 1000)}`).join("\n");
}

/** Why, on one line: what changed since the nearest entry when known, else the first reason. */
function whyInShort(t: ReportTask): string {
  const changes = t.why.filter((line) => line.startsWith("  - ")).map((line) => line.slice(4));
  return changes.length ? changes.join("; ") : (t.why[0] ?? "");
}

function keyValues(title: string, values: Record<string, string | number>): string {
  const entries = Object.entries(values);
  if (!entries.length) return "";
  return `<p class="kv"><b>${e(title)}:</b> ${entries
    .slice(0, 50)
    .map(([k, v]) => `<code>${e(k)}=${e(clip(typeof v === "number" ? formatNumber(v) : v, 120))}</code>`)
    .join(" ")}${entries.length > 50 ? ` … ${entries.length - 50} more` : ""}</p>\n`;
}

/**
 * How long the task ran: its own work as its run recorded it (the run's summary's figure), else
 * (a run recorded before it was) its run's start (slot taken) to its end; a cache hit's, its lookup
 * (its run starts when the lookup does); a map's or sweep's, its run's span, however it ended; as
 * the run's table and `cairn show` say; undefined when it did not run.
 */
export function runTime(t: ReportTask): number | undefined {
  // A map's or sweep's own run makes no attempt (its items do): cancelled or failed, it ran all the same.
  if (t.endTime === undefined || t.state === "skipped" || ((t.state === "cancelled" || t.state === "failed") && t.attempts === 0 && !t.group)) return undefined;
  if (t.state === "cached") return Math.max(0, t.endTime - t.startTime);
  return t.durationMs ?? Math.max(0, t.endTime - t.startTime);
}

/** How long it waited for a slot once its inputs were ready. */
export function queueTime(t: ReportTask): number | undefined {
  return t.queuedAt !== undefined && t.queuedAt <= t.startTime && t.state !== "cached" ? t.startTime - t.queuedAt : undefined;
}

function fmt(ms: number | undefined): string {
  return ms === undefined ? "" : duration(ms);
}

/** `340 ms`, `1.25 s`, `2m 05s`, `1h 02m`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function niceStep(raw: number): number {
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000];
  return steps.find((s) => s >= raw) ?? Math.ceil(raw / 3_600_000) * 3_600_000;
}

function formatNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : Number.isFinite(n) ? String(Number(n.toPrecision(6))) : String(n);
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, Math.max(1, max - 1))}…` : text;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

const CSS = `
:root{--ok:#2e9d5b;--hit:#3b82c4;--bad:#d64545;--skip:#9aa0a6;--cancel:#d99a1e;--run:#8e6bd1;--ink:#1d2330;--mute:#667;--line:#dde1e6}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#fafbfc}
header,main,footer{max-width:1200px;margin:0 auto;padding:0 20px}header{padding-top:16px}
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.meta{color:var(--mute);font-size:13px;margin:2px 0}.note{color:var(--mute);font-size:13px}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}pre{white-space:pre-wrap;word-break:break-word;background:#f1f3f5;padding:8px;border-radius:4px;margin:4px 0;max-height:360px;overflow:auto}
a{color:#1f5fa8}.scroll{overflow:auto;max-width:100%;border:1px solid var(--line);background:#fff;border-radius:6px}
.scroll.rows{max-height:75vh}
.badge,.chip{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;color:#fff;background:var(--mute)}
.badge{font-size:13px;vertical-align:middle}.fs-FINISHED{background:var(--ok)}.fs-FAILED{background:var(--bad)}.fs-KILLED{background:var(--cancel)}.fs-RUNNING{background:var(--run)}
.chip.st-succeeded{background:var(--ok)}.chip.st-cached{background:var(--hit)}.chip.st-failed{background:var(--bad)}.chip.st-skipped{background:var(--skip)}.chip.st-cancelled{background:var(--cancel)}.chip.st-running{background:var(--run)}
.chip.crit-key{background:#fff;color:var(--ink);border:2px solid var(--ink)}.chip.st-waiting{background:#fff;color:var(--ink);border:1px dashed var(--mute)}a.chip{text-decoration:none}a.chip.st-waiting{color:var(--ink)}
.failed-list{margin:4px 0;font-size:13px}.cancel-reason{margin:4px 0;font-size:13px;color:#8a5d00}.failed-list a{color:var(--bad);font-weight:600}
h1,summary,.note,.meta,.failed-list,.cancel-reason{overflow-wrap:anywhere}td{max-width:420px;overflow:hidden;text-overflow:ellipsis}
svg text{font:12px system-ui,sans-serif;fill:var(--ink)}svg.fit{max-width:100%;height:auto;display:block}
.graph .node rect{fill:#fff;stroke-width:2}.graph .node.st-succeeded rect{stroke:var(--ok);fill:#eaf6ef}.graph .node.st-cached rect{stroke:var(--hit);fill:#e8f1fa}
.graph .node.st-failed rect{stroke:var(--bad);fill:#fbeaea}.graph .node.st-skipped rect{stroke:var(--skip);fill:#f3f4f5;stroke-dasharray:5 3}.graph .node.st-cancelled rect{stroke:var(--cancel);fill:#fdf4e3}.graph .node.st-running rect{stroke:var(--run)}.graph .node.st-waiting rect{stroke:var(--mute);stroke-dasharray:2 3}
.graph .node rect.ring{fill:none;stroke:var(--ink);stroke-width:2}.graph .node circle.failed-mark{fill:var(--bad);stroke:#fff;stroke-width:1.5}.graph .node text.counts{font-size:10px;fill:var(--mute)}
.graph .edge path{fill:none;stroke:#99a;stroke-width:1.3}.graph .edge.crit path{stroke:var(--ink);stroke-width:2.5}.graph .edge text{font-size:10px;fill:var(--mute);text-anchor:middle}
.timeline .tick{stroke:#eef0f2}.timeline .sep{stroke:var(--line)}.timeline .axis{font-size:10px;fill:var(--mute);text-anchor:middle}.timeline .lane{font-size:11px;fill:var(--mute)}
.timeline .q{fill:url(#none);fill:#e4e7eb;stroke:#c5cad1;stroke-dasharray:2 2}.timeline .r{fill:var(--ok)}.timeline .st-failed .r{fill:var(--bad)}.timeline .st-cancelled .r{fill:var(--cancel)}.timeline .st-running .r{fill:var(--run)}
.timeline .r.rt,.timeline .st-failed .r.rt{fill:#f0a3a3}.timeline .retry{font-size:10px;fill:#7a1f1f}.timeline .label{font-size:10px;fill:#fff}.timeline .hit path{fill:var(--hit)}
.key{display:inline-block;width:18px;height:10px;vertical-align:middle;border-radius:2px}.key.q{background:#e4e7eb;border:1px dashed #c5cad1}.key.r{background:var(--ok)}.key.r.st-failed{background:var(--bad)}.key.r.st-cancelled{background:var(--cancel)}.key.r.st-running{background:var(--run)}.hit-key{color:var(--hit)}.key.rt{background:#f0a3a3}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f6f8;position:sticky;top:0}
details.task{background:#fff;border:1px solid var(--line);border-left:4px solid var(--ok);border-radius:4px;margin:6px 0;padding:4px 10px}
details.task.st-cached{border-left-color:var(--hit)}details.task.st-failed{border-left-color:var(--bad)}details.task.st-skipped{border-left-color:var(--skip)}details.task.st-cancelled{border-left-color:var(--cancel)}details.task.st-running{border-left-color:var(--run)}details.task.st-waiting{border-left:1px dashed var(--mute)}
details.task:target{box-shadow:0 0 0 3px #ffd86b}tr.best td{background:#fff8dd}summary{cursor:pointer}.error pre{background:#fbeaea}.kv code{margin-right:6px}
`;
