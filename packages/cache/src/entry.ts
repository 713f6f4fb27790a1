import { hashValue } from "./hash.ts";
import { type DiffOptions, diffIngredients, type IngredientChange, type RecordedIngredients } from "./key.ts";

/** One artifact a cached task produced. */
export interface ArtifactRecord {
  /** The output it belongs to, e.g. `"model"`. */
  path: string;
  /** sha256 hex of its content ({@link digestPath}). */
  digest: string;
  /** Bytes. */
  size: number;
  /** Where it lies within the source run's artifacts. */
  artifactPath: string;
}

/** What a task produced: plain JSON values plus artifact digests. */
export interface OutputsManifest {
  values: unknown;
  artifacts: ArtifactRecord[];
}

/** One cached, successful task result. */
export interface CacheEntry {
  key: string;
  taskName: string;
  /** What the key was made of, to explain a later miss. */
  ingredients: RecordedIngredients;
  /** The run whose outputs this entry reuses. */
  sourceRunId: string;
  /**
   * Where that run is recorded. `id`: the embedded store's own id (see `LocalStore.storeId`),
   * which tells two machines' stores at the same path apart; absent on entries made before it.
   * `copy`: which copy of that store's folder (see `LocalStore.storeCopy`): a `.cairn` restored
   * from a CI cache carries the id, not the copy; absent on entries made before it.
   */
  tracker: { kind: string; uri: string; id?: string; copy?: string };
  outputs: OutputsManifest;
  /**
   * The Cairn that wrote it, "0.1.0+57ab83a" (as `cairn --version` prints it): a miss after an
   * upgrade says so, as Cairn makes the keys. Absent on entries made before it was written.
   */
  cairn?: string;
  /** Epoch ms. */
  createdAt: number;
  /** Artifact bytes plus the JSON size of the values. */
  sizeBytes: number;
  /**
   * The digest of `outputs` as written ({@link outputsDigest}), set by `CacheStore.set`: an entry
   * whose outputs no longer match it (edited or damaged in a shared store) is no entry. Absent on
   * entries made before it was written, which are read as they are.
   */
  outputsDigest?: string;
}

/** What `CacheStore.set` takes: `createdAt` and `sizeBytes` are filled in when absent. */
export type NewCacheEntry = Omit<CacheEntry, "createdAt" | "sizeBytes" | "outputsDigest"> & { createdAt?: number; sizeBytes?: number };

/**
 * The digest an entry's outputs are stored with: of their JSON, as every store and the index keep
 * them (a class instance among the values counts as its JSON, as it is read back), in any key order.
 */
export function outputsDigest(outputs: OutputsManifest): string {
  // Outputs read back from a store are in their JSON form already (every lookup checks a read
  // entry's): the round trip would only copy them, a copy of every hit's outputs at once.
  return hashValue(isJsonForm(outputs, 0) ? outputs : (JSON.parse(JSON.stringify(outputs)) as unknown));
}

/**
 * True when `JSON.parse(JSON.stringify(value))` would give `value` back as it is: strings, finite
 * numbers but -0, booleans, null, plain objects and arrays without holes, nothing `undefined`.
 * Deeper than any stored value may nest (a cycle), it answers false, and the round trip says why.
 */
function isJsonForm(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0);
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth > 1000) return false;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return false;
    for (let i = 0; i < value.length; i++) if (!(i in value) || !isJsonForm(value[i], depth + 1)) return false;
    return true;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  for (const key in value) if (!isJsonForm((value as Record<string, unknown>)[key], depth + 1)) return false;
  return true;
}

/**
 * `entry` as a store records it: made now and sized (its artifacts' sizes and its values' JSON)
 * unless it says. Pure: a run whose store is down builds the entry its index records so.
 */
export function completeEntry(entry: NewCacheEntry, valuesJson: string | undefined = JSON.stringify(entry.outputs.values)): CacheEntry {
  return {
    ...entry,
    createdAt: entry.createdAt ?? Date.now(),
    sizeBytes: entry.sizeBytes ?? entry.outputs.artifacts.reduce((sum, artifact) => sum + (artifact.size || 0), 0) + Buffer.byteLength(valuesJson ?? ""),
    // Of these outputs, whatever digest the entry came with (one read from the index and placed here).
    outputsDigest: outputsDigest(entry.outputs),
  };
}

