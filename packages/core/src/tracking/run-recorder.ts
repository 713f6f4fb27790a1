import { checkMetric, type LogBatch, type MetricPoint, type Tracker } from "./tracker.ts";

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
  private params: Record<string, string> = {};
  private tags: Record<string, string> = {};
  private metrics: MetricPoint[] = [];
  private pending: Promise<void> = Promise.resolve();
  private failure: unknown;

  constructor(
    private readonly tracker: Tracker,
    readonly runId: string,
    /** Applied to every param and tag (keys and values) on their way to the tracker: the run's secrets. */
    private readonly secrets?: { readonly empty: boolean; mask(text: string): string },
  ) {}

  param(key: string, value: string): void {
    this.params[key] = value;
  }

  tag(key: string, value: string): void {
    this.tags[key] = value;
  }

  /** Throws a `MetricError` at once for a metric no tracker keeps, instead of failing the run's closing. */
  metric(key: string, value: number, step: number): void {
    checkMetric(key, value, step);
    this.metrics.push({ key, value, step, timestamp: Date.now() });
    if (this.metrics.length >= METRIC_FLUSH_THRESHOLD) {
      this.pending = this.pending.then(() => this.send(false)).catch((error) => {
        this.failure ??= error;
      });
    }
  }

  /** Sends everything buffered; rejects with the first failure of a background flush, if any. */
  async flush(): Promise<void> {
    await this.pending;
    await this.send();
    if (this.failure) throw this.failure;
  }

  private async send(withParams = true): Promise<void> {
    if (!this.metrics.length && (!withParams || isEmpty(this.params)) && isEmpty(this.tags)) return;
    const batch: LogBatch = { params: withParams ? this.masked(this.params) : {}, metrics: this.metrics, tags: this.masked(this.tags) };
    if (withParams) this.params = {};
    this.tags = {};
    this.metrics = [];
    try {
      await this.tracker.logBatch(this.runId, batch);
    } catch (error) {
      if (!withParams || isEmpty(batch.params ?? {}) || !isParamChange(error)) throw error;
      // The task logged some of these params itself, in its own spelling (a script's
      // `mlflow.log_param("flag", True)` is "True", Cairn's input param "true"): its values stand,
      // and the rest of the batch is sent without Cairn's params.
      await this.tracker.logBatch(this.runId, { ...batch, params: {} });
    }
  }

  private masked(record: Record<string, string>): Record<string, string> {
    const secrets = this.secrets;
    if (!secrets || secrets.empty || isEmpty(record)) return record;
    const out: Record<string, string> = {};
    for (const key in record) out[secrets.mask(key)] = secrets.mask(record[key]!);
    return out;
  }
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
