/**
 * Every error the cache package raises, and `CairnError`, the root of every error
 * Cairn raises (here because @cairn/cache depends on nothing of Cairn's; @cairn/core
 * re-exports it). Each class sets `name`, carries typed fields, a stable `code`, and
 * says what was expected, what arrived and how to fix it.
 */
import { isQuoted, quotesHint } from "./quoted-value.ts";

/**
 * The brand of the error class with code `code`, kept on its prototype. `Symbol.for`, so
 * that copies of this module (Cairn's bundle and its sources, two installs) agree: an
 * error made by one copy passes `is()` of another, where `instanceof` would not.
 */
function brandOf(code: string): symbol {
  return Symbol.for(`cairn.error.${code}`);
}

/** Puts the brand of `cls`, and of each Cairn error class above it, on its prototype; once per class. */
function brandClass(cls: Function): void {
  for (let c = cls; c !== Error && typeof c === "function"; c = Object.getPrototypeOf(c) as Function) {
    if (!Object.hasOwn(c, "code")) continue; // a subclass without its own code is branded as its parent
    const brand = brandOf((c as unknown as { code: string }).code);
    if (Object.hasOwn(c.prototype as object, brand)) return; // this class and those above it are done
    Object.defineProperty(c.prototype, brand, { value: true });
  }
}

/**
 * Base class of every Cairn error, the cache's among them. `CairnError.is(error)` catches
 * them all; `CycleError.is(error)` one class and its subclasses. Each class has a stable
 * `code` (`"CAIRN_CYCLE"`), also on each instance, to tell errors apart in logs and across
 * processes without their classes.
 */
export class CairnError extends Error {
  /** The stable code of this class; each error class sets its own. */
  static readonly code: string = "CAIRN_ERROR";
  override name = "CairnError";
  /** The stable code of this error's class, e.g. `"CAIRN_CYCLE"`: the same in every version and copy of Cairn. */
  readonly code: string;
  /** False when retrying cannot help (bad input, bad definition); the scheduler then does not retry. */
  get retryable(): boolean {
    return true;
  }
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = (new.target as unknown as { code: string }).code;
    brandClass(new.target);
  }

  /**
   * Whether `value` is an error of this class or one of its subclasses, made by any copy of
   * Cairn (the bundle and the sources, two installs): use it instead of `instanceof`.
   * Call it on the class (`CycleError.is(e)`, not a detached `is`): the class says which
   * brand to look for. A subclass that sets no `code` of its own falls back to `instanceof`.
   * @example
   * if (CairnError.is(error)) console.error(`${error.code}: ${error.message}`);
   */
  static is<C extends abstract new (...args: never) => CairnError>(this: C, value: unknown): value is InstanceType<C> {
    if (!Object.hasOwn(this, "code")) return value instanceof this;
    if (typeof value !== "object" || value === null) return false;
    return (value as Record<symbol, unknown>)[brandOf((this as unknown as { code: string }).code)] === true;
  }
}

