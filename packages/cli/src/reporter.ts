import { isAbsolute, relative } from "node:path";
import type { Writable } from "node:stream";
import { type ErrorInfo, isArtifact, type LeaseHolder, type FlowResult, pointKey, type RunEvent, type SweepOutputs, type TaskEvent, type TaskStatus } from "@cairn/core";
import { logLines } from "./log-lines.ts";
import { createColors } from "./picocolors.ts";
import { cutLongLines, prefixLines, printable, printableLine, wholeErrorAt } from "./printable.ts";

/** How the CLI shows a run: NDJSON events, a live display on a terminal, or plain lines. */
export type ReporterMode = "json" | "live" | "plain";

/** Receives a run's events and prints them. */
export interface Reporter {
  event(event: RunEvent): void;
  /** Prints the closing summary and stops any live display. */
  finish(result: FlowResult<unknown>): void;
  /** A message from the CLI itself (e.g. "cancelling..."). */
  notice(message: string): void;
}

type Colors = ReturnType<typeof createColors>;

/** Symbols and colours per status. */
function statusStyle(c: Colors): Record<TaskStatus, (s: string) => string> {
  return {
    pending: c.dim,
    queued: c.dim,
    waiting: c.yellow,
    running: c.cyan,
    retrying: c.yellow,
    succeeded: c.green,
    cached: c.blue,
    failed: c.red,
    skipped: c.dim,
    cancelled: c.yellow,
  };
}

const SYMBOL: Record<TaskStatus, string> = {
  pending: "·",
  queued: "·",
  waiting: "…",
  running: "▶",
  retrying: "↻",
  succeeded: "✓",
  cached: "⚡",
  failed: "✗",
  skipped: "-",
  cancelled: "■",
};

/** The statuses a task ends with, one each: what the live view counts as done. */
const ENDED: ReadonlySet<TaskStatus> = new Set(["succeeded", "cached", "failed", "skipped", "cancelled"]);

/**
 * What the live view counts its total from before the run starts: the flow's nodes, and which of
 * them are maps or sweeps, whose items are added once their lists are known.
 */
export interface FlowSize {
  /** The flow's nodes, a map or sweep counted once (its own row). */
  tasks: number;
  /** The node ids of its maps and sweeps. */
  maps: readonly string[];
}

/** The {@link FlowSize} of a flow definition. */
export function flowSize(definition: { readonly nodes: ReadonlyArray<{ readonly id: string; readonly map?: unknown }> }): FlowSize {
  return { tasks: definition.nodes.length, maps: definition.nodes.filter((n) => n.map !== undefined).map((n) => n.id) };
}

/** How the plain lines look. */
export interface PlainOptions {
  /**
   * Each line's stamp is the full date and time, `2026-12-07T03:00:24.512Z` (as `cairn worker`
   * stamps its lines), not the time of day alone (`03:00:24`): for output that is not a
   * terminal, a log appended to day after day, where the day could not be told.
   * @default false
   */
  datedLines?: boolean;
  /**
   * Only what needs a look: failed tasks, warnings (log lines of level `warn` or `error`, which a
   * process task's stderr lines are), the CLI's notices, and the flow's closing line, stamped.
   * No lines of tasks that started, succeeded or hit, no info log lines, no table or outputs.
   * @default false
   */
  quiet?: boolean;
  /**
   * Whether the flow's runs are recorded, so that a failed task's run keeps its whole error
   * (`cairn/error.txt`): said where a printed line of an error is cut. The live view's too.
   * @default true
   */
  recorded?: boolean;
  /**
   * After this many ms in which nothing was printed, one line says which tasks still run and
   * for how long (`still running: train (5m 00s), fetch (1m 00s)`), and again after as many
   * more: a CI step that kills a job printing nothing for 10 minutes (CircleCI, Travis) would
   * kill a task that works without a word, or prints dots without a newline (a line is shown
   * only once it ends). 0: never. `--quiet` prints it too, for the same reason.
   * @default 0
   */
  stillRunningMs?: number;
}

