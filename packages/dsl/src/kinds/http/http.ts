/**
 * `http(name, { url })`: a task that sends its inputs as JSON to an endpoint and
 * outputs the JSON response. Network errors, 429 and 5xx are retried with backoff.
 */
import { privateDigestAsync } from "@cairn/cache";
import { checkKnownKeys, LONGEST_TIMER, LONGEST_TIMER_MS, NO_RETRY, OptionError, redactUri, type TaskContext } from "@cairn/core";
import { HTTP_MAX_RESPONSE_MB, runHttp } from "./run-http.ts";
import { checkName, kindTask, type KindTask } from "../kind-task.ts";

/** Options of `http()`. */
export interface HttpOptions {
  /** The endpoint (http or https). */
  url: string;
  /** @default "POST" (inputs as a JSON body; GET, HEAD, DELETE and OPTIONS send them as query parameters) */
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS";
  /**
   * Request headers, or a function of the task context that returns them, so that secrets
   * stay out of the definition: `(ctx) => ({ Authorization: \`Bearer ${ctx.secret("TOKEN")}\` })`.
   * They choose what the endpoint answers (an API version, a tenant, a format), so they enter
   * the cache key: each header's value by a private digest (it may be a credential), or the
   * function's text, never what it returns (`ctx.secret()` values stay out). Never in logs or errors:
   * the value of a credential header (`Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`,
   * a name holding key, token, secret, auth, password, session, signature or credential), and in any
   * header a credential after its scheme (`Bearer <token>`), is masked in what the task shows, as
   * secrets are; other values (`Content-Type`, `X-Api-Version`) are shown as the server quotes them. A redirect to another origin is followed without them. A value with a
   * line break or another control character inside it is refused (HttpTaskError, not retried).
   */
  headers?: Readonly<Record<string, string>> | ((ctx: TaskContext) => Readonly<Record<string, string>>);
  /** Timeout of one request, in ms: the whole of it, a body that trickles in too. @default 30000 */
  timeoutMs?: number;
  /** Retries after a network error, 429 or 5xx, with exponential backoff (Retry-After is honoured). @default 3 */
  retries?: number;
  /** Delay before the first retry, in ms; doubles each time, each wait at most 10000 (a server's Retry-After too). @default 500 */
  retryDelayMs?: number;
  /**
   * The largest response body read, in MB (of 1,048,576 bytes), counted after decompression: a
   * larger one fails the task (HttpTaskError, not retried) rather than fill the memory. @default 64
   */
  maxResponseMB?: number;
}

/** The longest wait between two tries of a request (run-http's `maxDelayMs` default). */
const HTTP_MAX_RETRY_DELAY_MS = 10_000;

const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]);

/**
 * Declares a task that calls an HTTP endpoint.
 * @example
 * const score = http("score", { url: "https://models.example.com/score", headers: (ctx) => ({ Authorization: `Bearer ${ctx.secret("API_TOKEN")}` }) })
 *   .input<{ text: string }>()
 *   .output(z.object({ label: z.string(), confidence: z.number() }));
 */
