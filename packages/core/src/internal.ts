/**
 * Small helpers Cairn's packages share, so that each is written once: reading a `Retry-After`
 * header, finding the name a typo meant, and reading a duration (`.cache({ ttl: "7d" })`,
 * `cairn cache prune --older-than 7d`). Exported from @cairn/core for the other packages;
 * not part of what a flow file uses.
 */
import { quotesHint } from "@cairn/cache";
import { OptionError } from "./errors.ts";

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

/** Names {@link unknownNameExpected} lists in full; past this, only those close to what was given. */
const LISTED_NAMES = 10;
/** How many of the close names {@link closestNames} gives at most. */
const CLOSEST_LISTED = 5;

/**
 * The candidates `name` may have meant, closest first, at most five: those near enough to be a
 * typo (as {@link closestName} judges), then those that hold `name` (three characters or more:
 * `fit` for `fit-model`), in the candidates' order among equals. Case is ignored.
 * @example
 * closestNames("stpe", ["step", "step-2", "load"]); // ["step", "step-2"]
 */
export function closestNames(name: string, candidates: Iterable<string>): string[] {
  const wanted = name.toLowerCase();
  if (!wanted) return [];
  const near: Array<{ candidate: string; at: number; distance: number }> = [];
  let at = 0;
  for (const candidate of new Set(candidates)) {
    const known = candidate.toLowerCase();
    const distance = editDistance(wanted, known);
    const typo = distance <= Math.max(1, Math.floor(Math.max(wanted.length, known.length) / 3));
    if (typo || (wanted.length >= 3 && known.includes(wanted))) near.push({ candidate, at, distance });
    at++;
  }
  return near
    .sort((a, b) => a.distance - b.distance || a.at - b.at)
    .slice(0, CLOSEST_LISTED)
    .map((c) => c.candidate);
}

/**
 * What a refusal of `name`, which is none of `candidates`, says was expected: `what`, then the
 * names it may have meant ({@link closestNames}, also among `aliases`: a node's task name, and
 * the same item of `maps` for a name shaped as an item of a map: `fit[2]` for `fti[2]`), then
 * every candidate when they are few, else only how many `counted` there are, so that the refusal
 * of a typo in a flow of 200 tasks is a line, not every id.
 * @example
 * unknownNameExpected('a task name or node id of flow "big"', "stpe", ids, { counted: "nodes" });
 * // 'a task name or node id of flow "big", which has 200 nodes (did you mean "step", "step-2"?)'
 */
export function unknownNameExpected(what: string, name: string, candidates: readonly string[], options: { aliases?: Iterable<string>; counted?: string; maps?: readonly string[] } = {}): string {
  const near = [...closestNames(name, [...candidates, ...(options.aliases ?? [])]), ...closestItems(name, options.maps ?? [])].slice(0, CLOSEST_LISTED);
  const meant = near.length ? ` (did you mean ${near.map((n) => `"${n}"`).join(", ")}?)` : "";
  if (listsEvery(candidates)) return `${what}${meant}: ${candidates.join(", ")}`;
  const counted = `${candidates.length.toLocaleString("en-US")}${options.counted ? ` ${options.counted}` : ""}`;
  return `${what}, which has ${counted}${meant || " (none is close to it)"}`;
}

/** Whether {@link unknownNameExpected} lists every one of `candidates` (else only the closest few). */
export function listsEvery(candidates: readonly unknown[]): boolean {
  return candidates.length <= LISTED_NAMES;
}

/**
 * The items `name` may have meant when it names an item of a map no node is (`meausre[1]`): the
 * same item of the maps close to its map's part. Compared whole, the index would count as typos.
 */
