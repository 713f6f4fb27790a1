/**
 * What runs when a flow is built or a run starts, for packages that build on the DSL without
 * it importing them: the CLI's autorun (`tsx flow.ts` runs the file's default-exported flow)
 * registers here when `cairn-dag` is imported.
 */
import { declaringModule } from "./declared-path.ts";

export interface FlowHooks {
  /** A flow was declared (`flow(name)`), before it is built, if it ever is; `caller()` as for `built`. */
  declared?(caller: () => string | undefined): void;
  /** A flow was built; `caller()` is the module that built it (the first stack frame outside the DSL), worked out when asked. */
  built?(flow: unknown, caller: () => string | undefined): void;
  /** A flow run was started in this process. */
  runStarted?(): void;
}

const registered: FlowHooks[] = [];

/** Adds hooks for every flow built or run from now on in this process. */
export function addFlowHooks(hooks: FlowHooks): void {
  registered.push(hooks);
}

/** @internal Called by flow(). */
export function flowDeclared(): void {
  if (!registered.length) return;
  const place = declaringModule();
  const caller = () => place()?.file;
  for (const h of registered) h.declared?.(caller);
}

/** @internal Called by build(). */
export function flowBuilt(flow: unknown): void {
  if (!registered.length) return;
  // The stack is captured here, inside build(); its text is made only if a hook asks.
  const place = declaringModule();
  const caller = () => place()?.file;
  for (const h of registered) h.built?.(flow, caller);
}

/** @internal Called by run(). */
export function runStarted(): void {
  for (const h of registered) h.runStarted?.();
}
