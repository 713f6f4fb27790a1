/**
 * How to reach an MLflow tracking server, read from MLflow's own client
 * environment variables so that a shell set up for the Python client works
 * unchanged.
 */
import { hasUnencodedUserInfo, quotesHint } from "@cairn/cache";
import { LONGEST_TIMER_MS, redactUri, TrackingConfigError, UnsupportedTrackingUriError } from "@cairn/core";

/** Connection settings of an `MlflowClient`. */
export interface MlflowClientOptions {
  /** `http(s)://host[:port][/prefix]`, without credentials, query or trailing slash. */
  uri: string;
  /** Sent as `Authorization: Bearer <token>` (`MLFLOW_TRACKING_TOKEN`). */
  token?: string;
  /** Basic auth user (`MLFLOW_TRACKING_USERNAME`). */
  username?: string;
  /** Basic auth password (`MLFLOW_TRACKING_PASSWORD`). */
  password?: string;
  /** Skip TLS certificate checks (`MLFLOW_TRACKING_INSECURE_TLS`). @default false */
  insecureTls?: boolean;
  /** CA bundle (PEM) used to check the server's certificate (`MLFLOW_TRACKING_SERVER_CERT_PATH`); not read for an http `uri`. */
  serverCertPath?: string;
  /** Client certificate and key, one PEM file (`MLFLOW_TRACKING_CLIENT_CERT_PATH`); not read for an http `uri`. */
  clientCertPath?: string;
  /** Retries after network errors, 408, 429 and 5xx (`MLFLOW_HTTP_REQUEST_MAX_RETRIES`). @default 7 */
  maxRetries?: number;
  /** Seconds; the n-th retry waits `backoffFactor * 2^(n-1)`, at most 120 s (`MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`). @default 2 */
  backoffFactor?: number;
  /** Up to this many extra random seconds per retry (`MLFLOW_HTTP_REQUEST_BACKOFF_JITTER`). @default 1 */
  backoffJitter?: number;
  /** Per-request timeout in seconds (`MLFLOW_HTTP_REQUEST_TIMEOUT`). @default 120 */
  timeoutSeconds?: number;
  /** Wait as long as a 429's `Retry-After` asks (`MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER`). @default true */
  respectRetryAfter?: boolean;
  /**
   * Cache hits' records (create + update) sent at once, fixed (`CAIRN_MLFLOW_RECORDS_IN_FLIGHT`,
   * 1 to 64). Unset, the tracker finds the number while it runs (see `AdaptiveLimit`).
   */
  recordsInFlight?: number;
  /**
   * Every this many requests, one closes its keep-alive connection once answered, the next one
   * opening anew (`CAIRN_MLFLOW_CONNECTION_REQUESTS`, 0 to 10,000; 0 never closes one). A server of several
   * workers that share one socket (`mlflow server`'s default) gives a connection to whichever
   * worker accepts it, often one worker all of a run's connections; connections opened anew
   * while the others are busy reach the idle ones. @default 20
   */
  connectionRequests?: number;
}

/** MLflow's defaults (mlflow/environment_variables.py, MLflow 3.x). */
export const MLFLOW_HTTP_DEFAULTS = {
  maxRetries: 7,
  backoffFactor: 2,
  backoffJitter: 1,
  timeoutSeconds: 120,
  /** MLflow refuses more retries than this (`_MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT`). */
  maxRetriesLimit: 10,
  /** MLflow refuses a larger backoff factor (`_MLFLOW_HTTP_REQUEST_MAX_BACKOFF_FACTOR_LIMIT`). */
  maxBackoffFactor: 120,
} as const;

/** Requests a connection carries unless `CAIRN_MLFLOW_CONNECTION_REQUESTS` says otherwise (BENCHMARKS.md, issue 16's tenth session). */
export const DEFAULT_CONNECTION_REQUESTS = 20;
/** The most `CAIRN_MLFLOW_CONNECTION_REQUESTS` may be. */
export const MAX_CONNECTION_REQUESTS = 10_000;

/** The most cache hits' records `CAIRN_MLFLOW_RECORDS_IN_FLIGHT` may send at once. */
export const MAX_RECORDS_IN_FLIGHT = 64;

/**
 * Splits an http(s) tracking URI into the URI without credentials and the
 * credentials it carried (`http://user:pass@host`), if any.
 * Throws `UnsupportedTrackingUriError` for any other scheme.
 */
