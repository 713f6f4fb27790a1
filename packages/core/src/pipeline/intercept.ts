/**
 * Hooks for embedders around each attempt of each task, in the manner of Temporal's
 * interceptors and Inngest's middleware: an interceptor is handed the attempt and `next`,
 * the rest of the chain (the task's own function last), and returns what the attempt returns.
 * It may observe (timing, tracing, logs), change the outcome (transform the output, throw to
 * fail the attempt; `NonRetryableError` stops the retries), or wrap the call (a context, a
 * lock). What it returns is checked like any output (serialisable, no secret, the schema).
 */
import type { TaskContext } from "../run/task-context.ts";

/** One attempt of one task, as an interceptor sees it. */
export interface TaskCall {
  /** The node id (`train`, `train-2`). */
  readonly nodeId: string;
  /** The task's name. */
  readonly taskName: string;
  /** The task's kind, as its `cairn.task_kind` tag: `function`, `script`, `shell`, `notebook`, `mlflow-project`, `mlflow-model`, `http`, or a custom kind's name. */
  readonly kind: string;
  /** 1-based. */
  readonly attempt: number;
  /** The attempt's inputs, resolved and validated. */
  readonly inputs: Readonly<Record<string, unknown>>;
  /** The attempt's `ctx` (its signal, logger, run id...). */
  readonly ctx: TaskContext;
}

/** Wraps an attempt: call `next()` to run the rest of the chain and the task; return its output (or another). */
export type TaskInterceptor = (call: TaskCall, next: () => Promise<unknown>) => Promise<unknown>;

/** Runs `run` through `interceptors`, the first one outermost. */
export function intercept(interceptors: readonly TaskInterceptor[], call: TaskCall, run: () => unknown): Promise<unknown> {
  const at = (i: number): Promise<unknown> => {
    if (i === interceptors.length) return Promise.resolve(run());
    let called = false;
    return interceptors[i]!(call, () => {
      if (called) return Promise.reject(new Error(`Interceptor ${i + 1} called next() twice for task "${call.nodeId}"; call it once and reuse its promise.`));
      called = true;
      return at(i + 1);
    });
  };
  return at(0);
}
