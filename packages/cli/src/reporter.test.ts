import { describe, expect, it } from "vitest";
import { createColors } from "picocolors";
import { formatDuration, summary } from "./reporter.ts";

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

describe("the summary's Outputs line", () => {
  const result = (outputs: unknown) => ({ status: "succeeded", runId: "r1", durationMs: 5, tasks: {}, outputs }) as unknown as Parameters<typeof summary>[0];
  const outputsLine = (outputs: unknown) => summary(result(outputs), createColors(false)).split("\n").find((l) => l.startsWith("Outputs: "))!;

  it("cuts a large value, saying how much more there is and where it is whole", () => {
    const line = outputsLine({ items: Array.from({ length: 1000 }, (_, i) => `item-${i}`) });
    expect(line.length).toBeLessThan(2100);
    expect(line).toMatch(/… \(\d+ more characters; --json prints them whole\)$/);
    expect(outputsLine({ n: 1 })).toBe(`Outputs: {"n":1}`);
  });

  it("shows control characters and bidi overrides in a value as escapes", () => {
    expect(outputsLine({ s: "a\u009b2Jb\u202ec" })).toBe(`Outputs: {"s":"a\\x9b2Jb\\u202ec"}`);
  });
});
