/**
 * A small client for MLflow's REST API (`/api/2.0/mlflow/...`) and its
 * artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`), on node:http (./http.ts).
 * It knows MLflow's wire format and limits; what a run means to Cairn lives
 * in `MlflowTracker`.
 */
import { createReadStream, createWriteStream, readFileSync } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, extname } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import pRetry from "p-retry";
import { partialPath } from "@cairn/cache";
import { ArtifactLocationError, booleanFromEnv, MlflowApiError, redactUri, retryAfterMs, TrackerUnreachableError, TrackingConfigError, TrackingError, type RunStatus } from "@cairn/core";
import { checkMlflowOptions, DEFAULT_CONNECTION_REQUESTS, isHttps, MLFLOW_HTTP_DEFAULTS, type MlflowClientOptions } from "./mlflow-config.ts";
import { type HttpResponse, HttpTransport } from "./http.ts";
import { MLFLOW_LIMITS } from "./mlflow-limits.ts";
import { inFlightLimit, type InFlightLimit } from "./in-flight.ts";
import { setTimeout as delay } from "node:timers/promises";
import { setMaxListeners } from "node:events";

/** An experiment as MLflow returns it. */
export interface MlflowExperiment {
  experimentId: string;
  name: string;
  /** Where new runs put artifacts, e.g. `mlflow-artifacts:/1`. */
  artifactLocation?: string;
  /** `active` or `deleted`. */
  lifecycleStage: string;
}

/** A run's info block. */
export interface MlflowRunInfo {
  runId: string;
  experimentId: string;
  runName: string;
  status: RunStatus;
  startTime: number;
  endTime?: number;
  /** e.g. `mlflow-artifacts:/1/<run id>/artifacts`. */
  artifactUri: string;
  /** `active` or `deleted`. */
  lifecycleStage: string;
}

/** A run with its data; `metrics` holds the latest value of each metric. */
export interface MlflowRun {
  info: MlflowRunInfo;
  params: Record<string, string>;
  metrics: Record<string, number>;
  tags: Record<string, string>;
}

/** One metric point on the wire. */
export interface MlflowMetric {
  key: string;
  value: number;
  timestamp: number;
  step: number;
}

/** What one `logBatch` call sends; split into as many requests as MLflow's limits need. */
export interface MlflowBatch {
  metrics?: MlflowMetric[];
  params?: { key: string; value: string }[];
  tags?: { key: string; value: string }[];
}

/** One entry of an artifact listing, relative to the listed folder's run root. */
export interface MlflowFileInfo {
  path: string;
  isDir: boolean;
  fileSize?: number;
}

/** Options of `searchRuns`. */
export interface MlflowSearchRuns {
  experimentIds: string[];
  /** An MLflow filter string; build it with `runFilter()`. */
  filter?: string;
  /** @default ["attributes.start_time DESC"] */
  orderBy?: string[];
  /** @default 1000 */
  maxResults?: number;
  /** @default "ACTIVE_ONLY" */
  runViewType?: "ACTIVE_ONLY" | "DELETED_ONLY" | "ALL";
  /**
   * A condition the server cannot be asked (see {@link MlflowClient.refusesTagAbsence}), checked
   * here: only the runs it keeps are returned and counted toward `maxResults`, and pages of up to
   * 1000 runs are read until that many are kept or none are left.
   */
  keep?: (run: MlflowRun) => boolean;
}

/** How hard one request tries before giving up. */
export interface RetryPolicy {
  retries: number;
  /** Seconds before the first retry; doubles each time, at most 120 s. */
  backoffFactor: number;
  /** Up to this many extra random seconds per retry. */
  backoffJitter: number;
}

interface RequestSpec {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Absolute URL. */
  url: string;
  /** Named in errors, e.g. `runs/create`. */
  endpoint: string;
  runId?: string | undefined;
  params?: Record<string, unknown>;
  /** Called once per attempt, so a stream body is fresh on every retry. */
  body?: () => string | Readable;
  headers?: Record<string, string>;
  responseType: "text" | "stream";
  retry?: RetryPolicy;
  /** Ends the request and its retries (the task was cancelled or timed out). */
  signal?: AbortSignal | undefined;
  /**
   * Runs before each retry with the error of the attempt before; an answer it returns is taken
   * as the request's (a create that the server did carry out). Throwing fails that attempt.
   */
  beforeRetry?: ((previous: unknown) => Promise<HttpResponse | undefined>) | undefined;
  /** Sent from inside another request's retry loop (its `beforeRetry`): never waits for the request that checks whether the server is back, which may be that one. */
  ungated?: boolean;
  /** Statuses otherwise tried again that this request is not (the server's answer will not change). */
  finalStatuses?: ReadonlySet<number>;
}

const API = "/api/2.0/mlflow";
/** The error code Cairn gives an answer whose body is not JSON: something other than MLflow answered. */
const NOT_JSON = "NOT_JSON";
const ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts";
/** MLflow's `_TRANSIENT_FAILURE_RESPONSE_CODES`. */
const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504]);
/** What an MLflow server started with `--artifacts-only` answers (HTTP 503) to every tracking request. */
const ARTIFACTS_ONLY = /disabled due to the mlflow server running in `?--artifacts-only`? mode/;
/** Of those, what an artifact DELETE is not sent again for (see `deleteArtifact`). */
const FAILED_DELETE: ReadonlySet<number> = new Set([500]);
/** The first MLflow whose artifact proxy deletes a single file from a local folder (mlflow/mlflow#13005; 2.16 still fails). */
const FILE_DELETE_SINCE = [2, 17] as const;
/**
 * An overwhelmed MLflow server answers 400 when its database gives it no connection within its
 * pool's timeout (SQLAlchemy's "QueuePool limit ... reached") or SQLite stays locked: the request
 * wrote nothing, and the condition passes, so it is sent again as a 503 would be.
 */
const OVERLOADED_DATABASE = /QueuePool limit of size \d+ overflow \d+ reached|database is locked/;
/**
 * Such an answer is sent again after a short random wait, up to {@link LOCKED_MAX_WAIT_MS}, not
 * MLflow's backoff: the lock is gone in milliseconds, and the seconds to minutes of that backoff,
 * the same for every request that met it at once, left a busy server idle while they all slept,
 * then woke them together into the next lock (two flows of 100 items: 10 minutes instead of seconds).
 */
const LOCKED_FIRST_WAIT_MS = 50;
/** The longest wait before a request the server's database refused is sent again: a random wait of up to 50 ms, doubling with each refusal, up to this. */
export const LOCKED_MAX_WAIT_MS = 1000;
/** The SQL store keeps ±Infinity as ±DBL_MAX. */
const DBL_MAX = Number.MAX_VALUE;
const retryable = new WeakSet<Error>();
/** Errors of answers that say the server's database was busy (see {@link OVERLOADED_DATABASE}). */
const busyDatabase = new WeakSet<Error>();
/** Errors of requests that got no answer at all (refused, reset, timed out): what opens the circuit breaker. */
const unanswered = new WeakSet<Error>();
/** Of those, a connection reset (often a pooled connection the server had closed): tried again at once on a new one, also when requests are tried once. */
const resets = new WeakSet<Error>();
/** The signals of one span between cancels; see `MlflowClient.#cut`. */
function newCut(): { waits: AbortController; attempts: AbortController } {
  const cut = { waits: new AbortController(), attempts: new AbortController() };
  // Every request under way listens to them: thousands at once are no leak.
  setMaxListeners(0, cut.waits.signal, cut.attempts.signal);
  return cut;
}
/** The tag that makes a run's create idempotent: a random id per `createRun`, searched for before the create is sent again. */
export const CREATE_ID_TAG = "cairn.create_id";
/** One attempt: the search before a create's retry, inside that retry loop. */
const NO_RETRY: RetryPolicy = { retries: 0, backoffFactor: 0, backoffJitter: 0 };
/** A probe fails fast: a server that is down is reported in about a second, not after minutes of backoff. */
/** While the breaker is open or the run is being cancelled: one try (and one more at once after a reset connection). */
const ONE_TRY: RetryPolicy = { retries: 1, backoffFactor: 0, backoffJitter: 0 };
const PING_RETRY: RetryPolicy = { retries: 2, backoffFactor: 0.25, backoffJitter: 0 };
/**
 * Once the run is cancelled (`hurry()`), a request makes one try of at most this long, and an
 * attempt under way is ended this long after the cancel: closing the runs may not hold the
 * process for the minutes the retry policy allows (a supervisor's SIGTERM ends in SIGKILL).
 */
export const HURRIED_ATTEMPT_MS = 5000;
/** After the one request sent while the server is known down got no answer, how long the others are refused without being sent. */
const SHUT_MS = 5000;
/**
 * A retry whose wait ends this long or more after the request began is said (one line per retry,
 * through {@link MlflowClient.onRetry}): the first quick ones pass unseen, a server failing for
 * minutes (a full disk: 8 tries over 4 minutes) no longer does so in silence.
 */
export const RETRY_NOTICE_MS = 5000;
/** `CAIRN_MLFLOW_TRACE=1` prints one line per request to stderr (method, endpoint, outcome, start, duration, tries), to see what a run asks of the server. */
const TRACE = traceFromEnv();

/** CAIRN_MLFLOW_TRACE, read when Cairn is loaded: a value it cannot read is said once and leaves tracing off (`cairn` refuses it, exit 2). */
function traceFromEnv(): boolean {
  try {
    return booleanFromEnv(process.env, "CAIRN_MLFLOW_TRACE");
  } catch (error) {
    process.stderr.write(`cairn: ${(error as Error).message} MLflow requests are not traced.\n`);
    return false;
  }
}

/** A certificate file a variable names; one that cannot be read is a TrackingConfigError naming the variable (a bare ENOENT named neither). */
function readPem(variable: string, path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new TrackingConfigError(`${variable} is ${path}, which cannot be read (${code}): point it at ${what}, or unset it.`, { cause: error });
  }
}

/**
 * MLflow REST client. Every method rejects with a `TrackingError` subclass:
 * `MlflowApiError` when the server answers with an error body,
 * `TrackerUnreachableError` when it cannot be reached or refuses the credentials.
 *
 * @example
 * const client = new MlflowClient(mlflowOptionsFromEnv());
 * const experimentId = await client.ensureExperiment("training");
 */
