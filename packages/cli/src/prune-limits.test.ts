import { describe, expect, it } from "vitest";
import { parseDuration, parseSize } from "./prune-limits.ts";
import { UsageError } from "./usage-error.ts";

function refusal(parse: () => number): string {
  try {
    parse();
  } catch (error) {
    expect(UsageError.is(error)).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected the value to be refused");
}

describe("parseSize (cairn cache prune --max-size)", () => {
  it.each([
    ["500B", 500],
    ["1KB", 1024],
    ["500MB", 500 * 1024 ** 2],
    ["5GB", 5 * 1024 ** 3],
    ["5gb", 5 * 1024 ** 3],
    ["5 GB", 5 * 1024 ** 3],
    ["1.5GB", 1.5 * 1024 ** 3],
    ["5GiB", 5 * 1024 ** 3],
    ["2TB", 2 * 1024 ** 4],
  ])("reads %s", (raw, bytes) => {
    expect(parseSize("--max-size", raw)).toBe(bytes);
  });

  // Each of these was read as 5 bytes (or so) by bytes.parse, and prune then removed every entry.
  it.each(["5G", "5M", "5,000MB", "5XB", "5", "-5GB", "5e3MB", "GB", "", "5 GB extra", "toString"])("refuses %j", (raw) => {
    const message = refusal(() => parseSize("--max-size", raw));
    expect(message).toContain("Expected `--max-size` to be a number and a unit");
    expect(message).toContain(`got \`${raw}\``);
  });

  it("says how to fix the commonest slips", () => {
    expect(refusal(() => parseSize("--max-size", "5G"))).toMatch(/Did you mean 5GB\?/);
    expect(refusal(() => parseSize("--max-size", "5000"))).toMatch(/Add a unit: 5000GB, say\./);
  });
});

describe("parseDuration (cairn cache prune --older-than)", () => {
  it.each([
    ["500ms", 500],
    ["30s", 30_000],
    ["30m", 30 * 60_000],
    ["12h", 12 * 3_600_000],
    ["7d", 7 * 86_400_000],
    ["7D", 7 * 86_400_000],
    ["2w", 14 * 86_400_000],
    ["1.5h", 5_400_000],
  ])("reads %s", (raw, millis) => {
    expect(parseDuration("--older-than", raw)).toBe(millis);
  });

  // `7` was read as 7 ms by ms(), and prune then removed every entry older than 7 ms: all of them.
  it.each(["7", "7 days", "7y", "-7d", "1,5d", "d", ""])("refuses %j", (raw) => {
    const message = refusal(() => parseDuration("--older-than", raw));
    expect(message).toContain("Expected `--older-than` to be a number and a unit (ms, s, m, h, d, w)");
    expect(message).toContain(`got \`${raw}\``);
  });

  // `6M` was read as 6 minutes, and prune then removed every entry older than that: months are no unit.
  it("refuses M, and says to write months as days", () => {
    expect(refusal(() => parseDuration("--older-than", "6M"))).toBe(
      "Expected `--older-than` to be a number and a unit (ms, s, m, h, d, w), such as 30m, 12h or 7d, got `6M`. Months are no unit: write days (180d), or m for minutes.",
    );
    expect(parseDuration("--older-than", "6m")).toBe(6 * 60_000);
  });

  it("says to add a unit to a bare number", () => {
    expect(refusal(() => parseDuration("--older-than", "7"))).toMatch(/ Add a unit: 7d, say\.$/);
  });
});

describe("a limit of zero (it removes every entry)", () => {
  it.each([
    ["--older-than", "0d"],
    ["--older-than", "0ms"],
    ["--older-than", "0.0s"],
    ["--max-size", "0B"],
    ["--max-size", "0.5B"],
  ])("%s %s is refused, pointing at cache clear", (flag, raw) => {
    const parse = flag === "--max-size" ? parseSize : parseDuration;
    expect(refusal(() => parse(flag, raw))).toBe(
      `Expected \`${flag}\` to be above zero, got \`${raw}\`: a limit of zero removes every entry of the cache. ` +
        "To remove every entry, run `cairn cache clear`; else give a limit above zero.",
    );
  });

  it("a bare 0 is not told to add a unit to it (0d would be refused as well)", () => {
    const message = refusal(() => parseDuration("--older-than", "0"));
    expect(message).not.toMatch(/0d/);
    expect(message).toMatch(/Add a unit to a number above zero\./);
    expect(refusal(() => parseSize("--max-size", "0"))).not.toMatch(/0GB/);
  });
});
