/**
 * Importing "@cairn/worker/register" lets `run({ queue: "redis://host:6379" })` send a run's
 * tasks to `cairn worker` processes. It loads nothing of BullMQ until such a run starts: runs
 * on one machine never pay for it. "cairn-dag" imports it.
 */
import { registerQueueScheme } from "@cairn/core";

registerQueueScheme(["redis", "rediss"], async (url) => {
  const { queueDispatcher } = await import("./dispatcher.ts");
  return queueDispatcher(url);
});