export class MlflowClient {
  /** The server's base URL, as given (a user name and password in it are sent as basic auth). */
  readonly uri: string;
  /** {@link uri} with its password masked (redactUri): the one URI every message of the client says, as a message may reach a log or the terminal. */
  readonly #shownUri: string;
  /** The HTTP transport; `http.observe(listener)` sees every request and response. */
  readonly http: HttpTransport;
  /** Retry policy of ordinary requests, from the environment. */
  readonly retry: RetryPolicy;
  private readonly respectRetryAfter: boolean;
  private readonly hasCredentials: boolean;
  /** Kept out of `http.defaults` so that printing the client or tracker shows no credentials. */
  readonly #authorization: string | undefined;
  /** Which credential the client sends, by the variables that hold it (never a value), for the error of a refused request. */
  readonly #sent: string | undefined;
  /** The token, password and Authorization value, masked in any answer's text the client quotes. */
  readonly #secrets: string[] = [];
  /** MLflow's variables that carry these credentials, for a child process's own MLflow client. */
  readonly #childEnv: Record<string, string> = {};
  /**
   * The circuit breaker: set when a request used up its retries without an answer (refused,
   * reset, timed out), cleared by the next answer of any status. While set, each request makes
   * one try: a server that is down fails the run's requests in turn, not minutes each.
   */
  #unreachable = false;
  /**
   * While the breaker is set, one request at a time is sent, to see whether the server is back
   * (this one, settled when it ends); the others wait for its outcome. When it got no answer, the
   * requests until `#shutUntil` are not sent at all: a server that accepts connections and never
   * answers (hung, or a firewall that drops packets) costs one timeout, not one per request.
   */
  #probe: { done: Promise<void>; release: (noAnswer: boolean) => void } | undefined;
  #shutUntil = 0;
  /** Holders of `hurry()`: while any, each request makes one short try. */
  #hurries = 0;
  /**
   * Aborted at `hurry()` (`waits`: the backoff before a retry ends at once) and
   * {@link HURRIED_ATTEMPT_MS} later (`attempts`: those then still under way end); replaced then,
   * for the requests sent after the hurry is over.
   */
  #cut = newCut();
  /** Tracking requests under way to this server from the whole process (see `InFlightLimit`). */
  readonly #inFlight: InFlightLimit;
  /**
   * Creates sent again after an attempt that got no answer, whose search found no run: the server
   * may still carry out the first (queued there), a second run for one create. By create id: the
   * experiment, and the run the create gave (none when it failed). See {@link endDuplicateRuns}.
   */
  readonly #resentCreates = new Map<string, { experimentId: string; runId: string | undefined }>();
  /** Told of each retry said (see {@link RETRY_NOTICE_MS}). */
  readonly #retryListeners = new Set<(message: string) => void>();
  /**
   * Set once the server refused a search for runs without a tag (`IS NULL`, which MLflow 2.x
   * servers refuse: HTTP 400 "Invalid clause(s) in filter string"): the searches after it ask
   * without that condition and check it here (`MlflowSearchRuns.keep`), so the refusal costs
   * one request once.
   */
  refusesTagAbsence = false;
  /** The server's answer to `GET /version`, asked once (see {@link serverVersion}). */
  #version: Promise<string | undefined> | undefined;

