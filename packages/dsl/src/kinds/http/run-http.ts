/**
 * The HTTP executor: sends a task's inputs as JSON to an endpoint and returns the
 * JSON response as the task's outputs. Network errors, timeouts, 429 and 5xx are retried with
 * exponential backoff (p-retry, as every retry in Cairn; `Retry-After` honoured); other
 * statuses, and requests that fail the same way each time (a redirect loop, a body over the
 * limit), fail at once. Credential header values, the URL's user info and hidden query values, and
 * the run's secrets never appear in errors or logs: what a server answers is masked before it is shown.
 */
import { setTimeout as delay } from "node:timers/promises";
import type { AxiosResponse } from "axios";
import pRetry from "p-retry";
import { hiddenQueryTexts } from "@cairn/cache";
import { CancelledError, redactUri, retryAfterMs, SecretRegistry, type TaskContext } from "@cairn/core";
import { HttpTaskError } from "./errors.ts";

/** One HTTP task's request settings. */
export interface HttpSpec {
  url: string;
  /** @default "POST" */
  method?: string;
  headers?: Readonly<Record<string, string>>;
  /** Timeout of one request, in ms, the whole of it (connecting, waiting, reading the body). @default 30000 */
  timeoutMs?: number;
  /** Retries after a network error, a timeout, 429 or 5xx. @default 3 */
  retries?: number;
  /** Delay before the first retry, in ms; doubles each time (with jitter), capped by maxDelayMs. @default 500 */
  minDelayMs?: number;
  /** @default 10000 */
  maxDelayMs?: number;
  /** The largest response body read, in MB of 1,048,576 bytes, counted after decompression. @default 64 */
  maxResponseMB?: number;
}

/** {@link HttpSpec.maxResponseMB}'s default. */
export const HTTP_MAX_RESPONSE_MB = 64;

/** Methods whose inputs go in the query string instead of a body. */
const NO_BODY = new Set(["GET", "HEAD", "DELETE", "OPTIONS"]);

/** A response or a network error worth another request; it becomes an HttpTaskError when the retries run out. */
class TransientFailure extends Error {
  constructor(
    readonly status: number | undefined,
    readonly detail: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(detail);
  }
}

/**
 * Network errors worth another request: the connection was refused, cut or timed out, or the
 * name did not resolve (a DNS server or a container not up yet). Others (a redirect loop, a
 * body over the limit, a bad certificate, a header Node refuses) fail the same way each time.
 */
const TRANSIENT_CODES = new Set([
  "ECONNRESET", // "socket hang up" too
  "ECONNREFUSED",
  "ETIMEDOUT",
  "ECONNABORTED",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EPIPE",
  "ENETUNREACH",
  "ENETDOWN",
  "EHOSTUNREACH",
  "EHOSTDOWN",
]);

/** Characters a header value cannot carry as given: axios drops control characters (a line break) and those outside Latin-1. */
// eslint-disable-next-line no-control-regex -- control characters are what this finds
const UNSENDABLE_HEADER_CHARS = /[\u0000-\u0008\u000a-\u001f\u007f]|[^\u0000-\u00ff]/;

