/** Executors for work outside the flow's process: child processes, notebooks, HTTP endpoints. */
export { runProcess, endProcessGroup, resolveMarkers, ARTIFACT_MARKER, type ProcessSpec, type ProcessResult } from "./process.ts";
export { runNotebook, notebookCodeDigest, type NotebookSpec } from "./notebook.ts";
export { runHttp, type HttpSpec } from "./http.ts";
export { parseTemplate, checkPlaceholders, renderShell, renderArg, shellQuote, valueText, type CommandTemplate } from "./template.ts";
export {
  ProcessFailedError,
  ProcessStartError,
  ProcessOutputError,
  UnknownPlaceholderError,
  CommandTemplateError,
  TaskFileError,
  NotebookDependencyError,
  HttpTaskError,
} from "./errors.ts";