/** Checks a value read back from a store or a tracker's index; anything malformed is `undefined` (a miss). */
export function parseCacheEntry(value: unknown, expectedKey?: string): CacheEntry | undefined {
  return cacheEntryProblem(value, expectedKey) === undefined ? (value as CacheEntry) : undefined;
}

/** What a read value that is not an entry is, in words, when its outputs changed since it was written. */
export const EDITED_OUTPUTS = "its outputs are not the ones it was stored with (they do not match the digest written with them: edited or damaged in the store)";
/** What a read value that is not an entry is, in words, otherwise. */
export const NOT_AN_ENTRY = "its stored value is not a Cairn cache entry of this key";

/** Why a value read back from a store or a tracker's index is no cache entry ({@link EDITED_OUTPUTS}, {@link NOT_AN_ENTRY}), or undefined when it is one. */
export function cacheEntryProblem(value: unknown, expectedKey?: string): string | undefined {
  const entry = entryShape(value, expectedKey);
  if (!entry) return NOT_AN_ENTRY;
  const digest = (value as Record<string, unknown>).outputsDigest;
  if (digest === undefined) return undefined;
  return typeof digest === "string" && digest === outputsDigest(entry.outputs) ? undefined : EDITED_OUTPUTS;
}

function entryShape(value: unknown, expectedKey: string | undefined): CacheEntry | undefined {
  if (!isRecord(value)) return undefined;
  const { key, taskName, ingredients, sourceRunId, tracker, outputs, createdAt, sizeBytes } = value;
  if (typeof key !== "string" || (expectedKey !== undefined && key !== expectedKey)) return undefined;
  if (typeof taskName !== "string" || typeof sourceRunId !== "string") return undefined;
  if (!isRecord(ingredients) || !isRecord(ingredients.inputs) || !isRecord(ingredients.env)) return undefined;
  if (!isRecord(tracker) || typeof tracker.kind !== "string" || typeof tracker.uri !== "string") return undefined;
  // Without its values an entry would hand its dependants nothing at all.
  if (!isRecord(outputs) || !Array.isArray(outputs.artifacts) || !("values" in outputs)) return undefined;
  for (const a of outputs.artifacts) {
    if (!isRecord(a) || typeof a.path !== "string" || typeof a.digest !== "string" || typeof a.size !== "number" || typeof a.artifactPath !== "string") {
      return undefined;
    }
  }
  if (!Number.isFinite(createdAt) || !Number.isFinite(sizeBytes)) return undefined;
  return value as unknown as CacheEntry;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Of a task's earlier entries, the newest this many are compared with: bounds the work for a map's thousands of items. */
export const NEAREST_CANDIDATES = 25;

/**
 * The entries made before `before` (epoch ms), by task name, at most {@link NEAREST_CANDIDATES}
 * each, in the order given (newest first, as stores list): what a miss is compared with by
 * {@link nearestEntry}. Entries made since are the run's own, never "earlier".
 */
export function earlierByTask(entries: Iterable<CacheEntry>, before: number): Map<string, CacheEntry[]> {
  const byTask = new Map<string, CacheEntry[]>();
  for (const entry of entries) {
    if (entry.createdAt >= before) continue;
    const list = byTask.get(entry.taskName);
    if (!list) byTask.set(entry.taskName, [entry]);
    else if (list.length < NEAREST_CANDIDATES) list.push(entry);
  }
  return byTask;
}

/**
 * Of `entries`, the one whose ingredients differ least from `now` (the first of equals: give
 * them newest first), with what changed since it: what `cairn explain` and the run report tell.
 */
export function nearestEntry(entries: Iterable<CacheEntry>, now: RecordedIngredients, options: DiffOptions = {}): { entry: CacheEntry; changes: IngredientChange[] } | undefined {
  let best: { entry: CacheEntry; changes: IngredientChange[] } | undefined;
  for (const entry of entries) {
    const changes = diffIngredients(entry.ingredients, now, options);
    if (!best || changes.length < best.changes.length) best = { entry, changes };
  }
  return best;
}
