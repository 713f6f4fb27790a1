import { CairnError, CancelledError } from "../errors.ts";
import { type ErrorInfo, toErrorInfo } from "../run/events.ts";

/**
 * Why the flow was stopped: the reason its controller aborts with. An attempt that meets it
 * as its signal's reason ends `cancelled` (or `skipped`), never `failed`, and is not retried.
 */
export class StopReason {
  constructor(
    /** `flow-failed`: the flow failed outside its tasks (its own record could not be made); `detail` is the error. */
    readonly kind: "cancel" | "fail-fast" | "flow-failed",
    readonly detail: unknown,
  ) {}
}

/**
 * Whether `value` is a {@link StopReason}. Never throws: what a task threw is asked, and a Proxy
 * whose `getPrototypeOf` trap throws would throw out of `instanceof` instead of failing the task
 * with NonErrorThrownError.
 */
export function isStopReason(value: unknown): value is StopReason {
  try {
    return value instanceof StopReason;
  } catch {
    return false;
  }
}

/**
 * The error a task that a stop ended before it started carries: as {@link stopInfo}, but a flow
 * that failed outside its tasks is named, not quoted: its error is the flow's, said once, not
 * once for each of its tasks.
 */
export function notStartedInfo(reason: unknown): ErrorInfo {
  if (isStopReason(reason) && reason.kind === "flow-failed") {
    return { name: "FlowFailed", message: "Skipped because the flow failed before this task started (the flow's error says why)." };
  }
  return stopInfo(reason);
}

/** The error a task ended by a stop carries. */
export function stopInfo(reason: unknown): ErrorInfo {
  if (isStopReason(reason)) {
    if (reason.kind === "fail-fast") {
      return { name: "FailFast", message: `Stopped because task "${String(reason.detail)}" failed and the failure policy is fail-fast.` };
    }
    if (reason.kind === "flow-failed") {
      const { name, message } = toErrorInfo(reason.detail);
      return { name: "FlowFailed", message: `Stopped because the flow failed: ${name}: ${message}` };
    }
    return toErrorInfo(new CancelledError(reason.detail));
  }
  return toErrorInfo(CairnError.is(reason) ? reason : new CancelledError(reason));
}
