/**
 * For TypeScript and JavaScript `script()` tasks: the inputs, outputs and artifacts of the
 * task the script runs as.
 * @example
 * import { currentTask } from "cairn-dag/current-task";
 */
export * from "@cairn/process/current-task";