/**
 * Makes the reporter for `mode`, writing to `out` (events, progress, summary) and `err` (task
 * logs in JSON mode). log-update (and its ANSI helpers) is loaded for the live mode only.
 * `size`: the flow's, for the live view's total (`3/12 done`); without it the view counts what is done only.
 */
export async function createReporter(mode: ReporterMode, out: Writable, err: Writable, useColor: boolean, size?: FlowSize, plain: PlainOptions = {}): Promise<Reporter> {
  const c = createColors(useColor);
  if (mode === "json") return jsonReporter(out, err);
  if (mode === "plain") return plainReporter(out, c, plain);
  const { createLogUpdate } = await import("log-update");
  return liveReporter(createLogUpdate(out as NodeJS.WriteStream, { showCursor: false }), out, c, size, plain.recorded);
}

/**
 * Under `--json`, stdout is the events, one JSON object a line. What a function task writes there
 * itself (`console.log`, in this process) goes to stderr, beside the task's log lines: the CLI
 * diverts process.stdout before the flow loads and gives this the stream it kept (see json-stdout.ts).
 */
function jsonReporter(out: Writable, err: Writable): Reporter {
  const write = (text: string) => void out.write(text);
  const logs = logLines(err, (task, message) => err.write(`${prefixLines(`[${task ?? "flow"}]`, message)}\n`));
  return {
    event(e) {
      if (e.type === "log") logs.line(e.task, e.message, e.inLogFile === true);
      else write(`${JSON.stringify(e)}\n`);
    },
    finish() {
      logs.flush();
    },
    notice(message) {
      err.write(`${printable(message)}\n`);
    },
  };
}

/** Who a waiting task waits for: `held by host:pid (run 4f2a…), lapses in 9 s`. */
function heldByOnLine(heldBy: LeaseHolder, now: number): string {
  const seconds = Math.max(0, Math.ceil((heldBy.expiresAt - now) / 1000));
  const lapses = Number.isFinite(seconds) ? `, lapses in ${seconds} s` : ", never lapses";
  return printableLine(`held by ${heldBy.process}${heldBy.runId ? ` (run ${heldBy.runId})` : ""}${lapses}`);
}

/** MLflow's own clients' line for a run's page ("View run NAME at: URL"), printed at a run's start and end. */
function viewRun(flow: string, url: string, c: Colors): string {
  return `View run ${c.bold(flow)} at: ${c.cyan(url)}`;
}

function plainReporter(out: Writable, c: Colors, options: PlainOptions): Reporter {
  const style = statusStyle(c);
  const time = options.datedLines ? (t: number) => new Date(t).toISOString() : timeOfDay;
  const whole = wholeErrorAt(options.recorded ?? true);
  const still = stillRunning(out, c, time, options.stillRunningMs ?? 0);
  const write = (text: string) => {
    still.printed();
    out.write(text);
  };
  const logs = logLines(out, (task, message) => write(`${prefixLines(c.dim(`[${task ?? "flow"}]`), message)}\n`));
  let view: string | undefined;
  return {
    event(e) {
      still.event(e);
      if (options.quiet && !needsALook(e)) return;
      if (e.type === "log") {
        logs.line(e.task, e.message, e.inLogFile === true);
      } else if (e.type === "task" && e.status !== "queued") {
        const extra = [
          e.attempt && e.attempt > 1 ? `attempt ${e.attempt}` : "",
          e.durationMs !== undefined ? formatDuration(e.durationMs) : "",
          e.cachedFrom ? `from ${e.cachedFrom}` : "",
          e.recorded === false ? NOT_RECORDED : "",
          e.heldBy ? heldByOnLine(e.heldBy, e.time) : "",
          e.error ? errorOnLine(e.task, e.error, c, whole) : "",
        ].filter(Boolean);
        write(`${time(e.time)} ${style[e.status](`${SYMBOL[e.status]} ${e.status.padEnd(9)}`)} ${e.task}${extra.length ? `  ${c.dim(extra.join("  "))}` : ""}\n`);
      } else if (e.type === "flow" && e.status === "running") {
        write(`${time(e.time)} flow ${c.bold(e.flow)} started, run ${e.runId}\n`);
        if (e.url) write(`${(view = viewRun(e.flow, e.url, c))}\n`);
      }
    },
    finish(result) {
      still.stop();
      logs.flush();
      write(options.quiet ? `${[`${time(Date.now())} ${flowLine(result, c)}`, ...whyLines(result, c)].join("\n")}\n` : summary(result, c, view, whole));
    },
    notice(message) {
      write(`${c.yellow(printable(message))}\n`);
    },
  };
}