function closestItems(name: string, maps: readonly string[]): string[] {
  const item = /^(.+)(\[(?:0|[1-9]\d*)\])$/.exec(name);
  if (!item || maps.includes(item[1]!)) return [];
  return closestNames(item[1]!, maps).map((map) => `${map}${item[2]}`);
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

/** Milliseconds per duration unit, lower-cased: what every reader of a duration takes. */
const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** With the long spellings the `ms` package read, which `.cache({ ttl })` took before: `"2 weeks"`, `"90 secs"`, `"1y"` (365.25 days). */
const LONG_DURATION_UNITS: Readonly<Record<string, number>> = {
  ...DURATION_UNITS,
  msec: 1, msecs: 1, millisecond: 1, milliseconds: 1,
  sec: 1000, secs: 1000, second: 1000, seconds: 1000,
  min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  hr: 3_600_000, hrs: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  day: 86_400_000, days: 86_400_000,
  week: 7 * 86_400_000, weeks: 7 * 86_400_000,
  y: 365.25 * 86_400_000, yr: 365.25 * 86_400_000, yrs: 365.25 * 86_400_000, year: 365.25 * 86_400_000, years: 365.25 * 86_400_000,
};

/** A non-negative decimal number (no sign, no thousands separator, no exponent), then a unit of letters. */
const DURATION = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i;

/**
 * Milliseconds of a duration: a number and one of ms, s, m, h, d, w, any case (`"12h"`, `"7d"`,
 * `"1.5h"`, `"90 s"`); with `longUnits`, also their long names and years (`"2 weeks"`, `"1y"`).
 * Undefined for anything else, so that each caller words its own error: a bare number (ms? days?),
 * a sign, a unit not in the list, and `M`, which is no unit (months, to many; not minutes).
 * Not rounded: a caller that needs whole milliseconds checks.
 * @example durationMs("7d") // 604800000
 */
export function durationMs(text: string, options: { longUnits?: boolean } = {}): number | undefined {
  const match = DURATION.exec(text);
  if (!match || match[2] === "M") return undefined;
  const units = options.longUnits ? LONG_DURATION_UNITS : DURATION_UNITS;
  const unit = match[2]!.toLowerCase();
  if (!Object.hasOwn(units, unit)) return undefined;
  const value = Number(match[1]) * units[unit]!;
  return Number.isFinite(value) ? value : undefined;
}

/**
 * `record[name]` when `record` holds `name` as its own key, else undefined. A name the user
 * gives (an environment variable, a secret) may be `toString` or `constructor`: looked up
 * plainly it is Object.prototype's function, not unset, and `__proto__` is the prototype.
 * @example ownValue(process.env, "toString") // undefined, unless the variable is set
 */
export function ownValue<T>(record: Readonly<Record<string, T>>, name: string): T | undefined {
  return Object.hasOwn(record, name) ? record[name] : undefined;
}

/** The spellings {@link booleanFromEnv} reads, lower-cased and trimmed. */
const ENV_TRUE = ["1", "true", "yes", "on"];
const ENV_FALSE = ["", "0", "false", "no", "off"];

/**
 * The switch `env[name]` holds: `1`, `true`, `yes`, `on` are true; `0`, `false`, `no`, `off`,
 * empty or unset are false; any case, spaces around ignored. Anything else is an OptionError
 * naming the variable: `CAIRN_NO_AUTORUN=true` once ran the flow and `CAIRN_CACHE_STRICT=on`
 * was lenient, each without a word. Every boolean variable of Cairn is read through this.
 * @example booleanFromEnv(process.env, "CAIRN_CACHE_STRICT") // true for "Yes"
 */
export function booleanFromEnv(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name];
  const value = (raw ?? "").trim().toLowerCase();
  if (ENV_TRUE.includes(value)) return true;
  if (ENV_FALSE.includes(value)) return false;
  const expected = "1, true, yes or on to turn it on; 0, false, no, off or empty (or unset) to turn it off; any case";
  const quotes = quotesHint(name, raw);
  throw new OptionError(name, expected, raw, quotes ? `Expected \`${name}\` to be ${expected}, got ${JSON.stringify(raw)}.${quotes}` : undefined);
}