/** Base class of every cache error; `CacheError.is(error)` catches them all. */
export class CacheError extends CairnError {
  static override readonly code: string = "CAIRN_CACHE";
  override name = "CacheError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Describes a received value for a message: `` `0` (number) ``. */
export function describeReceived(value: unknown): string {
  if (value === undefined) return "`undefined`";
  if (value === null) return "`null`";
  let shown: string;
  try {
    shown = typeof value === "string" ? JSON.stringify(value) : String(JSON.stringify(value) ?? String(value));
  } catch {
    shown = String(value);
  }
  if (shown.length > 80) shown = `${shown.slice(0, 77)}...`;
  const type = Array.isArray(value) ? "array" : typeof value;
  return `\`${shown}\` (${type})`;
}

/** An option or argument has the wrong type or value; raised where it enters. */
export class CacheOptionError extends CacheError {
  static override readonly code: string = "CAIRN_CACHE_OPTION";
  override name = "CacheOptionError";
  constructor(
    readonly option: string,
    readonly expected: string,
    readonly received: unknown,
    readonly hint?: string,
  ) {
    super(
      `Expected \`${option}\` to be ${expected}, got ${describeReceived(received)}.${hint ? ` ${hint}` : ""}`,
    );
  }
}

/** The cache URL names a store this package cannot open. */
export class CacheStoreUrlError extends CacheError {
  static override readonly code: string = "CAIRN_CACHE_STORE_URL";
  override name = "CacheStoreUrlError";
  constructor(
    /** The URL as given, with any password and query secret replaced by `***` (`redactUrl`). */
    readonly url: string,
    readonly details?: {
      cause?: unknown;
      reason?: string;
      /** What was expected of the URL, when not its scheme. */
      expected?: string;
      /** How to fix it, when not by naming another store. */
      hint?: string;
      /** Where the URL came from: `CAIRN_CACHE_URL`, `cache.url`. */
      source?: string;
    },
  ) {
    const options = details;
    super(
      `Expected ${
        options?.expected ??
        "the cache URL to start with redis://, rediss://, postgres:// or postgresql:// (or no URL for the embedded store under .cairn/cache)"
      }, got ${JSON.stringify(url)}${options?.source ? ` from ${options.source}` : ""}` +
        `${options?.reason ? ` (${options.reason})` : ""}.` +
        // A URL copied from a .env file with its quotes: the fix is dropping them, not another URL.
        (isQuoted(url) ? `${quotesHint(options?.source ?? "the URL", url)}` : ` ${options?.hint ?? `Fix the URL, e.g. redis://127.0.0.1:6379 or postgres://user@host:5432/db, or leave it unset.`}`),
      options,
    );
  }
}

/**
 * The store could not be reached, or answered with a refusal (`reply`). Only the first means
 * that it is down: a run goes on without a store that does not answer, but keeps one that
 * refused one operation.
 */
export class CacheBackendError extends CacheError {
  static override readonly code: string = "CAIRN_CACHE_BACKEND";
  override name = "CacheBackendError";
  /**
   * The store's own error answer when it refused the operation (redis: `OOM command not
   * allowed ...`, `READONLY ...`, `WRONGTYPE ...`): it is up. Undefined when it did not answer.
   */
  readonly reply: string | undefined;
  constructor(
    readonly backend: "embedded" | "redis" | "postgres",
    /** Where the store is, with any password and query secret replaced by `***` (`redactUrl`). */
    readonly location: string,
    readonly operation: string,
    options?: { cause?: unknown; hint?: string; reply?: string },
  ) {
    super(
      options?.reply !== undefined
        ? refusedMessage(backend, location, operation, options.reply, options.hint)
        : downMessage(backend, location, operation, options),
      options,
    );
    this.reply = options?.reply;
  }
}

/** The message of a store that did not answer, or failed otherwise. */
function downMessage(backend: string, location: string, operation: string, options?: { cause?: unknown; hint?: string }): string {
  const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : "";
  return (
    `The ${backend} cache at ${location} failed to ${operation}${cause}. ` +
    (options?.hint ??
      (backend === "redis"
        ? `Check that redis is running there and this machine reaches it (\`redis-cli -u ${location} ping\` answers PONG); to run one on this machine, start \`redis-server\` (or \`docker run -d -p 6379:6379 redis\`).`
        : backend === "postgres"
          ? postgresHint()
          : folderHint(operation, options?.cause)))
  );
}

/**
 * What to do about a postgres store's failure: an outage. (A right the URL's user lacks is no
 * outage: the store refuses it as a `CacheStoreUrlError` naming the right and the GRANT.) The
 * right to create in the schema is needed only while a table is missing: the store creates it.
 */
function postgresHint(): string {
  return (
    "Check that postgres is running there and this machine reaches it, and that the URL's user may read and write " +
    "public.keyv and public.cairn_leases (and, while one of them is missing, create it in schema public)."
  );
}

/** What to do about an embedded store's failure, by the file system's error code. */
function folderHint(operation: string, cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOSPC" || code === "EDQUOT") return "The disk (or your quota) is full: free space on it.";
  if (code === "EROFS") return "Its file system is read-only: point the cache at a writable folder.";
  if ((code === "EACCES" || code === "EPERM") && /^(read|list)/.test(operation)) {
    return "This user may not read it: a file written by another user under a private umask (077) is theirs alone; make the folder's files group-readable (chmod -R g+rX), or give each user a cache of their own.";
  }
  if (code === "EACCES" || code === "EPERM") return "This user may not write there: make the folder writable (chmod -R u+w, or g+w for a shared one), or point the cache elsewhere.";
  if (code === "EMFILE" || code === "ENFILE") return "The process ran out of file descriptors: raise the limit (ulimit -n).";
  return "Check that the folder exists and is writable.";
}

/** The message of a store that answered the operation with a refusal. */
function refusedMessage(backend: string, location: string, operation: string, reply: string, hint?: string): string {
  return `The ${backend} cache at ${location} refused to ${operation}: it answered ${JSON.stringify(reply)}. ${hint ?? refusalHint(backend, reply)}`;
}

/** What to do about a store's refusal, by the kind of answer (redis's first word). */
function refusalHint(backend: string, reply: string): string {
  const kind = reply.split(/\s/, 1)[0];
  if (backend === "redis" && kind === "OOM") {
    return "Redis is full: raise its maxmemory, or let it evict (maxmemory-policy allkeys-lru), or prune the cache (cairn cache prune).";
  }
  if (backend === "redis" && kind === "READONLY") return "The URL names a read-only replica: point it at the primary.";
  if (backend === "redis" && kind === "WRONGTYPE") {
    return "Another program keeps other data under the cache's keys: give the cache a database of its own (redis://host:6379/1).";
  }
  return `The ${backend} server is up but refused; its answer says why.`;
}

/**
 * A store opened for reading only (`CacheStore.fromUrl(url, { access: "read" })`) was asked to
 * change something: a mistake in the code that opened it, never retried.
 */
export class CacheReadOnlyError extends CacheError {
  static override readonly code: string = "CAIRN_CACHE_READ_ONLY";
  override name = "CacheReadOnlyError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    /** What it was asked to do: `write an entry`, `delete an entry`, `acquire a lease`. */
    readonly operation: string,
    /** Where the store is, with any password and query secret replaced by `***` (`redactUrl`). */
    readonly location: string,
  ) {
    super(
      `Expected a cache store opened for writing to ${operation}, got the store at ${location} opened with \`access: "read"\`, which changes nothing. ` +
        `Open it with \`access: "write"\` (the default) to change it, or read without changing (\`lookup(key, { keep: true })\`, \`list({ keep: true })\`).`,
    );
  }
}

/** A value cannot be hashed or stored, e.g. it is circular or holds a BigInt. */
export class CacheValueError extends CacheError {
  static override readonly code: string = "CAIRN_CACHE_VALUE";
  override name = "CacheValueError";
  constructor(
    /** Where in the value, e.g. `inputs.config.layers[2]`. */
    readonly path: string,
    readonly reason: string,
    options?: { cause?: unknown; hint?: string },
  ) {
    super(
      `Expected a JSON-serializable value at \`${path}\`, but ${reason}. ` +
        (options?.hint ?? "Pass plain objects, arrays, strings, numbers, booleans and null."),
      options,
    );
  }
}

/** `renew()` found that the lease had expired and another holder took it over. */
export class LeaseLostError extends CacheError {
  static override readonly code: string = "CAIRN_LEASE_LOST";
  override name = "LeaseLostError";
  constructor(
    readonly key: string,
    readonly owner: string,
  ) {
    super(
      `Expected to still hold the lease on cache key ${key} as "${owner}", but it expired and was ` +
        `released or taken over. Renew more often than the lease's ttlMs, or give it a longer ttlMs.`,
    );
  }
}
