/**
 * Variable names that are almost one Cairn or MLflow reads: `CAIRN_CACHE_URI` for
 * `CAIRN_CACHE_URL`, `MLFLOW_TRACKING_URL` for `MLFLOW_TRACKING_URI`. Such a variable is
 * ignored, and the run falls back to the embedded store or a lenient cache without a word;
 * so each is said once per process: by `cairn` when it starts, and by run() with its first
 * events, for an app that embeds the engine. Only `CAIRN_*` names and MLflow's tracking,
 * experiment and HTTP ones are looked at: MLflow reads many other `MLFLOW_*` variables Cairn
 * does not list.
 */
import { closestName } from "../internal.ts";

/** The variables Cairn reads or sets (README, Environment variables and Processes). */
const CAIRN_VARIABLES = [
  "CAIRN_CACHE_URL",
  "CAIRN_CACHE_STRICT",
  "CAIRN_LEASE_TTL_MS",
  "CAIRN_LARGE_OUTPUT_MB",
  "CAIRN_PYTHON",
  "CAIRN_PYTHON_ENV_KEY",
  "CAIRN_NO_AUTORUN",
  "CAIRN_IMPORT",
  "CAIRN_MLFLOW_TRACE",
  "CAIRN_MLFLOW_RECORDS_IN_FLIGHT",
  "CAIRN_MLFLOW_CONNECTION_REQUESTS",
  "CAIRN_QUEUE",
  "CAIRN_QUEUE_LOCK_MS",
  "CAIRN_QUEUE_STALE_GRACE_MS",
  "CAIRN_QUEUE_MAX_DEATHS",
  "CAIRN_QUEUE_DOWN_MS",
  "CAIRN_LIFELINE",
  "CAIRN_INPUTS",
  "CAIRN_OUTPUTS",
  "CAIRN_ARTIFACTS",
  "CAIRN_ATTEMPT",
  "CAIRN_RUN_ID",
  "CAIRN_FLOW_RUN_ID",
  "CAIRN_TASK",
  "CAIRN_VENV",
  "CAIRN_VENV_PURPOSE",
  "CAIRN_VENV_REQUIREMENTS",
  "CAIRN_PEERS_VENV",
  // The repository's own scripts and tests.
  "CAIRN_CACHE_BACKEND",
  "CAIRN_DIST_MINIFY",
  "CAIRN_KEEP_TMP",
  "CAIRN_LOADER",
];

/** MLflow's variables of the prefixes looked at (mlflow/environment_variables.py), and those Cairn reads. */
const MLFLOW_VARIABLES = [
  "MLFLOW_EXPERIMENT_ID",
  "MLFLOW_EXPERIMENT_NAME",
  "MLFLOW_HTTP_POOL_CONNECTIONS",
  "MLFLOW_HTTP_POOL_MAXSIZE",
  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
  "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
  "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
  "MLFLOW_HTTP_REQUEST_TIMEOUT",
  "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER",
  "MLFLOW_HTTP_TCP_KEEPALIVE",
  "MLFLOW_HTTP_TCP_KEEPALIVE_COUNT",
  "MLFLOW_HTTP_TCP_KEEPALIVE_IDLE",
  "MLFLOW_HTTP_TCP_KEEPALIVE_INTERVAL",
  "MLFLOW_TRACKING_AUTH",
  "MLFLOW_TRACKING_CLIENT_CERT_PATH",
  "MLFLOW_TRACKING_DIR",
  "MLFLOW_TRACKING_INSECURE_TLS",
  "MLFLOW_TRACKING_PASSWORD",
  "MLFLOW_TRACKING_SERVER_CERT_PATH",
  "MLFLOW_TRACKING_TOKEN",
  "MLFLOW_TRACKING_URI",
  "MLFLOW_TRACKING_USERNAME",
];

const KNOWN = new Set([...CAIRN_VARIABLES, ...MLFLOW_VARIABLES]);
/** Each known name by what follows its `CAIRN_` or `MLFLOW_`: compared so, a short name's typo allowance stays short (`CAIRN_TOKEN` is not `CAIRN_TASK`), and `CAIRN_TRACKING_URI` finds `MLFLOW_TRACKING_URI`. */
const BY_TAIL = new Map([...KNOWN].reverse().map((name) => [tailOf(name), name]));

function tailOf(name: string): string {
  return name.slice(name.indexOf("_") + 1);
}
const LOOKED_AT = /^(CAIRN_|MLFLOW_(TRACKING|EXPERIMENT|HTTP))/;

/**
 * One line per variable of `env` that is not one Cairn or MLflow knows but is near one.
 * @example misspeltVariables({ CAIRN_CACHE_URI: "redis://x" }) // ["CAIRN_CACHE_URI is not a variable Cairn or MLflow reads (did you mean CAIRN_CACHE_URL?): it is ignored."]
 */
export function misspeltVariables(env: NodeJS.ProcessEnv): string[] {
  const lines: string[] = [];
  for (const name of Object.keys(env)) {
    if (KNOWN.has(name) || !LOOKED_AT.test(name.toUpperCase())) continue;
    const tail = closestName(tailOf(name), BY_TAIL.keys());
    const meant = tail === undefined ? undefined : BY_TAIL.get(tail);
    if (meant) lines.push(`${name} is not a variable Cairn or MLflow reads (did you mean ${meant}?): it is ignored.`);
  }
  return lines;
}

/**
 * Per process, not per run: a typo in the environment is the same for every run of the process,
 * and said more than once (by `cairn` when it starts, then by the run it starts) it is noise.
 */
const said = new Set<string>();

/**
 * {@link misspeltVariables} of `env` that this process has not said yet, marked as said: whoever
 * asks first (the CLI at its start, else run()) says them, and no one again.
 */
export function unsaidMisspeltVariables(env: NodeJS.ProcessEnv): string[] {
  const lines = misspeltVariables(env).filter((line) => !said.has(line));
  for (const line of lines) said.add(line);
  return lines;
}
