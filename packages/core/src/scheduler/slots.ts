/**
 * The slots of a concurrency limit (the flow's, or a pool's) and the tasks waiting for one:
 * a task starts at once when a slot is free, else when one is given back, highest priority
 * first and, among equals, first come first served. It does only what the scheduler asks of a
 * queue: no promise, timer, event or id per task, as a general-purpose queue (p-queue) needs.
 */
export class Slots {
  private running = 0;
  /** A binary heap: highest priority at the top, then the lowest sequence number. */
  private heap: Waiting[] = [];
  private seq = 0;

  constructor(private readonly limit: number) {}

  /** Calls `start` now if a slot is free, else once one is and no one before it waits. The caller gives the slot back with `free`. */
  take(priority: number, start: () => void): void {
    if (this.running < this.limit) {
      this.running++;
      start();
    } else {
      this.push({ priority, seq: this.seq++, start });
    }
  }

  /** Gives a slot back: the first waiting task takes it. */
  free(): void {
    const next = this.pop();
    if (next) next.start();
    else this.running--;
  }

  /** Drops every waiting task: they never start. */
  clear(): void {
    this.heap = [];
  }

  private push(item: Waiting): void {
    const heap = this.heap;
    let i = heap.length;
    heap.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = item;
  }

  private pop(): Waiting | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right]!, heap[left]!) ? right : left;
      if (!before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

interface Waiting {
  readonly priority: number;
  readonly seq: number;
  readonly start: () => void;
}

function before(a: Waiting, b: Waiting): boolean {
  return a.priority > b.priority || (a.priority === b.priority && a.seq < b.seq);
}
