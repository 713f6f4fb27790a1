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
   */
  tracker: { kind: string; uri: string; id?: string };
  outputs: OutputsManifest;
  /** Epoch ms. */
  createdAt: number;
  /** Artifact bytes plus the JSON size of the values. */
  sizeBytes: number;
}

/** What `CacheStore.set` takes: `createdAt` and `sizeBytes` are filled in when absent. */
export type NewCacheEntry = Omit<CacheEntry, "createdAt" | "sizeBytes"> & { createdAt?: number; sizeBytes?: number };

/** Checks a value read back from a store or a tracker's index; anything malformed is `undefined` (a miss). */
export function parseCacheEntry(value: unknown, expectedKey?: string): CacheEntry | undefined {
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
