/**
 * Why a task that looked its key up found nothing it could use, as its lookup saw it, recorded
 * on the task's run ({@link MISS_REASON_TAG}). The run report reads this record: rebuilt later
 * from the live store, the story changes once the run (or a later one) has evicted or replaced
 * the entry it met, and names a change that never happened. Core records the facts; the report
 * words them.
 */

/** Of a task run that missed the cache: JSON of its {@link MissReason}. */
export const MISS_REASON_TAG = "cairn.miss_reason";

/**
 * `unusable`: an entry of its key was there, but could not be used (`evicted`: it was removed;
 * else it stays, as one that could not be checked; `waited`: another process wrote it while
 * this task waited for that process to compute the key). `foreign`: the entry of its key was recorded
 * in another tracker. `changed`: none was there; `nearest` is the task's entry, made before the
 * flow run started, whose ingredients differ least, with what changed since. `new`: none was
 * there, and the store (`store`: where) held no earlier entry of the task. `unlisted`: none was
 * there, and the store could not be listed to say more (`error`).
 */
export type MissReason =
  | { readonly kind: "unusable"; readonly reason: string; readonly evicted: boolean; readonly waited?: true }
  | { readonly kind: "foreign"; readonly tracker: { readonly kind: string; readonly uri: string } }
  | { readonly kind: "changed"; readonly nearest: { readonly runId: string; readonly createdAt: number; readonly changes: readonly string[]; readonly more?: number } }
  | { readonly kind: "new"; readonly store: string }
  | { readonly kind: "unlisted"; readonly error: string };

/** Changes a record keeps (the rest are counted in `more`), and the longest one: a tag holds 8000 characters. */
const MAX_CHANGES = 12;
const MAX_CHANGE_LENGTH = 400;

/** The tag's value of `reason`, within what a tag holds. */
export function missReasonTag(reason: MissReason): string {
  if (reason.kind !== "changed") return JSON.stringify(reason);
  const { changes } = reason.nearest;
  const kept = changes.slice(0, MAX_CHANGES).map((c) => (c.length > MAX_CHANGE_LENGTH ? `${c.slice(0, MAX_CHANGE_LENGTH - 3)}...` : c));
  const more = changes.length - kept.length + (reason.nearest.more ?? 0);
  return JSON.stringify({ kind: "changed", nearest: { ...reason.nearest, changes: kept, ...(more > 0 ? { more } : {}) } });
}

/** The reason a tag holds; undefined when it holds none this code knows (a run recorded before it, or by a newer Cairn). */
export function parseMissReason(text: string | undefined): MissReason | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const r = value as Record<string, unknown>;
  switch (r.kind) {
    case "unusable":
      return typeof r.reason === "string" ? { kind: "unusable", reason: r.reason, evicted: r.evicted === true, ...(r.waited === true ? { waited: true as const } : {}) } : undefined;
    case "foreign": {
      const t = r.tracker as Record<string, unknown> | null;
      return typeof t?.kind === "string" && typeof t.uri === "string" ? { kind: "foreign", tracker: { kind: t.kind, uri: t.uri } } : undefined;
    }
    case "changed": {
      const n = r.nearest as Record<string, unknown> | null;
      if (typeof n?.runId !== "string" || typeof n.createdAt !== "number" || !Array.isArray(n.changes) || !n.changes.every((c) => typeof c === "string")) return undefined;
      return { kind: "changed", nearest: { runId: n.runId, createdAt: n.createdAt, changes: n.changes as string[], ...(typeof n.more === "number" ? { more: n.more } : {}) } };
    }
    case "new":
      return typeof r.store === "string" ? { kind: "new", store: r.store } : undefined;
    case "unlisted":
      return typeof r.error === "string" ? { kind: "unlisted", error: r.error } : undefined;
    default:
      return undefined;
  }
}
