/**
 * cairn-dag: the package a Cairn user installs. Everything a flow file or an app that embeds
 * Cairn imports: the DSL (@cairn/dsl) and what an app may call of the CLI (@cairn/cli), plus
 * the `cairn` command (bin/cairn.mjs). Importing it also lets `tsx flow.ts` run the file's
 * default-exported flow (the CLI's autorun).
 * @example
 * import { flow, task } from "cairn-dag";
 */
import "@cairn/cli/autorun";
import "@cairn/mlflow/register";
import "@cairn/worker/register";

export * from "@cairn/dsl";
export * from "@cairn/process";
export * from "@cairn/mlflow";
export { cli, EXIT, FlowFileError, UsageError, RunIdError, ReportRunError, type CliIo } from "@cairn/cli";
// What a dispatcher of your own (`run({ dispatcher })`) is built from, and the options of
// `ctx.logger`'s lines: under pnpm a project cannot import @cairn/core, which it never named.
export {
  runDispatchedTask,
  type TaskDispatcher,
  type DispatchedTask,
  type DispatchedOutcome,
  type DispatchedRunSettings,
  type LogLineOptions,
  type TaskLogger,
} from "@cairn/core";
// The queue's errors, which a run with `queue` raises; from their own module, so that BullMQ loads only for a queue.
export {
  QueueNeedsSharedTrackerError,
  QueueUnreachableError,
  QueueJobLostError,
  QueueInputsTooLargeError,
  QueueOutputsUnreadableError,
  QueueInputsUnreadableError,
  QueueUrlError,
  StaleCodeError,
  BuildMismatchError,
  SecretMismatchError,
  UnknownQueuedTaskError,
  PoisonTaskError,
  WorkerOptionError,
  QueueJobDataError,
  QueueAuthError,
} from "@cairn/worker/errors";
