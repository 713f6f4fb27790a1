/**
 * @cairn/cli: the `cairn` command (run, plan, explain, graph, runs, show, cache, init), its
 * reporter, and the flow loader and compiler it runs flows with. `cairn-dag` re-exports what
 * an app may call: `cli(argv)`, `EXIT`, and the errors the command line raises.
 * @example
 * import { cli } from "cairn-dag";
 * process.exitCode = await cli(["run", "flow.ts", "-p", "rows=5"]);
 */
export { EXIT } from "./exit.ts";
export { RunIdError } from "./find-run.ts";
export { FlowFileError } from "./load-flow.ts";
export { UsageError } from "./usage-error.ts";
// The report's error for a run id that is no flow run; from its own module, so that the renderer is not loaded with this.
export { ReportRunError } from "@cairn/report/errors";
import type { CliIo } from "./main.ts";
export type { CliIo };

/**
 * Runs the `cairn` CLI with `argv` (without `node cairn`); resolves to the exit code.
 * It leaves the process to its app: no signal handlers, no `process.exit` (pass
 * `io.handleSignals: true` to act as the `cairn` command does, which may end the process).
 * The CLI (reporter, log-update, ...) is loaded on the first call: a program that only
 * runs flows does not pay for it.
 */
export async function cli(argv: string[], io?: CliIo): Promise<number> {
  const { main } = await import("./main.ts");
  return main(argv, io);
}
