/**
 * The report as the artifact `cairn/report.html` of its flow run: written in place in the
 * embedded store's artifact folder, uploaded to an MLflow server from a scratch folder
 * otherwise. The CLI calls it at the end of every `cairn run`, before the flow run ends.
 */
import { basename, dirname, join } from "node:path";
import { type EndingFlowRun, hasLocalArtifacts, type Tracker, writeRunFiles } from "@cairn/core";
import { readReportData, type ReadReportOptions, type ReportData, type ReportTask } from "./report-data.ts";
import { renderReportInTurns, type RenderOptions } from "./render.ts";

/** Where the report lives among a flow run's artifacts. */
export const REPORT_ARTIFACT = "cairn/report.html";

/** Where a logged report is. */
export interface LoggedReport {
  /** `cairn/report.html`. */
  artifactPath: string;
  /** The file on this machine, when the tracker keeps artifacts locally (the embedded store). */
  localPath?: string;
  /** Its page in the tracker's UI (MLflow's artifact view of the run), when the tracker has one. */
  url?: string;
  /** Its size in bytes. */
  bytes: number;
}

/** Options of {@link buildReport}. */
export interface BuildReportOptions extends ReadReportOptions, RenderOptions {
  /**
   * Replaces each secret in a text by `***` (EndingFlowRun.mask): applied to every text the report
   * reads, before it is cut short or escaped. The page's own markup is not masked.
   */
  mask?: (text: string) => string;
}

/** Reads flow run `runId` from `tracker` and renders its report (between turns of the event loop: a large one takes a while). */
export async function buildReport(tracker: Tracker, runId: string, options: BuildReportOptions = {}): Promise<string> {
  const { mask } = options;
  const data = await readReportData(tracker, runId, options);
  if (!mask) return renderReportInTurns(data, options);
  // The data, not the page: a param the page cuts at 120 characters would keep the part of a
  // secret before the cut, and a secret that is also a word of the markup (`span`) or a number
  // (`2026`) would break the page's tags, dates and drawing.
  return renderReportInTurns(maskReportData(data, mask), options);
}

/**
 * `data` with every text the run recorded masked (names, messages, logs, why lines, param
 * values, and the names of params and metrics), but for the report's own words (a task's state,
 * a run's status, a group's kind, a selector's order) and the data's own field names: the page
 * writes those into class names and compares them, and none is a text of the run.
 */
function maskReportData(data: ReportData, mask: (text: string) => string): ReportData {
  const masked = maskValues(data, mask);
  return {
    ...masked,
    flow: { ...masked.flow, status: data.flow.status, params: maskKeys(masked.flow.params, mask), metrics: maskKeys(masked.flow.metrics, mask) },
    tasks: masked.tasks.map((task, i) => withOwnWords(task, data.tasks[i]!, mask)),
  };
}

/** `task` (masked) with the state, group kind and selector order of `read` (as read), and its params' and metrics' names masked. */
function withOwnWords(task: ReportTask, read: ReportTask, mask: (text: string) => string): ReportTask {
  const group = task.group && read.group ? { ...task.group, kind: read.group.kind, ...(task.group.select && read.group.select ? { select: { ...task.group.select, order: read.group.select.order } } : {}) } : undefined;
  return { ...task, state: read.state, params: maskKeys(task.params, mask), metrics: maskKeys(task.metrics, mask), ...(group ? { group } : {}) };
}

/** `value` (plain data) with `mask` applied to every string in it; keys are left as they are. */
function maskValues<T>(value: T, mask: (text: string) => string): T {
  if (typeof value === "string") return mask(value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => maskValues(item, mask)) as T;
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, maskValues(item, mask)])) as T;
}

/** `record` with `mask` applied to its keys: a run's params and metrics, named by the run. */
function maskKeys<V>(record: Record<string, V>, mask: (text: string) => string): Record<string, V> {
  return Object.fromEntries(Object.entries(record).map(([key, item]) => [mask(key), item]));
}

/** Options of {@link logReport}. */
export interface LogReportOptions extends RenderOptions {
  /**
   * Take the flow run as the ending run read it (EndingFlowRun.flowRun) instead of reading it
   * again: for a hook that has written nothing to the flow run before the report, as `cairn run`'s.
   * @default false
   */
  flowRunAsRead?: boolean;
}

/**
 * Builds the report of a flow run that is ending (`RunOptions.beforeEnd`) and logs it on the run
 * as {@link REPORT_ARTIFACT}.
 */
export async function logReport(run: EndingFlowRun, options: LogReportOptions = {}): Promise<LoggedReport> {
  const { flowRunAsRead, ...renderOptions } = options;
  const html = await buildReport(run.tracker, run.runId, {
    ...renderOptions,
    // Secrets learned during the run (from the environment) were not known when its params were recorded.
    mask: run.mask,
    ending: { status: run.status, endTime: run.endTime, durationMs: run.durationMs },
    ...(run.cacheStore ? { store: run.cacheStore } : {}),
    ...(run.sourceRuns ? { sourceRuns: run.sourceRuns } : {}),
    ...(run.hits ? { hits: run.hits, ...(run.onlyHits ? { onlyHits: true } : {}) } : {}),
    ...(run.graph !== undefined ? { graph: run.graph } : {}),
    ...(flowRunAsRead && run.flowRun ? { flowRun: run.flowRun } : {}),
  });
  const saved = await saveReport(run.tracker, run.runId, html);
  const page = run.tracker.runUrl?.(run.experimentId, run.runId);
  return page ? { ...saved, url: `${page}/artifactPath/${REPORT_ARTIFACT}` } : saved;
}

/** Logs `html` as the run's {@link REPORT_ARTIFACT}, as every file of the record is written. */
async function saveReport(tracker: Tracker, runId: string, html: string): Promise<LoggedReport> {
  const folder = dirname(REPORT_ARTIFACT);
  const name = basename(REPORT_ARTIFACT);
  await writeRunFiles(tracker, runId, folder, { [name]: html });
  const bytes = Buffer.byteLength(html);
  return hasLocalArtifacts(tracker) ? { artifactPath: REPORT_ARTIFACT, localPath: join(tracker.artifactDir(runId), folder, name), bytes } : { artifactPath: REPORT_ARTIFACT, bytes };
}