/** Tasks a `still running` line names; the rest are counted. */
const STILL_RUNNING_NAMES = 10;

/**
 * The plain lines' `still running` line (see {@link PlainOptions.stillRunningMs}), written to
 * `out` once nothing was `printed()` for `quietMs`. Tasks are followed from their events; its
 * clock starts at the flow's `running` event and ends at `stop()`. A function task's own
 * `console.log` does not pass here: at worst a line comes that its output made needless.
 */
function stillRunning(out: Writable, c: Colors, time: (t: number) => string, quietMs: number): { printed(): void; event(e: RunEvent): void; stop(): void } {
  if (quietMs <= 0) return { printed() {}, event() {}, stop() {} };
  /** The tasks that run, wait or retry, with when each started. */
  const active = new Map<string, number>();
  let flow = "";
  let flowStart = 0;
  let lastPrinted = Date.now();
  let timer: NodeJS.Timeout | undefined;
  // One timer, set again when it fires, rather than one reset at each of a chatty task's lines.
  const check = () => {
    const now = Date.now();
    const left = lastPrinted + quietMs - now;
    if (left <= 0) {
      const tasks = [...active].sort(([, a], [, b]) => a - b);
      const named = tasks.slice(0, STILL_RUNNING_NAMES).map(([task, since]) => `${task} (${formatDuration(now - since)})`);
      if (tasks.length > named.length) named.push(`and ${tasks.length - named.length} more`);
      const what = named.length ? named.join(", ") : `no task; flow ${flow} (${formatDuration(now - flowStart)}) is finishing`;
      lastPrinted = now;
      out.write(`${time(now)} ${c.dim(`still running: ${what}`)}\n`);
    }
    timer = setTimeout(check, left <= 0 ? quietMs : left);
    // The run keeps the process alive while it runs; this line alone must not.
    timer.unref();
  };
  return {
    printed() {
      lastPrinted = Date.now();
    },
    event(e) {
      if (e.type === "flow" && e.status === "running" && timer === undefined) {
        flow = e.flow;
        flowStart = e.time;
        lastPrinted = Date.now();
        timer = setTimeout(check, quietMs);
        timer.unref();
      }
      if (e.type !== "task") return;
      if (e.status === "running" || e.status === "retrying" || e.status === "waiting") {
        if (!active.has(e.task)) active.set(e.task, e.time);
      } else if (e.status !== "queued") active.delete(e.task);
    },
    stop() {
      clearTimeout(timer);
    },
  };
}

/** What `--quiet` prints as it comes: a failed task, a warning. */
function needsALook(e: RunEvent): boolean {
  if (e.type === "log") return e.level === "warn" || e.level === "error";
  return e.type === "task" && e.status === "failed";
}

