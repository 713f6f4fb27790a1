import { describe, expect, it } from "vitest";
import { SHOWN_ERROR_LINES, shownErrorText } from "./error-file.ts";

describe("shownErrorText", () => {
  it("prints an error file whole, without its trailing newline", () => {
    expect(shownErrorText("Error: boom\n    at f (a.ts:1:1)\n", "elsewhere")).toBe("Error: boom\n    at f (a.ts:1:1)");
  });

  it("cuts a huge one after its first lines, saying how many were left out and where the whole file is", () => {
    const text = Array.from({ length: SHOWN_ERROR_LINES + 50 }, (_, i) => `line ${i}`).join("\n");
    const shown = shownErrorText(text, "the whole text is .cairn/artifacts/r1/cairn/error.txt").split("\n");
    expect(shown).toHaveLength(SHOWN_ERROR_LINES + 1);
    expect(shown[SHOWN_ERROR_LINES - 1]).toBe(`line ${SHOWN_ERROR_LINES - 1}`);
    expect(shown.at(-1)).toBe("… (50 more lines: the whole text is .cairn/artifacts/r1/cairn/error.txt)");
  });
});
