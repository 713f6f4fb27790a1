/**
 * `cairn-dag/queue`: the queue's dispatcher for an app that keeps one queue open across runs
 * (`flow.run({ dispatcher: queueDispatcher(url) })`). Its own entry, so that BullMQ loads only
 * where a queue is used; a project installs cairn-dag alone (under pnpm, @cairn/worker is not
 * importable from it).
 * @example
 * import { queueDispatcher } from "cairn-dag/queue";
 */
export { queueDispatcher, type QueueDispatcher, type QueueDispatcherOptions } from "@cairn/worker";
