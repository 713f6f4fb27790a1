/**
 * @cairn/report: a flow run as one self-contained HTML file (its graph, timeline, and why each
 * task ran), built from what the run recorded, so that any past run has one.
 */
export { readReportData, type ReportData, type ReportTask, type TaskState, type InputEdge, type ReadReportOptions } from "./report-data.ts";
export { renderReport, type RenderOptions } from "./render.ts";
export { layoutGraph, layoutTimeline, criticalPath, type GraphLayout, type GraphNode, type GraphEdge, type TimelineLayout } from "./layout.ts";
export { buildReport, logReport, REPORT_ARTIFACT, type BuildReportOptions, type LoggedReport, type LogReportOptions } from "./log-report.ts";
export { ReportRunError } from "./errors.ts";
