/**
 * Exit codes of the CLI. `serviceDown`: a service Cairn needs (the tracking server, a shared cache
 * store, the queue's Redis) could not be used before the flow started, so that a script can tell
 * "retry later" from "the flow failed" (1) and "fix the command" (2).
 */
export const EXIT = { ok: 0, flowFailed: 1, usage: 2, serviceDown: 3, interrupted: 130 } as const;
