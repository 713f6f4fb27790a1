/**
 * How many records (cache hits' create + update) go to the server at once, found while the run
 * goes: the limit grows while the time a record takes stays near the fastest seen (the server has
 * room), shrinks when it grows (the records only queue there) and halves when the server says it
 * is overloaded (429, 503), and then stays below the number that was refused for a while. TCP Vegas's rule: from the limit and the ratio of the fastest time to
 * the round's mean time, the number of records waiting at the server; one decision per round of
 * `limit` records, and only while records wait here (a limit that is not reached says nothing).
 * The fastest record of the run stands for one that did not queue; it is not forgotten, so a
 * server that slows down for good (a much larger database) keeps a smaller limit.
 *
 * A one-worker server with SQLite settles at 2–3 (it writes one run at a time); a server with
 * more workers and cores grows it up to {@link AdaptiveLimitOptions.max}.
 */
export interface AdaptiveLimitOptions {
  /** @default 3 (the best fixed value on a one-worker server, BENCHMARKS.md) */
  initial?: number;
  /** @default 1 */
  min?: number;
  /** @default 32 */
  max?: number;
}

/** Rounds without a refusal after which the ceiling a refusal set rises by one (the server may have room again). */
const CEILING_RISES_AFTER = 50;
/** Below this many records estimated waiting at the server, the limit grows by one. */
const GROW_BELOW = 1;
/** Above this many, it shrinks by one. */
const SHRINK_ABOVE = 2;

export class AdaptiveLimit {
  private limit_: number;
  private readonly min: number;
  private readonly max: number;
  /** The fastest record of the run: the time of one that did not queue at the server. */
  private fastest = Number.POSITIVE_INFINITY;
  private roundTotal = 0;
  private roundCount = 0;
  /** Below the limit at which the server last refused; rises again after {@link CEILING_RISES_AFTER} quiet rounds. */
  private ceiling: number;
  private quietRounds = 0;
  /** True once halved in this round: one burst of refusals halves the limit once. */
  private halved = false;

  constructor(options: AdaptiveLimitOptions = {}) {
    this.min = options.min ?? 1;
    this.max = options.max ?? 32;
    this.limit_ = Math.min(this.max, Math.max(this.min, options.initial ?? 3));
    this.ceiling = this.max;
  }

  get limit(): number {
    return this.limit_;
  }

  /** The server said it is overloaded: half as many at once, from now. */
  overloaded(): number {
    if (this.halved) return this.limit_;
    this.ceiling = Math.max(this.min, this.limit_ - 1);
    this.quietRounds = 0;
    this.limit_ = Math.max(this.min, Math.floor(this.limit_ / 2));
    this.endRound();
    this.halved = true;
    return this.limit_;
  }

  /**
   * One record took `ms`; `waiting` is true when records were waiting for a place when it
   * ended. Returns the limit to use from now.
   */
  sample(ms: number, waiting: boolean): number {
    this.halved = false;
    this.fastest = Math.min(this.fastest, ms);
    this.roundTotal += ms;
    if (++this.roundCount < this.limit_) return this.limit_;
    const mean = this.roundTotal / this.roundCount;
    const queued = this.limit_ * (1 - this.fastest / mean);
    if (queued > SHRINK_ABOVE) this.limit_ = Math.max(this.min, this.limit_ - 1);
    else if (queued < GROW_BELOW && waiting) this.limit_ = Math.min(this.ceiling, this.limit_ + 1);
    if (++this.quietRounds >= CEILING_RISES_AFTER && this.ceiling < this.max) {
      this.ceiling++;
      this.quietRounds = 0;
    }
    this.endRound();
    return this.limit_;
  }

  private endRound(): void {
    this.roundTotal = 0;
    this.roundCount = 0;
  }
}
