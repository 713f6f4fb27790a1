/**
 * What of a thrown value Cairn may write where others read it (a task's `cairn/error.txt`, the
 * message of a NonErrorThrownError, hence the terminal, the tags and MLflow): a bounded copy with
 * credentials taken out by where they sit, not by their value. The secret registry masks the
 * values it knows; a token a task read from `process.env` itself, or a password a library put in
 * its request settings, it has never seen. So in any object, a key that names a credential
 * ({@link CREDENTIAL_KEY}) has its value replaced by `***`, and of an HTTP client's error (axios's
 * and its look-alikes) the request settings and the request itself (`config`, `request`: headers,
 * auth, the raw request text) are left out whole. So is, wherever it sits, a Node stream (an
 * http.ClientRequest holds the raw request text, an http.IncomingMessage the server's raw headers,
 * a socket both), as an error built by got or needle carries them, and the raw header fields
 * (`_header`, `rawHeaders`) of anything that looks like one. The one redaction for every such place.
 */
import { Stream } from "node:stream";
import { inspect, types } from "node:util";
import { isError } from "./events.ts";

/** What replaces the value of a key that names a credential. */
export const REDACTED = "***";

/** Key names that name credentials, anywhere in the key and in any case: `Authorization`, `set-cookie`, `client_secret`, `x-api-key`, `refreshToken`. */
const CREDENTIAL_KEY = /authorization|cookie|password|passwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key/i;

/** Keys of an HTTP client's error (and of its response) that hold the request: its headers, auth and raw text. */
const REQUEST_KEYS = new Set(["config", "request"]);

/** Keys that hold raw header text or header pairs (a ClientRequest's `_header`, an IncomingMessage's `rawHeaders`): left out whole. */
const RAW_HEADER_KEYS = new Set(["_header", "rawHeaders", "rawTrailers"]);

/** How deep, how wide and how long a redacted copy goes; past it, what inspect would say (`[Object]`, `... 5 more items`). */
const MAX_DEPTH = 4;
const MAX_KEYS = 30;
const MAX_ITEMS = 20;
const MAX_STRING = 1_000;

/** True when `key` names a credential, so its value is never written. */
export function isCredentialKey(key: string): boolean {
  return CREDENTIAL_KEY.test(key);
}

/**
 * A copy of `value` fit to be written: credentials by key name replaced by {@link REDACTED}, an
 * HTTP client's request settings left out, and bounded (depth, keys, items, string lengths), cycles
 * cut. Plain objects, arrays, Maps and Sets are copied (a class instance as a plain object of its
 * own enumerable fields); other values are kept as they are. Never throws: what cannot be read
 * (a getter or a Proxy trap that throws) is shown as `[unreadable]`.
 */
export function redactCredentials(value: unknown): unknown {
  return copy(value, 0, new Set());
}

/**
 * The own enumerable fields of `error` (an Error's beyond its name, message, stack, cause and
 * inner errors, which are written apart), redacted as {@link redactCredentials} does; empty when
 * it has none or they cannot be read.
 */
export function errorFields(error: object): Array<[string, unknown]> {
  const seen = new Set<unknown>([error]);
  const fields: Array<[string, unknown]> = [];
  try {
    const keys = Object.keys(error).filter((key) => !(isError(error) && ERROR_OWN_KEYS.has(key)));
    const requestHidden = isHttpClientError(error);
    for (const key of keys.slice(0, MAX_KEYS)) fields.push([key, copyField(error, key, requestHidden, 1, seen)]);
    if (keys.length > MAX_KEYS) fields.push(["...", marker(`${keys.length - MAX_KEYS} more fields`)]);
  } catch {
    return [];
  }
  return fields;
}

/** The keys of an Error that errorText writes on lines of their own. */
const ERROR_OWN_KEYS = new Set(["name", "message", "stack", "cause", "errors"]);