/** Runs one attempt of an HTTP task: the request (with its own retries) and the parsed JSON response. */
export async function runHttp(spec: HttpSpec, inputs: Readonly<Record<string, unknown>>, ctx: TaskContext): Promise<unknown> {
  const method = (spec.method ?? "POST").toUpperCase();
  const retries = spec.retries ?? 3;
  const minDelay = spec.minDelayMs ?? 500;
  const maxDelay = spec.maxDelayMs ?? 10_000;
  const timeoutMs = spec.timeoutMs ?? 30_000;
  const maxResponseMB = spec.maxResponseMB ?? HTTP_MAX_RESPONSE_MB;
  const headers = spec.headers ?? {};
  const url = NO_BODY.has(method) ? withQuery(spec.url, inputs) : spec.url;
  // Every URL shown is redacted as store and tracking URLs are: `http://user:pw@host` prints as `user:***@`.
  const shownUrl = redactUri(spec.url);
  const own = ownValues(headers, spec.url);
  // What the server answers may echo a header or a secret in any escaping: masked before it is cut or quoted.
  const clean = (text: string): string => (own ? own.mask(ctx.mask(text)) : ctx.mask(text));
  const fail = (status: number | undefined, attempts: number, detail: string, final = false) => new HttpTaskError(ctx.nodeId, method, shownUrl, status, attempts, clean(detail), final);
  const snippet = (body: string) => snippetOf(body, clean);

  for (const [name, value] of Object.entries(headers)) {
    // axios would drop an inner line break or a character outside Latin-1 without a word, sending another value.
    if (UNSENDABLE_HEADER_CHARS.test(String(value).trim())) {
      throw fail(
        undefined,
        0,
        `request header \`${name}\` holds a line break, another control character or a character outside Latin-1, which an HTTP header cannot carry ` +
          `(its value is not shown). Check the value the task's \`headers\` give it (a secret read from a file with a line break in it, say); not retried.`,
        true,
      );
    }
  }
  let attempts = 0;

  const once = async (): Promise<unknown> => {
    attempts++;
    let response: AxiosResponse<string>;
    // The whole request is bounded, a body that trickles in too: axios's own `timeout` is reset by each packet.
    const timer = AbortSignal.timeout(timeoutMs);
    try {
      // Loaded on first use: flows without http tasks never pay for it.
      const { axios } = await import("./axios.ts");
      response = await axios.request<string>({
        url,
        method,
        headers: { Accept: "application/json", ...(NO_BODY.has(method) ? {} : { "Content-Type": "application/json" }), ...headers },
        ...(NO_BODY.has(method) ? {} : { data: JSON.stringify(inputs) }),
        timeout: timeoutMs,
        signal: AbortSignal.any([ctx.signal, timer]),
        responseType: "text",
        transformResponse: (d: unknown) => d, // parse ourselves, for clear errors
        validateStatus: () => true,
        maxRedirects: 5,
        // A redirect to another origin (scheme, host or port) is followed without the task's own headers:
        // they are for the server the task names (follow-redirects drops only Authorization and Cookie).
        sensitiveHeaders: Object.keys(headers),
        maxContentLength: maxResponseMB * 1024 * 1024,
      });
    } catch (error) {
      if (ctx.signal.aborted) throw ctx.signal.reason ?? new CancelledError();
      // Only the code and message: axios errors carry the request config, headers included.
      const e = error as { code?: string; message?: string };
      if (timer.aborted || e.code === "ECONNABORTED") {
        throw new TransientFailure(undefined, `no response within ${timeoutMs} ms (\`timeoutMs\` bounds each request whole, its body included)`, undefined);
      }
      const message = e.message ?? "";
      if (message.startsWith("maxContentLength size")) {
        throw fail(
          undefined,
          attempts,
          `the response body is larger than ${maxResponseMB} MB (\`maxResponseMB\`, counted after decompression); raise \`maxResponseMB\` if the endpoint should answer with more. Not retried.`,
          true,
        );
      }
      const detail = `${e.code ?? "network error"}: ${message}`;
      // A server that closes the connection in the middle of its body: axios's code for that is also its code for a body over the limit.
      if (TRANSIENT_CODES.has(e.code ?? "") || message === "stream has been aborted") throw new TransientFailure(undefined, detail, undefined);
      throw fail(undefined, attempts, `${detail}. The same request fails so on every try: not retried.`, true);
    }
    const { status } = response;
    if (status === 429 || status >= 500) {
      throw new TransientFailure(status, `${snippet(response.data)} (retried ${retries} time${retries === 1 ? "" : "s"}; raise retries or check the server)`, retryAfterMs(response.headers["retry-after"]));
    }
    if (status < 200 || status >= 300) {
      throw fail(status, attempts, `${snippet(response.data)}. Client errors are not retried; check the URL, the inputs and the headers.`);
    }
    const body = response.data;
    if (status === 204 || body === "") return {};
    try {
      return JSON.parse(body);
    } catch {
      const type = String(response.headers["content-type"] ?? "no content-type");
      throw fail(status, attempts, `expected a JSON response, got ${type}: ${snippet(body)}`);
    }
  };

  try {
    return await pRetry(once, {
      retries,
      factor: 2,
      minTimeout: minDelay,
      maxTimeout: maxDelay,
      randomize: true,
      signal: ctx.signal,
      shouldRetry: ({ error }) => error instanceof TransientFailure && !ctx.signal.aborted,
      onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
        if (!(error instanceof TransientFailure) || retriesLeft <= 0) return;
        const scheduled = Math.min(maxDelay, minDelay * 2 ** (attemptNumber - 1));
        ctx.logger.warn(`${method} ${shownUrl}: ${error.status === undefined ? clean(error.detail) : `HTTP ${error.status}`}; retry ${attemptNumber}/${retries}`);
        // A server that says when to come back is waited for (within maxDelayMs), beyond the backoff.
        if (error.retryAfterMs !== undefined && error.retryAfterMs > scheduled) await sleep(Math.min(maxDelay, error.retryAfterMs) - scheduled, ctx.signal);
      },
    });
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason ?? new CancelledError();
    if (error instanceof TransientFailure) throw fail(error.status, attempts, error.detail);
    throw error;
  }
}

