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
import { CairnError, SelectorError, describeValue } from "../errors.ts";
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

/**
 * A sweep point as a short stable key: `depth=3,lr=0.1,opt=adam`. Its keys are sorted (by code
 * unit), as the trial's cache key is blind to their order: `{ lr: 0.1, depth: 3 }` and
 * `{ depth: 3, lr: 0.1 }` are one trial, with one cache entry, and so get one key. A string that
 * could be read as another value or split the key (`"1"`, `"true"`, `"a,b=c"`, `""`) is written
 * as JSON, `x="1"`, so that `{ x: "1" }` and `{ x: 1 }` differ and no value forges another key; a
 * key without a value (`undefined`, which the trial does not get) is left out.
 */
export function pointKey(point: unknown): string {
  if (!isPlainObject(point)) return JSON.stringify(point);
  return Object.entries(point)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${keyText(k)}=${typeof v === "string" ? keyText(v) : JSON.stringify(v)}`)
    .join(",");
}

/** Words that read as JSON's other values: quoted as strings. */
const JSON_WORDS = new Set(["true", "false", "null"]);

/** `text` as it is when it reads only as a name (`adam`, `lr`, `f1-macro`), else as JSON. */
function keyText(text: string): string {
  return /^[A-Za-z_][\w.-]*$/.test(text) && !JSON_WORDS.has(text) ? text : JSON.stringify(text);
}

/**
 * How many items must succeed, from `minSuccess`: below 1 a fraction of the list (rounded up),
 * else a count; every item without it. Undefined when the count is more than the list holds.
 * (A sweep cut by stopWhen judges the trials it counts instead: MapRun.requiredNow.)
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
  /**
   * Failed items, in the order they failed; `unscored` marks a sweep trial that succeeded without
   * a finite number under the selected output, which counts as failed for `minSuccess`.
   */
  readonly failures: Array<{ item: string; index: number; message: string; unscored?: boolean }> = [];
  /** The next item to start. */
  next = 0;
  inFlight = 0;
  succeeded = 0;
  cached = 0;
  /**
   * Items that ended without running to their end because the flow stopped: cancelled (a cancel,
   * or running when fail-fast stopped the flow) and skipped (made but not started when fail-fast
   * or the flow's failure stopped it, or past a sweep's stopWhen cut). With {@link succeeded}, the
   * failures and {@link notStarted} they add up to the list's length.
   */
  cancelled = 0;
  skipped = 0;
  /** No further item starts: too many failed, the sweep's stop condition held, or the flow stopped. */
  halted = false;
  /** The sweep's stop condition held. */
  stoppedEarly = false;
  /** The first trial, in the space's order, whose outputs satisfied the stop condition. */
  firstSatisfied = Number.POSITIVE_INFINITY;
  /** Trials past the cut made but not started when stopWhen held: skipped, not cancelled by a stop. */
  skippedPastCut = 0;
  /** An error the map ends with, beyond its items' (a stop condition that threw). */
  error: unknown = undefined;
  /** The item whose outputs the stop condition threw on (or returned no boolean for). */
  errorAt: number | undefined = undefined;
  /** The map's own run, the parent of its items' runs. */
  runId: string | undefined = undefined;
  /** Which items ended (by position), and the first that has not: a sweep's failure after it is not decided yet. */
  private readonly ended: Uint8Array;
  private settled = 0;
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
    this.ended = new Uint8Array(items.length);
  }

  /** More items may start now. */
  get canStart(): boolean {
    return !this.halted && this.next < this.items.length && this.inFlight < this.window;
  }

  /**
   * Items never started because the map stopped first (the flow failed or was cancelled, too many
   * items failed, a sweep's stopWhen held): they have no node, result, event or run of their own,
   * so the map's run counts them. One run each would be up to 20,000 MLflow requests for a
   * 10,000-item map, at the end of a run that failed or is being cancelled.
   */
  get notStarted(): number {
    return this.items.length - this.next;
  }

  /** Nothing is in flight and nothing more will start. */
  get over(): boolean {
    return this.inFlight === 0 && (this.halted || this.next >= this.items.length);
  }

  /** Too many items failed for the map to succeed. */
  get lost(): boolean {
    return this.countedFailures().length > this.countedItems() - this.requiredNow();
  }

  /** The items the map is judged on: every item; for a sweep cut by stopWhen at trial c, trials 0..c. */
  countedItems(): number {
    return this.stoppedEarly ? this.firstSatisfied + 1 : this.items.length;
  }

  /**
   * Items that must succeed among {@link countedItems}: `required`; once a sweep is cut at trial
   * c, `minSuccess` judged over trials 0..c (a fraction of c + 1, rounded up; a count, at most
   * c + 1; every one of them without it), so that "0.8" still means 80% of what counts.
   */
  requiredNow(): number {
    if (!this.stoppedEarly) return this.required;
    const counted = this.countedItems();
    const min = this.spec.minSuccess;
    if (min === undefined) return counted;
    return min < 1 ? Math.ceil(min * counted) : Math.min(min, counted);
  }

  /**
   * The failures that count: for a sweep stopped by stopWhen, those up to its cut (see
   * sweepOutputs). With stopWhen, a failure is not counted while a trial before it is still
   * running (that trial may yet meet stopWhen and cut the sweep before the failure), so that
   * the verdict does not depend on which trial ends first.
   */
  countedFailures(): ReadonlyArray<{ item: string; index: number; message: string; unscored?: boolean }> {
    if (!this.spec.stopWhen) return this.failures;
    const below = Math.min(this.settled, this.countedItems());
    return this.failures.every((f) => f.index < below) ? this.failures : this.failures.filter((f) => f.index < below);
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
        ...(spec.kind === "sweep" ? { key: pointKey(item), metric: spec.select!.metric } : {}),
        ...(this.runId !== undefined ? { parentRunId: this.runId } : {}),
      },
    };
  }

  /**
   * An item ended; returns whether the map is lost (more counted failures than `minSuccess`
   * allows): by this item, or, in a sweep with stopWhen, by an earlier failure this item's end
   * decided. `stopped`: what an item that neither succeeded nor failed ended as.
   */
  itemEnded(index: number, id: string, ok: boolean, cached: boolean, output: unknown, error: string | undefined, stopped: "cancelled" | "skipped" = "cancelled"): boolean {
    this.inFlight--;
    this.ended[index] = 1;
    while (this.settled < this.items.length && this.ended[this.settled] === 1) this.settled++;
    if (ok) this.outputs[index] = output;
    if (ok && cached) this.cached++;
    const unscored = ok ? this.unscored(output) : undefined;
    if (ok && unscored === undefined) {
      this.succeeded++;
      const stopWhen = this.spec.stopWhen;
      // Asked of every trial before the cut that ends, also after the stop: the one that counts
      // is the first in the space's order (see sweepOutputs), whichever ended first. A trial
      // past the cut does not count, so neither does what stopWhen says of it.
      if (stopWhen && this.error === undefined && index < this.firstSatisfied) {
        let said: unknown;
        try {
          said = stopWhen(output);
        } catch (e) {
          // Said as stopWhen's: its bare message would read as the sweep's own.
          const { name, message } = toErrorInfo(e);
          this.error = new CairnError(`Sweep "${this.node.id}": its stopWhen threw ${name}: ${message} (at the outputs of trial "${id}"). Fix stopWhen, or catch inside it.`, { cause: e });
          this.errorAt = index;
          this.halted = true;
        }
        if (said === true) {
          this.halted = this.stoppedEarly = true;
          this.firstSatisfied = Math.min(this.firstSatisfied, index);
        } else if (said !== false && this.error === undefined) {
          // A truthy 1 or "yes" read as false would never stop the sweep, and a Promise (an async
          // stopWhen) is always truthy: neither is guessed at.
          const promise = typeof (said as { then?: unknown } | null)?.then === "function";
          this.error = new CairnError(
            `Sweep "${this.node.id}": its stopWhen returned ${promise ? "a Promise" : describeValue(said)}, not a boolean (at the outputs of trial "${id}"). ` +
              (promise ? "stopWhen cannot be async: return true or false from the trial's outputs alone." : "Return true to stop the sweep or false to go on, e.g. (o) => o.score >= 0.9."),
          );
          this.errorAt = index;
          this.halted = true;
        }
      }
    } else if (ok) this.failures.push({ item: id, index, message: unscored!, unscored: true });
    else if (error === undefined) {
      this[stopped]++; // cancelled or skipped: the flow stopped
      return false;
    }
    else this.failures.push({ item: id, index, message: error });
    // Under fail-fast the map stops starting items once it is lost; under `continue` the rest of
    // its items still run (their results are cached for the next run), and the map fails at its end.
    const lost = this.lost;
    if (lost && this.failFast) this.halted = true;
    return lost;
  }

  /** Why a sweep trial's outputs cannot be ranked (no finite number under the selected output); undefined when they can, and for a map. */
  private unscored(outputs: unknown): string | undefined {
    const select = this.spec.select;
    if (!select) return undefined;
    const got = isPlainObject(outputs) ? outputs[select.metric] : undefined;
    if (typeof got === "number" && Number.isFinite(got)) return undefined;
    return `its output "${select.metric}" is ${got === undefined ? "missing" : describeValue(got)}, not a finite number for ${select.order}("${select.metric}") to rank`;
  }

  /**
   * The SelectorError a sweep ends with when none of the trials it counts has a value to rank
   * and one of them returned none (the selector most likely names no numeric output): said of
   * the first such trial. Undefined otherwise (then failed trials are MapItemsFailedError's).
   */
  selectorError(): SelectorError | undefined {
    const select = this.spec.select;
    if (!select) return undefined;
    const end = this.countedItems();
    for (let k = 0; k < end; k++) if (this.outputs[k] !== null && this.unscored(this.outputs[k]) === undefined) return undefined;
    const first = this.countedFailures().find((f) => f.unscored);
    if (!first) return undefined;
    const outputs = this.outputs[first.index];
    const got = isPlainObject(outputs) ? outputs[select.metric] : undefined;
    const keys = isPlainObject(outputs) ? Object.keys(outputs) : [];
    return new SelectorError(this.node.id, first.item, select.metric, got, keys, keys.filter((k) => k !== select.metric && Number.isFinite((outputs as Record<string, unknown>)[k])));
  }

  /** The map's outputs, once it is over and not lost. */
  mapOutputs(): MapOutputs {
    return { outputs: this.outputs, failed: this.countedFailures().map((f) => f.item) };
  }

  /**
   * The sweep's outputs: every trial that ran and the best by the selector (ties go to the
   * earlier trial, so a re-run picks the same). A trial without a finite number under the
   * selected output is listed without a metric (it counted as failed); SelectorError when no trial
   * counted has one.
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
        // One without a finite number counted as failed (itemEnded); it is listed without a metric.
        if (typeof got === "number" && Number.isFinite(got)) {
          value = got;
          if (best < 0 || (order === "max" ? got > bestValue : got < bestValue)) {
            best = k;
            bestValue = got;
          }
        }
      }
      trials.push({ trial: id, params: point, ...(value !== undefined ? { metric: value } : {}), status });
    }
    if (best < 0) throw this.selectorError() ?? new CairnError(`Sweep "${this.node.id}": none of its trials has a value of "${metric}" to rank.`);
    return { outputs: this.outputs[best], params: this.items[best] as Record<string, unknown>, trial: `${this.node.id}[${best}]`, metric: bestValue, trials };
  }
}
