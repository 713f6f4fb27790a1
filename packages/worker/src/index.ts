/**
 * @cairn/worker: Cairn beyond one machine. `queueDispatcher(url)` sends a flow run's tasks to a
 * Redis queue (BullMQ) as `RunOptions.dispatcher`; `startWorker()` takes them in another process
 * (`cairn worker`); `listWorkers()` reads the live ones (`cairn workers`).
 */
export { queueDispatcher, type QueueDispatcher, type QueueDispatcherOptions } from "./dispatcher.ts";
export { startWorker, type WorkerOptions, type WorkerEvent, type RunningWorker } from "./worker.ts";
export type { WorkerRecord } from "./workers-list.ts";
export { listWorkers, checkQueue } from "./workers-list.ts";
export { DEFAULT_POOL } from "./queue-names.ts";
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
} from "./errors.ts";
