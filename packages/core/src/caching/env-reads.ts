/**
 * What a function task's code reads from `process.env`, one answer for its cache key (and so for
 * the workers, which compare the key's variables), for `TaskCache.envReadsOf` and for the warning
 * of a run whose `env` differs from `process.env` (env-readers.ts). Its code dependencies, when
 * they were found, tell it from the function's parsed text and its module (ENV_READ_ENTRY): a
 * read through a name bound to `process.env` counts, a mention in a string or a comment does not.
 * Otherwise (no module to read, a text that does not parse) what its definition says
 * (TaskDefinition.envRead, envReadUnnamed), found by a pattern that also matches strings and
 * comments: it errs towards more.
 */
import { ENV_READ_ENTRY } from "@cairn/cache";
import type { TaskDefinition } from "../definition/flow-definition.ts";

/** What a task's code reads from `process.env`. */
export interface EnvReadsOfTask {
  /** The variables it reads by a literal name: their values enter its cache key. */
  readonly names: readonly string[];
  /** It also reads `process.env` by names its text does not show (`process.env[name]`), which no key follows. */
  readonly unnamed: boolean;
}

/** What `task`'s code reads from `process.env`, `found` being its code dependencies when they were found. */
export function envReadsOfTask(task: TaskDefinition, found?: Record<string, string>): EnvReadsOfTask {
  const analysed = envReadsFound(found);
  if (analysed) return analysed;
  // A definition made by hand (makeTask) does not say: any mention counts as a read by an unseen name.
  return { names: task.envRead ?? [], unnamed: task.envReadUnnamed ?? task.code.includes("process.env") };
}

/** What a code-dependencies record says the function reads (see ENV_READ_ENTRY); undefined when it says nothing. */
function envReadsFound(found: Record<string, string> | undefined): EnvReadsOfTask | undefined {
  const reads = (found as { [ENV_READ_ENTRY]?: { names?: unknown; unnamed?: unknown } } | undefined)?.[ENV_READ_ENTRY];
  if (!reads) return undefined;
  return { names: Array.isArray(reads.names) ? reads.names.filter((n): n is string => typeof n === "string") : [], unnamed: reads.unnamed === true };
}
