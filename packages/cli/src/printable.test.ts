import { describe, expect, it } from "vitest";
import { prefixLines, printable, printableLine } from "./printable.ts";

describe("printable", () => {
  it("shows C0 and C1 controls as escapes, keeping tabs and newlines", () => {
    expect(printable("a\u001b[2J\tb\nc\r\b\u009b")).toBe("a\\x1b[2J\tb\nc\\r\\b\\x9b");
  });

  it("shows the bidi embeddings, overrides and isolates as escapes: no text reads reversed", () => {
    expect(printable("ok \u202eevil\u202c \u2066x\u2069 \u202a\u202b\u202d\u2067\u2068")).toBe(
      "ok \\u202eevil\\u202c \\u2066x\\u2069 \\u202a\\u202b\\u202d\\u2067\\u2068",
    );
    // Text in other scripts, and the marks that only hint a direction, are printed as they are.
    expect(printable("שלום مرحبا \u200e\u200f é")).toBe("שלום مرحبا \u200e\u200f é");
  });

  it("printableLine shows newlines as escapes too; prefixLines prefixes every line", () => {
    expect(printableLine("a\nb\u202e")).toBe("a\\nb\\u202e");
    expect(prefixLines("[t]", "a\nb")).toBe("[t] a\n[t] b");
  });
});
