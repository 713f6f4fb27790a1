/**
 * A function task that declares variables with `.env()` and reads `process.env` itself, run with
 * an `env` of its own (`run({ env })`) that gives one of them another value than `process.env`:
 * the task's key holds the run's value, while the task reads the process's, so a result computed
 * with one value is stored under another's key. Said once per task when the run starts, so that
 * an app that embeds Cairn learns to read `ctx.env()` instead. Only the function's own text is
 * looked at (a helper it calls may read `process.env` unseen): a hint, never a refusal.
 */
import type { FlowDefinition } from "../definition/flow-definition.ts";

/** The warnings for the run's function tasks that read `process.env` where the run's `env` differs from it; never a value. */
export function processEnvReaderWarnings(definition: FlowDefinition, env: NodeJS.ProcessEnv): string[] {
  if (env === process.env) return [];
  const warnings: string[] = [];
  const said = new Set<string>();
  for (const { task } of definition.nodes) {
    if (task.kind !== "function" || !task.env.length || said.has(task.name) || !task.code.includes("process.env")) continue;
    const differ = task.env.filter((name) => env[name] !== process.env[name]);
    if (!differ.length) continue;
    said.add(task.name);
    const names = differ.join(", ");
    warnings.push(
      `task "${task.name}" reads process.env and declares ${names} with .env(), whose value in the run's env differs from process.env's: ` +
        `its cache key holds the run's value. Read ${differ.length === 1 ? "it" : "them"} with ${differ.map((n) => `ctx.env(${JSON.stringify(n)})`).join(", ")} instead.`,
    );
  }
  return warnings;
}
