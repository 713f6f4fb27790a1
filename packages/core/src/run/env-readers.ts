/**
 * A function task that declares variables with `.env()` and reads one of them from `process.env`
 * itself, run with an `env` of its own (`run({ env })`) that gives it another value than
 * `process.env`: the task's key holds the run's value, while the task reads the process's, so a
 * result computed with one value is stored under another's key. Said once per task when the run
 * starts, so that an app that embeds Cairn learns to read `ctx.env()` instead. What the function
 * reads is what its key has (envReadsOfTask): a variable it reads by
 * name that it does not declare is keyed with the process's value, which it reads, so only a
 * declared one is said; one read by a name its text does not show may be any declared one. Only
 * the function's own text was looked at (a helper it calls may read `process.env` unseen): a
 * hint, never a refusal.
 */
import { envReadsOfTask, type EnvReadsOfTask } from "../caching/env-reads.ts";
import type { FlowDefinition, TaskDefinition } from "../definition/flow-definition.ts";
import { ownValue } from "../internal.ts";

/**
 * The warnings for the run's function tasks that read from `process.env` a declared variable the
 * run's `env` gives another value; never a value. `readsOf`: what a task's code reads, with what
 * its module tells (TaskCache.envReadsOf); by default what its definition says (envReadsOfTask).
 */
export async function processEnvReaderWarnings(
  definition: FlowDefinition,
  env: NodeJS.ProcessEnv,
  readsOf: (task: TaskDefinition) => Promise<EnvReadsOfTask> = async (task) => envReadsOfTask(task),
): Promise<string[]> {
  if (env === process.env) return [];
  const warnings: string[] = [];
  const said = new Set<string>();
  for (const { task } of definition.nodes) {
    if (task.kind !== "function" || !task.env.length || said.has(task.name)) continue;
    const differ = task.env.filter((name) => ownValue(env, name) !== ownValue(process.env, name));
    const warning = differ.length ? readerWarning(task.name, await readsOf(task), differ) : undefined;
    if (!warning) continue;
    said.add(task.name);
    warnings.push(warning);
  }
  return warnings;
}

/** The warning for task `name`, whose declared variables `differ` have another value in the run's `env`; undefined when it reads none of them from `process.env`. */
function readerWarning(name: string, reads: EnvReadsOfTask, differ: readonly string[]): string | undefined {
  const named = differ.filter((variable) => reads.names.includes(variable));
  // Read by a name the text does not show, any of them may be read.
  const names = reads.unnamed ? differ : named;
  if (!names.length) return undefined;
  const described = [...named.map(propertyRead), ...(reads.unnamed ? ["process.env by a name its text does not show (a computed one, a destructuring)"] : [])];
  return (
    `task "${name}" reads ${described.join(" and ")} and declares ${names.join(", ")} with .env(), whose value in the run's env differs from process.env's: ` +
    `its cache key holds the run's value. Read ${names.length === 1 ? "it" : "them"} with ${names.map((n) => `ctx.env(${JSON.stringify(n)})`).join(", ")} instead.`
  );
}

/** `process.env.NAME`, or `process.env["NAME"]` for a name that is no identifier. */
function propertyRead(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? `process.env.${name}` : `process.env[${JSON.stringify(name)}]`;
}
