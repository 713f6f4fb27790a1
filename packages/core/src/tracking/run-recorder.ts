import { OptionError } from "../errors.ts";
import { checkMetric, type LogBatch, type MetricPoint, type Tracker } from "./tracker.ts";

/**
 * MLflow's tags that Cairn sets on every task's run itself, each with why a task may not: a task
 * that set one would rename its run, detach it from its flow, or say it came from elsewhere.
 */
const CAIRN_MLFLOW_TAGS: Readonly<Record<string, string>> = {
  "mlflow.parentRunId": "it places the task's run under its flow's run, and a task that set it would detach its run from the flow",
  "mlflow.runName": "it names the task's run after the task (`cairn show` and MLflow's UI list the run by it)",
  "mlflow.user": "it says who ran the flow",
  "mlflow.source.type": "it says what ran the flow",
  "mlflow.source.name": "it names the flow's file",
  "mlflow.source.git.commit": "it names the commit of the flow's file",
};

/** The prefix of the tags Cairn writes itself: which flow and task a run is, its kind, status, cache key. */
const CAIRN_TAG_PREFIX = "cairn.";

/**
 * Why tag `key` is Cairn's and a task may not set it with `ctx.log.tag()`, or undefined when it
 * may. Own keys only: a tag named `constructor` is the task's.
 */
export function reservedTagReason(key: string): string | undefined {
  if (Object.hasOwn(CAIRN_MLFLOW_TAGS, key)) return CAIRN_MLFLOW_TAGS[key];
  if (key.startsWith(CAIRN_TAG_PREFIX)) {
    return "Cairn writes the tags that start with `cairn.` itself (which flow and task a run is, its kind, status and cache key), and `cairn show`, `cairn runs`, the report and the cache read them back";
  }
  return undefined;
}

/** Metrics buffered before a flush is started in the background. */
const METRIC_FLUSH_THRESHOLD = 1000;

/**
 * Buffers what a task logs and sends it to the tracker in few requests: metrics
 * logged in a loop cost one log-batch per thousand points, plus one at the end.
 * Params go out only with the last one ({@link flush}): a run's params are write-once (MLflow
 * refuses a changed value), and the attempts of a retried task share one run, so a param whose
 * value differs between attempts (a seed, a timestamp) is recorded once, as the attempt that
 * ended the run set it, instead of failing that attempt or the run's closing.
 */
export class RunRecorder {
  // Without a prototype: a task may name a param or tag `constructor` or `__proto__` (see nameKeyed).
  private params = nameKeyed();
  /** The params of the task's inputs, by key. */
  private readonly inputs = new Map<string, string>();
  private tags = nameKeyed();
  private metrics: MetricPoint[] = [];
  /** The highest step logged of each metric, over every attempt (see {@link highestStep}). */
  private readonly steps = new Map<string, number>();
  /** The background flushes of a chatty task's metrics; none until a task logs that many (most never do). */
  private pending: Promise<void> | undefined;
  /** A background flush is queued and has not started yet. */
  private flushQueued = false;
  private failure: unknown;

  constructor(
    private readonly tracker: Tracker,
    readonly runId: string,
    /** Applied to every param and tag (keys and values) on their way to the tracker: the run's secrets. */
    private readonly secrets?: { readonly empty: boolean; mask(text: string): string },
  ) {}

  /**
   * A param the task logs. One that would change an input's param (a key {@link inputParam} set)
   * throws an `OptionError`: the run's record would lose the value its cache key was made of.
   */
  param(key: string, value: string): void {
    const input = this.inputs.get(key);
    if (input !== undefined && input !== value) {
      throw new OptionError(
        `param "${key}"`,
        "a key that is not one of the task's inputs",
        key,
        `Param "${key}" is the task's input "${key}", which Cairn logs as it was given (the cache key was made of it); ` +
          `a param is written once, so the task cannot log another value there. Log it under another key (ctx.log.param("${key}_used", ...)), or as a tag or metric.`,
      );
    }
    this.params[key] = value;
  }

  /** An input's param (logInputs): the value stands, and the task cannot log another under its key. */
  inputParam(key: string, value: string): void {
    this.inputs.set(key, value);
    this.params[key] = value;
  }

  /** A tag Cairn sets (its own, or a kind's executor's): taken as it is. */
  tag(key: string, value: string): void {
    this.tags[key] = value;
  }