function liveReporter(log: ReturnType<typeof import("log-update").createLogUpdate>, out: Writable, c: Colors, size?: FlowSize, recorded = true): Reporter {
  const style = statusStyle(c);
  const whole = wholeErrorAt(recorded);
  const active = new Map<string, { status: TaskStatus; since: number; attempt?: number; heldBy?: LeaseHolder }>();
  const counts = new Map<TaskStatus, number>();
  const total = size && progressTotal(size);
  const terminal = out as Partial<NodeJS.WriteStream>;
  let flowName = "";
  let view: string | undefined;
  let flowStart = Date.now();
  /** What the flow waits for after its tasks (the hits' runs still being recorded), shown on the header line. */
  let waitingFor = "";
  let timer: NodeJS.Timeout | undefined;
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let frame = 0;
  // True while the reporter writes itself: those writes pass the diversion below untouched.
  let drawing = false;
  const draw = (paint: () => void) => {
    const was = drawing;
    drawing = true;
    try {
      paint();
    } finally {
      drawing = was;
    }
  };

  // The block fits the terminal as it is now: a line cut to its width and no more lines than its
  // height. log-update erases the lines it wrote, not the rows they took: a line that wraps, or a
  // block taller than the screen (whose top scrolls away), leaves a stale copy behind each frame.
  const render = () =>
    draw(() => {
      frame = (frame + 1) % frames.length;
      const width = Math.max(1, (terminal.columns ?? 80) - 1);
      const height = terminal.rows ?? 24;
      const done = [...ENDED].reduce((n, s) => n + (counts.get(s) ?? 0), 0);
      const failed = counts.get("failed");
      const lines = [
        fitLine(
          [[frames[frame]!, c.cyan], [" "], [flowName, c.bold], [`  ${total ? `${done}/${total.text()}` : done} done · ${active.size} running`], [failed ? ` · ${failed} failed` : "", c.red], [waitingFor ? ` · ${waitingFor}` : "", c.yellow], ["  "], [formatDuration(Date.now() - flowStart), c.dim]],
          width,
        ),
      ];
      // The header, the task lines, "… and N more" and the empty line log-update ends on.
      const shown = [...active].slice(0, Math.max(0, Math.min(12, height - 3)));
      for (const [task, a] of shown) {
        const status: Part = [`${SYMBOL[a.status]} ${a.status.padEnd(9)}`, style[a.status]];
        lines.push(fitLine([["  "], status, [` ${task}`], [a.attempt && a.attempt > 1 ? ` attempt ${a.attempt}` : "", c.dim], ["  "], [formatDuration(Date.now() - a.since), c.dim], [a.heldBy ? `  ${heldByOnLine(a.heldBy, Date.now())}` : "", c.dim]], width));
      }
      if (active.size > shown.length && lines.length < height - 1) lines.push(fitLine([[`  … and ${active.size - shown.length} more`, c.dim]], width));
      log(lines.join("\n"));
    });
  /** Erases the block, has `write` print, and draws the block again below what it printed. */
  const above = (write: () => void) =>
    draw(() => {
      log.clear();
      write();
      render();
    });
  const printAbove = (line: string) => above(() => out.write(`${line}\n`));
  const logs = logLines(out, (task, message) => printAbove(prefixLines(c.dim(`[${task ?? "flow"}]`), message)));
  let restore = () => {};

  return {
    event(e) {
      if (e.type === "flow" && e.status === "running") {
        flowName = e.flow;
        flowStart = e.time;
        if (e.url) out.write(`${(view = viewRun(e.flow, e.url, c))}\n`);
        // From now on there is a block to keep: until the run's end (finish), nothing else is drawn.
        if (out === process.stdout) restore = divertAbove(above, () => drawing);
        terminal.on?.("resize", render);
        timer = setInterval(render, 100);
        timer.unref();
        return;
      }
      if (e.type === "log" && e.recording) {
        // Every 5 s: the header line says it, rather than a line printed each time.
        waitingFor = e.recording.left ? e.message : "";
        return render();
      }
      if (e.type === "log") return logs.line(e.task, e.message, e.inLogFile === true);
      if (e.type !== "task") return;
      total?.event(e);
      if (e.status === "running" || e.status === "retrying" || e.status === "waiting") {
        const prev = active.get(e.task);
        active.set(e.task, { status: e.status, since: prev?.since ?? e.time, ...(e.attempt ? { attempt: e.attempt } : {}), ...(e.heldBy ? { heldBy: e.heldBy } : {}) });
        if (e.status === "retrying") printAbove(`  ${style.retrying(`${SYMBOL.retrying} retrying `)} ${e.task}  ${c.dim(e.error ? errorOnLine(e.task, e.error, c, whole) : "")}`);
        return;
      }
      if (e.status === "queued") return;
      active.delete(e.task);
      counts.set(e.status, (counts.get(e.status) ?? 0) + 1);
      const extra = [e.durationMs !== undefined ? formatDuration(e.durationMs) : "", e.recorded === false ? NOT_RECORDED : "", e.error ? errorOnLine(e.task, e.error, c, whole) : ""].filter(Boolean).join("  ");
      printAbove(`  ${style[e.status](`${SYMBOL[e.status]} ${e.status.padEnd(9)}`)} ${e.task}  ${c.dim(extra)}`);
    },
    finish(result) {
      logs.flush();
      if (timer) clearInterval(timer);
      terminal.off?.("resize", render);
      draw(() => {
        log.clear();
        log.done();
      });
      restore();
      out.write(summary(result, c, view, whole));
    },
    notice(message) {
      printAbove(c.yellow(printable(message)));
    },
  };
}

