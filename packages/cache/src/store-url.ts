/**
 * What is wrong with a store URL, said where it enters: the cache store's (`CAIRN_CACHE_URL`,
 * `cache.url`) and the queue's (`--queue`) read redis URLs by the same rules, so that a URL the
 * one refuses the other does not connect with. ioredis reads a port that is not a number as the
 * default 6379 (a Redis there is used without a word), a port out of range as a dead server,
 * and a path that is not a database number as `SELECT NaN`, which crashed the CLI.
 */
import { hasUnencodedUserInfo } from "./backends/_backend.ts";

/** What a URL's message says: what was expected of it, what it is, how to fix it. */
export interface UrlProblem {
  expected: string;
  reason: string;
  hint: string;
}

/** How to write a user name or password into a store URL. */
export const PERCENT_ENCODE_HINT =
  "Percent-encode the user name and password (encodeURIComponent does): %40 for @, %23 for #, %2F for /, %3F for ?, %3A for :, %25 for %.";

/**
 * Why `url`, of a known `scheme`, does not parse (`new URL` refused it): its port when that is
 * what is wrong, else its user name or password when it has them, else its shape.
 */
export function unparsedUrlProblem(url: string, scheme: string): UrlProblem {
  const port = portText(url);
  if (port !== undefined && !isPort(port)) return portProblem(scheme, port);
  if (url.includes("@")) return { expected: `a ${scheme}:// URL that parses`, reason: "it does not parse as a URL", hint: PERCENT_ENCODE_HINT };
  return { expected: `a ${scheme}:// URL that parses`, reason: "it does not parse as a URL", hint: `Write it as ${scheme}://HOST:PORT, e.g. ${scheme}://127.0.0.1:6379.` };
}

/**
 * What is wrong with a `redis://` or `rediss://` URL, or undefined when nothing is: user info
 * that is not percent-encoded, a URL that does not parse, a port outside 1-65535, a path that
 * is not a database number.
 */
export function redisUrlProblem(url: string): UrlProblem | undefined {
  const scheme = /^(rediss?):\/\//i.exec(url)?.[1]?.toLowerCase() ?? "redis";
  if (hasUnencodedUserInfo(url)) {
    return {
      expected: "the URL's user name and password to be percent-encoded",
      reason: "it holds more than one `@`, or a `#`, `/` or `?` before its last `@`, so part of the password would be read as the host",
      hint: PERCENT_ENCODE_HINT,
    };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return unparsedUrlProblem(url, scheme);
  }
  if (parsed.port !== "" && !isPort(parsed.port)) return portProblem(scheme, parsed.port);
  return redisPathProblem(parsed);
}

/** The path of a redis URL names a database by number, or is empty (database 0). */
export function redisPathProblem(parsed: URL): UrlProblem | undefined {
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