  /**
   * A tag the task logs (`ctx.log.tag`). One Cairn writes itself ({@link reservedTagReason}: the
   * `cairn.` ones, `mlflow.runName`, `mlflow.parentRunId`, `mlflow.user`, `mlflow.source.*`)
   * throws an `OptionError`: it would overwrite the record that names and places the run.
   */
  taskTag(key: string, value: string): void {
    const why = reservedTagReason(key);
    if (why !== undefined) {
      throw new OptionError(
        `tag "${key}"`,
        "a tag that Cairn does not set itself (not one starting with `cairn.`, nor mlflow.runName, mlflow.parentRunId, mlflow.user or mlflow.source.*)",
        key,
        `Tag "${key}" is Cairn's: ${why}. A task cannot set it with ctx.log.tag(); log what you mean under a tag of your own (ctx.log.tag("my.${key.replace(/^(cairn|mlflow)\./, "")}", ...)).`,
      );
    }
    this.tag(key, value);
  }

  /** Throws a `MetricError` at once for a metric no tracker keeps, instead of failing the run's closing. */
  metric(key: string, value: number, step: number): void {
    checkMetric(key, value, step);
    this.metrics.push({ key, value, step, timestamp: Date.now() });
    const highest = this.steps.get(key);
    if (highest === undefined || step > highest) this.steps.set(key, step);
    // One background flush waits at a time, and takes every point logged until it starts: a
    // burst of points in one synchronous loop queued a flush per point past the threshold.
    if (this.metrics.length >= METRIC_FLUSH_THRESHOLD && !this.flushQueued) {
      this.flushQueued = true;
      this.pending = (this.pending ?? Promise.resolve())
        .then(() => {
          this.flushQueued = false;
          return this.send(false);
        })
        .catch((error) => {
          this.failure ??= error;
        });
    }
  }

  /**
   * The highest step metric `key` was logged at through this recorder, sent or not; undefined when
   * it was not. A point logged after it at a higher step is the metric's latest value in MLflow's
   * sense (RunRecord.metrics).
   */
  highestStep(key: string): number | undefined {
    return this.steps.get(key);
  }

  /** Sends everything buffered; rejects with the first failure of a background flush, if any. */
  async flush(): Promise<void> {
    if (this.pending) await this.pending;
    await this.send();
    if (this.failure) throw this.failure;
  }

  private async send(withParams = true): Promise<void> {
    if (!this.metrics.length && (!withParams || isEmpty(this.params)) && isEmpty(this.tags)) return;
    const batch: LogBatch = { params: withParams ? this.masked(this.params) : {}, metrics: this.metrics, tags: this.masked(this.tags) };
    if (withParams) this.params = nameKeyed();
    this.tags = nameKeyed();
    this.metrics = [];
    try {
      await this.tracker.logBatch(this.runId, batch);
    } catch (error) {
      if (!withParams || isEmpty(batch.params ?? {}) || !isParamChange(error)) throw error;
      // The task logged some of these params itself, in its own spelling (a script's
      // `mlflow.log_param("flag", True)` is "True", Cairn's input param "true"): its values stand,
      // and the rest of the batch is sent with only the params the run does not have yet (an
      // input, or an MLflow project's default, the task did not log itself).
      const had = (await this.tracker.getRun(this.runId).catch(() => undefined))?.params;
      const rest = nameKeyed();
      if (had) for (const key in batch.params) if (!Object.hasOwn(had, key)) rest[key] = batch.params[key]!;
      await this.tracker.logBatch(this.runId, { ...batch, params: rest });
    }
  }

  private masked(record: Record<string, string>): Record<string, string> {
    const secrets = this.secrets;
    if (!secrets || secrets.empty || isEmpty(record)) return record;
    const out = nameKeyed();
    for (const key in record) out[secrets.mask(key)] = secrets.mask(record[key]!);
    return out;
  }
}

/**
 * An empty record of params or tags by name, without a prototype: on a plain object a key such as
 * `constructor` reads as Object.prototype's function and `__proto__` sets the prototype, so
 * such a param or tag was lost on its way to the tracker.
 */
function nameKeyed(): Record<string, string> {
  return Object.create(null) as Record<string, string>;
}

function isEmpty(record: Record<string, string>): boolean {
  for (const _ in record) return false;
  return true;
}

/** A tracker's refusal to change a param a run already has (MLflow's, or the embedded store's). */
function isParamChange(error: unknown): boolean {
  const e = error as { errorCode?: unknown; serverMessage?: unknown; message?: unknown } | null;
  if (typeof e?.serverMessage === "string" && /changing param values is not allowed/i.test(e.serverMessage)) return true;
  return typeof e?.message === "string" && /params are write-once/.test(e.message);
}
