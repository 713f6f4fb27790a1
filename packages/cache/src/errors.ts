/**
 * Every error the cache package raises. Each class sets `name`, carries typed
 * fields, and says what was expected, what arrived and how to fix it.
 */

/** Base class of every cache error; `instanceof CacheError` catches them all. */
export class CacheError extends Error {
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
  override name = "CacheStoreUrlError";
  constructor(
    /** The URL as given, with any password replaced by `***`. */
    readonly url: string,
    options?: { cause?: unknown; reason?: string },
  ) {
    super(
      `Expected the cache URL to start with redis://, rediss://, postgres:// or postgresql:// ` +
        `(or no URL for the embedded store under .cairn/cache), got ${JSON.stringify(url)}` +
        `${options?.reason ? ` (${options.reason})` : ""}. ` +
        `Fix the URL, e.g. redis://127.0.0.1:6379 or postgres://user@host:5432/db, or leave it unset.`,
      options,
    );
  }
}

/** The store could not be reached or answered with an error. */
export class CacheBackendError extends CacheError {
  override name = "CacheBackendError";
  constructor(
    readonly backend: "embedded" | "redis" | "postgres",
    /** Where the store is, with any password replaced by `***`. */
    readonly location: string,
    readonly operation: string,
    options?: { cause?: unknown; hint?: string },
  ) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : "";
    super(
      `The ${backend} cache at ${location} failed to ${operation}${cause}. ` +
        (options?.hint ??
          (backend === "redis"
            ? "Check that redis is running and reachable (scripts/start-redis.sh starts one locally)."
            : backend === "postgres"
              ? "Check that postgres is running and that the URL's user may create tables."
              : "Check that the folder exists and is writable.")),
      options,
    );
  }
}

/** A value cannot be hashed or stored, e.g. it is circular or holds a BigInt. */
export class CacheValueError extends CacheError {
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
