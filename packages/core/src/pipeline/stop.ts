import { CairnError, CancelledError, cancelReason } from "../errors.ts";
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
    // A cancel whose reason is already a CancelledError (a worker's, with no reason sent) is said once, not wrapped again.
    return toErrorInfo(CancelledError.is(reason.detail) ? reason.detail : new CancelledError(reason.detail));
  }
  return toErrorInfo(CairnError.is(reason) ? reason : new CancelledError(reason));
}

/**
 * A stop as it travels to another process with a queue's cancel (TaskDispatcher.run's signal
 * aborts with one): its kind, its detail in words, and the error it ends a task with, all
 * masked, in JSON. The other side makes the same {@link StopReason} of it, so that a task
 * cancelled on a worker records what stopped it as in one process (fail-fast naming the task
 * that failed, the reason of a cancel), not only that the flow run was cancelled.
 */
export interface SentStop {
  readonly kind: StopReason["kind"];
  /** fail-fast: the failed task; cancel: the reason given (`SIGINT`), "" for none; flow-failed: its error. */
  readonly detail: string | { readonly name: string; readonly message: string };
  /** The error a task it ends carries ({@link stopInfo}). */
  readonly name: string;
  readonly message: string;
}

/** `reason` (the flow's stop) as it is sent to another process, each text of it masked by `mask`. */
export function sentStop(reason: unknown, mask: (text: string) => string): SentStop {
  const stop = isStopReason(reason) ? reason : new StopReason("cancel", reason);
  const { name, message } = stopInfo(stop);
  const detail =
    stop.kind === "flow-failed"
      ? { name: toErrorInfo(stop.detail).name, message: mask(toErrorInfo(stop.detail).message) }
      : mask(stop.kind === "fail-fast" ? String(stop.detail) : cancelReason(stop.detail));
  return { kind: stop.kind, detail, name, message: mask(message) };
}

/** `value` when it is a {@link SentStop} (read from a queue's message or mark), else undefined. */
export function readSentStop(value: unknown): SentStop | undefined {
  const v = (value ?? {}) as Partial<Record<keyof SentStop, unknown>>;
  if (v.kind !== "cancel" && v.kind !== "fail-fast" && v.kind !== "flow-failed") return undefined;
  if (typeof v.name !== "string" || typeof v.message !== "string") return undefined;
  const detail = v.detail as { name?: unknown; message?: unknown } | string | undefined;
  if (v.kind === "flow-failed" ? typeof detail !== "object" || detail === null || typeof detail.name !== "string" || typeof detail.message !== "string" : typeof detail !== "string") return undefined;
  return v as SentStop;
}

/** The StopReason a {@link SentStop} was made from, as the other process had it (texts masked). */
export function receivedStop(sent: SentStop): StopReason {
  if (sent.kind !== "flow-failed" || typeof sent.detail === "string") return new StopReason(sent.kind, sent.detail);
  return new StopReason("flow-failed", Object.assign(new Error(sent.detail.message), { name: sent.detail.name }));
}
