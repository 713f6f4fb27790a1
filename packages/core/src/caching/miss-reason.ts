/**
 * Why a task that looked its key up found nothing it could use, as its lookup saw it, recorded
 * on the task's run ({@link MISS_REASON_TAG}). The run report reads this record: rebuilt later
 * from the live store, the story changes once the run (or a later one) has evicted or replaced
 * the entry it met, and names a change that never happened. Core records the facts; the report
 * words them.
 */

import type { ExpiredEntry } from "@cairn/cache";

/** Of a task run that missed the cache: JSON of its {@link MissReason}. */
export const MISS_REASON_TAG = "cairn.miss_reason";

/**
 * `unusable`: an entry of its key was there, but could not be used (`evicted`: it was removed;
 * else it stays, as one that could not be checked; `waited`: another process wrote it while
 * this task waited for that process to compute the key). `expired`: the entry of its key was
 * past the task's `ttl` (`at`: when it expired; `seenAt`: when the lookup met it; `runId` and
 * `createdAt`: the run that made it, and when, unless the entry did not parse). `foreign`: the
 * entry of its key was recorded in another tracker (`copy`: by another copy of this run's own
 * embedded store, a `.cairn` restored from a CI cache, whose runs are not here). `changed`: none was there; `nearest` is the task's entry, made before the
 * flow run started, whose ingredients differ least, with what changed since. `new`: none was
 * there, and the store (`store`: where) held no earlier entry of the task, nor did the experiment's
 * index where the tracker keeps one (`searched`: where it looked, in `cairn explain`'s words;
 * absent from runs recorded before it). `unlisted`: none was
 * there, and the store could not be listed to say more (`error`).
 */
export type MissReason =
  | { readonly kind: "unusable"; readonly reason: string; readonly evicted: boolean; readonly waited?: true }
  | { readonly kind: "expired"; readonly at: number; readonly seenAt: number; readonly runId?: string; readonly createdAt?: number }
  | { readonly kind: "foreign"; readonly tracker: { readonly kind: string; readonly uri: string }; readonly copy?: true }
  | { readonly kind: "changed"; readonly nearest: { readonly runId: string; readonly createdAt: number; readonly changes: readonly string[]; readonly more?: number } }
  | { readonly kind: "new"; readonly store: string; readonly searched?: string }
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
    case "expired":
      if (typeof r.at !== "number" || typeof r.seenAt !== "number") return undefined;
      return {
        kind: "expired",
        at: r.at,
        seenAt: r.seenAt,
        ...(typeof r.runId === "string" ? { runId: r.runId } : {}),
        ...(typeof r.createdAt === "number" ? { createdAt: r.createdAt } : {}),
      };
    case "foreign": {
      const t = r.tracker as Record<string, unknown> | null;
      if (typeof t?.kind !== "string" || typeof t.uri !== "string") return undefined;
      return { kind: "foreign", tracker: { kind: t.kind, uri: t.uri }, ...(r.copy === true ? { copy: true as const } : {}) };
    }
    case "changed": {
      const n = r.nearest as Record<string, unknown> | null;
      if (typeof n?.runId !== "string" || typeof n.createdAt !== "number" || !Array.isArray(n.changes) || !n.changes.every((c) => typeof c === "string")) return undefined;
      return { kind: "changed", nearest: { runId: n.runId, createdAt: n.createdAt, changes: n.changes as string[], ...(typeof n.more === "number" ? { more: n.more } : {}) } };
    }
    case "new":
      if (typeof r.store !== "string") return undefined;
      return { kind: "new", store: r.store, ...(typeof r.searched === "string" ? { searched: r.searched } : {}) };
    case "unlisted":
      return typeof r.error === "string" ? { kind: "unlisted", error: r.error } : undefined;
    default:
      return undefined;
  }
}

/** The reason of a miss whose entry was past its ttl, met at `seenAt`. */
export function expiredMiss(expired: ExpiredEntry, seenAt: number): Extract<MissReason, { kind: "expired" }> {
  const made = expired.entry ? { runId: expired.entry.sourceRunId, createdAt: expired.entry.createdAt } : {};
  return { kind: "expired", at: expired.at, seenAt, ...made };
}

/**
 * What became of an entry past its ttl, after the words that name it (`its entry`): `from run
 * <id> expired 2 h ago (ttl 1 d, at <time>)`. `before`: what "ago" counts from (`ago`: now;
 * `before this run looked it up`).
 */
export function expiredWords(expired: Omit<Extract<MissReason, { kind: "expired" }>, "kind">, before = "ago"): string {
  const from = expired.runId !== undefined ? `from run ${expired.runId} ` : "";
  // The store counts the ttl from its write, a moment after the entry's createdAt: a rough span says it.
  const ttl = expired.createdAt !== undefined && expired.at > expired.createdAt ? `ttl ${roughDuration(expired.at - expired.createdAt)}, ` : "";
  return `${from}expired ${roughDuration(Math.max(0, expired.seenAt - expired.at))} ${before} (${ttl}at ${new Date(expired.at).toISOString()})`;
}

/** A span in the largest unit it fills, to a tenth below ten: `200 ms`, `1.5 s`, `40 min`, `2 h`, `1 d`. */
function roughDuration(ms: number): string {
  for (const [size, unit] of SPAN_UNITS) if (ms >= size) return `${rounded(ms / size)} ${unit}`;
  return `${rounded(ms)} ms`;
}

const SPAN_UNITS: ReadonlyArray<readonly [number, string]> = [
  [86_400_000, "d"],
  [3_600_000, "h"],
  [60_000, "min"],
  [1000, "s"],
];

function rounded(n: number): string {
  return n < 10 ? String(Math.round(n * 10) / 10) : String(Math.round(n));
}
