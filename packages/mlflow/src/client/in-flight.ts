/**
 * How many tracking requests (those that read or write the server's database) are under way at
 * once to one MLflow server, from the whole process: every client of that server, so two flows
 * run side by side share it. At most {@link MAX_IN_FLIGHT}; halved when the server answers that
 * its database is busy (SQLite's "database is locked", a full connection pool), once per such
 * burst; grown back by one for each `limit` answers that follow.
 *
 * Why: `mlflow server` gives each worker a pool of 15 database connections (SQLAlchemy's 5 + 10)
 * and waits up to 30 s for one. Two flows of 64 tasks at once sent 128 requests to a one-worker
 * server with SQLite: its threads queued for connections and locks, answered nothing for 30 s
 * at a time and refused with 400 after, and the run took 10 minutes instead of seconds. More
 * requests at once than the pool holds only queue at the server; fewer reach it sooner.
 */

/** Requests under way at once to one server, at most: MLflow's pool of 15 connections a worker, plus one. */
export const MAX_IN_FLIGHT = 16;

export class InFlightLimit {
  #limit: number;
  #active = 0;
  readonly #waiting: Array<() => void> = [];
  /** Answers since the limit last changed: `limit` of them in a row grow it by one. */
  #answers = 0;
  /** Raised at each cut: a busy answer to a request sent before the last cut says nothing new. */
  #epoch = 0;

  constructor(readonly max: number = MAX_IN_FLIGHT) {
    this.#limit = max;
  }

  get limit(): number {
    return this.#limit;
  }

  /** Requests under way now. */
  get active(): number {
    return this.#active;
  }

  /**
   * Waits for a place (the queue is first come, first served) and takes it. The returned
   * `done(outcome)` gives it back: `busy` when the server said its database was busy, `answered`
   * for any other answer, `none` when there was none (the limit is then left as it is).
   * When `signal` ends the wait (the run is cancelled), the request goes without a place.
   */
  async acquire(signal?: AbortSignal): Promise<(outcome: "busy" | "answered" | "none") => void> {
    if (this.#active < this.#limit) this.#active++;
    else if (!(await this.#wait(signal))) return () => {};
    const epoch = this.#epoch;
    let given = false;
    return (outcome) => {
      if (given) return;
      given = true;
      if (outcome === "busy") this.#busy(epoch);
      else if (outcome === "answered") this.#answered();
      this.#active--;
      this.#next();
    };
  }

  /** True once let in; false when `signal` ended the wait first. */
  #wait(signal: AbortSignal | undefined): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const letIn = () => {
        signal?.removeEventListener("abort", leave);
        resolve(true);
      };
      const leave = () => {
        this.#waiting.splice(this.#waiting.indexOf(letIn), 1);
        resolve(false);
      };
      this.#waiting.push(letIn);
      signal?.addEventListener("abort", leave, { once: true });
    });
  }

  #busy(epoch: number): void {
    if (epoch !== this.#epoch) return;
    this.#epoch++;
    this.#answers = 0;
    this.#limit = Math.max(1, Math.floor(this.#limit / 2));
  }

  #answered(): void {
    if (this.#limit >= this.max || ++this.#answers < this.#limit) return;
    this.#answers = 0;
    this.#limit++;
  }

  /** Lets waiting requests in while there is room; `active` counts each as it is let in. */
  #next(): void {
    while (this.#active < this.#limit && this.#waiting.length > 0) {
      this.#active++;
      this.#waiting.shift()!();
    }
  }
}

const limits = new Map<string, InFlightLimit>();

/** The limit of the server at `uri`, one per process. */
export function inFlightLimit(uri: string): InFlightLimit {
  let limit = limits.get(uri);
  if (!limit) limits.set(uri, (limit = new InFlightLimit()));
  return limit;
}