  constructor(options: MlflowClientOptions) {
    checkMlflowOptions(options);
    this.uri = options.uri.replace(/\/+$/, "");
    // Without the slash URL adds to a bare host when redactUri rebuilds it, as `uri` is.
    this.#shownUri = redactUri(this.uri).replace(/\/+$/, "");
    this.retry = {
      retries: options.maxRetries ?? MLFLOW_HTTP_DEFAULTS.maxRetries,
      backoffFactor: options.backoffFactor ?? MLFLOW_HTTP_DEFAULTS.backoffFactor,
      backoffJitter: options.backoffJitter ?? MLFLOW_HTTP_DEFAULTS.backoffJitter,
    };
    this.respectRetryAfter = options.respectRetryAfter ?? true;
    this.#inFlight = inFlightLimit(this.uri);
    const headers: Record<string, string> = { "User-Agent": "cairn-mlflow-client" };
    if (options.token) this.#childEnv.MLFLOW_TRACKING_TOKEN = options.token;
    if (options.username !== undefined) this.#childEnv.MLFLOW_TRACKING_USERNAME = options.username;
    if (options.password !== undefined) this.#childEnv.MLFLOW_TRACKING_PASSWORD = options.password;
    // As MLflow's own clients (mlflow/utils/rest_utils.py): a user name and password win over a token.
    const basic = options.username !== undefined && options.password !== undefined;
    if (basic || (!options.token && (options.username !== undefined || options.password !== undefined))) {
      this.#authorization = `Basic ${Buffer.from(`${options.username ?? ""}:${options.password ?? ""}`).toString("base64")}`;
      this.#sent = `basic auth from MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or the tracking URI's user name and password)`;
      if (options.token) this.#sent += `; MLFLOW_TRACKING_TOKEN is set too, and is not sent when a user name and password are, as by MLflow's own clients`;
    } else if (options.token) {
      this.#authorization = `Bearer ${options.token}`;
      this.#sent = "the bearer token of MLFLOW_TRACKING_TOKEN";
    }
    this.hasCredentials = this.#authorization !== undefined;
    for (const secret of [options.token, options.password, this.#authorization, this.#authorization?.replace(/^\w+ /, "")]) {
      if (secret && secret.length >= 4) this.#secrets.push(secret);
    }
    const tls: NonNullable<ConstructorParameters<typeof HttpTransport>[0]["tls"]> = {};
    if (options.insecureTls) tls.rejectUnauthorized = false;
    // Read for https only: over http they are unused, and a file since gone must not fail the run.
    const secure = isHttps(this.uri);
    if (secure && options.serverCertPath) tls.ca = readPem("MLFLOW_TRACKING_SERVER_CERT_PATH", options.serverCertPath, "a PEM CA bundle");
    if (secure && options.clientCertPath) {
      const pem = readPem("MLFLOW_TRACKING_CLIENT_CERT_PATH", options.clientCertPath, "one PEM file holding the client certificate and its key");
      tls.cert = pem;
      tls.key = pem;
    }
    // Nothing is thrown for a status (errors are read from the response), there are no
    // redirects and no proxy: MLflow's own client does the same.
    this.http = new HttpTransport({
      headers,
      timeoutMs: (options.timeoutSeconds ?? MLFLOW_HTTP_DEFAULTS.timeoutSeconds) * 1000,
      tls,
      connectionRequests: options.connectionRequests ?? DEFAULT_CONNECTION_REQUESTS,
    });
  }

  /**
   * The run was cancelled: until the returned function is called, each request makes one try of
   * at most {@link HURRIED_ATTEMPT_MS} (no retries), a request waiting to retry makes its one
   * try now, and an attempt under way is ended {@link HURRIED_ATTEMPT_MS} after this call.
   * What cannot be written then fails with `TrackerUnreachableError`, and a run left RUNNING is
   * for the next command's closer. Calls nest; the client is as before once every one is released.
   */
  hurry(): () => void {
    if (this.#hurries++ === 0) {
      const cut = this.#cut;
      this.#cut = newCut();
      cut.waits.abort();
      setTimeout(() => cut.attempts.abort(), HURRIED_ATTEMPT_MS).unref();
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#hurries--;
    };
  }

  /**
   * `listener` is told, one line per retry, of a request being retried long (its wait ends
   * {@link RETRY_NOTICE_MS} or more after it began): what failed, which retry of how many, in
   * how long. Returns the function that stops telling it. A busy database's quick retries are not said.
   */
  onRetry(listener: (message: string) => void): () => void {
    this.#retryListeners.add(listener);
    return () => void this.#retryListeners.delete(listener);
  }

  /** Tells the listeners of a retry that ends long after its request began. */
  private sayRetry(spec: RequestSpec, error: unknown, retry: number, of: number, waitMs: number): void {
    if (this.#retryListeners.size === 0) return;
    const what = MlflowApiError.is(error) ? `answered HTTP ${error.status}` : TrackerUnreachableError.is(error) ? "got no answer" : "failed";
    const message =
      `MLflow ${spec.endpoint.startsWith("mlflow-artifacts ") ? "" : `${spec.method} `}${spec.endpoint}${spec.runId ? ` (run ${spec.runId})` : ""} at ${this.#shownUri} ${what}; ` +
      `retry ${retry} of ${of} in ${Math.max(0, Math.round(waitMs / 1000))} s`;
    for (const listener of this.#retryListeners) {
      try {
        listener(message);
      } catch {
        // A listener's fault is no request's.
      }
    }
  }

  // ------------------------------------------------------------ server

  /**
   * Checks the server answers MLflow's API, with a few quick retries at most.
   * Rejects with `TrackerUnreachableError` otherwise.
   */
  async ping(policy: RetryPolicy = PING_RETRY): Promise<void> {
    try {
      await this.api("GET", "experiments/get-by-name", { query: { experiment_name: "Default" }, retry: policy });
    } catch (error) {
      // A server without an experiment named Default still answered.
      if (MlflowApiError.is(error) && error.errorCode === "RESOURCE_DOES_NOT_EXIST") return;
      throw this.notAnswering(error);
    }
  }

  /**
   * `ping()` and `ensureExperiment(name)` in one request when the experiment exists: the
   * lookup by name is the probe (with ping's quick retries), so a flow starts with one round trip.
   */
  async openExperiment(name: string, policy: RetryPolicy = PING_RETRY): Promise<string> {
    let r: Record<string, unknown>;
    try {
      r = await this.api("GET", "experiments/get-by-name", { query: { experiment_name: name }, retry: policy });
    } catch (error) {
      // The server answered: there is no such experiment yet.
      if (MlflowApiError.is(error) && error.errorCode === "RESOURCE_DOES_NOT_EXIST") {
        // The create's answer is the id alone: one read, once per experiment, says where its artifacts go.
        const { id, created } = await this.createOrReadExperiment(name);
        const experiment = await this.getExperiment(id);
        if (experiment && !this.isProxied(experiment)) {
          throw new ArtifactLocationError(experiment.name, id, experiment.artifactLocation!, created ? await this.removeUnusable(experiment) : undefined);
        }
        return id;
      }
      throw this.notAnswering(error);
    }
    const experiment = toExperiment(r.experiment);
    const id = activeExperimentId(experiment);
    this.assertProxied(experiment);
    return id;
  }

  /**
   * The experiment with this id, refused as {@link openExperiment} refuses one by name when Cairn
   * cannot write its artifacts, or undefined when the server has none: the read is the probe too
   * (with ping's quick retries), so a flow run on `MLFLOW_EXPERIMENT_ID` starts with one round trip.
   */
  async openExperimentById(experimentId: string, policy: RetryPolicy = PING_RETRY): Promise<MlflowExperiment | undefined> {
    let r: Record<string, unknown>;
    try {
      r = await this.api("GET", "experiments/get", { query: { experiment_id: experimentId }, retry: policy });
    } catch (error) {
      // The server answered: there is no such experiment (the run's create then says so, as before).
      if (MlflowApiError.is(error) && error.errorCode === "RESOURCE_DOES_NOT_EXIST") return undefined;
      throw this.notAnswering(error, "experiments/get");
    }
    const experiment = toExperiment(r.experiment);
    this.assertProxied(experiment);
    return experiment;
  }

  /**
   * Refuses an experiment whose artifacts Cairn cannot write (see ArtifactLocationError), before
   * any run is created in it: its flows would all fail at their first artifact.
   */
  private assertProxied(experiment: MlflowExperiment): void {
    if (!this.isProxied(experiment)) throw new ArtifactLocationError(experiment.name, experiment.experimentId, experiment.artifactLocation!);
  }

  /** Whether Cairn can write the experiment's artifacts: through the server's proxy (an experiment that does not say where is taken as so). */
  private isProxied(experiment: MlflowExperiment): boolean {
    if (experiment.artifactLocation === undefined) return true;
    try {
      this.artifactRoot(experiment.artifactLocation); // throws when not an mlflow-artifacts: location
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Removes an experiment Cairn just created and cannot write to (a server started with
   * `--no-serve-artifacts --default-artifact-root DIR`): left, its name would stay unusable once
   * the server is fixed (an experiment keeps its location). Renamed aside first, as a deleted
   * experiment keeps its name until `mlflow gc`; MLflow renames active experiments only.
   */
  private async removeUnusable(experiment: MlflowExperiment): Promise<{ removed: true; asideName: string } | { removed: false; failed: string }> {
    const asideName = `${experiment.name} (refused by cairn ${randomBytes(4).toString("hex")})`;
    try {
      await this.api("POST", "experiments/update", { body: { experiment_id: experiment.experimentId, new_name: asideName } });
      await this.api("POST", "experiments/delete", { body: { experiment_id: experiment.experimentId } });
      return { removed: true, asideName };
    } catch (error) {
      return { removed: false, failed: (error as Error).message.replace(/\.$/, "") };
    }
  }

  /**
   * As {@link openExperiment}, creating nothing: the id of the active experiment with this name,
   * or undefined when there is none (for commands that only read).
   */
  async findExperiment(name: string, policy: RetryPolicy = PING_RETRY): Promise<string | undefined> {
    let r: Record<string, unknown>;
    try {
      r = await this.api("GET", "experiments/get-by-name", { query: { experiment_name: name }, retry: policy });
    } catch (error) {
      if (MlflowApiError.is(error) && error.errorCode === "RESOURCE_DOES_NOT_EXIST") return undefined;
      throw this.notAnswering(error);
    }
    return activeExperimentId(toExperiment(r.experiment));
  }

  /**
   * The error of a probe that got no MLflow answer: a 404 / 405 means the address is not an MLflow
   * server, a body that is not JSON (a proxy's login page, answered 200) that something else
   * answers there. Either is a server Cairn cannot use, as one that is down is.
   */
  private notAnswering(error: unknown, endpoint = "experiments/get-by-name"): unknown {
    if (MlflowApiError.is(error) && (error.status === 404 || error.status === 405)) {
      const prefix =
        "If it is one behind a path prefix (`mlflow server --static-prefix /mlflow`, or a reverse proxy's path), put that prefix in MLFLOW_TRACKING_URI: `http://host:port/mlflow`";
      return new TrackerUnreachableError(this.#shownUri, `HTTP ${error.status} on ${API}/${endpoint}; is this an MLflow tracking server? ${prefix}`, {
        cause: error,
      });
    }
    if (MlflowApiError.is(error) && error.errorCode === NOT_JSON) {
      return new TrackerUnreachableError(this.#shownUri, `HTTP ${error.status} on ${API}/${endpoint}: ${error.serverMessage}`, { cause: error });
    }
    return error;
  }

  // ------------------------------------------------------------ experiments

  /** The experiment with this name (active or deleted), or undefined. */
  async getExperimentByName(name: string): Promise<MlflowExperiment | undefined> {
    try {
      const r = await this.api("GET", "experiments/get-by-name", { query: { experiment_name: name } });
      return toExperiment(r.experiment);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** The experiment with this id, or undefined. */
  async getExperiment(experimentId: string): Promise<MlflowExperiment | undefined> {
    try {
      const r = await this.api("GET", "experiments/get", { query: { experiment_id: experimentId } });
      return toExperiment(r.experiment);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      // Ids of SQL stores are integers; any other id names no experiment.
      if (MlflowApiError.is(error) && error.errorCode === "INVALID_PARAMETER_VALUE" && !/^\d+$/.test(experimentId)) return undefined;
      throw error;
    }
  }

  /** Creates an experiment and returns its id; rejects with `RESOURCE_ALREADY_EXISTS` when the name is taken. */
  async createExperiment(name: string, tags?: Record<string, string>): Promise<string> {
    const r = await this.api("POST", "experiments/create", { body: { name, ...(tags ? { tags: entries(tags) } : {}) } });
    return String(r.experiment_id);
  }

  /**
   * Returns the id of the experiment with this name, creating it if needed.
   * Safe when several processes race: a loser of the race re-reads by name.
   */
  async ensureExperiment(name: string): Promise<string> {
    const existing = await this.getExperimentByName(name);
    if (existing) return activeExperimentId(existing);
    return (await this.createOrReadExperiment(name)).id;
  }

  /** Creates the experiment (`created`); a loser of a creation race reads the winner's by name. */
  private async createOrReadExperiment(name: string): Promise<{ id: string; created: boolean }> {
    try {
      return { id: await this.createExperiment(name), created: true };
    } catch (error) {
      if (!(MlflowApiError.is(error) && error.errorCode === "RESOURCE_ALREADY_EXISTS")) throw error;
      const winner = await this.getExperimentByName(name);
      if (!winner) throw error;
      return { id: activeExperimentId(winner), created: false };
    }
  }

  /** Every active experiment (paginated). */
  async searchExperiments(): Promise<MlflowExperiment[]> {
    const out: MlflowExperiment[] = [];
    let pageToken: string | undefined;
    do {
      const r = await this.api("POST", "experiments/search", {
        body: { max_results: 1000, view_type: "ACTIVE_ONLY", ...(pageToken ? { page_token: pageToken } : {}) },
      });
      for (const e of (r.experiments as unknown[] | undefined) ?? []) out.push(toExperiment(e));
      pageToken = typeof r.next_page_token === "string" && r.next_page_token ? r.next_page_token : undefined;
    } while (pageToken);
    return out;
  }

  /**
   * MLflow's variables for this client's credentials (`MLFLOW_TRACKING_USERNAME`, `..._PASSWORD`,
   * `..._TOKEN`), also those that came in the tracking URI: a child process's MLflow client
   * reaches the server with them, as `uri` carries none. Secret: never shown.
   */
  childEnv(): Readonly<Record<string, string>> {
    return { ...this.#childEnv };
  }

  // ------------------------------------------------------------ runs

  /**
   * Creates a RUNNING run, once: the request carries a random `cairn.create_id` tag, and before
   * sending it again (after a reset, a timeout or a 5xx, when the server may have created the run
   * and its answer was lost) the experiment is searched for a run with that tag, which is reused.
   * The first attempt sends only the create.
   */
  async createRun(options: { experimentId: string; runName?: string; startTime?: number; tags?: Record<string, string> }): Promise<MlflowRunInfo> {
    const createId = randomBytes(16).toString("hex");
    let mayExist = false;
    /** Sent again after an attempt without an answer that the search did not find: the first may be carried out yet. */
    let resent = false;
    const sent = this.api("POST", "runs/create", {
      body: {
        experiment_id: options.experimentId,
        start_time: Math.round(options.startTime ?? Date.now()),
        ...(options.runName !== undefined ? { run_name: options.runName } : {}),
        tags: entries({ ...options.tags, [CREATE_ID_TAG]: createId }),
      },
      beforeRetry: async (previous) => {
        // A 429 or 503 (refused, or overloaded), or a 400 of a database that gave the server no
        // connection, wrote nothing; after anything else (a reset, a timeout, another 5xx, a failed
        // search) the run may exist.
        if (!(MlflowApiError.is(previous) && [400, 429, 503].includes(previous.status))) mayExist = true;
        if (!mayExist) return undefined;
        // One attempt, no retries of its own: a search that fails fails this attempt, and the next one searches again.
        const found = await this.api("POST", "runs/search", {
          body: { experiment_ids: [options.experimentId], filter: runFilter({ tags: { [CREATE_ID_TAG]: createId } }), run_view_type: "ALL", max_results: 1 },
          retry: NO_RETRY,
          ungated: true,
        });
        const [run] = (found.runs as unknown[] | undefined) ?? [];
        if (run === undefined && (unanswered.has(previous as Error) || (MlflowApiError.is(previous) && previous.errorCode === NOT_JSON))) resent = true;
        return run === undefined ? undefined : { run };
      },
      answerMayBeLost: true,
    });
    let info: MlflowRunInfo | undefined;
    try {
      info = toRun(((await sent) as { run: unknown }).run).info;
      return info;
    } finally {
      if (resent) this.#resentCreates.set(createId, { experimentId: options.experimentId, runId: info?.runId });
    }
  }

  /**
   * Ends the runs that a create sent again (see {@link createRun}) made beside the one it gave:
   * its first attempt, unanswered and not found by the search, carried out after all. One search
   * per such create, none when there was none; each such run still RUNNING is tagged
   * `cairn.duplicate_of` (the run used, or nothing when the create failed) and ended KILLED.
   * Resolves with what it ended; what it cannot do is left (the next command's closer ends a
   * RUNNING run of a flow run that is over).
   */
  async endDuplicateRuns(): Promise<{ runId: string; duplicateOf: string | undefined }[]> {
    const ended: { runId: string; duplicateOf: string | undefined }[] = [];
    const creates = [...this.#resentCreates];
    this.#resentCreates.clear();
    await Promise.all(
      creates.map(async ([createId, { experimentId, runId }]) => {
        const runs = await this.searchRuns({ experimentIds: [experimentId], filter: runFilter({ tags: { [CREATE_ID_TAG]: createId } }), runViewType: "ALL", maxResults: 10 }).catch(() => []);
        for (const run of runs) {
          if (run.info.runId === runId || run.info.status !== "RUNNING" || run.tags[CREATE_ID_TAG] !== createId) continue;
          const note = runId
            ? `A duplicate of run ${runId}: a create of that run was sent again after its first try got no answer, and the server carried out both. Ended by Cairn as KILLED.`
            : `Made by a create that Cairn sent again after its first try got no answer, then gave up on: no run of Cairn's uses it. Ended by Cairn as KILLED.`;
          try {
            await this.logBatch(run.info.runId, { tags: [{ key: "cairn.duplicate_of", value: runId ?? "" }, { key: "mlflow.note.content", value: note }] });
            await this.updateRun(run.info.runId, { status: "KILLED", endTime: Date.now() });
            ended.push({ runId: run.info.runId, duplicateOf: runId });
          } catch {
            // Left RUNNING: the next command's closer ends it.
          }
        }
      }),
    );
    return ended;
  }

  /** Sets a run's status and end time. */
  async updateRun(runId: string, update: { status?: RunStatus; endTime?: number; runName?: string }): Promise<MlflowRunInfo> {
    const r = await this.api("POST", "runs/update", {
      runId,
      body: {
        run_id: runId,
        run_uuid: runId,
        ...(update.status ? { status: update.status } : {}),
        ...(update.endTime !== undefined ? { end_time: Math.round(update.endTime) } : {}),
        ...(update.runName !== undefined ? { run_name: update.runName } : {}),
      },
    });
    return toRunInfo((r as { run_info: unknown }).run_info);
  }

  /** The run, or undefined when there is none with this id. */
  async getRun(runId: string): Promise<MlflowRun | undefined> {
    try {
      const r = await this.api("GET", "runs/get", { runId, query: { run_id: runId } });
      return toRun(r.run);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      // MLflow refuses ids that are not run ids (`^[a-zA-Z0-9][\w-]{0,255}$`); such an id names no run.
      if (MlflowApiError.is(error) && error.errorCode === "INVALID_PARAMETER_VALUE" && !/^[a-zA-Z0-9][\w-]{0,255}$/.test(runId)) return undefined;
      throw error;
    }
  }

  /** Runs matching `filter`, following `next_page_token` until `maxResults` runs are read. */
  async searchRuns(options: MlflowSearchRuns): Promise<MlflowRun[]> {
    const max = options.maxResults ?? 1000;
    const keep = options.keep ?? (() => true);
    const out: MlflowRun[] = [];
    let pageToken: string | undefined;
    do {
      const r = await this.api("POST", "runs/search", {
        body: {
          experiment_ids: options.experimentIds,
          filter: options.filter ?? "",
          run_view_type: options.runViewType ?? "ACTIVE_ONLY",
          // Runs left out here would cost a page each: whole pages, when any may be.
          max_results: options.keep ? 1000 : Math.min(1000, max - out.length),
          order_by: options.orderBy ?? ["attributes.start_time DESC"],
          ...(pageToken ? { page_token: pageToken } : {}),
        },
      });
      for (const run of (r.runs as unknown[] | undefined) ?? []) {
        const parsed = toRun(run);
        if (keep(parsed)) out.push(parsed);
      }
      pageToken = typeof r.next_page_token === "string" && r.next_page_token ? r.next_page_token : undefined;
    } while (pageToken && out.length < max);
    return out.slice(0, max);
  }

  /**
   * Logs metrics, params and tags, split into requests that fit MLflow's limits. Keys and values
   * are made well-formed first (see {@link entries}).
   */
  async logBatch(runId: string, batch: MlflowBatch): Promise<void> {
    const wellFormed = { ...batch, params: batch.params?.map(wellFormedEntry), tags: batch.tags?.map(wellFormedEntry) };
    for (const chunk of chunkBatch(wellFormed)) {
      await this.api("POST", "runs/log-batch", {
        runId,
        body: {
          run_id: runId,
          metrics: chunk.metrics.map(metricToWire),
          params: chunk.params,
          tags: chunk.tags,
        },
      });
    }
  }

  /** Every point of one metric (paginated), ordered as the server orders them (timestamp, then step). */
  async getMetricHistory(runId: string, key: string): Promise<MlflowMetric[]> {
    const out: MlflowMetric[] = [];
    let pageToken: string | undefined;
    do {
      const r = await this.api("GET", "metrics/get-history", {
        runId,
        query: { run_id: runId, metric_key: key, max_results: 25_000, ...(pageToken ? { page_token: pageToken } : {}) },
      });
      for (const m of (r.metrics as unknown[] | undefined) ?? []) out.push(toMetric(m));
      pageToken = typeof r.next_page_token === "string" && r.next_page_token ? r.next_page_token : undefined;
    } while (pageToken);
    return out;
  }

  // ------------------------------------------------------------ artifacts

  /**
   * Uploads one local file to `<artifactUri>/<artifactPath>/<file name>`, streaming it.
   * `artifactUri` is a run's `mlflow-artifacts:` URI.
   */
  async uploadArtifact(artifactUri: string, localFile: string, artifactPath?: string, runId?: string): Promise<void> {
    const rel = joinArtifactPath(artifactPath, basename(localFile));
    const info = await stat(localFile).catch((error: unknown) => {
      throw localReadError(localFile, `mlflow-artifacts PUT ${rel}`, error);
    });
    if (!info.isFile()) throw localReadError(localFile, `mlflow-artifacts PUT ${rel}`, "it is not a file (a folder, FIFO, socket or device)");
    const url = this.artifactUrl(artifactUri, rel, runId);
    await this.send({
      method: "PUT",
      url,
      endpoint: `mlflow-artifacts PUT ${rel}`,
      runId,
      body: () => createReadStream(localFile),
      headers: { "Content-Type": mimeType(localFile), "Content-Length": String(info.size) },
      responseType: "text",
    });
  }

  /** A small text file at `<artifactUri>/<path>`, or `undefined` when there is none (HTTP 404). One request. */
  async readArtifactText(artifactUri: string, path: string): Promise<string | undefined> {
    const rel = normalizeArtifactPath(path);
    try {
      const res = await this.send({ method: "GET", url: this.artifactUrl(artifactUri, rel), endpoint: `mlflow-artifacts GET ${rel}`, responseType: "text" });
      return typeof res.data === "string" ? res.data : String(res.data);
    } catch (error) {
      if (MlflowApiError.is(error) && error.status === 404) return undefined;
      throw error;
    }
  }

  /** Writes a small text file at `<artifactUri>/<path>`, replacing any, from memory. One request. */
  async writeArtifactText(artifactUri: string, path: string, text: string, runId?: string): Promise<void> {
    const rel = normalizeArtifactPath(path);
    await this.send({
      method: "PUT",
      url: this.artifactUrl(artifactUri, rel, runId),
      endpoint: `mlflow-artifacts PUT ${rel}`,
      runId,
      body: () => text,
      headers: { "Content-Type": mimeType(rel), "Content-Length": String(Buffer.byteLength(text)) },
      responseType: "text",
    });
  }

  /**
   * Removes the file or folder at `<artifactUri>/<path>` through the artifact proxy (MLflow's
   * `DELETE /api/2.0/mlflow-artifacts/artifacts/<path>`); one that is not there is no error.
   * One request.
   */
  async deleteArtifact(artifactUri: string, path: string, runId?: string): Promise<void> {
    const rel = normalizeArtifactPath(path);
    try {
      await this.send({
        method: "DELETE",
        url: this.artifactUrl(artifactUri, rel, runId),
        endpoint: `mlflow-artifacts DELETE ${rel}`,
        runId,
        responseType: "text",
        // The proxy's own failure to delete, which another try meets again (MLflow before 2.17
        // failed every one for 4 minutes): a server down or busy (502, 503, 504) is still waited for.
        finalStatuses: FAILED_DELETE,
      });
    } catch (error) {
      if (MlflowApiError.is(error) && error.status === 404) return;
      if (MlflowApiError.is(error) && error.status === 500) throw await this.deleteFailed(error);
      throw error;
    }
  }

  /**
   * A DELETE the artifact proxy answered with HTTP 500. MLflow before {@link FILE_DELETE_SINCE}
   * answers so to deleting any single file from a folder it keeps artifacts in (`mlflow server
   * --artifacts-destination DIR`: `shutil.rmtree` of a file, `NotADirectoryError` in its log), with
   * Flask's bare error page: the server's version tells it apart.
   */
  private async deleteFailed(error: MlflowApiError): Promise<MlflowApiError> {
    const version = await this.serverVersion();
    if (version !== undefined && !versionBefore(version, FILE_DELETE_SINCE)) return error;
    const known = version !== undefined;
    const message =
      `${known ? `the server (MLflow ${version})` : "the server (which does not say its MLflow version)"} answered HTTP 500 to deleting one artifact file at ${this.#shownUri}` +
      `${known ? ": it" : ", as an MLflow server before 2.17"} cannot delete single artifact files from a folder it keeps artifacts in (\`--artifacts-destination DIR\`), and fails every such delete. ` +
      `Upgrade the server to MLflow ${FILE_DELETE_SINCE.join(".")} or later${known ? "" : ` if it is older, else see its log (it said: ${error.serverMessage})`}`;
    return new MlflowApiError(error.endpoint, error.status, error.errorCode, message, error.runId);
  }

  /**
   * The server's MLflow version (`GET /version`, answered by MLflow servers under any path
   * prefix), asked once per client; undefined when the answer is not a version.
   */
  serverVersion(): Promise<string | undefined> {
    this.#version ??= this.send({ method: "GET", url: `${this.uri}/version`, endpoint: "version", responseType: "text", retry: ONE_TRY }).then(
      (res) => {
        const text = typeof res.data === "string" ? res.data.trim() : "";
        return /^\d+\.\d+[\w.+-]*$/.test(text) ? text : undefined;
      },
      () => undefined,
    );
    return this.#version;
  }

  /** Lists the artifacts directly under `path` (the root when omitted); a file or a missing path lists as []. */
  async listArtifacts(artifactUri: string, path?: string, runId?: string): Promise<MlflowFileInfo[]> {
    const { base, root } = this.artifactRoot(artifactUri, runId);
    const rel = path ? normalizeArtifactPath(path) : "";
    const listed = [root, rel].filter(Boolean).join("/");
    const r = await this.api("GET", "", {
      url: `${base}${ARTIFACTS_API}`,
      endpoint: `mlflow-artifacts list ${rel || "/"}`,
      runId,
      query: { path: listed },
    });
    const files = ((r.files as unknown[] | undefined) ?? []).map((f) => {
      const o = f as { path: string; is_dir?: boolean; file_size?: number | string };
      const info: MlflowFileInfo = { path: rel ? `${rel}/${o.path}` : o.path, isDir: Boolean(o.is_dir) };
      if (!info.isDir && o.file_size !== undefined) info.fileSize = toInt(o.file_size);
      return info;
    });
    // As MLflow's client: a path naming a single file lists as nothing.
    if (rel && files.length === 1 && !files[0]!.isDir && files[0]!.path === `${rel}/${basename(rel)}`) return [];
    return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /**
   * Downloads one artifact file to `destFile`, streaming it (written to a partial name that
   * names this process, then renamed: see `partialPath` of @cairn/cache).
   */
  async downloadArtifactFile(artifactUri: string, path: string, destFile: string, runId?: string): Promise<void> {
    const rel = normalizeArtifactPath(path);
    const url = this.artifactUrl(artifactUri, rel, runId);
    const endpoint = `mlflow-artifacts GET ${rel}`;
    const folder = dirname(destFile);
    await mkdir(folder, { recursive: true }).catch((error: unknown) => {
      throw localWriteError(folder, endpoint, error);
    });
    const partial = partialPath(destFile);
    try {
      await this.send({ method: "GET", url, endpoint, runId, responseType: "stream" }, async (res) => {
        const file = createWriteStream(partial);
        // An error of the file's own stream (a full disk) is this machine's, not the network's:
        // thrown as one that is not retried and leaves the breaker alone, as an upload's read is.
        let writeError: unknown;
        file.once("error", (error) => (writeError ??= error));
        await pipeline(res.data as Readable, file).catch((error: unknown) => {
          throw writeError === undefined ? error : localWriteError(folder, endpoint, writeError);
        });
      });
      await rename(partial, destFile);
    } finally {
      await rm(partial, { force: true });
    }
  }

  /**
   * The proxy base URL and path root of a run's artifact URI. MLflow maps
   * `mlflow-artifacts:/<path>` to `<tracking uri>/api/2.0/mlflow-artifacts/artifacts/<path>`
   * and `mlflow-artifacts://host:port/<path>` to the same path on that host.
   */
  artifactRoot(artifactUri: string, runId?: string): { base: string; root: string } {
    const m = /^mlflow-artifacts:(?:\/\/([^/]*))?(\/.*)?$/.exec(artifactUri);
    if (m) {
      const tracking = new URL(this.uri);
      const base = m[1] ? `${tracking.protocol}//${m[1]}` : this.uri;
      return { base, root: (m[2] ?? "").replace(/^\/+|\/+$/g, "").replace(/\/{2,}/g, "/") };
    }
    const at = artifactUri.indexOf(ARTIFACTS_API);
    if (/^https?:\/\//.test(artifactUri) && at >= 0) {
      return { base: artifactUri.slice(0, at), root: artifactUri.slice(at + ARTIFACTS_API.length).replace(/^\/+|\/+$/g, "") };
    }
    throw new TrackingError(
      `Run ${runId ?? ""} keeps its artifacts at "${artifactUri}", which Cairn can reach only through the MLflow server's ` +
        `artifact proxy (an mlflow-artifacts: URI). Start the server with \`--artifacts-destination <folder or s3://...>\` instead of ` +
        `\`--default-artifact-root\` (or with \`--default-artifact-root mlflow-artifacts:/\`) and use an experiment created since, ` +
        `whose artifact location is mlflow-artifacts:/...`,
    );
  }

  private artifactUrl(artifactUri: string, rel: string, runId?: string): string {
    const { base, root } = this.artifactRoot(artifactUri, runId);
    const path = [root, rel].filter(Boolean).join("/");
    return `${base}${ARTIFACTS_API}/${path.split("/").map(encodeURIComponent).join("/")}`;
  }

  // ------------------------------------------------------------ transport

  /**
   * Any JSON endpoint of `/api/2.0/mlflow/` (the model registry's, logged models'), through the
   * client's one path: credentials, retries with backoff, MLflow's error body. Resolves
   * `undefined` when the server says the thing does not exist (`RESOURCE_DOES_NOT_EXIST`, 404).
   * @example
   * const version = await client.call("GET", "model-versions/get", { query: { name: "churn", version: "3" } });
   */
  async call(
    method: "GET" | "POST",
    endpoint: string,
    options: { query?: Record<string, string>; body?: unknown; signal?: AbortSignal | undefined } = {},
  ): Promise<Record<string, unknown> | undefined> {
    try {
      return await this.api(method, endpoint, options);
    } catch (error) {
      if (MlflowApiError.is(error) && (error.errorCode === "RESOURCE_DOES_NOT_EXIST" || error.status === 404)) return undefined;
      throw error;
    }
  }

  /** Calls a JSON endpoint of `/api/2.0/mlflow/` and returns the parsed body. */
  private async api(
    method: "GET" | "POST",
    endpoint: string,
    options: {
      runId?: string | undefined;
      query?: Record<string, unknown>;
      body?: unknown;
      retry?: RetryPolicy;
      url?: string;
      endpoint?: string;
      signal?: AbortSignal | undefined;
      /** Before each retry: a body to take as the answer instead of sending the request again. */
      beforeRetry?: (previous: unknown) => Promise<Record<string, unknown> | undefined>;
      ungated?: boolean;
      /**
       * A success whose body cannot be read (cut short, a page instead of JSON) may still have
       * done the work (a run made): tried again as a request without an answer is, `beforeRetry`
       * first, instead of failing at once with the work perhaps done and nobody to end it.
       */
      answerMayBeLost?: boolean;
    },
  ): Promise<Record<string, unknown>> {
    const body = options.body;
    const named = options.endpoint ?? endpoint;
    const readable = options.answerMayBeLost
      ? async (res: HttpResponse) => {
          const text = typeof res.data === "string" ? res.data : "";
          // Empty too: a create's answer holds the run.
          if (text.trim() && jsonObject(text) !== undefined) return;
          const error = this.notJson(res, text, named, options.runId);
          retryable.add(error);
          throw error;
        }
      : undefined;
    const res = await this.send({
      method,
      url: options.url ?? `${this.uri}${API}/${endpoint}`,
      endpoint: options.endpoint ?? endpoint,
      runId: options.runId,
      ...(options.query ? { params: options.query } : {}),
      ...(body !== undefined ? { body: () => JSON.stringify(body), headers: { "Content-Type": "application/json" } } : {}),
      responseType: "text",
      ...(options.retry ? { retry: options.retry } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.beforeRetry ? { beforeRetry: recovered(options.beforeRetry) } : {}),
      ...(options.ungated ? { ungated: true } : {}),
    }, readable);
    const text = typeof res.data === "string" ? res.data : "";
    const parsed = jsonObject(text);
    if (parsed === undefined) throw this.notJson(res, text, named, options.runId);
    return parsed;
  }

  /** `text` with the client's credentials replaced by `***`. */
  #mask(text: string): string {
    for (const secret of this.#secrets) text = text.split(secret).join("***");
    return text;
  }

  /**
   * A success status whose body is not MLflow's JSON: most often a proxy's or single sign-on's
   * login page in front of the server. Names the endpoint, the status and the body's start
   * (credentials the client sends masked); not retried, as a page does not turn into an answer.
   */
  private notJson(res: HttpResponse, text: string, endpoint: string, runId: string | undefined): MlflowApiError {
    let start = this.#mask(text.replace(/\s+/g, " ").trim());
    start = start.length > 200 ? `${start.slice(0, 200)}...` : start;
    const type = String(res.headers["content-type"] ?? "no content type");
    return new MlflowApiError(
      endpoint,
      res.status,
      NOT_JSON,
      `the server at ${this.#shownUri} answered with a body that is not JSON (${type}): ${JSON.stringify(start)}. ` +
        `This is likely a proxy or login page in front of the MLflow server, not MLflow itself: check MLFLOW_TRACKING_URI ` +
        `(the MLflow server's own address, with any path prefix) and the credentials the proxy expects.`,
      runId,
    );
  }

  /**
   * Sends one request with retries on network errors and transient statuses;
   * `consume` reads a successful streamed response inside the retry loop.
   */
  private async send(spec: RequestSpec, consume?: (res: HttpResponse) => Promise<void>): Promise<HttpResponse> {
    const release = await this.gate(spec);
    if (!release) return this.traced(spec, consume);
    let noAnswer = false;
    try {
      return await this.traced(spec, consume);
    } catch (error) {
      // Only a request that got no answer keeps the others from being sent: not one ended by its own signal, or a local file it could not read.
      noAnswer = unanswered.has(error as Error) && !spec.signal?.aborted;
      throw error;
    } finally {
      release(noAnswer);
    }
  }

  /**
   * While the server is known down: waits for the request finding out whether it is back (until
   * it gets an answer or none, this request's own signal ends it, or the run is cancelled), or
   * makes this one that request (the function returned ends it), or refuses to send it at all
   * when the last such request got no answer less than {@link SHUT_MS} ago.
   */
  private async gate(spec: RequestSpec): Promise<((noAnswer: boolean) => void) | undefined> {
    for (;;) {
      if (!this.#unreachable || this.#hurries > 0 || spec.ungated || spec.signal?.aborted) return undefined;
      if (performance.now() < this.#shutUntil) throw this.notSent(spec);
      const probe = this.#probe;
      if (!probe) {
        let resolve!: () => void;
        const made = {
          done: new Promise<void>((r) => (resolve = r)),
          release: (noAnswer: boolean) => {
            if (this.#probe !== made) return;
            this.#probe = undefined;
            if (noAnswer && this.#unreachable) this.#shutUntil = performance.now() + SHUT_MS;
            resolve();
          },
        };
        this.#probe = made;
        return made.release;
      }
      const ends = [this.#cut.waits.signal, ...(spec.signal ? [spec.signal] : [])];
      await untilDoneOrAborted(probe.done, AbortSignal.any(ends));
    }
  }

  /** A request not sent because the server is known down and the last request tried got no answer. */
  private notSent(spec: RequestSpec): TrackingError {
    const out = new TrackerUnreachableError(
      this.#shownUri,
      `${spec.endpoint} not sent: an earlier request got no answer after its retries, and the one sent since to see whether the server is back got none either (the next is sent ${SHUT_MS / 1000} s after it)`,
    );
    retryable.add(out);
    unanswered.add(out);
    return out;
  }

  private async traced(spec: RequestSpec, consume?: (res: HttpResponse) => Promise<void>): Promise<HttpResponse> {
    if (!TRACE) return this.attempts(spec, consume);
    const started = performance.now();
    let outcome = "error";
    const tally = { tries: 0 };
    try {
      const res = await this.attempts(spec, consume, tally);
      outcome = String(res.status);
      return res;
    } finally {
      const ms = performance.now() - started;
      // Method, endpoint and timings only: never a header, body or query (credentials, values).
      process.stderr.write(
        `[cairn mlflow] at ${started.toFixed(1)} ms ${spec.method} ${spec.endpoint} -> ${outcome} in ${ms.toFixed(1)} ms (${tally.tries} ${tally.tries === 1 ? "try" : "tries"})\n`,
      );
    }
  }

  /** `tally.tries` counts the attempts made, for the trace. */
  private async attempts(spec: RequestSpec, consume?: (res: HttpResponse) => Promise<void>, tally?: { tries: number }): Promise<HttpResponse> {
    // One try while the server is known down (the breaker is open) or the run is being cancelled.
    const policy = this.#unreachable || this.#hurries > 0 ? ONE_TRY : (spec.retry ?? this.retry);
    const base = policy.backoffFactor * 1000;
    const cut = this.#cut;
    let previous: unknown;
    let attempts = 0;
    const started = performance.now();
    /** Refusals of a busy database in a row: each doubles the longest random wait before the next try. */
    let busyInARow = 0;
    /** The attempt before was ended by the deadline of a cancelled run: it was the request's last. */
    let cutShort = false;
    /** Made the one quick try again that a reset connection gets while requests are tried once. */
    let reopened = false;
    /** Decided once per failed attempt, before its backoff: a cancel during the wait does not undo a retry already due. */
    let again = false;
    const retrying = (error: unknown): boolean => {
      if (spec.signal?.aborted || !retryable.has(error as Error) || cutShort) return false;
      const once = this.#hurries > 0 || (this.#unreachable && unanswered.has(error as Error));
      if (!once) return true;
      // A pooled connection the server had closed: the request never reached it, and a new
      // connection costs no wait (a server that is down refuses it at once).
      if (reopened || !resets.has(error as Error)) return false;
      reopened = true;
      return true;
    };
    try {
      return await pRetry(
        async (attemptNumber) => {
          attempts = attemptNumber;
          if (tally) tally.tries = attemptNumber;
          if (attemptNumber > 1 && spec.beforeRetry) {
            const found = await spec.beforeRetry(previous);
            if (found) return found;
          }
          // Taken before the body is made (a file's stream opened): a request may wait here a while, until a cancel (then it goes at once) or its own signal.
          const waits = spec.signal ? AbortSignal.any([spec.signal, cut.waits.signal]) : cut.waits.signal;
          const slot = this.#hurries === 0 && spec.url.startsWith(`${this.uri}${API}/`) ? await this.#inFlight.acquire(waits) : undefined;
          // Ended at HURRIED_ATTEMPT_MS: of its own when sent once the run was cancelled, else that long after the cancel.
          const limit = this.#hurries > 0 ? AbortSignal.timeout(HURRIED_ATTEMPT_MS) : cut.attempts.signal;
          try {
            return await this.#attempt(spec, limit, slot, consume, () => (cutShort = true));
          } finally {
            slot?.("none");
          }
        },
        {
          // Counted in onFailedAttempt: a busy database's refusals may be tried past the count (see there).
          retries: policy.retries > 0 ? Number.POSITIVE_INFINITY : 0,
          // The backoff is waited in onFailedAttempt, where a cancel (hurry) can end it.
          minTimeout: 0,
          maxTimeout: 0,
          ...(spec.signal ? { signal: spec.signal } : {}),
          shouldRetry: () => again,
          onFailedAttempt: async ({ error, attemptNumber }) => {
            previous = error;
            const busy = busyDatabase.has(error as Error);
            busyInARow = busy ? busyInARow + 1 : 0;
            // A busy database's refusal is an answer from a server at work: tried again for as long as the backoff of the policy's retries would have lasted, however many tries that takes.
            const left = attemptNumber <= policy.retries || (busy && performance.now() - started < backoffTotalMs(policy));
            again = left && retrying(error);
            if (!again || policy === ONE_TRY || reopened) return;
            const waits = spec.signal ? AbortSignal.any([spec.signal, cut.waits.signal]) : cut.waits.signal;
            if (busy) return void (await delay(busyDatabaseWait(busyInARow), undefined, { signal: waits }).catch(() => {}));
            let wait = Math.min(base * 2 ** (attemptNumber - 1), 120_000);
            const jitter = Math.random() * policy.backoffJitter * 1000;
            const retryAfter = (error as { retryAfterMs?: number }).retryAfterMs;
            wait += this.respectRetryAfter && retryAfter !== undefined ? Math.max(jitter, Math.min(retryAfter, 300_000) - wait) : jitter;
            if (performance.now() - started + wait >= RETRY_NOTICE_MS) this.sayRetry(spec, error, attemptNumber, policy.retries, wait);
            if (wait > 0) await delay(wait, undefined, { signal: waits }).catch(() => {});
          },
        },
      );
    } catch (error) {
      // Every retry used up without an answer: the server counts as down until it answers again.
      if (unanswered.has(error as Error) && !spec.signal?.aborted && policy.retries > 0 && policy !== ONE_TRY && attempts > policy.retries) this.#unreachable = true;
      throw attempts > 1 ? this.afterTries(error, attempts, performance.now() - started) : error;
    }
  }

  /**
   * The answer a request got at its last try, saying where it was sent, how many times and for how
   * long: "failed with HTTP 500" alone read as one bad request, not a server failing for minutes.
   */
  private afterTries(error: unknown, count: number, ms: number): unknown {
    if (!MlflowApiError.is(error) || error.tries) return error;
    const out = new MlflowApiError(error.endpoint, error.status, error.errorCode, error.serverMessage, error.runId, { tries: { uri: this.#shownUri, count, ms } });
    for (const set of [retryable, busyDatabase]) if (set.has(error)) set.add(out);
    return Object.assign(out, "retryAfterMs" in error ? { retryAfterMs: error.retryAfterMs } : {});
  }

  /**
   * One try of a request: `slot` (its place among the requests in flight, when it needs one) is
   * given back with what the server said; `ended()` marks a try that a cancelled run's deadline ended.
   */
  async #attempt(
    spec: RequestSpec,
    limit: AbortSignal,
    slot: ((outcome: "busy" | "answered" | "none") => void) | undefined,
    consume: ((res: HttpResponse) => Promise<void>) | undefined,
    ended: () => void,
  ): Promise<HttpResponse> {
    let res: HttpResponse;
    const body = spec.body?.();
    // An error of the body's own stream (a local file that cannot be read) is no network's: not retried, breaker untouched.
    let bodyError: unknown;
    if (body && typeof body !== "string") body.once("error", (error) => (bodyError ??= error));
    try {
      res = await this.http.request({
        method: spec.method,
        url: spec.url,
        query: spec.params,
        body,
        headers: { ...spec.headers, ...(this.#authorization ? { Authorization: this.#authorization } : {}) },
        responseType: spec.responseType,
        signal: spec.signal ? AbortSignal.any([spec.signal, limit]) : limit,
      });
    } catch (error) {
      if (bodyError !== undefined) throw localReadError((body as { path?: unknown }).path, spec.endpoint, bodyError);
      if (limit.aborted) ended();
      throw this.networkError(error, spec, limit);
    }
    // Any answer, whatever its status, shows the server is there again: the requests waiting
    // for the one sent to find out go at once, not once its body has been read.
    this.#unreachable = false;
    this.#probe?.release(false);
    if (res.status >= 200 && res.status < 300) {
      slot?.("answered");
      if (consume) {
        try {
          await consume(res);
        } catch (error) {
          if (limit.aborted) ended();
          throw this.networkError(error, spec, limit);
        }
      }
      return res;
    }
    const error = await this.statusError(res, spec);
    slot?.(busyDatabase.has(error) || res.status === 429 || res.status === 503 ? "busy" : "answered");
    throw error;
  }

  /** A request that got no answer: unreachable, reset, timed out. Never carries the request config (credentials). */
  private networkError(error: unknown, spec: RequestSpec, limit: AbortSignal): TrackingError {
    if (TrackingError.is(error)) return error;
    const e = error as { code?: string; message?: string };
    const code = e.code ?? "";
    const detail =
      limit.aborted && !spec.signal?.aborted
        ? `no answer within ${HURRIED_ATTEMPT_MS / 1000} s on ${spec.endpoint}, the limit for a request once the run is cancelled`
        : code === "ECONNREFUSED"
        ? "connection refused"
        : code === "ENOTFOUND" || code === "EAI_AGAIN"
          ? "host not found"
          : code === "ECONNABORTED" || code === "ETIMEDOUT"
            ? `no answer within the timeout (MLFLOW_HTTP_REQUEST_TIMEOUT) on ${spec.endpoint}`
            : `${code || "network error"}: ${e.message ?? String(error)} on ${spec.endpoint}`;
    const once = this.#unreachable ? " (tried once: an earlier request got no answer after its retries, so requests are tried once until the server answers again)" : "";
    const out = new TrackerUnreachableError(this.#shownUri, detail + once, { cause: new Error(`${code} ${e.message ?? ""}`.trim()) });
    retryable.add(out);
    unanswered.add(out);
    if (code === "ECONNRESET" || code === "EPIPE") resets.add(out);
    return out;
  }

  /**
   * A 403: the server knows who is asking (MLflow's basic-auth app answers 401 to unknown
   * credentials) and refuses that user this experiment or run. Not "cannot reach": the server is
   * there; its own first line says what was refused.
   */
  private forbidden(spec: RequestSpec, errorCode: string, message: string): MlflowApiError {
    const said = this.#mask(message.replace(/<[^>]*>/g, " ").trim().split(/\r?\n/)[0]!.replace(/\s+/g, " ").trim()).slice(0, 300);
    const who = this.#sent ? `the user of ${this.#sent.split(";")[0]}` : "an anonymous request (no credentials were given)";
    return new MlflowApiError(
      spec.endpoint,
      403,
      errorCode,
      `the MLflow server at ${this.#shownUri} refused permission to ${who}${said ? `, saying "${said}"` : ""}. ` +
        (this.#sent
          ? `The credentials were accepted, but lack permission on this experiment or run: have the server's admin grant it ` +
            `(MLflow's basic-auth app: READ to read, EDIT or MANAGE to record), or use credentials that have it.`
          : `Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN, to credentials with permission on this experiment or run.`),
      spec.runId,
    );
  }

  private async statusError(res: HttpResponse, spec: RequestSpec): Promise<TrackingError> {
    let text: string;
    if (spec.responseType === "stream") text = await readText(res.data as Readable);
    else text = typeof res.data === "string" ? res.data : "";
    let errorCode = `HTTP_${res.status}`;
    let message = serverSays(text) || String(res.statusText || "no body");
    try {
      const body = parseJson(text) as { error_code?: string; message?: string; detail?: unknown };
      if (body && typeof body === "object") {
        if (typeof body.error_code === "string") errorCode = body.error_code;
        if (typeof body.message === "string") message = body.message;
        else if (body.detail !== undefined) message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      }
    } catch {
      // Not MLflow's error body (a proxy's HTML page): keep the text.
    }
    let error: TrackingError;
    if (res.status === 401) {
      error = new TrackerUnreachableError(
        this.#shownUri,
        this.#sent
          ? `the server refused the request to ${spec.endpoint} with HTTP 401 (the credentials given were not accepted: it was sent ${this.#sent}); check their values`
          : `the server refused the request to ${spec.endpoint} with HTTP 401 (no credentials were given); set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN`,
      );
    } else if (res.status === 403) {
      error = this.forbidden(spec, errorCode, message);
    } else if (res.status === 503 && ARTIFACTS_ONLY.test(message)) {
      // Not retried: the server answers so for as long as it runs.
      return new TrackerUnreachableError(
        this.#shownUri,
        `it is an MLflow artifacts-only server (\`mlflow server --artifacts-only\`), which serves no tracking requests (HTTP 503 on ${spec.endpoint}): ` +
          `point MLFLOW_TRACKING_URI at the MLflow tracking server, one started without --artifacts-only`,
      );
    } else {
      error = new MlflowApiError(spec.endpoint, res.status, errorCode, this.#mask(message), spec.runId);
    }
    const busy = res.status === 400 && OVERLOADED_DATABASE.test(message);
    if (busy) busyDatabase.add(error);
    if ((TRANSIENT_STATUS.has(res.status) && !spec.finalStatuses?.has(res.status)) || busy) {
      retryable.add(error);
      const after = retryAfterMs(res.headers["retry-after"]);
      // As MLflow's client (urllib3's Retry): a 503 that says when to come back is waited for, as a 429 is.
      if ((res.status === 429 || res.status === 503) && after !== undefined) Object.assign(error, { retryAfterMs: after });
    }
    return error;
  }
}

/**
 * What a body that is not MLflow's JSON says: a Python exception's line when it holds one (a
 * server's `OSError: [Errno 28] No space left on device`), else its text without HTML tags, at
 * most 500 characters: an error page's markup hid the one line that said why.
 */
export function serverSays(text: string): string {
  const raised = /(?:^|[\s>])((?:\([A-Za-z_][\w.]*(?:Error|Exception)\)|[A-Za-z_][\w.]*(?:Error|Exception):) [^\n<]{1,300})/.exec(text);
  if (raised && /^\s*</.test(text)) return raised[1]!.trim();
  const plain = /^\s*</.test(text) ? text.replace(/<(script|style)[\s\S]*?<\/\1>/gi, " ").replace(/<[^>]*>/g, " ").replace(/\s+/g, " ") : text;
  return plain.trim().slice(0, 500);
}

/** Whether MLflow version `version` (`2.9.2`, `3.1.0rc0`) comes before `[major, minor]`. */
export function versionBefore(version: string, [major, minor]: readonly [number, number]): boolean {
  const [a = 0, b = 0] = version.split(".").map((n) => Number.parseInt(n, 10));
  return a < major || (a === major && b < minor);
}

/** Milliseconds the policy's backoff waits over all its retries, without jitter: about 4 minutes by default. */
function backoffTotalMs(policy: RetryPolicy): number {
  let total = 0;
  for (let n = 1; n <= policy.retries; n++) total += Math.min(policy.backoffFactor * 1000 * 2 ** (n - 1), 120_000);
  return total;
}

/**
 * The wait before a request the server's database refused is sent again: random from 0 ("full
 * jitter"), so that the requests refused together do not come back together, up to 50 ms after
 * the first refusal and doubling with each one in a row, at most {@link LOCKED_MAX_WAIT_MS}.
 */
function busyDatabaseWait(inARow: number): number {
  return Math.random() * Math.min(LOCKED_MAX_WAIT_MS, LOCKED_FIRST_WAIT_MS * 2 ** (inARow - 1));
}

/**
 * A local file to upload could not be read (EISDIR, ENOENT, EACCES): the machine's problem, not
 * the server's, so it is not retried, and it says which file and why.
 */
function localReadError(file: unknown, endpoint: string, cause: unknown): TrackingError {
  const what = typeof file === "string" ? file : Buffer.isBuffer(file) ? file.toString() : "the local file";
  const code = (cause as { code?: unknown } | undefined)?.code;
  const message = (cause as Error | undefined)?.message ?? String(cause);
  const why = typeof cause === "string" || typeof code !== "string" || message.startsWith(code) ? message : `${code}: ${message}`;
  return new TrackingError(
    `Cannot read ${what} to upload it (${endpoint}): ${why}. This is a local file problem, not the MLflow server's: ` +
      `check that the file exists, is a regular file and is readable.`,
    typeof cause === "string" ? undefined : { cause },
  );
}

/**
 * A downloaded file could not be written here (ENOSPC, EDQUOT, EROFS, EACCES, EMFILE): the
 * machine's problem, not the server's, so it is not retried, the server does not count as
 * down, and it says which folder and what to do there. The fs error is its cause.
 */
function localWriteError(folder: string, endpoint: string, cause: unknown): TrackingError {
  const code = (cause as { code?: unknown } | undefined)?.code;
  const message = (cause as Error | undefined)?.message ?? String(cause);
  const why = typeof code !== "string" || message.startsWith(code) ? message : `${code}: ${message}`;
  return new TrackingError(
    `Cannot write the file of ${endpoint} into ${folder}: ${why}. This is a problem of this machine's disk, not of the MLflow server: ${localWriteFix(code)}.`,
    { cause },
  );
}

/** What to do about a file system error met writing a download, by its code; one clause. */
function localWriteFix(code: unknown): string {
  switch (code) {
    case "ENOSPC":
    case "EDQUOT":
      return "the disk that holds that folder (or your quota) is full: free space there, then run again";
    case "EROFS":
      return "its file system is read-only: make it writable, or point Cairn at a writable folder";
    case "EACCES":
    case "EPERM":
      return "this user may not write there: make the folder writable, or point Cairn at a writable folder";
    case "EMFILE":
    case "ENFILE":
      return "too many files are open at once: raise the limit (`ulimit -n`) or try again";
    default:
      return "check that folder and the disk it is on, then run again";
  }
}

// ------------------------------------------------------------ wire format

/** The tag that makes a run a child of another (MLflow's nested runs). */
export const PARENT_RUN_TAG = "mlflow.parentRunId";

/**
 * Whether an error is the server refusing a search for runs without a tag: an HTTP 400 to a filter
 * that holds `IS NULL` (the caller knows it did). MLflow 2.x says "Invalid clause(s) in filter
 * string: 'tags.`key`', 'IS', 'NULL'"; any 400 is taken, as the search without the condition
 * fails again on its own if something else was wrong.
 */
export function isTagAbsenceRefused(error: unknown): boolean {
  // Only the refusal of the clause itself: a 400 of a busy database (retried, then given up) is no
  // reason to page through every run from then on.
  return error instanceof MlflowApiError && error.status === 400 && /\bIS\b[\s\S]*\bNULL\b|invalid clause/i.test(error.serverMessage);
}

/** Builds an MLflow filter string. Tag keys are quoted with backticks; values with quotes. */
export function runFilter(conditions: {
  tags?: Record<string, string>;
  parentRunId?: string;
  status?: RunStatus;
  topLevelOnly?: boolean;
  hasTag?: string;
}): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(conditions.tags ?? {})) parts.push(tagCondition(key, value));
  if (conditions.hasTag !== undefined) parts.push(tagPresentCondition(conditions.hasTag));
  if (conditions.parentRunId !== undefined) parts.push(tagCondition(PARENT_RUN_TAG, conditions.parentRunId));
  if (conditions.topLevelOnly) parts.push(tagAbsentCondition(PARENT_RUN_TAG));
  if (conditions.status) parts.push(`attributes.status = '${conditions.status}'`);
  return parts.join(" AND ");
}

function tagCondition(key: string, value: string): string {
  return `${tagName(key)} ${quoteFilterValue(value)}`;
}

/** `tags.`key` != '<value>'`, or undefined when the value cannot be quoted exactly (the caller then leaves such runs out itself). */
export function tagNotCondition(key: string, value: string): string | undefined {
  const equal = quoteFilterValue(value);
  return equal.startsWith("=") ? `${tagName(key)} !${equal}` : undefined;
}

/** `tags.`key` IS NULL`: runs without the tag (refused by MLflow 2.x servers: see `MlflowClient.refusesTagAbsence`). */
export function tagAbsentCondition(key: string): string {
  return `${tagName(key)} IS NULL`;
}

/**
 * `tags.`key` LIKE '%'`: runs with the tag, whatever its value. Not `IS NOT NULL`, which a server
 * older than `IS NULL` on tags refuses; a LIKE on a tag has long been understood.
 */
function tagPresentCondition(key: string): string {
  return `${tagName(key)} LIKE '%'`;
}

function tagName(key: string): string {
  if (key.includes("`")) throw new TrackingError(`Tag key ${JSON.stringify(key)} contains a backtick, which an MLflow filter cannot quote.`);
  return `tags.\`${key}\``;
}

/**
 * `= '<value>'`, or when the value cannot be quoted exactly (MLflow strips the
 * quotes without unescaping) a `LIKE` that matches a superset; callers that
 * need exact matches check the values they get back.
 */
export function quoteFilterValue(value: string): string {
  const plain = !value.includes("\\");
  if (plain && !value.includes("'")) return `= '${value}'`;
  if (plain && !value.includes('"')) return `= "${value}"`;
  return `LIKE '${value.replace(/['"\\]/g, "_")}'`;
}

/**
 * Splits a batch so each request stays within MLflow's per-request counts and
 * 1 MB body. Each request takes as many params and tags as it may, then fills
 * up with metrics, so the number of requests is as low as the limits allow.
 */
export function chunkBatch(batch: MlflowBatch): BatchChunk[] {
  const params = batch.params ?? [];
  const tags = batch.tags ?? [];
  const metrics = batch.metrics ?? [];
  // Room for `{"run_id":"<32 chars>","metrics":[],"params":[],"tags":[]}` and a margin.
  const budget = MLFLOW_LIMITS.batchRequestBytes - 1024;
  const chunks: BatchChunk[] = [];
  let p = 0;
  let t = 0;
  let m = 0;
  while (p < params.length || t < tags.length || m < metrics.length) {
    const chunk: BatchChunk = { metrics: [], params: [], tags: [] };
    let bytes = 0;
    let count = 0;
    const fits = (item: unknown) => {
      const size = Buffer.byteLength(JSON.stringify(item)) + 1;
      // A request always takes its first item, whatever its size.
      if (count > 0 && (bytes + size > budget || count >= MLFLOW_LIMITS.entitiesPerBatch)) return false;
      bytes += size;
      count++;
      return true;
    };
    while (p < params.length && chunk.params.length < MLFLOW_LIMITS.paramsPerBatch && fits(params[p])) chunk.params.push(params[p++]!);
    while (t < tags.length && chunk.tags.length < MLFLOW_LIMITS.tagsPerBatch && fits(tags[t])) chunk.tags.push(tags[t++]!);
    while (m < metrics.length && chunk.metrics.length < MLFLOW_LIMITS.metricsPerBatch && fits(metricToWire(metrics[m]!))) chunk.metrics.push(metrics[m++]!);
    chunks.push(chunk);
  }
  return chunks;
}

/** One log-batch request's worth. */
export interface BatchChunk {
  metrics: MlflowMetric[];
  params: { key: string; value: string }[];
  tags: { key: string; value: string }[];
}

function metricToWire(m: MlflowMetric): { key: string; value: number | string; timestamp: number; step: number } {
  const value = Number.isNaN(m.value) ? "NaN" : m.value === Infinity ? "Infinity" : m.value === -Infinity ? "-Infinity" : m.value;
  return { key: m.key, value, timestamp: Math.round(m.timestamp), step: Math.round(m.step) };
}

/**
 * Resolves when `done` does or `signal` aborts, whichever is first; never rejects. Not
 * `Promise.race([done, once(signal, "abort")])`: when `done` wins, once()'s listener stays on the
 * signal until the run ends, one per wait while the server is down (client.test.ts counts them).
 */
function untilDoneOrAborted(done: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const onAbort = () => resolve();
    signal.addEventListener("abort", onAbort, { once: true });
    void done.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}

/** A `beforeRetry` of `api` (a body or nothing) as the transport's (a response or nothing). */
function recovered(recover: (previous: unknown) => Promise<Record<string, unknown> | undefined>): (previous: unknown) => Promise<HttpResponse | undefined> {
  return async (previous) => {
    const body = await recover(previous);
    return body === undefined ? undefined : { status: 200, statusText: "OK", headers: {}, data: JSON.stringify(body) };
  };
}

/** The JSON object a body holds (`{}` for an empty one), or undefined when it holds none. */
function jsonObject(text: string): Record<string, unknown> | undefined {
  if (!text.trim()) return {};
  let parsed: unknown;
  try {
    parsed = parseJson(text);
  } catch {
    return undefined;
  }
  return parsed === null || typeof parsed !== "object" || Array.isArray(parsed) ? undefined : (parsed as Record<string, unknown>);
}

/** JSON.parse that also accepts the bare NaN / Infinity some servers write. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return JSON.parse(text.replace(/([:[,]\s*)(-?Infinity|NaN)(?=\s*[,\]}])/g, '$1"$2"'));
  }
}

/** An int64 that older servers send as a string. */
export function toInt(value: unknown): number {
  const n = typeof value === "string" ? Number(value) : (value as number);
  return typeof n === "number" && Number.isFinite(n) ? n : 0;
}

/** A double that may arrive as "NaN" / "Infinity" / a string; ±DBL_MAX reads back as ±Infinity. */
export function toDouble(value: unknown): number {
  if (typeof value === "number") return value === DBL_MAX ? Infinity : value === -DBL_MAX ? -Infinity : value;
  if (value === "NaN") return Number.NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  return toDouble(Number(value));
}

function toMetric(raw: unknown): MlflowMetric {
  const m = raw as Record<string, unknown>;
  return { key: String(m.key), value: toDouble(m.value), timestamp: toInt(m.timestamp), step: toInt(m.step ?? 0) };
}

function toExperiment(raw: unknown): MlflowExperiment {
  const e = raw as Record<string, unknown>;
  const out: MlflowExperiment = {
    experimentId: String(e.experiment_id),
    name: String(e.name),
    lifecycleStage: String(e.lifecycle_stage ?? "active"),
  };
  if (typeof e.artifact_location === "string") out.artifactLocation = e.artifact_location;
  return out;
}

function toRunInfo(raw: unknown): MlflowRunInfo {
  const i = raw as Record<string, unknown>;
  const info: MlflowRunInfo = {
    runId: String(i.run_id ?? i.run_uuid),
    experimentId: String(i.experiment_id),
    runName: String(i.run_name ?? ""),
    status: String(i.status ?? "RUNNING") as RunStatus,
    startTime: toInt(i.start_time),
    artifactUri: String(i.artifact_uri ?? ""),
    lifecycleStage: String(i.lifecycle_stage ?? "active"),
  };
  if (i.end_time !== undefined && i.end_time !== null) info.endTime = toInt(i.end_time);
  return info;
}

function toRun(raw: unknown): MlflowRun {
  const r = raw as { info: unknown; data?: { metrics?: unknown[]; params?: unknown[]; tags?: unknown[] } };
  // By fromEntries, not assignment: a param, tag or metric named `__proto__` stays a key (an assignment sets the prototype).
  const entry = (e: unknown) => [(e as { key: string }).key, (e as { value?: string }).value ?? ""] as const;
  const params: Record<string, string> = Object.fromEntries((r.data?.params ?? []).map(entry));
  const tags: Record<string, string> = Object.fromEntries((r.data?.tags ?? []).map(entry));
  const metrics: Record<string, number> = Object.fromEntries((r.data?.metrics ?? []).map((m) => toMetric(m)).map((point) => [point.key, point.value]));
  const info = toRunInfo(r.info);
  if (!info.runName && tags["mlflow.runName"]) info.runName = tags["mlflow.runName"];
  return { info, params, metrics, tags };
}

/**
 * A record as MLflow's key/value entries, well-formed: a lone UTF-16 surrogate (half an emoji,
 * as `s.slice(0, n)` can leave) becomes U+FFFD. MLflow answers 200 to a log-batch holding one but
 * stores that value as `''` and drops the batch's tags and metrics (cairn.status among them).
 */
function entries(record: Record<string, string>): { key: string; value: string }[] {
  return Object.entries(record).map(([key, value]) => wellFormedEntry({ key, value }));
}

function wellFormedEntry(entry: { key: string; value: string }): { key: string; value: string } {
  return { key: entry.key.toWellFormed(), value: String(entry.value).toWellFormed() };
}

function activeExperimentId(e: MlflowExperiment): string {
  // A setting Cairn cannot use (the CLI's exit 2, as `cairn runs --experiment` says it), not a failed run.
  if (e.lifecycleStage === "deleted") {
    throw new TrackingConfigError(
      `MLflow experiment "${e.name}" (id ${e.experimentId}) is deleted. Restore it (\`mlflow experiments restore --experiment-id ${e.experimentId}\`), ` +
        `delete it for good (\`mlflow gc\`), or use another experiment name.`,
    );
  }
  return e.experimentId;
}

function isNotFound(error: unknown): boolean {
  return MlflowApiError.is(error) && (error.errorCode === "RESOURCE_DOES_NOT_EXIST" || error.status === 404);
}

/** `a/b` + `c.txt`, checked: no absolute paths, no `..`. */
export function joinArtifactPath(folder: string | undefined, name: string): string {
  return normalizeArtifactPath(folder ? `${folder}/${name}` : name);
}

/** Normalises an artifact path to `a/b/c` and rejects one that climbs out of the run's root. */
export function normalizeArtifactPath(path: string): string {
  const parts = path.replace(/\\/g, "/").split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new TrackingError(`Artifact path ${JSON.stringify(path)} climbs out of the run's artifacts with "..". Use a path inside the run.`);
  return parts.join("/");
}

async function readText(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks).toString("utf8");
}

const MIME: Record<string, string> = {
  ".json": "application/json",
  ".txt": "text/plain",
  ".csv": "text/csv",
  ".html": "text/html",
  ".md": "text/markdown",
  ".yaml": "application/x-yaml",
  ".yml": "application/x-yaml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".svg": "image/svg+xml",
  ".pdf": "application/pdf",
};

function mimeType(file: string): string {
  return MIME[extname(file).toLowerCase()] ?? "application/octet-stream";
}