export function parseTrackingUri(raw: string): { uri: string; username?: string; password?: string } {
  const text = raw.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(text)?.[1]?.toLowerCase();
  // A password with an unencoded `@`, `#`, `/` or `?` may parse, with part of it as the host
  // (`http://u:p@ss#word@host` names host `ss`): refused before it reaches a connection error.
  if ((scheme === "http" || scheme === "https") && hasUnencodedUserInfo(text)) {
    throw unparsableHttpUri(text, "has more than one `@`, or a `#`, `/` or `?` before its last `@`, so part of the password would be read as the host");
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // An http URI that does not parse is most often one whose password holds `/`, `@` or `%`.
    if (scheme === "http" || scheme === "https") throw unparsableHttpUri(text, "does not parse as a URL");
    throw new UnsupportedTrackingUriError(redactUri(text));
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UnsupportedTrackingUriError(redactUri(text));
  // A password with `/` parses as a port and a path (`http://u:123/x@host`): the host is then not the server.
  if (!url.password && url.port && url.pathname.includes("@")) throw unparsableHttpUri(text, "has an `@` after a `/`");
  let username: string | undefined;
  let password: string | undefined;
  try {
    username = url.username ? decodeURIComponent(url.username) : undefined;
    password = url.password ? decodeURIComponent(url.password) : undefined;
  } catch {
    // decodeURIComponent's URIError (a `%` not followed by two hex digits) would show neither the
    // variable nor the fix; its message and stack carry no part of the URI, but are not kept.
    throw unparsableHttpUri(text, "has a user name or password with a `%` that is not followed by two hex digits");
  }
  // Dropped without a word before: a server behind a proxy that routes by query would get other requests than meant.
  // Not echoed apart from the URI: a query may carry a token (`?token=...`), which redactUri hides.
  if (url.search || url.hash) {
    throw new TrackingConfigError(
      `MLFLOW_TRACKING_URI is "${redactUri(text)}", which has a ${url.search ? "query" : "fragment"}: requests go to its path, and a query or fragment is no part of them. Leave it out.`,
    );
  }
  const uri = `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
  return { uri, ...(username ? { username } : {}), ...(password ? { password } : {}) };
}

/** The error for an http(s) tracking URI Cairn cannot read, the password never shown. */
function unparsableHttpUri(raw: string, why: string): TrackingConfigError {
  return new TrackingConfigError(
    `MLFLOW_TRACKING_URI is "${redactUri(raw)}", which ${why}. If it holds a user name and password, percent-encode ` +
      `them (\`%25\` for %, \`%40\` for @, \`%23\` for #, \`%2F\` for /, \`%3A\` for :), or leave them out of the URI and set ` +
      `MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead.`,
  );
}

/**
 * Reads MLflow's client environment variables. `uri` overrides `MLFLOW_TRACKING_URI`.
 *
 * @example
 * const client = new MlflowClient(mlflowOptionsFromEnv(process.env));
 */
export function mlflowOptionsFromEnv(env: NodeJS.ProcessEnv = process.env, uri?: string): MlflowClientOptions {
  const rawUri = uri ?? env.MLFLOW_TRACKING_URI;
  if (!rawUri) {
    throw new TrackingConfigError(
      "MLFLOW_TRACKING_URI is not set. Set it to the MLflow server's URL, e.g. MLFLOW_TRACKING_URI=http://127.0.0.1:5000.",
    );
  }
  const parsed = parseTrackingUri(rawUri);
  const options: MlflowClientOptions = { uri: parsed.uri };
  const token = nonEmpty(env.MLFLOW_TRACKING_TOKEN);
  const username = nonEmpty(env.MLFLOW_TRACKING_USERNAME) ?? parsed.username;
  const password = nonEmpty(env.MLFLOW_TRACKING_PASSWORD) ?? parsed.password;
  if (token) options.token = token;
  if (username) options.username = username;
  if (password) options.password = password;
  Object.assign(options, connectionOptionsFromEnv(env));
  // Certificates are TLS's: an http server is reached without them, so a variable left from an
  // https setup, naming a file since gone, does not fail an http run (MLflow's client ignores them there too).
  if (isHttps(parsed.uri)) {
    const serverCert = nonEmpty(env.MLFLOW_TRACKING_SERVER_CERT_PATH);
    if (serverCert) options.serverCertPath = serverCert;
    const clientCert = nonEmpty(env.MLFLOW_TRACKING_CLIENT_CERT_PATH);
    if (clientCert) options.clientCertPath = clientCert;
  }
  checkMlflowOptions(options);
  return options;
}

/**
 * The variables of how requests are made (retries, backoff, timeout, TLS checks, Cairn's
 * `CAIRN_MLFLOW_*`), read and checked without a tracking URI: a bad value
 * (`MLFLOW_HTTP_REQUEST_TIMEOUT=10s`) was passed by every run on the embedded store, and failed
 * only the day a URI was set. `cairn` checks them as it starts.
 * @example checkMlflowEnv({ MLFLOW_HTTP_REQUEST_TIMEOUT: "10s" }) // TrackingConfigError: ... Write the number alone ...
 */
export function checkMlflowEnv(env: NodeJS.ProcessEnv): void {
  checkMlflowOptions({ uri: "", ...connectionOptionsFromEnv(env) });
}

/** The options {@link checkMlflowEnv} reads, unchecked against each other. */
function connectionOptionsFromEnv(env: NodeJS.ProcessEnv): Omit<MlflowClientOptions, "uri" | "token" | "username" | "password" | "serverCertPath" | "clientCertPath"> {
  const options: ReturnType<typeof connectionOptionsFromEnv> = {};
  const insecure = readBoolean(env, "MLFLOW_TRACKING_INSECURE_TLS");
  if (insecure !== undefined) options.insecureTls = insecure;
  const retries = readNumber(env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES", true);
  if (retries !== undefined) options.maxRetries = retries;
  const factor = readNumber(env, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", false);
  if (factor !== undefined) options.backoffFactor = factor;
  const jitter = readNumber(env, "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", false);
  if (jitter !== undefined) options.backoffJitter = jitter;
  const timeout = readNumber(env, "MLFLOW_HTTP_REQUEST_TIMEOUT", false);
  if (timeout !== undefined) options.timeoutSeconds = timeout;
  const retryAfter = readBoolean(env, "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER");
  if (retryAfter !== undefined) options.respectRetryAfter = retryAfter;
  const inFlight = readNumber(env, "CAIRN_MLFLOW_RECORDS_IN_FLIGHT", true);
  if (inFlight !== undefined) options.recordsInFlight = inFlight;
  const perConnection = readNumber(env, "CAIRN_MLFLOW_CONNECTION_REQUESTS", true);
  if (perConnection !== undefined) options.connectionRequests = perConnection;
  return options;
}

/** The longest time in seconds a Node timer waits: a longer one fires at once or throws. */
const LONGEST_TIMER_SECONDS = Math.floor(LONGEST_TIMER_MS / 1000);

/** Checks options where they enter; throws `TrackingConfigError` naming the variable and the fix. */
export function checkMlflowOptions(options: MlflowClientOptions): void {
  // Over http neither is used (see mlflowOptionsFromEnv): no conflict to refuse.
  if (options.insecureTls && options.serverCertPath && isHttps(options.uri)) {
    throw new TrackingConfigError(
      "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are both set. " +
        "Set only one: a CA bundle to check the server's certificate, or insecure TLS to skip the check.",
    );
  }
  checkCount("MLFLOW_HTTP_REQUEST_MAX_RETRIES", options.maxRetries, 0, MLFLOW_HTTP_DEFAULTS.maxRetriesLimit);
  if (options.backoffFactor !== undefined && !(options.backoffFactor >= 0 && options.backoffFactor <= MLFLOW_HTTP_DEFAULTS.maxBackoffFactor)) {
    throw new TrackingConfigError(
      `Expected MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR to be a number of seconds from 0 to ${MLFLOW_HTTP_DEFAULTS.maxBackoffFactor}, got \`${options.backoffFactor}\`. Unset it for the default (${MLFLOW_HTTP_DEFAULTS.backoffFactor}).`,
    );
  }
  if (options.backoffJitter !== undefined && !(options.backoffJitter >= 0 && options.backoffJitter <= LONGEST_TIMER_SECONDS)) {
    throw new TrackingConfigError(
      `Expected MLFLOW_HTTP_REQUEST_BACKOFF_JITTER to be a number of seconds from 0 to ${LONGEST_TIMER_SECONDS} (about 24.8 days, the longest a Node timer waits), got \`${options.backoffJitter}\`. Unset it for the default (${MLFLOW_HTTP_DEFAULTS.backoffJitter}).`,
    );
  }
  checkCount("CAIRN_MLFLOW_RECORDS_IN_FLIGHT", options.recordsInFlight, 1, MAX_RECORDS_IN_FLIGHT, "Leave it unset to let Cairn find how many the server takes.");
  checkCount(
    "CAIRN_MLFLOW_CONNECTION_REQUESTS",
    options.connectionRequests,
    0,
    MAX_CONNECTION_REQUESTS,
    "Every N-th request to the server closes its connection so that a new one opens; 0 keeps each connection as long as it lasts.",
  );
  // Past the longest timer, Node warned on stderr and cut it short, or threw ERR_OUT_OF_RANGE reported as an unreachable server.
  if (options.timeoutSeconds !== undefined && !(options.timeoutSeconds > 0 && options.timeoutSeconds <= LONGEST_TIMER_SECONDS)) {
    throw new TrackingConfigError(
      `Expected MLFLOW_HTTP_REQUEST_TIMEOUT to be a number of seconds above 0, at most ${LONGEST_TIMER_SECONDS} (about 24.8 days, the longest a Node timer waits), got \`${options.timeoutSeconds}\`. Unset it for the default (${MLFLOW_HTTP_DEFAULTS.timeoutSeconds}).`,
    );
  }
}

/** Throws `TrackingConfigError` unless `value` (from variable `name`) is unset or an integer from `min` to `max`; `hint` says what to do. */
function checkCount(name: string, value: number | undefined, min: number, max: number, hint?: string): void {
  if (value === undefined || (Number.isInteger(value) && value >= min && value <= max)) return;
  throw new TrackingConfigError(`Expected ${name} to be an integer from ${min} to ${max.toLocaleString("en")}, got \`${value}\`. ${hint ?? "Unset it for the default."}`);
}

/** Whether requests to `uri` go over TLS, where certificates are used. */
export function isHttps(uri: string): boolean {
  return /^https:/i.test(uri);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

function readBoolean(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return undefined;
  const v = raw.trim().toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new TrackingConfigError(`Expected ${name} to be true, false, 1 or 0, got ${JSON.stringify(raw)}.${quotesHint(name, raw) || " Unset it for MLflow's default."}`);
}

/** Decimal text, as MLflow's client reads it (Python's `int` and `float`): no hex (`0x5`) or binary, which `Number()` reads. */
const INTEGER_TEXT = /^\s*[+-]?\d+\s*$/;
const NUMBER_TEXT = /^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

function readNumber(env: NodeJS.ProcessEnv, name: string, integer: boolean): number | undefined {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return undefined;
  const expected = integer ? "an integer, in digits" : "a number, in decimal";
  // Blank read as Number("") is 0: MLFLOW_HTTP_REQUEST_MAX_RETRIES=" " meant no retries without a word. MLflow's client refuses it.
  if (raw.trim() === "") throw new TrackingConfigError(`Expected ${name} to be ${expected}, got ${JSON.stringify(raw)} (blank). Unset it for the default, or give a value.`);
  const n = Number(raw.trim());
  if (!(integer ? INTEGER_TEXT : NUMBER_TEXT).test(raw) || !Number.isFinite(n)) {
    throw new TrackingConfigError(`Expected ${name} to be ${expected}, got ${JSON.stringify(raw)}.${numberFix(name, raw, integer)}`);
  }
  return n;
}

/** The variables whose number is of seconds (MLflow's client reads a bare number, no unit). */
const SECONDS_VARIABLES: ReadonlySet<string> = new Set(["MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"]);

/** How to write the number a variable holds, for the error that refuses `raw`: no quotes, no unit (`10s`: write 10). */
function numberFix(name: string, raw: string, integer: boolean): string {
  const quotes = quotesHint(name, raw);
  if (quotes) return quotes;
  const unit = SECONDS_VARIABLES.has(name) ? " (seconds)" : "";
  const withUnit = /^\s*(\d+(?:\.\d+)?)\s*[a-z]+\s*$/i.exec(raw);
  if (withUnit) return ` Write the number alone, without a unit: ${name}=${withUnit[1]}${unit}.`;
  return ` Write it ${integer ? "in digits" : "as a decimal number"}${unit} (${name}=${integer ? "5" : "10"}), or unset it for the default.`;
}
