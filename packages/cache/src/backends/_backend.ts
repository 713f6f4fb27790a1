/** @internal What `CacheStore` needs from each kind of store. */
import { Keyv } from "keyv";
import type { LeaseBackend } from "../lease.ts";

/** A stored value that could not be parsed; the store treats it as a miss and evicts it. */
export const CORRUPT = Object.freeze({ $cairn: "corrupt-value" });

/**
 * keyv (de)serializers shared by every backend: plain JSON, and a value that
 * does not parse becomes {@link CORRUPT} instead of throwing inside keyv.
 */
export const jsonSerialization = {
  serialize: (data: unknown) => JSON.stringify(data),
  deserialize: (text: string) => {
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) return parsed;
    } catch {
      // Falls through.
    }
    return { value: CORRUPT };
  },
} as const;

/**
 * The (de)serializers of a store that machines share (redis, postgres): as {@link jsonSerialization},
 * without keyv's `expires`. keyv stamps it with the writer's clock and, on a read by a clock that
 * says it has passed, deletes the key: a writer whose clock ran behind made an entry dead for
 * everyone while redis kept it, and a reader whose clock ran ahead wiped live entries from the
 * shared store by listing them. The store's own clock judges expiry instead (redis: the key's
 * `PX`; postgres: the database's clock); an `expires` of an entry written before is ignored too.
 */
export const sharedStoreSerialization = {
  serialize: (data: { value?: unknown }) => JSON.stringify({ value: data.value }),
  deserialize: (text: string) => {
    const parsed = jsonSerialization.deserialize(text);
    delete (parsed as { expires?: unknown }).expires;
    return parsed;
  },
} as const;

/** @internal A value as stored: the entry, and when it expires (epoch ms) if it does. */
export interface StoredValue {
  value: unknown;
  expires?: number;
}