/**
 * The live view's total: the flow's nodes, plus each map's items once its `running` event says how
 * many (`2000`), with `+` after it while a map's list is not known yet (`5+`). A map that ends
 * before all its items ran (stopped, a sweep's stopWhen) counts those that ended, so that a
 * finished map's part of the total is what its part of "done" is.
 */
function progressTotal(size: FlowSize): { event(e: TaskEvent): void; text(): string } {
  const unknown = new Set(size.maps);
  const maps = new Map<string, { items: number; ended: number; over: boolean }>();
  return {
    event(e) {
      if (e.items !== undefined && unknown.delete(e.task)) maps.set(e.task, { items: e.items, ended: 0, over: false });
      if (!ENDED.has(e.status)) return;
      unknown.delete(e.task);
      const map = maps.get(e.task);
      if (map) map.over = true;
      const parent = e.parent !== undefined ? maps.get(e.parent) : undefined;
      if (parent) parent.ended++;
    },
    text() {
      let n = size.tasks;
      for (const map of maps.values()) n += map.over ? map.ended : map.items;
      return `${n}${unknown.size ? "+" : ""}`;
    },
  };
}

/** A piece of a line of the live block: its text, and the colour it is shown in. */
type Part = readonly [text: string, colour?: (s: string) => string];

/**
 * `parts` as one line of at most `width` columns, its end cut and marked `…` when longer. Counted
 * in code points: the block holds ASCII names (task ids and flow names allow no other) and
 * one-column symbols.
 */
function fitLine(parts: readonly Part[], width: number): string {
  const length = parts.reduce((n, [text]) => n + [...text].length, 0);
  if (length <= width) return parts.map(([text, colour]) => (colour ? colour(text) : text)).join("");
  let room = width - 1;
  let line = "";
  for (const [text, colour] of parts) {
    const kept = [...text].slice(0, room).join("");
    room -= [...kept].length;
    if (kept) line += colour ? colour(kept) : kept;
  }
  return `${line}…`;
}

/**
 * In the live view, what the process writes to stdout or stderr itself (a function task's
 * `console.log` or `console.error`, a warning of Node's or of the CLI's) is printed above the
 * block, through `above`: written between two frames, it would be erased with the block by the
 * next one (log-update erases as many lines as it wrote last, from where the cursor is). Whole
 * lines are printed as they arrive; the start of a line waits for its end, or for the run's end.
 * stderr is diverted when it is the terminal too. `drawing` says when a write is the reporter's
 * own (log-update's frames, cli-cursor's), which passes. Returns the function that puts the
 * streams' own `write` back, printing what waits.
 */
