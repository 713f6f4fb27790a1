/**
 * The slots of a concurrency limit (the flow's, or a pool's) and the tasks waiting for one:
 * a task starts at once when a slot is free, else when one is given back, highest priority
 * first and, among equals, first come first served. It does only what the scheduler asks of a
 * queue: no promise, timer, event or id per task, as a general-purpose queue (p-queue) needs.
 */
import { PriorityHeap, type Queued } from "./priority-heap.ts";

export class Slots {
  private running = 0;
  private readonly waiting = new PriorityHeap<Waiting>();
  private seq = 0;

  constructor(private readonly limit: number) {}

  /** Calls `start` now if a slot is free, else once one is and no one before it waits. The caller gives the slot back with `free`. */
  take(priority: number, start: () => void): void {
    if (this.running < this.limit) {
      this.running++;
      start();
    } else {
      this.waiting.push({ priority, seq: this.seq++, start });
    }
  }

  /** Gives a slot back: the first waiting task takes it. */
  free(): void {
    const next = this.waiting.pop();
    if (next) next.start();
    else this.running--;
  }

  /** Drops every waiting task: they never start. */
  clear(): void {
    this.waiting.clear();
  }
}

interface Waiting extends Queued {
  readonly start: () => void;
}