/**
 * Request headers whose values are credentials, by name (case-insensitive): `Authorization`,
 * `Proxy-Authorization`, `Cookie`, `Set-Cookie`, and any name holding key, token, secret, auth,
 * password, session, signature or credential (`X-Api-Key`, `X-Auth-Token`). Other headers are
 * diagnostics (`Content-Type`, `X-Api-Version`), shown as the server quotes them.
 */
const CREDENTIAL_HEADER = /cookie|key|token|secret|auth|password|session|signature|credential/i;

/** A value made of an authorization scheme and a credential (`Bearer <token>`), in any header: the credential is masked. */
const SCHEME_CREDENTIAL = /^(?:Bearer|Basic|Token|Digest|Negotiate|NTLM|ApiKey|Api-Key|Key|OAuth|DPoP|Hawk|AWS4-HMAC-SHA256)\s+(\S.*)$/is;

/**
 * The texts of this task that are as private as its secrets though the run does not know them as
 * such, for masking what the task shows: the value of each credential header (see
 * {@link CREDENTIAL_HEADER}: a static `Authorization` read from `process.env`) and its credential
 * without its scheme (a server may echo the token alone), and each cookie's value; in any other
 * header, a credential after an authorization scheme (`Bearer <token>`); the URL's password or
 * lone user name (and the Basic header made of them); and each query value and fragment that the
 * shown URL hides (`?api_key=***`), as given, decoded and form-encoded. `ctx.secret()` values are
 * masked by the run already. Undefined when there are none.
 */
function ownValues(headers: Readonly<Record<string, string>>, url: string): SecretRegistry | undefined {
  const values: Record<string, string> = {};
  let n = 0;
  const add = (value: string) => {
    if (value) values[`http value ${n++}`] = value;
  };
  for (const [name, value] of Object.entries(headers)) {
    const text = String(value).trim();
    if (CREDENTIAL_HEADER.test(name)) {
      add(text);
      const credential = /^\S+\s+(\S.*)$/s.exec(text)?.[1];
      if (credential !== undefined) add(credential);
      // `a=1; session=<id>`: a server may echo one cookie's value.
      if (/cookie/i.test(name)) for (const pair of text.split(";")) add(pair.slice(pair.indexOf("=") + 1).trim());
      continue;
    }
    // The scheme stays readable (`Token ***`): it tells which credential the server was sent.
    add(SCHEME_CREDENTIAL.exec(text)?.[1] ?? "");
  }
  try {
    const parsed = new URL(url);
    const { username, password } = parsed;
    // As redactUri hides them: the password, or a user name alone (often a token), never a user name beside a password.
    const hidden = password || username;
    if (hidden) {
      add(hidden);
      add(decodeURIComponentOr(hidden));
      // As axios sends them, in a Basic Authorization header that a server may echo.
      add(Buffer.from(`${decodeURIComponentOr(username)}:${decodeURIComponentOr(password)}`).toString("base64"));
    }
    // What redactUri hides of the query, by its own rule: as the task gives it, and as the URL
    // parser writes it (what axios sends; a GET's inputs re-encode it as a form's).
    for (const text of new Set([...hiddenQueryTexts(url), ...hiddenQueryTexts(parsed.href)])) {
      add(text);
      const decoded = decodeURIComponentOr(text.replace(/\+/g, " "));
      add(decodeURIComponentOr(text));
      add(decoded);
      add(new URLSearchParams([["", decoded]]).toString().slice(1));
    }
  } catch {
    // http() checked the URL; nothing to add from one that does not parse.
  }
  return n ? new SecretRegistry(values, {}) : undefined;
}

function decodeURIComponentOr(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function withQuery(url: string, inputs: Readonly<Record<string, unknown>>): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(inputs)) {
    if (v === undefined) continue;
    u.searchParams.set(k, typeof v === "string" ? v : JSON.stringify(v));
  }
  return u.toString();
}

/**
 * A body as an error shows it: masked first (whatever escaping the body gives a secret, JSON's
 * included), then on one line, cut to 200 characters (after masking, a cut cannot leave the start
 * of a secret), and quoted; masked once more, as flattening and quoting make new text.
 */
function snippetOf(body: unknown, clean: (text: string) => string): string {
  const text = typeof body === "string" ? body : JSON.stringify(body) ?? "";
  const flat = clean(text).replace(/\s+/g, " ").trim();
  if (!flat) return "an empty body";
  if (flat.length <= 200) return clean(JSON.stringify(flat));
  // Not between the two halves of a character outside the BMP.
  const at = /[\ud800-\udbff]/.test(flat[196]!) ? 196 : 197;
  return clean(JSON.stringify(`${flat.slice(0, at)}...`));
}

/** Waits `ms`; rejects with the signal's reason (not Node's AbortError) when it aborts first. */
async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch {
    throw signal.reason ?? new CancelledError();
  }
}