function divertAbove(above: (write: () => void) => void, drawing: () => boolean): () => void {
  const streams = [process.stdout, ...(process.stderr.isTTY ? [process.stderr] : [])];
  const restores = streams.map((stream) => {
    const original = stream.write;
    const write = (text: string) => void original.call(stream, text);
    let waiting = "";
    stream.write = function (this: NodeJS.WriteStream, chunk: unknown, encoding?: unknown, callback?: unknown) {
      if (drawing()) return original.apply(this, [chunk, encoding, callback] as Parameters<typeof original>);
      const done = typeof encoding === "function" ? encoding : callback;
      const text = waiting + (typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString(typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8"));
      const end = text.lastIndexOf("\n") + 1;
      waiting = text.slice(end);
      if (end) above(() => write(text.slice(0, end)));
      if (typeof done === "function") process.nextTick(done as () => void);
      return true;
    } as typeof stream.write;
    return () => {
      stream.write = original;
      if (waiting) write(waiting);
    };
  });
  return () => {
    for (const restore of restores) restore();
  };
}

/**
 * The closing table: task, status, duration, run id; then the flow's line, and `view` (the run's
 * page) when given. `whole`: where a failed task's whole error is ({@link wholeErrorAt}).
 */
export function summary(result: FlowResult<unknown>, c: Colors, view?: string, whole = wholeErrorAt(true)): string {
  const style = statusStyle(c);
  const tasks = Object.values(result.tasks);
  const many = tasks.length > 40;
  const rows = many ? tasks.filter((t) => (t.status !== "succeeded" || t.recorded === false) && t.status !== "cached").slice(0, 40) : tasks;
  // Reduced, not spread into Math.max: a flow may have more rows than the stack takes arguments.
  const width = rows.reduce((w, t) => Math.max(w, taskCell(t.task).length), 4);
  const statusWidth = rows.reduce((w, t) => Math.max(w, statusCell(t).length), 10);
  const lines = [""];
  if (rows.length) {
    lines.push(c.bold(`${"task".padEnd(width)}  ${"status".padEnd(statusWidth)}  ${"duration".padStart(9)}  run id`));
    for (const t of rows) {
      const cell = statusCell(t).padEnd(statusWidth);
      lines.push(
        `${taskCell(t.task).padEnd(width)}  ${t.recorded === false ? c.yellow(cell) : style[t.status](cell)}  ${(t.durationMs !== undefined ? formatDuration(t.durationMs) : "-").padStart(9)}  ${t.runId ?? "-"}` +
          (t.status === "failed" && t.error ? `\n${" ".repeat(width + 2)}${c.red(errorText(t.error, false, process.cwd(), "", whole).split("\n").join(`\n${" ".repeat(width + 2)}`))}` : "") +
          (t.notStarted && t.status !== "succeeded" ? `\n${" ".repeat(width + 2)}${notStartedLine(t.notStarted)}` : ""),
      );
    }
  }
  if (many) {
    const counts = new Map<string, number>();
    for (const t of tasks) counts.set(t.status, (counts.get(t.status) ?? 0) + 1);
    lines.push(`${tasks.length} tasks: ${[...counts].map(([s, n]) => `${n} ${s}`).join(", ")}`);
  }
  for (const t of tasks) if (t.expands === "sweep" && t.outputs) lines.push("", ...leaderboard(t.task, t.outputs as SweepOutputs, c, result.tasks, t.select?.order));
  lines.push("", flowLine(result, c), ...whyLines(result, c));
  if (result.outputs && Object.keys(result.outputs as object).length) {
    // Artifacts show as their local path: the whole object is noise on a terminal. A large value
    // (a thousand items' map) is cut: --json hands the outputs over whole.
    const text = JSON.stringify(shownOutputs(result.outputs as Record<string, unknown>, result.notDownloaded), (_, v: unknown) => (isArtifact(v) ? v.path : v));
    const cut = text.length > MAX_OUTPUTS_LINE ? `${text.slice(0, MAX_OUTPUTS_LINE)}… (${text.length - MAX_OUTPUTS_LINE} more characters; --json prints them whole)` : text;
    lines.push(`Outputs: ${printableLine(cut)}`);
  }
  if (view) lines.push(view);
  return `${lines.join("\n")}\n`;
}

/**
 * The outputs as the `Outputs:` line shows them: an artifact of an output that could not be
 * downloaded (`notDownloaded`) shows as its `runs:/` URI and why, never as its recorded path,
 * which names no file here.
 */
function shownOutputs(outputs: Record<string, unknown>, notDownloaded: Record<string, string> | undefined): Record<string, unknown> {
  if (!notDownloaded) return outputs;
  const shown = (value: unknown, why: string): unknown =>
    isArtifact(value)
      ? `${value.runId ? `runs:/${value.runId}/${value.artifactPath}` : value.path} (not downloaded: ${why})`
      : Array.isArray(value)
        ? value.map((v) => shown(v, why))
        : value !== null && typeof value === "object"
          ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shown(v, why)]))
          : value;
  return Object.fromEntries(Object.entries(outputs).map(([name, value]) => [name, Object.hasOwn(notDownloaded, name) ? shown(value, notDownloaded[name]!) : value]));
}

