/** What waits in a {@link PriorityHeap}: a higher priority first, then a lower sequence number (first come, first served). */
export interface Queued {
  readonly priority: number;
  readonly seq: number;
}

/** A binary heap of waiting tasks: highest priority at the top, then the lowest sequence number. The flow's slots and a pool's keep theirs in one. */
export class PriorityHeap<T extends Queued> {
  protected heap: T[] = [];

  /** The first waiting, left in place. */
  peek(): T | undefined {
    return this.heap[0];
  }

  clear(): void {
    this.heap = [];
  }

  push(item: T): void {
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

  pop(): T | undefined {
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

/** Whether `a` goes before `b`: a higher priority, or an equal one queued earlier. */
export function before(a: Queued, b: Queued): boolean {
  return a.priority > b.priority || (a.priority === b.priority && a.seq < b.seq);
}
