/**
 * Single-flight leases: while one holder computes a key, others wait for its
 * entry instead of computing it again. A lease expires after `ttlMs` unless
 * renewed, so a crashed holder never blocks anyone for long.
 */
import type { CacheEntry } from "./entry.ts";

/** The caller now holds the lease on a key. */
export interface HeldLease {
  acquired: true;
  key: string;
  owner: string;
  /** Epoch ms when it lapses unless renewed (on the store's clock). */
  expiresAt: number;
  /** Gives the lease up. Idempotent; never removes a lease that another holder took over. */
  release(): Promise<void>;
  /** Pushes expiry to now + ttlMs. Throws `LeaseLostError` when the lease was lost. */
  renew(): Promise<void>;
}

/** Someone else holds the lease on a key. */
export interface LeaseRefusal {
  acquired: false;
  /** The holder's `owner` string. */
  holder: string;
  /** Epoch ms when the holder's lease lapses unless renewed. */
  expiresAt: number;
}

/** What `acquireLease` answers. */
export type LeaseResult = HeldLease | LeaseRefusal;

/** Options of `acquireLease`. */
export interface AcquireLeaseOptions {
  /** How long the lease lasts without renewal, in ms. */
  ttlMs: number;
  /**
   * Who holds it, for messages: e.g. `"run 4f2a / train"` or `"host:pid"`. An owner that starts
   * with a process (`formatOwner()`, then a space or its end, as Cairn's runs write it) lets a
   * redis or postgres lease be taken over at once, not at its expiry, once that process of this
   * machine no longer exists (the embedded store records the process itself).
   */
  owner: string;
}

/** Options of `waitFor`. */
export interface WaitForOptions {
  /** Stops waiting; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * How often to look, in ms.
   * @default 200
   */
  pollMs?: number;
  /**
   * An entry to wait past: the one a forced task (`--refresh`, `--rerun`) is replacing. The wait
   * ends with an entry that differs from it (the holder's), or with `undefined` once the lease is
   * free and the store still holds this one.
   */
  replacing?: CacheEntry;
}

/**
 * @internal The contract every lease backend implements (files, redis, postgres).
 * Tokens are unique per acquisition, so a stale holder can never release or
 * renew a lease that someone else took over.
 */
export interface LeaseBackend {
  /** Takes the lease when free or expired, atomically. */
  tryAcquire(
    key: string,
    owner: string,
    ttlMs: number,
  ): Promise<{ ok: true; token: string; expiresAt: number } | { ok: false; holder: string; expiresAt: number }>;
  /** Extends the lease held under `token`; `undefined` when it is no longer held under that token. */
  renew(key: string, token: string, ttlMs: number): Promise<number | undefined>;
  /** Removes the lease if still held under `token`. */
  release(key: string, token: string): Promise<void>;
  /**
   * Removes the lease only while `holder` (an owner string, as `peek` answers it) still holds it,
   * in one atomic step; `true` when it did. Backends that judge holders themselves (files) lack it.
   */
  endIfHeldBy?(key: string, holder: string): Promise<boolean>;
  /** The live holder, or `undefined` when free or expired. */
  peek(key: string): Promise<{ holder: string; expiresAt: number } | undefined>;
  /** Lease keys ever seen that are expired or free now, for pruning; optional. */
  sweep?(): Promise<void>;
}