/** `Flow succeeded in 1.2s, run …`: the summary's closing line, and `--quiet`'s one line. */
function flowLine(result: FlowResult<unknown>, c: Colors): string {
  const status = result.status === "succeeded" ? c.green(result.status) : result.status === "cancelled" ? c.yellow(result.status) : c.red(result.status);
  return `Flow ${status} in ${formatDuration(result.durationMs)}, run ${result.runId}`;
}

/**
 * Why the flow did not succeed, when its failed tasks do not say it (its record could not be
 * written, a store refused): a failed task's error is on its own line and row already. A cancelled
 * run says why, when it was given a reason.
 */
function whyLines(result: FlowResult<unknown>, c: Colors): string[] {
  if (result.status === "cancelled" && result.error?.name === "CancelledError") return [c.yellow(printable(cutLongLines(result.error.message, wholeErrorAt(false))))];
  if (result.status !== "succeeded" && result.error && result.error.name !== "TaskFailed" && result.error.name !== "CancelledError") {
    return [c.red(printable(cutLongLines(`${result.error.name}: ${result.error.message}`, wholeErrorAt(false))))];
  }
  return [];
}

/** Characters of the summary's task column. */
const TASK_COLUMN_WIDTH = 60;

/**
 * A task's name (node id) as the summary's table shows it: a longer one is cut in its middle,
 * its start and its end (an item's `[k]`) kept, since one 4,096-character name padded every row
 * to its width. The plain and live lines, `cairn show` and `--json` give it whole.
 */
function taskCell(name: string): string {
  const chars = Array.from(name);
  if (chars.length <= TASK_COLUMN_WIDTH) return name;
  const tail = Math.floor((TASK_COLUMN_WIDTH - 1) / 2);
  return `${chars.slice(0, TASK_COLUMN_WIDTH - 1 - tail).join("")}…${chars.slice(-tail).join("")}`;
}

/** Said of a task that succeeded but whose run could not be closed or whose result could not be stored: a warning said why, and it runs again next time. */
const NOT_RECORDED = "not recorded";

/** A task's status in the summary's table: `succeeded, not recorded` for a result that was not stored (TaskResult.recorded). */
function statusCell(t: FlowResult<unknown>["tasks"][string]): string {
  return t.recorded === false ? `${t.status}, ${NOT_RECORDED}` : t.status;
}

/** A stopped map's items that never started: no row of their own, so said under the map's. */
function notStartedLine(n: number): string {
  return `${n} ${n === 1 ? "item" : "items"} did not start (no run of their own; the map's run counts them: cairn.not_started)`;
}

/** Characters of the `Outputs:` line; the rest is counted. */
const MAX_OUTPUTS_LINE = 2000;

/** Trials a leaderboard shows, best first; the rest are counted. */
const LEADERBOARD_ROWS = 20;

/**
 * A sweep's leaderboard: trial, params, metric, status, cached; best first by the sweep's
 * selector (`order`, its TaskResult's `select.order`; `max` when not given), then the trials
 * that did not succeed. Whether a trial came from the cache is its result's (`results`), not
 * the sweep's outputs'.
 */
