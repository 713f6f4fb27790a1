/**
 * @cairn/core: the engine. Users import @cairn/dsl; this is for the DSL, the CLI,
 * and those who build tools on Cairn.
 */
export type { Artifact } from "./definition/artifact.ts";
export { isArtifact } from "./definition/artifact.ts";
export { safeRelativePath, safePathSegment, taskArtifactPath, taskFilePath, RECORD_FOLDER, attemptFolder, type PathSource } from "./definition/artifact-path.ts";
export { artifactOnDisk, type ArtifactOnDisk, danglingWords, isWithin, unfitFolderEntry } from "./pipeline/artifact-content.ts";
export type { RefValue } from "./definition/ref.ts";
export { isRef, describeRef, forEachRef, resolveRefs, isPlainObject, setOwnProperty } from "./definition/ref.ts";
export type { FlowDefinition, FlowNode, MapSpec, ItemInfo, TaskDefinition, TaskEnvironment, ResolveCodeContext, CodeFile, TaskCacheOptions, RetryPolicy } from "./definition/flow-definition.ts";
export { NO_RETRY } from "./definition/flow-definition.ts";
export { validateWithSchema, requiredKeys, knownKeys, type SchemaResult } from "./definition/schema.ts";
export { assertSerializable } from "./definition/serializable.ts";

export { buildFlowGraph, type FlowGraph } from "./graph/flow-graph.ts";
export { toMermaid, toDot, toGraphJson, type GraphJsonNode } from "./graph/render.ts";

export type { FailurePolicy, TaskResult } from "./scheduler/flow-execution.ts";
export {
  FlowRun,
  FlowFailedError,
  startFlowRun,
  validateParams,
  openFlowCache,
  checkRunRoot,
  ROOT_CHECKED,
  CANCEL_REASON_TAG,
  type RunOptions,
  type EndingFlowRun,
  type CacheRunOptions,
  type FlowResult,
} from "./run/flow-run.ts";
export { leaveCrashExitToCommand } from "./run/crash-guard.ts";
export { TaskCache, describeTracker, removeIndexEntries, type IndexCleanup, type ForeignEntry, CACHE_KEY_TAG, CACHED_FROM_TAG, CACHED_FROM_NAME_TAG, MANIFEST_PATH, type TaskKey, type StoredManifest } from "./caching/task-cache.ts";
export { sourceRunsOfHits } from "./caching/source-runs.ts";
export { pointKey, type SweepOutputs, type SweepTrial } from "./scheduler/map-run.ts";
export { writeRunFiles, hasLocalArtifacts } from "./tracking/run-files.ts";
export {
  KIND_TAG,
  STATUS_TAG,
  ERROR_TAG,
  ERROR_NAME_TAG,
  ERROR_MESSAGE_TAG,
  ERROR_SOURCE_TAG,
  EXIT_CODE_TAG,
  SIGNAL_TAG,
  ERROR_FILE,
  SKIPPED_REASON_TAG,
  SKIPPED_BECAUSE_TAG,
  SKIPPED_CONDITION_TAG,
  skippedWhy,
  cancelledRunWhy,
  POOL_TAG,
  WORKER_TAG,
  QUEUED_AT_TAG,
  RAN_BECAUSE_TAG,
  ATTEMPT_STARTS_TAG,
  ATTEMPT_ERROR_TAG_PREFIX,
  attemptErrors,
  ATTEMPTS_TAG,
  DURATION_TAG,
  SWEEP_VALUE_TAG,
  SWEEP_COUNTED_TAG,
  startedNoAttempt,
} from "./pipeline/task-run.ts";
export { MISS_REASON_TAG, expiredWords, parseMissReason, type MissReason } from "./caching/miss-reason.ts";
export { planFlow, explainTask, type PlannedTask, type FailedRun, type CancelledRun, type PlanOptions, type Explanation, type NearestEntry } from "./caching/plan.ts";
export type { RunEvent, TaskEvent, FlowEvent, LogEvent, LeaseHolder, TaskStatus, FlowStatus, ErrorInfo } from "./run/events.ts";
export type { TaskContext, RunLog, ArtifactWriter, TaskLogger, LogLineOptions } from "./run/task-context.ts";
export { holdWork, sendArtifact, systemTag, trackingEnv, declaredEnv, artifactFile } from "./run/task-context.ts";
export { retryAfterMs, closestName, closestNames, unknownNameExpected, durationMs, booleanFromEnv, checkKnownKeys, ownValue, LONGEST_TIMER_MS, LONGEST_TIMER, shellQuote, type ShellQuoteOptions, devInstallCommand, installCommand, packageManagerOf } from "./internal.ts";
export { keepEnd, keepStart } from "./run/clip-message.ts";
export { SecretRegistry, MIN_MASKED_LENGTH } from "./run/secrets.ts";
export { misspeltVariables, unsaidMisspeltVariables } from "./run/env-names.ts";
export { RunScope, scopeKey, type ScopeKey } from "./run/run-scope.ts";
export { rootProblem, rootRefusal, type RootRefusal, type RootUse } from "./state-root.ts";
export { cairnBuild, VERSION_TAG, type CairnBuild } from "./cairn-build.ts";
export { CHILD_CONDITION_ARGS, NODE_CONDITIONS, conditionOptions, type ConditionOptions } from "./node-conditions.ts";