/**
 * `options[key]` is not an option of `what`: refused, naming the one it likely meant. A
 * misspelt option (`concurency`, `timeout` for `timeoutMs`) is otherwise ignored without a word.
 * The message is about the key, not its value ("got ..." would quote the key as if it were one).
 * @example checkKnownKeys({ concurency: 2 }, ["concurrency"], "map(fit)") // OptionError: map(fit) has no option `concurency` (did you mean `concurrency`?) ...
 */
export function checkKnownKeys(options: object, known: readonly string[], what: string, guess?: (key: string) => string | undefined): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    // `guess`: what a key likely meant that spelling alone misses (`ttlMs` for `ttl`).
    const meant = guess?.(key) ?? closestName(key, known);
    const expected = `one of ${what}'s options${meant ? ` (did you mean \`${meant}\`?)` : ""}: ${known.join(", ")}`;
    const fix = meant ? `Rename it to \`${meant}\`, or remove it.` : "Remove it, or use one of those.";
    throw new OptionError(`${what}.${key}`, expected, key, `${what} has no option \`${key}\`${meant ? ` (did you mean \`${meant}\`?)` : ""}. Its options: ${known.join(", ")}. ${fix}`);
  }
}

/** The package manager that started this process (its `npm_config_user_agent`, as pnpm, yarn and npm set it), else npm. */
export function packageManagerOf(env: NodeJS.ProcessEnv = process.env): "npm" | "pnpm" | "yarn" {
  const agent = env.npm_config_user_agent ?? "";
  return agent.startsWith("pnpm") ? "pnpm" : agent.startsWith("yarn") ? "yarn" : "npm";
}

/**
 * The command that installs `packages` in the project, in the package manager that started this
 * process ({@link packageManagerOf}), else npm's: npm's command fails in a pnpm project (it
 * crashes on `pnpm.overrides`). `dev`: as a dev dependency. The CLI's launcher has the same lines
 * for tsx in plain JavaScript (packages/cli/bin/esbuild.mjs): it runs before any TypeScript can.
 * @example installCommand(["zod"], { env: { npm_config_user_agent: "pnpm/10.0.0 npm/? node/v22" } }) // "pnpm add zod"
 */
export function installCommand(packages: readonly string[], options: { dev?: boolean; env?: NodeJS.ProcessEnv } = {}): string {
  const names = packages.join(" ");
  switch (packageManagerOf(options.env)) {
    case "pnpm":
      return `pnpm add ${options.dev ? "-D " : ""}${names}`;
    case "yarn":
      return `yarn add ${options.dev ? "-D " : ""}${names}`;
    default:
      return `npm install ${options.dev ? "--save-dev " : ""}${names}`;
  }
}

/** The {@link installCommand} of `pkg` as a dev dependency. */
export function devInstallCommand(pkg: string, env: NodeJS.ProcessEnv = process.env): string {
  return installCommand([pkg], { dev: true, env });
}

/** How {@link shellQuote} writes a `'` inside quotes; the shell reads every style alike. */
export interface ShellQuoteOptions {
  /**
   * `"python"` writes it as Python's shlex.quote does (`'it'"'"'s'`), for a text that must match
   * what Python wrote (the params `mlflow run` logs); the default as `'it'\''s'`.
   * @default "sh"
   */
  readonly style?: "sh" | "python";
}

/**
 * Quotes `s` as one POSIX shell word; plain words (only ASCII letters, digits and `_/.,:=@%+-`,
 * the set Python's shlex.quote leaves alone too) stay readable, and `''` stands for an empty one.
 * @example shellQuote("a b") // 'a b'
 * @example shellQuote("it's", { style: "python" }) // 'it'"'"'s'
 */
export function shellQuote(s: string, options: ShellQuoteOptions = {}): string {
  if (s === "") return "''";
  if (/^[A-Za-z0-9_\/.,:=@%+-]+$/.test(s)) return s;
  return `'${s.replaceAll("'", options.style === "python" ? `'"'"'` : `'\\''`)}'`;
}
