/**
 * What is wrong with a store URL, said where it enters: the cache store's (`CAIRN_CACHE_URL`,
 * `cache.url`) and the queue's (`--queue`) go through the one {@link parseStoreUrl}, so that a
 * URL the one refuses the other does not connect with. ioredis reads a port that is not a number
 * as the default 6379 (a Redis there is used without a word), a port out of range as a dead
 * server, a path that is not a database number as `SELECT NaN`, which crashed the CLI, and a
 * password holding a raw `%` with a bare "URI malformed" thrown from deep inside it.
 */
import { hasUnencodedUserInfo, redactUrl } from "./backends/_backend.ts";

/** What a URL's message says: what was expected of it, what it is, how to fix it. */
export interface UrlProblem {
  /** What was expected of the URL; undefined when it is its scheme (the caller names the ones it takes). */
  expected?: string;
  reason: string;
  /** How to fix it; undefined when by naming another store (the caller knows which). */
  hint?: string;
}

/** The schemes of a store URL: the cache store takes all four, the queue the redis ones. */
export type StoreScheme = "redis" | "rediss" | "postgres" | "postgresql";

/** A store URL that passed {@link parseStoreUrl}, or what is wrong with it (`cause`: the parser's own error). */
export type ParsedStoreUrl =
  | { problem?: undefined; url: URL; scheme: StoreScheme }
  | { problem: UrlProblem; cause?: unknown };

const STORE_SCHEMES: readonly string[] = ["redis", "rediss", "postgres", "postgresql"] satisfies StoreScheme[];

/** How to write a user name or password into a store URL. */
const PERCENT_ENCODE_HINT =
  "Percent-encode the user name and password (encodeURIComponent does): %40 for @, %23 for #, %2F for /, %3F for ?, %3A for :, %25 for %.";

/**
 * Parses a redis or postgres store URL, or says what is wrong with it: user info that is not
 * percent-encoded (it may parse, with part of the password as the host, and connect there), a
 * URL that does not parse, a scheme that names no store, a user name or password that does not
 * decode, a port outside 1-65535, a redis path that is not a database number. `noun` names the
 * URL in messages ("cache URL": "Expected the cache URL's password to be percent-encoded").
 * The URL is never in a problem: callers print it redacted.
 *
 * @example
 * const store = parseStoreUrl(process.env.CAIRN_CACHE_URL, "cache URL");
 * if (store.problem) throw new CacheStoreUrlError(redactUrl(url), { cause: store.cause, ...store.problem });
 */
export function parseStoreUrl(url: string, noun = "URL"): ParsedStoreUrl {
  if (hasUnencodedUserInfo(url)) {
    return {
      problem: {
        expected: `the ${noun}'s user name and password to be percent-encoded`,
        reason: "it holds more than one `@`, or a `#`, `/` or `?` before its last `@`, so part of the password would be read as the host",
        hint: PERCENT_ENCODE_HINT,
      },
    };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    // Node's TypeError keeps the whole URL as its `input`, which an app that logs the error's
    // cause prints: redacted as the message's URL is (pg-connection-string does the same).
    if (cause instanceof TypeError && "input" in cause) cause.input = redactUrl(String(cause.input));
    // A known scheme that does not parse: a port that is not one, or a password holding `#`, `:` or `%`.
    const scheme = /^(rediss?|postgres(?:ql)?):\/\//i.exec(url)?.[1]?.toLowerCase();
    return { cause, problem: scheme === undefined ? { reason: "not a URL" } : unparsedUrlProblem(url, scheme) };
  }
  const scheme = parsed.protocol.slice(0, -1);
  if (!STORE_SCHEMES.includes(scheme)) return { problem: { reason: `unsupported scheme ${parsed.protocol}` } };
  const undecodable = userInfoProblem(parsed, noun);
  if (undecodable) return undecodable;
  if (parsed.port !== "" && !isPort(parsed.port)) return { problem: portProblem(scheme, parsed.port) };
  const path = scheme === "redis" || scheme === "rediss" ? redisPathProblem(parsed) : undefined;
  if (path) return { problem: path };
  return { url: parsed, scheme: scheme as StoreScheme };
}

/**
 * Why `url`, of a known `scheme`, does not parse (`new URL` refused it): its port when that is
 * what is wrong, else its user name or password when it has them, else its shape.
 */
function unparsedUrlProblem(url: string, scheme: string): UrlProblem {
  const port = portText(url);
  if (port !== undefined && !isPort(port)) return portProblem(scheme, port);
  if (url.includes("@")) return { expected: `a ${scheme}:// URL that parses`, reason: "it does not parse as a URL", hint: PERCENT_ENCODE_HINT };
  return { expected: `a ${scheme}:// URL that parses`, reason: "it does not parse as a URL", hint: `Write it as ${scheme}://HOST:PORT, e.g. ${scheme}://127.0.0.1:6379.` };
}

/**
 * The URL's user name and password must decode: node-redis, ioredis and pg decode them with
 * `decodeURIComponent`, which threw a bare "URI malformed" (with a stack, from deep in the
 * client) for a raw `%` that does not start an escape. Neither part is ever printed.
 */
function userInfoProblem(parsed: URL, noun: string): ParsedStoreUrl | undefined {
  for (const [part, value] of [
    ["password", parsed.password],
    ["user name", parsed.username],
  ] as const) {
    try {
      decodeURIComponent(value);
    } catch (cause) {
      return {
        cause,
        problem: {
          expected: `the ${noun}'s ${part} to be percent-encoded`,
          reason: `its ${part} does not decode: a \`%\` must start an escape of UTF-8 bytes, such as %25`,
          hint: `Percent-encode the ${part} (encodeURIComponent does): %25 for %, %40 for @, %3A for :, %2F for /.`,
        },
      };
    }
  }
  return undefined;
}

/** The path of a redis URL names a database by number, or is empty (database 0). */
function redisPathProblem(parsed: URL): UrlProblem | undefined {
  if (/^\/?\d*$/.test(parsed.pathname)) return undefined;
  return {
    expected: "the path of a redis URL to be a database number (redis://host:6379/1) or nothing",
    reason: `its path is ${JSON.stringify(parsed.pathname)}`,
    hint: "Give a database number, or leave the path out for database 0.",
  };
}

function portProblem(scheme: string, port: string): UrlProblem {
  return {
    expected: `the port of a ${scheme}:// URL to be a number from 1 to 65535`,
    reason: `its port is ${JSON.stringify(port)}`,
    hint: `Give the port in digits, or leave \`:PORT\` out for ${scheme === "postgres" || scheme === "postgresql" ? "5432" : "6379"}.`,
  };
}

function isPort(text: string): boolean {
  return /^\d{1,5}$/.test(text) && Number(text) >= 1 && Number(text) <= 65535;
}

/** The text after the host's `:`, as written (undefined when there is none). */
function portText(url: string): string | undefined {
  const start = url.indexOf("//");
  if (start === -1) return undefined;
  const rest = url.slice(start + 2);
  const authority = rest.slice(0, rest.search(/[/?#]|$/));
  const host = authority.slice(authority.lastIndexOf("@") + 1);
  const colon = host.startsWith("[") ? host.indexOf("]:") + 1 : host.lastIndexOf(":");
  return colon > 0 ? host.slice(colon + 1) : undefined;
}
