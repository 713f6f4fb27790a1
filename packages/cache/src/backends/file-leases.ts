import { closeSync, fstatSync, linkSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { CacheBackendError } from "../errors.ts";
import type { LeaseBackend } from "../lease.ts";
import { type ProcessOwner, currentOwner, ownerIsAlive, ownerIsGone } from "../process-owner.ts";
import { errorCode, fileNameOfKey, isDeadTemp, keyOfFileName, tempName, uniqueId } from "./_files.ts";

const EXTENSION = ".lease";
/** A tombstone older than this was left by a crashed process and is removed. */
const STALE_TOMBSTONE_MS = 30_000;
/** The pause of an acquirer while another process ends the expired lease it wants... */
const ENDING_PAUSE_MS = 2;
/** ...and how long such pauses go uncounted among its 50 tries. */
const ENDING_WAIT_MS = 5_000;
/** How long an unreadable lease file (which writes never produce) blocks before it counts as expired. */
const UNREADABLE_LEASE_MS = 60_000;

interface LeaseFile {
  owner: string;
  token: string;
  ttlMs: number;
  acquiredAt: number;
  pid: number;
  host: string;
  /** The holder's start time (see process-owner.ts), so that a reused pid is not taken for it. */
  start?: number;
  /** The holder's pid space (see process-owner.ts), so that another container's pid is not taken for it. */
  space?: string;
  /** The holder's wall-clock start and machine (see process-owner.ts), so that another machine of this name is not taken for an earlier boot. */
  startedAt?: number;
  machine?: string;
}

interface CurrentLease {
  /** The token, or a stand-in for an unreadable file. */
  identity: string;
  holder: string;
  ttlMs: number;
  expiresAt: number;
  /** The holder's process, when the file says. */
  pid?: number;
  host?: string;
  start?: number;
  space?: string;
  startedAt?: number;
  machine?: string;
}

/** The owner's fields as a lease file records them (those it has): written by a lease's taker, read back for its holder. */
function ownerFields(o: ProcessOwner): ProcessOwner {
  return {
    host: o.host,
    pid: o.pid,
    ...(o.start !== undefined ? { start: o.start } : {}),
    ...(o.space !== undefined ? { space: o.space } : {}),
    ...(o.startedAt !== undefined ? { startedAt: o.startedAt } : {}),
    ...(o.machine !== undefined ? { machine: o.machine } : {}),
  };
}

/** The lease's holder, when the file says. */
function holderOf(lease: CurrentLease): ProcessOwner | undefined {
  if (lease.pid === undefined || lease.host === undefined) return undefined;
  return ownerFields({ ...lease, host: lease.host, pid: lease.pid });
}

/** Whether the lease's holder is a process of this machine that no longer exists; its last renewal shows it at work then. */
function holderIsGone(lease: CurrentLease): boolean {
  return ownerIsGone(holderOf(lease), { seenAt: lease.expiresAt - lease.ttlMs });
}

/**
 * True while the lease holds. A holder that is a process of this machine that no longer exists
 * (killed, crashed) has lost it now, not when it expires: its task processes die with it (see
 * core's executors/process.ts), and a pid reused by another process is told apart by its start
 * time. A holder that is provably another live process of this machine keeps it past its
 * expiry: it did not crash, it could not renew (a function task's synchronous work blocks the
 * event loop its renewals run on), and taking the lease would compute the key twice at once.
 * Expiry decides for holders nothing here can check (another host, container, or machine given
 * this host name; no /proc).
 */
function isLive(lease: CurrentLease): boolean {
  if (holderIsGone(lease)) return false;
  return lease.expiresAt > Date.now() || ownerIsAlive(holderOf(lease));
}

/**
 * Leases as files in a folder, safe across processes on one machine (and on a
 * local file system):
 * - acquire: write a temp file, then `link()` it to the lease name, which fails
 *   atomically when a lease exists (the O_EXCL idea, without a moment where
 *   the file exists but is empty);
 * - expiry: the lease file's mtime plus the `ttlMs` written inside; renew
 *   touches the mtime, never rewrites the file;
 * - ending a lease (release, or stealing an expired one) first claims a
 *   tombstone named after that lease's unique token with O_EXCL, so exactly
 *   one process removes a given lease, and only while it is still that lease.
 *
 * Its file calls are synchronous, as the embedded store's are (`_files.ts`): each fs/promises
 * call is a round trip through libuv's thread pool, dearer than the call on a file this small,
 * and on a busy machine those threads compete with the run's own work for the cores.
 *
 * @internal
 */
export class FileLeases implements LeaseBackend {
  readonly dir: string;
  private ready = false;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  private pathOf(key: string): string {
    return join(this.dir, fileNameOfKey(key, EXTENSION));
  }

  async tryAcquire(key: string, owner: string, ttlMs: number) {
    if (!this.ready) mkdirSync(this.dir, { recursive: true });
    this.ready = true;
    const token = uniqueId();
    const self = currentOwner();
    const body: LeaseFile = {
      owner,
      token,
      ttlMs,
      acquiredAt: 0,
      ...ownerFields(self),
    };
    const path = this.pathOf(key);
    // Tries count when the lease changed hands; waits for another process's end of it do not,
    // for up to ENDING_WAIT_MS.
    const waitUntil = Date.now() + ENDING_WAIT_MS;
    for (let tries = 0; tries < 50; ) {
      const start = Date.now();
      body.acquiredAt = start;
      const temp = join(this.dir, tempName());
      writeFileSync(temp, JSON.stringify(body));
      try {
        linkSync(temp, path);
        return { ok: true as const, token, expiresAt: start + ttlMs };
      } catch (error) {
        if (errorCode(error) !== "EEXIST") throw error;
      } finally {
        unlinkQuietly(temp);
      }
      const current = this.read(key);
      if (current === undefined) {
        tries++; // released meanwhile
        continue;
      }
      if (isLive(current)) return { ok: false as const, holder: current.holder, expiresAt: current.expiresAt };
      if (this.end(key, current.identity)) {
        tries++;
        continue;
      }
      // Another process is ending that same lease (it holds the tombstone): give it a moment. The
      // calls here take microseconds, so tries without a pause could all fall in its time slice.
      if (Date.now() >= waitUntil) tries++;
      await new Promise((r) => setTimeout(r, ENDING_PAUSE_MS));
    }
    throw new CacheBackendError("embedded", this.dir, `acquire the lease on ${key}`, {
      hint: "It changed hands 50 times while we tried: a lease ttlMs far too short for this machine?",
    });
  }

  async renew(key: string, token: string, ttlMs: number): Promise<number | undefined> {
    const before = this.read(key);
    if (before?.identity !== token) return undefined;
    const now = Date.now();
    try {
      utimesSync(this.pathOf(key), now / 1000, now / 1000);
    } catch (error) {
      if (errorCode(error) === "ENOENT") return undefined;
      throw error;
    }
    // If the lease changed hands between the read and the touch we extended the
    // new holder's lease a little, which is harmless; we only must not claim it.
    const after = this.read(key);
    if (after?.identity !== token) return undefined;
    return now + (after.ttlMs || ttlMs);
  }

  async release(key: string, token: string): Promise<void> {
    this.end(key, token);
  }

  async peek(key: string) {
    const current = this.read(key);
    if (current === undefined || !isLive(current)) return undefined;
    return { holder: current.holder, expiresAt: current.expiresAt };
  }

  /**
   * Removes leases expired for over a minute (but not a live holder's, see isLive) and those of
   * holders that are gone (killed processes of this machine), stale tombstones, and temp files
   * that are stale or whose writer is gone.
   */
  async sweep(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if (errorCode(error) === "ENOENT") return;
      throw error;
    }
    const now = Date.now();
    for (const name of names) {
      const path = join(this.dir, name);
      if (name.startsWith(".")) {
        const info = statQuietly(path);
        if (isDeadTemp(name) || (info && now - info.mtimeMs > STALE_TOMBSTONE_MS)) unlinkQuietly(path);
        continue;
      }
      const key = keyOfFileName(name, EXTENSION);
      if (key === undefined) continue;
      const current = this.read(key);
      if (current && !isLive(current) && (now - current.expiresAt > 60_000 || holderIsGone(current))) this.end(key, current.identity);
    }
  }

  /**
   * Removes the lease on `key` if it is still the one identified by `identity`. False when
   * another process is ending that lease (it holds the tombstone), true otherwise.
   */
  private end(key: string, identity: string): boolean {
    const tombstone = join(this.dir, `.end-${fileNameOfKey(key, "")}-${identity}`);
    try {
      writeFileSync(tombstone, "", { flag: "wx" });
    } catch (error) {
      if (errorCode(error) !== "EEXIST") throw error;
      // Someone else is ending this very lease; if they crashed doing it, clear the way.
      const info = statQuietly(tombstone);
      if (info && Date.now() - info.mtimeMs > STALE_TOMBSTONE_MS) unlinkQuietly(tombstone);
      return false;
    }
    try {
      // Only the tombstone's owner removes this lease, and a removed token never
      // comes back, so the lease cannot change between this check and the unlink.
      const current = this.read(key);
      if (current?.identity === identity) unlinkQuietly(this.pathOf(key));
    } finally {
      unlinkQuietly(tombstone);
    }
    return true;
  }

  private read(key: string): CurrentLease | undefined {
    let fd: number;
    try {
      fd = openSync(this.pathOf(key), "r");
    } catch (error) {
      if (errorCode(error) === "ENOENT") return undefined;
      throw error;
    }
    try {
      const info = fstatSync(fd);
      const text = readFileSync(fd, "utf8");
      try {
        const lease = JSON.parse(text) as LeaseFile;
        if (typeof lease.token === "string" && typeof lease.ttlMs === "number") {
          return {
            identity: lease.token,
            holder: String(lease.owner),
            ttlMs: lease.ttlMs,
            expiresAt: Math.round(info.mtimeMs) + lease.ttlMs,
            ...(typeof lease.pid === "number" && typeof lease.host === "string" ? { pid: lease.pid, host: lease.host } : {}),
            ...(typeof lease.start === "number" ? { start: lease.start } : {}),
            ...(typeof lease.space === "string" ? { space: lease.space } : {}),
            ...(typeof lease.startedAt === "number" ? { startedAt: lease.startedAt } : {}),
            ...(typeof lease.machine === "string" ? { machine: lease.machine } : {}),
          };
        }
      } catch {
        // Falls through: unreadable.
      }
      return {
        identity: `unreadable-${info.ino}-${Math.floor(info.mtimeMs)}`,
        holder: "unknown (unreadable lease file)",
        ttlMs: UNREADABLE_LEASE_MS,
        expiresAt: Math.round(info.mtimeMs) + UNREADABLE_LEASE_MS,
      };
    } finally {
      closeSync(fd);
    }
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already, or never made
  }
}

function statQuietly(path: string): { mtimeMs: number } | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
