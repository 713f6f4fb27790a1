import { describe, expect, it } from "vitest";
import { formatDuration } from "./reporter.ts";

describe("formatDuration", () => {
  it("rounds the whole duration before splitting it, so a unit never shows its own limit", () => {
    expect(formatDuration(119_600)).toBe("2m 00s");
    expect(formatDuration(59_960)).toBe("1m 00s");
    expect(formatDuration(999.6)).toBe("1.0s");
    expect(formatDuration(60_400)).toBe("1m 00s");
  });

  it("writes ms below a second, tenths below a minute, then minutes and two-digit seconds", () => {
    expect(formatDuration(850)).toBe("850ms");
    expect(formatDuration(1_234)).toBe("1.2s");
    expect(formatDuration(59_940)).toBe("59.9s");
    expect(formatDuration(185_000)).toBe("3m 05s");
    expect(formatDuration(3_601_000)).toBe("60m 01s");
  });
});
