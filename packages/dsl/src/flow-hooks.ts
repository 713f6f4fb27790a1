/**
 * What runs when a flow is built or a run starts, for packages that build on the DSL without
 * it importing them: the CLI's autorun (`tsx flow.ts` runs the file's default-exported flow)
 * registers here when `cairn-dag` is imported.
 */
import { callerFile } from "./declared-path.ts";

export interface FlowHooks {
  /** A flow was built by the module `caller` (the first stack frame outside the DSL; undefined when there is none). */
  built?(flow: unknown, caller: string | undefined): void;
  /** A flow run was started in this process. */
  runStarted?(): void;
}

const registered: FlowHooks[] = [];

/** Adds hooks for every flow built or run from now on in this process. */
export function addFlowHooks(hooks: FlowHooks): void {
  registered.push(hooks);
}

/** @internal Called by build(). */
export function flowBuilt(flow: unknown): void {
  if (!registered.some((h) => h.built)) return;
  const caller = callerFile();
  for (const h of registered) h.built?.(flow, caller);
}

/** @internal Called by run(). */
export function runStarted(): void {
  for (const h of registered) h.runStarted?.();
}