/** @internal One opened store: entries through keyv, leases, and housekeeping. */
export interface CacheBackend {
  kind: "embedded" | "redis" | "postgres";
  /** Where it is, safe to print: the URL through {@link redactUrl}. */
  location: string;
  keyv: Keyv;
  leases: LeaseBackend;
  /**
   * Iterates `[key, value]` of every live entry. Expired ones are skipped: the embedded store
   * removes them on the way; redis has removed them itself; postgres leaves them to `sweep`.
   */
  entries(): AsyncIterable<[string, unknown]>;
  /**
   * For a store whose expiry keyv judges (the embedded one: `expires` inside the value), which
   * deletes an expired value when `keyv.get` or its iterator meets it: reads that change nothing,
   * giving the value with its `expires`, so read-only callers see an expired entry, and leave it.
   * Without these, reads through keyv delete nothing (the store judges expiry itself).
   */
  readStored?(key: string): Promise<StoredValue | undefined>;
  storedEntries?(): AsyncIterable<[string, StoredValue]>;
  /**
   * For a store that keeps an index of its entries by task (the embedded one): as
   * {@link storedEntries}, of `taskName`'s entries made before `before` only, newest first,
   * reading no entry of another task. Without it, a task's entries are found by reading all.
   */
  storedEntriesOf?(taskName: string, before?: number): AsyncIterable<[string, StoredValue]>;
  /** Records `entry` in that index; called before the entry is written. */
  noteEntry?(entry: { key: string; taskName: string; createdAt: number }): Promise<void>;
  /** The failure to report for `error` (an adapter's generic "not connected" becomes why it is not). */
  explain?(error: unknown): unknown;
  /**
   * The store's own error answer in `error` (redis: `OOM ...`, `READONLY ...`), else undefined.
   * A store that answers is up: its refusal is not tried again nor taken for a dead store.
   */
  refusal?(error: unknown): string | undefined;
  /**
   * For `error`, a refusal for a right the URL's user lacks (postgres: 42501), what
   * `CacheStoreUrlError` says of it (which right, on what, the GRANT); else undefined. A mistake
   * in the user's rights, as a wrong password is: not tried again, not a dead store.
   */
  denied?(error: unknown, operation: string): Promise<{ expected: string; reason: string; hint: string } | undefined>;
  /** Extra housekeeping for `prune`, e.g. temp files of crashed writers. */
  sweep?(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Query parameters whose values a message shows: they say how to reach the store, never with
 * what secret. Any other parameter's value is hidden, a parameter not listed here included:
 * node-postgres reads every parameter of a URL as a connection setting (`?password=`,
 * `?sslpassword=`, `?user=`), and a list of the secret ones would miss the next driver's.
 */
const SHOWN_PARAMETERS: ReadonlySet<string> = new Set([
  "sslmode",
  "ssl",
  "sslnegotiation",
  "uselibpqcompat",
  "host",
  "port",
  "db",
  "database",
  "family",
  "application_name",
  "fallback_application_name",
  "client_encoding",
  "encoding",
  "connect_timeout",
  "keepalives",
  "keepalives_idle",
  "statement_timeout",
  "query_timeout",
  "lock_timeout",
  "idle_in_transaction_session_timeout",
  "target_session_attrs",
]);

/**
 * A URL without its secrets, for messages; also one that does not parse. The one redaction of
 * URLs Cairn prints: cache store URLs, queue URLs, tracking URIs and http task URLs (`redactUri`
 * of @cairn/core). Hidden as `***`: the password and a user name (`user:***@`, `***@`), the value
 * of every query parameter but those in {@link SHOWN_PARAMETERS} (`?password=***`) and everything
 * after it, and a fragment. A URL with more than one `@`, or a `/`, `?` or `#` before its last
 * `@`, is hidden from `//` to its last `@`: its password may hold them unencoded. But for a URL
 * with an `@` only at the start of a path segment (an npm scope, `https://registry.npmjs.org/@types/node`),
 * no user info as the URL standard reads it, and a host name, an IP address or `localhost` (and a
 * port) between `//` and its first `/`: shown as it is. A URL with none of these is returned as it is.
 *
 * @example redactUrl("postgres://me:pw@db/cairn?sslmode=require&password=pw") // "postgres://me:***@db/cairn?sslmode=require&password=***"
 */
export function redactUrl(url: string): string {
  // A value copied from a .env file with its quotes keeps them, so that its message can say so.
  const quote = url[0];
  if (url.length >= 2 && (quote === '"' || quote === "'") && url.at(-1) === quote) return `${quote}${redactUrl(url.slice(1, -1))}${quote}`;
  return redactQuery(redactUserInfo(url));
}

/**
 * A host as written between `//` and the first `/`: a name with a dot, `localhost`, an IPv4
 * address or a bracketed IPv6 one, with an optional port, and nothing else (no `:` but a port's).
 */
const PLAIN_AUTHORITY = /^(?:[a-z0-9_-]+(?:\.[a-z0-9_-]+)+\.?|localhost|\[[0-9a-f:.]+\])(?::\d+)?$/i;

/**
 * Whether `url` is an http(s) URL whose one `@` starts its first path segment, with no user info as the URL standard reads it (an npm scope:
 * `https://registry.npmjs.org/@types/node`, `http://localhost:4873/@scope/pkg`). Only then is an
 * `@` shown: a token or password holding an unencoded `/` parses with no user info too
 * (`https://ab/cd@host`, base64; `redis://john.doe:2024/s3cret/@cache.example:6379`), but its
 * authority is no plain host, its scheme no http(s), or its `@` is not where a scope is.
 */
function isScopedPath(url: string): boolean {
  const scheme = /^https?:\/\//i.exec(url);
  if (!scheme) return false;
  const start = scheme[0].length;
  const authorityEnd = url.indexOf("/", start);
  if (authorityEnd === -1 || !PLAIN_AUTHORITY.test(url.slice(start, authorityEnd))) return false;
  // One `@`, where a scope is: first in the path (`/@types/node`, `/@types%2fnode`).
  const at = url.indexOf("@");
  if (at !== authorityEnd + 1 || url.indexOf("@", at + 1) !== -1) return false;
  try {
    const parsed = new URL(url);
    return parsed.username === "" && parsed.password === "";
  } catch {
    return false;
  }
}

/** `url` with its user info hidden (see {@link redactUrl}). */
function redactUserInfo(url: string): string {
  if (isScopedPath(url)) return url;
  let parsed: URL | undefined;
  try {
    // A URL whose password holds an unencoded `@`, `#`, `/` or `?` may parse, with the password
    // cut short and the rest of it taken for the host or a fragment (`redis://u:p@ss#word@host`
    // parses with password `p`), or with no user info at all (`https://ab/cd@host`: host `ab`):
    // never trusted, it is masked by the unparsed rule below.
    parsed = hasUnencodedUserInfo(url) ? undefined : new URL(url);
  } catch {
    parsed = undefined;
  }
  // Rebuilt by the parser (`http://u:***@host/`), as Cairn always showed such a URL: an http
  // task's key holds the URL as shown, so the same URL must show the same.
  if (parsed?.password) {
    parsed.password = "***";
    return parsed.toString();
  }
  // A user name alone is often a token (`https://ghp_xxx@host`): hidden too.
  if (parsed?.username && url.lastIndexOf("@") > url.indexOf("//")) {
    parsed.username = "***";
    return parsed.toString();
  }
  // Parsed without a password and no `@`: nothing to hide. Parsed with an `@` but no password,
  // the parser took part of the password for a port and a path (`http://u:123/x@host`).
  if (parsed && !url.includes("@")) return url;
  // Unparsed, the password runs from the first `:` after `//` to the LAST `@`: a password
  // that breaks parsing often holds `@`, `/` or `%` itself, and stopping at its first `@`
  // printed the rest of it. An `@` further on (in a path) hides a little more, never less.
  // Only the hidden part is replaced, the rest kept as written (no parser rebuilds it).
  const start = url.indexOf("//");
  const at = url.lastIndexOf("@");
  if (start === -1 || at < start) return url;
  // A query parameter before the last `@` (`/db?password=p@ss`): what follows that `@` is as
  // likely the rest of the parameter's value as a host, so none of it is shown.
  if (/[?#][^]*=/.test(url.slice(start + 2, at))) return `${url.slice(0, start + 2)}***`;
  // The user name is kept only when it is plainly one: before the first `@`, with no `/`, `?` or
  // `#` in it. A `:` further on belongs to a port (`http://tok@host:8080/@x` showed `tok`).
  const colon = url.indexOf(":", start + 2);
  const user = url.slice(start + 2, colon);
  if (colon === -1 || colon > url.indexOf("@", start + 2) || /[/?#\\]/.test(user)) return `${url.slice(0, start + 2)}***${url.slice(at)}`;
  return `${url.slice(0, colon)}:***${url.slice(at)}`;
}

/**
 * `url` with its query's values hidden but those of {@link SHOWN_PARAMETERS}, and its fragment.
 * From the first other parameter on, the rest is one `***`: a value may hold an unencoded `&`
 * or `#` (`?password=a&b`), which would show the rest of it as more parameters or a fragment.
 */
function redactQuery(url: string): string {
  const split = splitQuery(url);
  if (split === undefined) return url;
  if (split.fragment !== undefined) return `${split.head}#***`;
  const shown = [...split.shown];
  if (split.hidden !== undefined) shown.push(split.hidden.name !== undefined ? `${split.hidden.name}=***` : "***");
  return shown.length === 0 ? split.head : `${split.head}?${shown.join("&")}`;
}

/**
 * `url`'s query as {@link redactQuery} tells it apart: the part before it (`head`), the pairs
 * shown, and the text hidden from the first other parameter on (after its name when that name is
 * shown); or a fragment, hidden whole. Undefined when there is neither.
 */
function splitQuery(url: string): { head: string; shown: string[]; hidden?: { name: string | undefined; text: string }; fragment?: string } | undefined {
  const start = url.indexOf("//");
  const from = start === -1 ? 0 : start + 2;
  const offset = url.slice(from).search(/[?#]/);
  if (offset === -1) return undefined;
  const head = url.slice(0, from + offset);
  const rest = url.slice(from + offset + 1);
  if (rest === "") return undefined;
  if (url[from + offset] === "#") return { head, shown: [], fragment: rest };
  const shown: string[] = [];
  let at = 0;
  for (const pair of rest.split("&")) {
    const here = at;
    at += pair.length + 1;
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const name = pair.slice(0, eq === -1 ? 0 : eq);
    if (name !== "" && !pair.includes("#") && SHOWN_PARAMETERS.has(name)) {
      shown.push(pair);
      continue;
    }
    // A name alone (`?ghp_xxx`) may be a token itself: only a plain one is shown.
    const plain = /^[A-Za-z_][\w.-]*$/.test(name);
    return { head, shown, hidden: { name: plain ? name : undefined, text: rest.slice(plain ? here + eq + 1 : here) } };
  }
  return { head, shown };
}

/**
 * The texts of `url`'s query and fragment that {@link redactUrl} hides, as `url` holds them (not
 * decoded): all from the first hidden value on, as one text, then each value in it (a pair
 * without a `=`, whole), and the fragment. For masking them where the URL itself is not what is
 * shown: an http task's server may echo its request's URL in the answer its error quotes.
 *
 * @example hiddenQueryTexts("postgres://db/cairn?sslmode=require&password=pw&x=1") // ["pw&x=1", "pw", "1"]
 */
export function hiddenQueryTexts(url: string): string[] {
  const split = splitQuery(url);
  if (split === undefined) return [];
  if (split.fragment !== undefined) return [split.fragment];
  if (split.hidden === undefined) return [];
  const [first, ...more] = split.hidden.text.split("&");
  // The first piece is a value already when its name is shown; the rest are pairs.
  const values = [first!, ...more.map((pair) => (pair.includes("=") ? pair.slice(pair.indexOf("=") + 1) : pair))];
  return [...new Set([split.hidden.text, ...values])].filter((text) => text !== "");
}

/**
 * Whether the text after `//` holds more than one `@`, or a `#`, `/` or `?` before its last `@`:
 * the user name or password holds one of them unencoded, and the URL would be read with part of
 * the password as its host (`redis://u:p@ss#word@host` names host `ss`). Such a URL is refused
 * (percent-encode them: %40 for @, %23 for #, %2F for /, %3F for ?), never opened.
 */
export function hasUnencodedUserInfo(url: string): boolean {
  const start = url.indexOf("//");
  if (start === -1) return false;
  const rest = url.slice(start + 2);
  const at = rest.lastIndexOf("@");
  return at !== -1 && (rest.indexOf("@") !== at || /[#/?]/.test(rest.slice(0, at)));
}

/** The iterator keyv builds for `store` (keyv only builds one for adapters it knows). */
export function entriesOf(keyv: Keyv, store: { iterator?: unknown }): () => AsyncIterable<[string, unknown]> {
  const iterator =
    keyv.iterator ?? (typeof store.iterator === "function" ? keyv.generateIterator(store.iterator.bind(store)) : undefined);
  if (!iterator) throw new Error("this keyv store cannot list its keys");
  return () => iterator(undefined) as AsyncIterable<[string, unknown]>;
}
