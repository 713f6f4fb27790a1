/** Exit codes of the CLI. */
export const EXIT = { ok: 0, flowFailed: 1, usage: 2, interrupted: 130 } as const;
