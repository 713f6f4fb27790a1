/**
 * `cairn-dag/kind`: what a task kind of your own is built from (a `sql()`, a `dbt()`), in the
 * package users install. A kind is a `TaskDefinition` (how to run a task, what enters its cache
 * key) that `kindTask()` wraps into a typed, callable task with the usual settings; README
 * "Writing a task kind" says what each part must hold.
 * @example
 * import { kindTask, checkName, configDigest, NO_RETRY } from "cairn-dag/kind";
 */
export {
  kindTask,
  checkName,
  configDigest,
  fileDigest,
  resolveTaskFile,
  validateOwnOutputs,
  NO_RETRY,
  CairnError,
  OptionError,
  TaskFileError,
  holdWork,
  scopeKey,
  type ScopeKey,
  type KindCall,
  type KindMethods,
  type KindSpec,
  type KindTask,
  type ResolveTaskFileOptions,
  type TaskContext,
  type TaskDefinition,
} from "@cairn/dsl/kind";
export { runProcess, type ProcessSpec, type ProcessResult } from "@cairn/process/spawn";
