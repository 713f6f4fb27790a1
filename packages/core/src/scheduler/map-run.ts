/**
 * A map or sweep node while it runs: its list (known once its upstream nodes ended), the item
 * nodes made from it a window at a time (never one promise per item at once: a map of 10,000
 * items holds at most `window` items in flight), and what the map ends with: its outputs in item
 * order, the failed items, and for a sweep the best trial by its selector. The scheduler
 * (flow-execution.ts) runs each item through the same task pipeline as any node; this module
 * only decides which item comes next and what the items add up to.
 */
import type { FlowNode, MapSpec } from "../definition/flow-definition.ts";
import { isPlainObject } from "../definition/ref.ts";
import { CairnError, SelectorError } from "../errors.ts";
import { toErrorInfo } from "../run/events.ts";
import type { TaskResult } from "../run/task-result.ts";

/** The `after` of item nodes: frozen, so one array serves them all. */
const NO_AFTER: readonly string[] = Object.freeze([]);

/**
 * One row of a sweep's leaderboard: what the trial gave, not how this run got it, so that a task
 * fed the leaderboard is a cache hit when the trials' results are the same (whether the trials ran
 * or came from the cache is in the flow's result, under each trial's id).
 */
export interface SweepTrial {
  /** The trial's node id, `train[3]`. */
  readonly trial: string;
  /** Its point of the search space. */
  readonly params: Record<string, unknown>;
  /** The selected output, when the trial succeeded. */
  readonly metric?: number;
  /** `succeeded` also when its outputs came from the cache. */
  readonly status: Exclude<TaskResult["status"], "cached">;
}

/** What a map node outputs. */
export interface MapOutputs {
  /**
   * Each item's outputs, in item order; `null` where an item failed (with `minSuccess`): what a
   * task on a queue worker receives through JSON, so the map's outputs read the same everywhere.
   */
  readonly outputs: unknown[];
  /** The node ids of the items that failed. */
  readonly failed: string[];
}

/** What a sweep node outputs. */
export interface SweepOutputs {
  /** The best trial's outputs. */
  readonly outputs: unknown;
  /** The best trial's point. */
  readonly params: Record<string, unknown>;
  /** The best trial's node id. */
  readonly trial: string;
  /** The best trial's selected output. */
  readonly metric: number;
  /** Every trial that ran, in item order. */
  readonly trials: SweepTrial[];
}

/** A sweep point as a short stable key: `lr=0.1,depth=3`. */
function pointKey(point: unknown): string {
  if (!isPlainObject(point)) return JSON.stringify(point);
  return Object.entries(point)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(",");
}

/**
 * How many items must succeed, from `minSuccess`: below 1 a fraction of the list (rounded up),
 * else a count; every item without it. Undefined when the count is more than the list holds.
 */
export function requiredItems(spec: MapSpec, items: number): number | undefined {
  const min = spec.minSuccess;
  if (min === undefined) return items;
  if (min < 1) return Math.ceil(min * items);
  // A count asks for that many items: an empty list (or a shorter one) cannot give them.
  return min <= items ? min : undefined;
}

export class MapRun {
  /** Each item's outputs, by position; `null` until it succeeds (see MapOutputs.outputs). */
  readonly outputs: unknown[];
  /** Failed items, in the order they failed. */
  readonly failures: Array<{ item: string; index: number; message: string }> = [];
  /** The next item to start. */
  next = 0;
  inFlight = 0;
  succeeded = 0;
  cached = 0;
  /** No further item starts: too many failed, the sweep's stop condition held, or the flow stopped. */
  halted = false;
  /** The sweep's stop condition held. */
  stoppedEarly = false;
  /** The first trial, in the space's order, whose outputs satisfied the stop condition. */
  firstSatisfied = Number.POSITIVE_INFINITY;
  /** An error the map ends with, beyond its items' (a stop condition that threw). */
  error: unknown = undefined;
  /** The map's own run, the parent of its items' runs. */
  runId: string | undefined = undefined;
  /** Items whose node exists and which have not ended. */
  readonly active = new Set<{ readonly started: boolean | undefined; readonly ended: boolean }>();
  readonly spec: MapSpec;

  constructor(
    readonly node: FlowNode,
    readonly items: readonly unknown[],
    /** The map's `with` inputs, resolved. */
    readonly base: Readonly<Record<string, unknown>>,
    /** Items that must succeed. */
    readonly required: number,
    /** Items in flight at most. */
    readonly window: number,
    /** When the map started, for its duration. */
    readonly started: number,
    /** The flow's failure policy is fail-fast: a lost map starts no more items. */
    readonly failFast = true,
  ) {
    this.spec = node.map!;
    this.outputs = new Array(items.length).fill(null);
  }

  /** More items may start now. */
  get canStart(): boolean {
    return !this.halted && this.next < this.items.length && this.inFlight < this.window;
  }

  /** Nothing is in flight and nothing more will start. */
  get over(): boolean {
    return this.inFlight === 0 && (this.halted || this.next >= this.items.length);
  }