export function leaderboard(
  node: string,
  sweep: Pick<SweepOutputs, "trial" | "trials">,
  c: Colors,
  results: Readonly<Record<string, { status: string }>> = {},
  order: "max" | "min" = "max",
): string[] {
  const scored = sweep.trials.filter((t) => t.metric !== undefined);
  // A stable sort: ties keep the space's order, in which the sweep broke them.
  scored.sort((a, b) => (order === "max" ? b.metric! - a.metric! : a.metric! - b.metric!));
  const ordered = [...scored, ...sweep.trials.filter((t) => t.metric === undefined)];
  const shown = ordered.slice(0, LEADERBOARD_ROWS);
  const rows = shown.map((t) => [
    t.trial,
    leaderboardParams(t.params),
    t.metric === undefined ? "-" : String(t.metric),
    t.status,
    results[t.trial]?.status === "cached" ? "yes" : "no",
  ]);
  const header = ["trial", "params", "metric", "status", "cached"];
  const widths = header.map((h, i) => rows.reduce((w, r) => Math.max(w, r[i]!.length), h.length));
  const line = (r: string[]) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd();
  const out = [c.bold(`Sweep ${node}: ${sweep.trials.length} trials, best ${sweep.trial}`), c.bold(line(header))];
  for (const [i, r] of rows.entries()) out.push(shown[i]!.trial === sweep.trial ? c.green(line(r)) : line(r));
  if (ordered.length > shown.length) out.push(c.dim(`… and ${ordered.length - shown.length} more trials`));
  return out;
}

/** Characters of a leaderboard's params cell; the trial's run has them all (`cairn.item_key`, its params). */
const LEADERBOARD_PARAMS_WIDTH = 80;

/**
 * A trial's point as its `cairn.item_key` tag writes it (`lr=0.1,opt=adam,tag="1"`, keys sorted: a string that
 * reads as another value is quoted), cut to {@link LEADERBOARD_PARAMS_WIDTH}: one long value
 * padded every row to its width (a 9,000-character value made each of 12 rows 9,040 columns).
 */
function leaderboardParams(params: Readonly<Record<string, unknown>>): string {
  const text = Array.from(printableLine(pointKey(params)));
  return text.length <= LEADERBOARD_PARAMS_WIDTH ? text.join("") : `${text.slice(0, LEADERBOARD_PARAMS_WIDTH - 1).join("")}…`;
}

/**
 * A task's error on its line of the plain or live view: each line after the message's first
 * carries the task's `[task]` prefix, as its log lines do, so that none passes for a line of
 * Cairn's own (`00:00:00 ✓ succeeded  other`); the place it was raised at stays Cairn's own line.
 */
function errorOnLine(task: string, error: ErrorInfo, c: Colors, whole: string): string {
  return errorText(error, true, process.cwd(), `${c.dim(`[${task}]`)} `, whole);
}

/**
 * A task's error as the human views show it: with the place in the user's code it was raised at
 * (relative to the working directory when inside it). `brief` (a task's own line, printed right
 * after the task's output) leaves out a failed process's stderr tail: the views printed those lines
 * as the process wrote them, and the closing summary shows the tail beside the task.
 * `continuation` starts each line of the message after its first. A line longer than
 * ERROR_LINE_LIMIT characters (printable.ts) is cut in its middle, saying `whole`: where the whole text is.
 */
export function errorText(error: ErrorInfo, brief = false, cwd = process.cwd(), continuation = "", whole = wholeErrorAt(true)): string {
  let text = printable(cutLongLines(error.message, whole));
  if (brief && error.name === "ProcessFailedError") text = text.replace(/ Last \d+ lines? of stderr:\n(?: {2}\| .*\n)+/, " Its stderr is printed above. ");
  if (continuation) text = text.split("\n").join(`\n${continuation}`);
  if (error.at) {
    const rel = relative(cwd, error.at);
    text += `\n    at ${printableLine(rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : error.at)}`;
  }
  return text;
}

/** An instant (epoch ms) to the second, its zone said: `2026-12-07 13:21:16 UTC`. */
export function formatUtc(ms: number): string {
  return `${new Date(ms).toISOString().replace("T", " ").slice(0, 19)} UTC`;
}

/** `850ms`, `1.2s`, `3m 05s`. */
export function formatDuration(ms: number): string {
  // Rounded to the unit shown before it is split: 119.6 s is `2m 00s`, never `1m 60s`.
  if (Math.round(ms) < 1000) return `${Math.round(ms)}ms`;
  const tenths = Math.round(ms / 100);
  if (tenths < 600) return `${(tenths / 10).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
}

/** `03:00:24`, UTC, as the full stamp has it. */
function timeOfDay(t: number): string {
  return new Date(t).toISOString().slice(11, 19);
}
