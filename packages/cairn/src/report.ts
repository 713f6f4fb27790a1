/**
 * `cairn-dag/report`: the run report for an app (`beforeEnd: logReport`, `buildReport`,
 * `readReportData`). Its own entry, so that a flow does not load the report's code.
 * @example
 * import { logReport } from "cairn-dag/report";
 */
export {
  logReport,
  buildReport,
  readReportData,
  REPORT_ARTIFACT,
  ReportRunError,
  type BuildReportOptions,
  type LoggedReport,
  type LogReportOptions,
  type ReportData,
  type ReadReportOptions,
} from "@cairn/report";
