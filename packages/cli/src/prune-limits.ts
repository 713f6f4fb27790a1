/**
 * The limits `cairn cache prune` takes: `--older-than 7d` and `--max-size 5GB`.
 *
 * Both are read strictly, a number and a unit from a short list, because prune deletes: the
 * lenient readers used before (`ms`, `bytes`) read `5G` and `5,000MB` as 5 bytes and `7` as
 * 7 ms, and a limit read too small removes every entry. Anything not in the grammar is a
 * UsageError (exit 2) that names what was expected and what arrived, before the store is touched.
 * A limit of zero (`0d`, `0B`) is refused too: it removes every entry, which `cairn cache clear`
 * says plainly.
 */
import { durationMs } from "@cairn/core";
import { UsageError } from "./usage-error.ts";

/** Bytes per size unit, lower-cased. Powers of 1024, as the sizes `cairn cache ls` prints (bytes.format). */
const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1024,
  mb: 1024 ** 2,
  gb: 1024 ** 3,
  tb: 1024 ** 4,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** A non-negative decimal number (no sign, no thousands separator, no exponent), then a unit of letters. */
const AMOUNT = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i;

/**
 * `--max-size`: a number and one of B, KB, MB, GB, TB (powers of 1024; KiB, MiB, GiB, TiB are
 * the same), any case, above zero. Returns whole bytes.
 * @example parseSize("--max-size", "5GB") // 5368709120
 */
export function parseSize(flag: string, raw: string): number {
  const bytes = amountOf(raw, SIZE_UNITS);
  if (bytes === undefined) {
    throw new UsageError(
      `Expected \`${flag}\` to be a number and a unit (B, KB, MB, GB, TB; powers of 1024), such as 500MB or 5GB, got \`${raw}\`.` +
        hint(raw, "GB", (number, unit) => (Object.hasOwn(SIZE_UNITS, `${unit.toLowerCase()}b`) ? ` Did you mean ${number}${unit.toUpperCase()}B?` : "")),
    );
  }
  return aboveZero(flag, raw, Math.floor(bytes));
}

/**
 * `--older-than`: a number and one of ms, s, m, h, d, w (milliseconds to weeks), any case but
 * `M` (a month to many, which the lenient reader took for minutes), above zero. Returns milliseconds.
 * `zero`: what a limit of zero would do and what to run instead, for its refusal (by default, cache prune's).
 * @example parseDuration("--older-than", "7d") // 604800000
 */
export function parseDuration(flag: string, raw: string, zero = ZERO_ENTRIES): number {
  const millis = durationMs(raw);
  if (millis === undefined) {
    throw new UsageError(
      `Expected \`${flag}\` to be a number and a unit (ms, s, m, h, d, w), such as 30m, 12h or 7d, got \`${raw}\`.` +
        hint(raw, "d", (number, unit) => (unit === "M" ? ` Months are no unit: write days (${Number(number) * 30}d), or m for minutes.` : "")),
    );
  }
  return aboveZero(flag, raw, millis, zero);
}

/** What cache prune says of a limit of zero. */
const ZERO_ENTRIES = "a limit of zero removes every entry of the cache. To remove every entry, run `cairn cache clear`; else give a limit above zero.";

/** `amount`, unless it is zero: a limit of nothing removes everything (`zero` says what). */
function aboveZero(flag: string, raw: string, amount: number, zero = ZERO_ENTRIES): number {
  if (amount > 0) return amount;
  throw new UsageError(`Expected \`${flag}\` to be above zero, got \`${raw}\`: ${zero}`);
}

/** The amount `raw` says in the units' base, or undefined when it is not a number and a known unit. */
function amountOf(raw: string, units: Readonly<Record<string, number>>): number | undefined {
  const match = AMOUNT.exec(raw);
  if (!match) return undefined;
  const perUnit = Object.hasOwn(units, match[2]!.toLowerCase()) ? units[match[2]!.toLowerCase()] : undefined;
  if (perUnit === undefined) return undefined;
  const value = Number(match[1]) * perUnit;
  return Number.isFinite(value) ? value : undefined;
}

/** How to fix the commonest slips: a bare number (the unit left out, `unitToAdd` suggested), and what `unitHint` says of a unit given. */
function hint(raw: string, unitToAdd: string, unitHint: (number: string, unit: string) => string): string {
  const match = AMOUNT.exec(raw);
  if (!match) return "";
  const [, number, unit] = match;
  // Not `0d`: a limit of zero is refused as well (it would remove every entry).
  if (unit === "") return Number(number) > 0 ? ` Add a unit: ${number}${unitToAdd}, say.` : " Add a unit to a number above zero.";
  return unitHint(number!, unit!);
}
