/**
 * The flow's slots and its named pools', with the tasks waiting for them, in one queue: when a
 * slot is given back, the highest-priority waiting task whose pool has room starts (equals first
 * come, first served), and takes both its slots at once. A pooled task that waited on its pool
 * apart from the flow's queue (as it did) was overtaken by lower-priority tasks whenever the
 * flow's slot went free before its pool's. Each pool keeps its waiters in a heap of its own, and
 * the unpooled ones one more: the next task is the best of those heads whose pool has room.
 * Queued tasks carry a ticket that can be dropped (a cache lookup that hit): a dropped one is
 * skipped when it comes up.
 */

import { before, PriorityHeap } from "./priority-heap.ts";

/** A task waiting for its slots. */
export interface SlotTicket {
  readonly priority: number;
  readonly seq: number;
  readonly pool: Pool | undefined;
  readonly start: () => void;
  /** It no longer wants the slots (drop()): skipped when it comes up. */
  dropped: boolean;
}

/** A named pool: its limit, its running tasks, its waiting ones. */
export class Pool {
  running = 0;
  readonly waiting = new WaitHeap();
  constructor(
    readonly name: string,
    readonly limit: number,
  ) {}
}

export class FlowSlots {
  private running = 0;
  private readonly unpooled = new WaitHeap();
  private readonly pools = new Map<string, Pool>();
  private seq = 0;

  constructor(
    private readonly limit: number,
    pools: Readonly<Record<string, number>>,
  ) {
    for (const [name, poolLimit] of Object.entries(pools)) this.pools.set(name, new Pool(name, poolLimit));
  }

  /** The pool of that name; undefined when none (a task that names none). */
  pool(name: string | undefined): Pool | undefined {
    return name === undefined ? undefined : this.pools.get(name);
  }

  /**
   * Calls `start` now when a slot of the flow and one of `pool` are free and no one waits before
   * it, else once they are; returns its ticket while it waits (undefined: started). The caller
   * gives the slots back with `free(pool)`.
   */
  take(priority: number, pool: Pool | undefined, start: () => void): SlotTicket | undefined {
    // No one waiting can take the slots free now (each time one is given back, the waiting tasks
    // that fit start): a task that fits them overtakes no one.
    if (this.running < this.limit && (pool === undefined || pool.running < pool.limit)) {
      this.running++;
      if (pool) pool.running++;
      start();
      return undefined;
    }
    const ticket: SlotTicket = { priority, seq: this.seq++, pool, start, dropped: false };
    (pool ? pool.waiting : this.unpooled).push(ticket);
    return ticket;
  }

  /** Gives back a slot of the flow and one of `pool`: the waiting tasks that fit now start. */
  free(pool: Pool | undefined): void {
    this.running--;
    if (pool) pool.running--;
    this.dispatch();
  }

  /** The ticket's task no longer wants its slots; when it holds them already, nothing changes. */
  drop(ticket: SlotTicket): void {
    ticket.dropped = true;
  }

  /** Drops every waiting task: they never start. */
  clear(): void {
    this.unpooled.clear();
    for (const pool of this.pools.values()) pool.waiting.clear();
  }

  /** Starts the best waiting tasks that fit, while the flow has a free slot. */
  private dispatch(): void {
    while (this.running < this.limit) {
      const next = this.best();
      if (next === undefined) return;
      const pool = next.pool;
      (pool ? pool.waiting : this.unpooled).pop();
      this.running++;
      if (pool) pool.running++;
      next.start();
    }
  }

  /** The head of the unpooled queue or of a pool's with room, highest priority then oldest. */
  private best(): SlotTicket | undefined {
    let best = this.unpooled.head();
    if (this.pools.size === 0) return best;
    for (const pool of this.pools.values()) {
      if (pool.running >= pool.limit) continue;
      const head = pool.waiting.head();
      if (head !== undefined && (best === undefined || before(head, best))) best = head;
    }
    return best;
  }
}

/** The tickets waiting for a pool's slot (or for the flow's, unpooled), in priority order; dropped ones are skipped. */
class WaitHeap extends PriorityHeap<SlotTicket> {
  /** The first ticket not dropped (the dropped ones before it are let go). */
  head(): SlotTicket | undefined {
    let top = this.peek();
    while (top !== undefined && top.dropped) {
      this.pop();
      top = this.peek();
    }
    return top;
  }
}