function copy(value: unknown, depth: number, seen: Set<unknown>): unknown {
  if (typeof value === "string") return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}... [${value.length} characters]` : value;
  if (typeof value !== "object" || value === null) return value;
  if (seen.has(value)) return marker("Circular");
  try {
    if (value instanceof Marker) return value;
    if (isError(value)) return marker(`${String(value.name)}: ${String(value.message)}`);
    if (value instanceof Stream) return marker(`left out: ${streamName(value)}, which may hold the headers it sent or received`);
    const array = Array.isArray(value);
    if (isKeptWhole(value)) return value;
    if (depth >= MAX_DEPTH) return marker(array ? "Array" : "Object");
    seen.add(value);
    try {
      if (array) return isHeaderPairs(value) ? copyHeaderPairs(value, depth, seen) : copyItems(value, depth, seen);
      if (types.isMap(value)) return copyMap(value as Map<unknown, unknown>, depth, seen);
      if (types.isSet(value)) return new Set(copyItems([...(value as Set<unknown>)], depth, seen));
      return copyObject(value, depth, seen);
    } finally {
      seen.delete(value);
    }
  } catch {
    return marker("unreadable");
  }
}

function copyItems(items: readonly unknown[], depth: number, seen: Set<unknown>): unknown[] {
  const kept = items.slice(0, MAX_ITEMS).map((item) => copy(item, depth + 1, seen));
  if (items.length > MAX_ITEMS) kept.push(marker(`... ${items.length - MAX_ITEMS} more items`));
  return kept;
}

/** A flat list of header pairs (`["Authorization", "Bearer …", "Accept", "text/csv"]`), as got and Node's `headers` options take them: a credential's name at an even place. */
function isHeaderPairs(items: readonly unknown[]): boolean {
  return items.length >= 2 && items.length % 2 === 0 && items.some((item, at) => at % 2 === 0 && typeof item === "string" && isCredentialKey(item));
}

/** Header pairs copied with the value after a credential's name replaced by {@link REDACTED}. */
function copyHeaderPairs(items: readonly unknown[], depth: number, seen: Set<unknown>): unknown[] {
  const kept = copyItems(items, depth, seen);
  for (let at = 1; at < kept.length && at < MAX_ITEMS; at += 2) {
    const name = items[at - 1];
    if (typeof name === "string" && isCredentialKey(name)) kept[at] = REDACTED;
  }
  return kept;
}

function copyMap(map: Map<unknown, unknown>, depth: number, seen: Set<unknown>): Map<unknown, unknown> {
  const kept = new Map<unknown, unknown>();
  for (const [key, item] of [...map].slice(0, MAX_ITEMS)) {
    kept.set(key, typeof key === "string" && isCredentialKey(key) ? REDACTED : copy(item, depth + 1, seen));
  }
  if (map.size > MAX_ITEMS) kept.set(marker("..."), marker(`${map.size - MAX_ITEMS} more entries`));
  return kept;
}

function copyObject(value: object, depth: number, seen: Set<unknown>): Record<string, unknown> {
  const kept = emptyLike(value);
  const keys = Object.keys(value);
  const requestHidden = isHttpClientError(value);
  for (const key of keys.slice(0, MAX_KEYS)) {
    // defineProperty: a key such as `__proto__` stays a key of the copy.
    Object.defineProperty(kept, key, { value: copyField(value, key, requestHidden, depth + 1, seen), enumerable: true, writable: true, configurable: true });
  }
  if (keys.length > MAX_KEYS) kept["..."] = marker(`${keys.length - MAX_KEYS} more fields`);
  return kept;
}

/** Field `key` of `owner`, redacted: `***` for a credential, left out for an HTTP client's request, else copied. */
function copyField(owner: object, key: string, requestHidden: boolean, depth: number, seen: Set<unknown>): unknown {
  if (isCredentialKey(key)) return REDACTED;
  if (requestHidden && REQUEST_KEYS.has(key)) return marker("left out: the request's settings may hold credentials");
  if (RAW_HEADER_KEYS.has(key)) return marker("left out: raw headers may hold credentials");
  let field: unknown;
  try {
    field = (owner as Record<string, unknown>)[key];
  } catch {
    return marker("unreadable");
  }
  return copy(field, depth, seen);
}

/**
 * An empty object that inspect names as it names `value` (`HttpError { ... }`, `AxiosHeaders { ... }`):
 * of its prototype, unless that prototype shows its instances itself (`inspect.custom`), which
 * would read the copy as if it were the original; then a plain object.
 */
function emptyLike(value: object): Record<string, unknown> {
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype === null || prototype === Object.prototype || typeof prototype !== "object") return {};
  return inspect.custom in prototype ? {} : (Object.create(prototype) as Record<string, unknown>);
}

/**
 * An HTTP client's error or response: axios marks its errors (`isAxiosError`); its look-alikes and
 * its responses carry the request settings (`config`) beside the request or the response.
 */
function isHttpClientError(value: object): boolean {
  const fields = value as Record<string, unknown>;
  if (fields.isAxiosError === true) return true;
  return typeof fields.config === "object" && fields.config !== null && ("request" in value || "response" in value);
}

/** The class of a stream as a reader knows it (`ClientRequest`, `IncomingMessage`, `TLSSocket`), else "a stream". */
function streamName(stream: Stream): string {
  const name: unknown = stream.constructor?.name;
  return typeof name === "string" && name !== "" ? name : "a stream";
}

/** A built-in value with no fields to redact (a Date, a RegExp, bytes, a Promise): inspect shows it bounded as it is. */
function isKeptWhole(value: object): boolean {
  return (
    types.isDate(value) ||
    types.isRegExp(value) ||
    types.isAnyArrayBuffer(value) ||
    ArrayBuffer.isView(value) ||
    types.isPromise(value) ||
    types.isWeakMap(value) ||
    types.isWeakSet(value) ||
    types.isBoxedPrimitive(value)
  );
}

/** A word in place of a value, which `util.inspect` shows bare, as it shows its own `[Object]` and `[Circular]`. */
class Marker {
  constructor(private readonly text: string) {}
  [inspect.custom](): string {
    return `[${this.text}]`;
  }
}

function marker(text: string): Marker {
  return new Marker(text);
}
