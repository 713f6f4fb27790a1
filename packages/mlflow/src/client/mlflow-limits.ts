/**
 * MLflow's server-side limits (mlflow/utils/validation.py, MLflow 3.x) and how
 * Cairn fits keys and values into them.
 */
import { createHash } from "node:crypto";
import { EXPERIMENT_NAME_MAX_LENGTH } from "@cairn/core";

/** What one MLflow server accepts. */
export const MLFLOW_LIMITS = {
  /** Metrics per log-batch request. */
  metricsPerBatch: 1000,
  /** Params per log-batch request. */
  paramsPerBatch: 100,
  /** Tags per log-batch request. */
  tagsPerBatch: 100,
  /** Metrics + params + tags per log-batch request. */
  entitiesPerBatch: 1000,
  /** Bytes of one log-batch request body. */
  batchRequestBytes: 1_000_000,
  /** Characters of a param value; longer values are cut by the server (MLFLOW_TRUNCATE_LONG_VALUES). */
  paramValueLength: 6000,
  /** Characters of a tag value; longer values are cut by the server. */
  tagValueLength: 8000,
  /** Characters of a metric, param or tag key. */
  keyLength: 250,
  /** Characters of a run's name: the `runs.name` column is String(250), which a PostgreSQL or MySQL backend enforces (SQLite does not). */
  runNameLength: 250,
  /** Characters of an experiment's name (checked where a name enters: see experimentNameTooLong of @cairn/core). */
  experimentNameLength: EXPERIMENT_NAME_MAX_LENGTH,
} as const;

/** Folder (under the run's artifacts) where values too long for a param or tag are kept whole. */
export const LONG_VALUES_FOLDER = "cairn/long-values";

/**
 * Makes a metric, param or tag key acceptable to MLflow: characters other than
 * letters, digits, `_ - . / :` and space become `_` (MLflow takes `:` on a server
 * that does not run on Windows, and its own clients log `val:loss` as it is); `/`-segments that MLflow
 * would treat as path tricks (empty, `.`, `..`, a leading `..`) are fixed; the
 * result is cut to 250 characters. Keys that are already valid are unchanged.
 * A key that had to be changed ends with `-` and 8 hex digits of its SHA-256, so
 * keys that differ only in what was changed stay distinct (`lr@val` and `lr#val`
 * both fitted to `lr_val` made MLflow refuse the whole batch as duplicate keys),
 * and the same key always fits to the same name.
 *
 * @example
 * toMlflowKey("loss@val") // "loss_val-<8 hex digits>"
 */
export function toMlflowKey(key: string): string {
  return fitKey(key, /[^\p{L}\p{N}_\-. /:]/gu);
}

/** `key` with the characters `refused` matches made `_`, its path tricks fixed, cut to fit; see {@link toMlflowKey}. */
function fitKey(key: string, refused: RegExp): string {
  let out = key.replace(refused, "_");
  out = out
    .split("/")
    .filter((segment) => segment !== "")
    .map((segment) => (segment === "." || segment === ".." ? "_".repeat(segment.length) : segment))
    .join("/");
  if (out.startsWith("..")) out = `_${out.slice(1)}`;
  if (out === "") out = "_";
  const fits = Array.from(out).length <= MLFLOW_LIMITS.keyLength;
  if (out === key && fits) return out;
  const suffix = `-${createHash("sha256").update(key).digest("hex").slice(0, KEY_HASH_LENGTH)}`;
  // With its suffix the key must still fit (a changed key of 242–250 characters did not).
  if (Array.from(out).length > MLFLOW_LIMITS.keyLength - suffix.length) out = Array.from(out).slice(0, MLFLOW_LIMITS.keyLength - suffix.length).join("");
  // A cut may end on `/` or leave `..`: the suffix joins the last segment, never a new one.
  return `${out.replace(/\/+$/, "")}${suffix}`;
}

/** Hex digits of the original key's SHA-256 that end a key `toMlflowKey` had to change. */
const KEY_HASH_LENGTH = 8;

/** Hex digits of a too-long value's SHA-256 in the value MLflow keeps of it. */
const LONG_VALUE_HASH_LENGTH = 12;

/** Where a param's or tag's full value goes when it is too long for MLflow. */
export function longValueArtifactPath(kind: "params" | "tags", key: string): string {
  // A file name without `:` (a key may hold one), which some artifact stores refuse in a path.
  return `${LONG_VALUES_FOLDER}/${kind}/${fitKey(key, /[^\p{L}\p{N}_\-. /]/gu)}.txt`;
}

/**
 * The value MLflow stores in place of one that is too long: its beginning and
 * where the full value is. Returns the value itself when it fits.
 */
export function fitMlflowValue(kind: "params" | "tags", key: string, value: string): { value: string; overflow: boolean } {
  const limit = kind === "params" ? MLFLOW_LIMITS.paramValueLength : MLFLOW_LIMITS.tagValueLength;
  // JS length counts UTF-16 units, never fewer than the code points MLflow counts.
  if (value.length <= limit) return { value, overflow: false };
  // The digest keeps two values that share the kept beginning apart (two sweep trials' keys).
  const digest = createHash("sha256").update(value).digest("hex").slice(0, LONG_VALUE_HASH_LENGTH);
  const note = `... [${value.length} characters, sha256 ${digest}; full value in artifact ${longValueArtifactPath(kind, key)}]`;
  const head = Array.from(value.slice(0, limit - note.length));
  // A cut surrogate pair leaves a lone half at the end; drop it.
  const last = head.at(-1);
  if (last && /[\uD800-\uDBFF]$/.test(last)) head.pop();
  return { value: head.join("") + note, overflow: true };
}

/**
 * A run's name as MLflow can store it: a name longer than {@link MLFLOW_LIMITS.runNameLength}
 * characters (a long task name, a map item's `name[12]`, counted as MLflow does, by code point)
 * is cut and ends with `-` and 8 hex digits of its SHA-256, so that two names sharing the kept
 * beginning (two items of one map) stay apart. The whole name stays in the run's tags that
 * Cairn reads (`cairn.node_id` of a task run, `cairn.flow` of a flow run).
 *
 * @example
 * fitRunName("a".repeat(300)) // 241 `a`s, then "-<8 hex digits>"
 */
export function fitRunName(name: string): string {
  const chars = Array.from(name);
  if (chars.length <= MLFLOW_LIMITS.runNameLength) return name;
  const suffix = `-${createHash("sha256").update(name).digest("hex").slice(0, KEY_HASH_LENGTH)}`;
  return chars.slice(0, MLFLOW_LIMITS.runNameLength - suffix.length).join("") + suffix;
}
