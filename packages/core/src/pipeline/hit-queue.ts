/**
 * The runs of cache hits waiting to be sent to a server, and those being sent. A flow of
 * thousands of hits found in seconds takes minutes to record them (two requests each); so
 * they wait here, a few under way at a time, rather than in the client's queue: the flow can
 * say how many are left while it waits for them at its end, and a cancel can leave the ones
 * not yet sent (their runs then never exist), instead of sending each after the signal.
 */

/**
 * Hits handed to the tracker at once: as many as the MLflow tracker's own limit of records in
 * flight can be (CAIRN_MLFLOW_RECORDS_IN_FLIGHT's most; unset, it settles far lower on a
 * one-worker server), so that limit alone sets the pace, and a cancel still sends at most this many.
 */
export const HITS_UNDER_WAY = 64;

export class HitQueue {
  private readonly waiting: Array<{ send: () => Promise<void>; done: () => void }> = [];
  private underWay = 0;
  private closed = false;
  /** Hits ever added, for "recording N cached tasks' runs". */
  added = 0;
  /** Hits whose runs were not sent because the run was cancelled first. */
  dropped = 0;

  constructor(private readonly limit = HITS_UNDER_WAY) {}

  /** Sends `send` once fewer than the limit are under way; resolves once sent, or at once when the queue was closed (nothing sent). */
  add(send: () => Promise<void>): Promise<void> {
    this.added++;
    if (this.closed) {
      this.dropped++;
      return Promise.resolve();
    }
    return new Promise((done) => {
      this.waiting.push({ send, done });
      this.next();
    });
  }

  /** Hits whose runs are not recorded yet: waiting or under way. */
  get left(): number {
    return this.waiting.length + this.underWay;
  }

  /** The run was cancelled: hits not yet sent never are (those under way finish); returns how many were left. */
  close(): number {
    this.closed = true;
    const left = this.waiting.splice(0);
    this.dropped += left.length;
    for (const hit of left) hit.done();
    return left.length;
  }

  private next(): void {
    while (this.underWay < this.limit && this.waiting.length) {
      const hit = this.waiting.shift()!;
      this.underWay++;
      // `send` handles its own failure (recordHit warns); a throw here must not stop the queue.
      void Promise.resolve()
        .then(hit.send)
        .catch(() => {})
        .finally(() => {
          this.underWay--;
          hit.done();
          this.next();
        });
    }
  }
}
