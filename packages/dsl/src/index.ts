/**
 * @cairn/dsl: declare tasks and flows and run them, and the http() kind. The process kinds
 * (script, shell, notebook) are in @cairn/process, the MLflow kinds in @cairn/mlflow; users
 * import all of them from "cairn-dag" (the `cairn` CLI is @cairn/cli).
 * @example
 * import { flow, task } from "@cairn/dsl";
 */
export { task, makeTask, when, type Condition, type Task, type TaskBuilder, type TaskSettings, type CacheSettings, type NodeOptions, type RetryOptions, type InferInput, type InferOutput } from "./task.ts";
export { flow, isFlow, flowBuilderName, type Flow, type FlowBuilder, type FlowRunOptions, type ParamRefs, type InferParams, type InferFlowOutputs } from "./flow.ts";
export type { Ref, MaybeRef, Wire, WireInputs, Unwire, Node, MaybeNode, Simplify } from "./types.ts";
export {
  map,
  sweep,
  grid,
  list,
  random,
  max,
  min,
  EmptySpaceError,
  type MapOptions,
  type MapNode,
  type SweepOptions,
  type SweepNode,
  type SweepTrial,
  type SearchSpace,
  type Selector,
  type Range,
  type NumericOutputs,
  type FanOutOptions,
} from "./fan-out.ts";
export { http, HttpTaskError, type HttpOptions, type KindTask } from "./kinds/index.ts";
export { addFlowHooks, type FlowHooks } from "./flow-hooks.ts";
export { registerCompiledFlowDir } from "./declared-path.ts";
// For the CLI, which says where a flow file's import failed: the user's frame, and its compiled modules by their sources.
export { errorSource, shown as shownPath } from "./declared-path.ts";
export { compiledFlowSource } from "./code-deps.ts";
// For the CLI, which sends a CommonJS flow to tsx: the format the code fingerprints are made with.
export { moduleFormatOf } from "./module-format.ts";
// For the CLI, which compiles a flow with esbuild: the export conditions Node resolves packages with in this process.
export { NODE_CONDITIONS } from "./export-conditions.ts";

export {
  isArtifact,
  FlowRun,
  FlowFailedError,
  NullTracker,
  LocalStore,
  resolveTracker,
  type Artifact,
  type TaskContext,
  type RunOptions,
  type TaskCall,
  type TaskInterceptor,
  type FlowResult,
  type TaskResult,
  type RunEvent,
  type TaskEvent,
  type FlowEvent,
  type LogEvent,
  type TaskStatus,
  type FlowStatus,
  type FailurePolicy,
  type Tracker,
  type TrackerCapabilities,
} from "@cairn/core";
// What a tracker of your own is built from (README "Which package"), so that its author imports
// it from the package they installed rather than from @cairn/core, which they never named.
export {
  registerTrackerScheme,
  checkMetric,
  redactUri,
  scopeKey,
  type TrackerFactory,
  type TrackingInfo,
  type RunStatus,
  type RunRecord,
  type RunFilter,
  type MetricPoint,
  type LogBatch,
  type CreateRunOptions,
  type FinishedRunOptions,
  type ArtifactInfo,
  type ExperimentRecord,
  type ExperimentWarning,
  type ScopeKey,
} from "@cairn/core";
// An open cache store for `run({ cache: { store } })`, shared by the runs of an app.
export { CacheStore, type CacheStoreOptions } from "@cairn/cache";
// The error classes by name: core's errors module also holds message helpers that are not API.
export {
  CairnError,
  FlowValidationError,
  CycleError,
  DuplicateNodeError,
  UnknownNodeError,
  MissingInputError,
  NotSerializableError,
  ParamError,
  OptionError,
  InputValidationError,
  OutputValidationError,
  MissingOutputError,
  KindOutputError,
  TaskTimeoutError,
  NonErrorThrownError,
  ProcessCrashError,
  TaskExitError,
  CancelledError,
  NonRetryableError,
  SecretNotFoundError,
  SecretLeakError,
  SecretParamError,
  UndeclaredEnvError,
  UnsafePathError,
  TrackingError,
  MetricError,
  ArtifactLocationError,
  TrackingConfigError,
  UnsupportedTrackingUriError,
  TrackerCallError,
  TrackerUnreachableError,
  MlflowApiError,
  ArtifactMismatchError,
  CodeFileError,
  TaskFileError,
  MapOverError,
  MinSuccessError,
  MapItemsFailedError,
  ConditionError,
  SelectorError,
  CacheKeyMismatchError,
} from "@cairn/core/errors";
// What a run can raise beyond the definition's errors: a task that failed on a worker, the cache store's failures.
export { RemoteTaskError } from "@cairn/core";
export { CacheError, CacheStoreUrlError, CacheOptionError, CacheReadOnlyError, CacheValueError, CacheBackendError, LeaseLostError } from "@cairn/cache";