export function http(name: string, options: HttpOptions): KindTask<Record<string, unknown>, Record<string, unknown>> {
  checkName(name);
  const where = (k: string) => `task "${name}" option \`${k}\``;
  if (typeof options !== "object" || options === null) throw new OptionError(`http "${name}" options`, "{ url, method?, headers?, timeoutMs?, retries? }", options);
  checkKnownKeys(options, ["url", "method", "headers", "timeoutMs", "retries", "retryDelayMs", "maxResponseMB"], `http("${name}")`);
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new OptionError(where("url"), "an absolute http(s) URL", typeof options.url === "string" ? redactUri(options.url) : options.url);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new OptionError(where("url"), "an http: or https: URL", redactUri(options.url));
  const method = (options.method ?? "POST").toUpperCase();
  if (!METHODS.has(method)) throw new OptionError(where("method"), [...METHODS].join(", "), options.method);
  if (options.timeoutMs !== undefined && !(options.timeoutMs > 0 && options.timeoutMs <= LONGEST_TIMER_MS)) {
    throw new OptionError(where("timeoutMs"), `a number of milliseconds > 0 and at most ${LONGEST_TIMER}`, options.timeoutMs);
  }
  if (options.retries !== undefined && !(Number.isInteger(options.retries) && options.retries >= 0)) throw new OptionError(where("retries"), "an integer >= 0", options.retries);
  // Each wait is capped at 10 s (a Retry-After too): a larger first delay was cut to 10 s without a word.
  if (options.retryDelayMs !== undefined && !(options.retryDelayMs >= 0 && options.retryDelayMs <= HTTP_MAX_RETRY_DELAY_MS)) {
    throw new OptionError(
      where("retryDelayMs"),
      `a number of milliseconds from 0 to ${HTTP_MAX_RETRY_DELAY_MS} (each wait between tries doubles up to 10 s, a server's Retry-After too); for longer waits, retry the whole task with .retries(n, { minDelayMs })`,
      options.retryDelayMs,
    );
  }
  // Node makes one string of a little under 512 MB at most: a larger body could not be read as text anyway.
  if (options.maxResponseMB !== undefined && !(Number.isInteger(options.maxResponseMB) && options.maxResponseMB >= 1 && options.maxResponseMB <= 500)) {
    throw new OptionError(where("maxResponseMB"), `an integer number of MB from 1 to 500 (default ${HTTP_MAX_RESPONSE_MB}; Node cannot make a string of 512 MB)`, options.maxResponseMB);
  }
  const headers = options.headers;
  if (headers !== undefined && typeof headers !== "function" && (typeof headers !== "object" || headers === null)) {
    throw new OptionError(where("headers"), "an object of strings or a function (ctx) => headers", headers);
  }

  const shown = redactUri(options.url);
  return kindTask({
    // The JSON response is the output, whatever its shape (an array, a number).
    anyOutput: true,
    definition: {
      name,
      kind: "http",
      // The URL as shown: what it hides (a password, a query value such as `?api_key=`) enters the
      // key by its slow digest only (codeDependencies), never in clear nor by a fast digest of it.
      code: `${method} ${shown}`,
      // Not in the key (`code` is): lets explain say which of the two changed.
      codeOptions: { content: "", options: { method, url: shown } },
      retry: NO_RETRY,
      cache: {},
      env: [],
      codeDependencies: async () => ({
        ...(shown !== options.url ? { [URL_ENTRY]: await privateDigestAsync(options.url, URL_ENTRY) } : {}),
        ...(await headersDigests(headers)),
      }),
      run: (inputs, ctx) =>
        runHttp(
          {
            url: options.url,
            method,
            ...(headers ? { headers: typeof headers === "function" ? headers(ctx) : headers } : {}),
            ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
            ...(options.retries !== undefined ? { retries: options.retries } : {}),
            ...(options.retryDelayMs !== undefined ? { minDelayMs: options.retryDelayMs } : {}),
            ...(options.maxResponseMB !== undefined ? { maxResponseMB: options.maxResponseMB } : {}),
          },
          inputs,
          ctx,
        ),
    },
  });
}

/**
 * The key's entry of a URL with hidden parts (a password, a query value): the slow digest of the
 * whole URL (scrypt, as header values), salted with this name. `cairn explain` says its change as
 * ``option `url` changed``, as a change of the URL shown: a change of only `?page=2` to `?page=3`
 * is still told, never the value. A URL with nothing hidden has none: its `code` holds all of it.
 */
const URL_ENTRY = "http url";

/**
 * What the headers add to the key, read when it is made: one entry per header, by its name
 * (lower-cased: HTTP does not tell case) and a private digest of its value, or the digest of the
 * function's text. Named `http header <name>` and `http headers()`: `cairn explain` words these
 * ("request header `x-api-version` changed") without a value (see diffIngredients).
 */
async function headersDigests(headers: HttpOptions["headers"]): Promise<Record<string, string>> {
  if (headers === undefined) return {};
  if (typeof headers === "function") return { "http headers()": await privateDigestAsync(headers.toString(), "http headers()") };
  const values = new Map<string, string[]>();
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    values.set(lower, [...(values.get(lower) ?? []), String(value)]);
  }
  const entries = await Promise.all(
    // `Accept` and `accept` both given: both values count.
    [...values].map(async ([name, [one, ...more]]) => [`http header ${name}`, await privateDigestAsync(more.length ? JSON.stringify([one, ...more]) : one!, `http header\0${name}`)] as const),
  );
  return Object.fromEntries(entries);
}
