/** Executors for work outside the flow's process: child processes, notebooks, HTTP endpoints. */
export { runProcess, endProcessGroup, resolveMarkers, ARTIFACT_MARKER, type ProcessSpec, type ProcessResult } from "./process.ts";
export { runNotebook, notebookCodeCells, notebookCodeDigest, type NotebookSpec } from "./notebook.ts";
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
export {
  loadMlproject,
  findMlproject,
  getEntryPoint,
  entryPointTemplate,
  checkProjectInputs,
  effectiveParameters,
  describeParameters,
  projectFingerprint,
  folderDigest,
  runMlflowProject,
  MlflowProjectError,
  MlflowProjectParameterError,
  MLPROJECT_PARAM_TYPES,
  type MlflowProject,
  type MlflowEntryPoint,
  type MlflowProjectParameter,
  type MlflowParamType,
  type ProjectFingerprint,
  type MlflowProjectRunSpec,
  type CheckInputsOptions,
} from "./mlflow-project.ts";
export {
  runMlflowModel,
  resolveModel,
  resolveModelOnce,
  resolveModelCode,
  parseModelUri,
  prepareModelInput,
  checkSignature,
  signatureColumns,
  rephraseMlflowSchemaError,
  registryUriFor,
  ModelRegistry,
  MlflowModelError,
  ModelInputError,
  type ModelRef,
  type ResolvedModel,
  type MlflowModelSpec,
  type ModelInputFormat,
  type SignatureColumn,
  type InputShape,
} from "./mlflow-model.ts";