export type {
  Tracker,
  TrackerCapabilities,
  TrackingInfo,
  RunStatus,
  RunRecord,
  RunFilter,
  MetricPoint,
  LogBatch,
  CreateRunOptions,
  FinishedRunOptions,
  ArtifactInfo,
  ExperimentRecord,
  ExperimentWarning,
  AbandonedRunsOptions,
} from "./tracking/tracker.ts";
export { ABANDONED_TAG, checkMetric, copiedTags } from "./tracking/tracker.ts";
export { NullTracker } from "./tracking/null-tracker.ts";
export { EXPERIMENT_NAME_MAX_LENGTH, experimentNameTooLong } from "./tracking/experiment-name.ts";
export { LocalStore, type LocalStoreOptions, type PruneRunsOptions, type PruneRunsResult } from "./tracking/local/local-store.ts";
export { pruneLocalCopies, type PruneLocalCopiesOptions, type PruneLocalCopiesResult } from "./caching/prune-local-copies.ts";
export { resolveTracker, trackingUriOf, registerTrackerScheme, redactUri, type ResolveTrackerOptions, type TrackerFactory } from "./tracking/resolve-tracker.ts";
export type { TaskCall, TaskInterceptor } from "./pipeline/intercept.ts";
export { isRetryableError } from "./pipeline/retryable.ts";
export { RemoteTaskError, codeFingerprint, sentCodeFingerprint, registerQueueScheme, openQueue, type OwnedDispatcher, type QueueFactory, type TaskDispatcher, type DispatchedTask, type DispatchedOutcome, type CodeFingerprint } from "./pipeline/dispatch.ts";
export { readSentStop, type SentStop } from "./pipeline/stop.ts";
export { runDispatchedTask, keyDifferences, type DispatchedRunSettings } from "./pipeline/run-dispatched.ts";
export { largeOutputsFromEnv, type LargeOutputs } from "./pipeline/large-output.ts";
export { ABANDONED_COPIED_TAGS, closeAbandonedRuns, describeAbandonedRuns } from "./tracking/abandoned-runs.ts";
export { describeRunPlace, flowRunOf, type RunPlace } from "./tracking/flow-run-of.ts";
// The MLflow tracker is in @cairn/mlflow; "@cairn/mlflow/register" plugs it into resolveTracker.
// The tracker compliance suite (a vitest suite) is at "@cairn/core/testing", so that flows never load vitest (BENCHMARKS.md).

export * from "./errors.ts";
