/**
 * `@cairn/dsl/kind`: what a task kind is built from — for the kind packages (@cairn/process,
 * @cairn/mlflow) and for anyone writing a kind of their own. A kind is a `TaskDefinition`
 * (how to run it, what enters its cache key) wrapped by `kindTask()` into a typed,
 * callable task with the usual settings.
 * @example
 * import { kindTask, checkName } from "@cairn/dsl/kind";
 */
export {
  kindTask,
  validateOwnOutputs,
  checkName,
  configDigest,
  fileDigest,
  resolveTaskFile,
  type ResolveTaskFileOptions,
  type KindCall,
  type KindTask,
  type KindMethods,
  type KindSpec,
} from "./kinds/kind-task.ts";
export { NO_RETRY, CairnError, OptionError, TaskFileError, holdWork, scopeKey, type ScopeKey, type TaskContext, type TaskDefinition } from "@cairn/core";
export { moduleDependencies, isDir, isFile } from "./code-deps.ts";
export { CHILD_CONDITION_ARGS } from "./export-conditions.ts";
export { cwdFingerprint, projectRelativeName, projectRoot, registerOwnDir } from "./declared-path.ts";