  /** Too many items failed for the map to succeed. */
  get lost(): boolean {
    return this.countedFailures().length > this.items.length - this.required;
  }

  /** The failures that count: for a sweep stopped by stopWhen, those up to its cut (see sweepOutputs). */
  countedFailures(): ReadonlyArray<{ item: string; index: number; message: string }> {
    return this.stoppedEarly ? this.failures.filter((f) => f.index <= this.firstSatisfied) : this.failures;
  }

  /** The node of item `index`: the map's task, its inputs with the item (or a sweep's point spread over them). */
  itemNode(index: number): FlowNode {
    const item = this.items[index];
    const spec = this.spec;
    const inputs = spec.as !== undefined ? { ...this.base, [spec.as]: item } : { ...this.base, ...(item as Record<string, unknown>) };
    return {
      id: `${this.node.id}[${index}]`,
      task: this.node.task,
      inputs,
      after: NO_AFTER,
      item: {
        parent: this.node.id,
        index,
        ...(spec.kind === "sweep" ? { key: pointKey(item) } : {}),
        ...(this.runId !== undefined ? { parentRunId: this.runId } : {}),
      },
    };
  }

  /** An item ended; returns whether the map is lost by it (more failed than `minSuccess` allows). */
  itemEnded(index: number, id: string, ok: boolean, cached: boolean, output: unknown, error: string | undefined): boolean {
    this.inFlight--;
    if (ok) {
      this.outputs[index] = output;
      this.succeeded++;
      if (cached) this.cached++;
      const stopWhen = this.spec.stopWhen;
      // Asked of every trial before the cut that ends, also after the stop: the one that counts
      // is the first in the space's order (see sweepOutputs), whichever ended first. A trial
      // past the cut does not count, so neither does what stopWhen says of it.
      if (stopWhen && this.error === undefined && index < this.firstSatisfied) {
        try {
          if (stopWhen(output) === true) {
            this.halted = this.stoppedEarly = true;
            this.firstSatisfied = Math.min(this.firstSatisfied, index);
          }
        } catch (e) {
          // Said as stopWhen's: its bare message would read as the sweep's own.
          const { name, message } = toErrorInfo(e);
          this.error = new CairnError(`Sweep "${this.node.id}": its stopWhen threw ${name}: ${message} (at the outputs of trial "${id}"). Fix stopWhen, or catch inside it.`, { cause: e });
          this.halted = true;
        }
      }
      return false;
    }
    if (error === undefined) return false; // cancelled or skipped: the flow stopped
    this.failures.push({ item: id, index, message: error });
    // Under fail-fast the map stops starting items once it is lost; under `continue` the rest of
    // its items still run (their results are cached for the next run), and the map fails at its end.
    if (this.lost && this.failFast) this.halted = true;
    return this.lost;
  }

  /** The map's outputs, once it is over and not lost. */
  mapOutputs(): MapOutputs {
    return { outputs: this.outputs, failed: this.countedFailures().map((f) => f.item) };
  }

  /**
   * The sweep's outputs: every trial that ran and the best by the selector (ties go to the
   * earlier trial, so a re-run picks the same). Throws SelectorError when a trial that succeeded
   * has no finite number under the selected output.
   *
   * A sweep stopped by `stopWhen` counts the trials up to the first one, in the space's order,
   * that satisfied it: which trials had started when the stop came depends on the order they
   * ended (on a re-run, cache hits end at once and in order), while this cut does not, so a
   * re-run picks the same best. Trials past the cut that ran stay cached and recorded.
   */
  sweepOutputs(results: ReadonlyMap<string, TaskResult>): SweepOutputs {
    const { metric, order } = this.spec.select!;
    const trials: SweepTrial[] = [];
    let best = -1;
    let bestValue = 0;
    const end = this.stoppedEarly ? Math.min(this.next, this.firstSatisfied + 1) : this.next;
    for (let k = 0; k < end; k++) {
      const id = `${this.node.id}[${k}]`;
      const result = results.get(id);
      const status = result?.status === "cached" ? "succeeded" : (result?.status ?? "pending");
      const point = this.items[k] as Record<string, unknown>;
      let value: number | undefined;
      if (status === "succeeded") {
        const outputs = this.outputs[k];
        const got = isPlainObject(outputs) ? outputs[metric] : undefined;
        if (typeof got !== "number" || !Number.isFinite(got)) throw new SelectorError(this.node.id, id, metric, got, isPlainObject(outputs) ? Object.keys(outputs) : [], isPlainObject(outputs) ? Object.keys(outputs).filter((k) => k !== metric && Number.isFinite(outputs[k])) : []);
        value = got;
        if (best < 0 || (order === "max" ? got > bestValue : got < bestValue)) {
          best = k;
          bestValue = got;
        }
      }
      trials.push({ trial: id, params: point, ...(value !== undefined ? { metric: value } : {}), status });
    }
    return { outputs: this.outputs[best], params: this.items[best] as Record<string, unknown>, trial: `${this.node.id}[${best}]`, metric: bestValue, trials };
  }
}
