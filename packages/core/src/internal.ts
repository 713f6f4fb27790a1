/**
 * Small helpers Cairn's packages share, so that each is written once: reading a `Retry-After`
 * header, and finding the name a typo meant. Exported from @cairn/core for the other packages;
 * not part of what a flow file uses.
 */

/** A `Retry-After` header (seconds or an HTTP date) as milliseconds from now; `undefined` when absent or unreadable. */
export function retryAfterMs(header: unknown): number | undefined {
  if (typeof header !== "string" || !header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * The candidate `name` most likely meant, when it is near enough to be a typo: at most one edit
 * in three characters (a swap of two neighbours is one edit), case ignored. With `prefixes`, a
 * candidate that starts with `name` (two characters or more) counts as an exact match.
 * @example
 * closestName("lerning_rate", ["learning_rate", "epochs"]); // "learning_rate"
 */
export function closestName(name: string, candidates: Iterable<string>, options: { prefixes?: boolean } = {}): string | undefined {
  const wanted = name.toLowerCase();
  if (!wanted) return undefined;
  let best: { name: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const known = candidate.toLowerCase();
    const distance = options.prefixes && wanted.length >= 2 && known.startsWith(wanted) ? 0 : editDistance(wanted, known);
    if (distance <= Math.max(1, Math.floor(Math.max(wanted.length, known.length) / 3)) && (!best || distance < best.distance)) best = { name: candidate, distance };
  }
  return best?.name;
}

/** Levenshtein distance, with a swap of two neighbours counted as one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The longest delay a Node timer keeps (2^31 − 1 ms): a longer one fires at once. */
export const LONGEST_TIMER_MS = 2_147_483_647;
/** {@link LONGEST_TIMER_MS} as messages name it. */
export const LONGEST_TIMER = "2147483647 (about 24.8 days, the longest a Node timer waits)";
