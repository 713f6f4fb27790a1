import { describe, expect, it } from "vitest";
import { parseSecretsFile } from "./secrets-file.ts";
import { UsageError } from "./usage-error.ts";

const read = (text: string) => parseSecretsFile("s.env", text);
/** The error for `text`, which must never carry the secret value `secret`. */
function refusal(text: string, secret: string): UsageError {
  try {
    read(text);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).not.toContain(secret);
    return error as UsageError;
  }
  throw new Error("expected the file to be refused");
}

describe("parseSecretsFile", () => {
  it("reads what Node's dotenv parser reads as written: quotes, backticks for both kinds, \\n in double quotes, comments, multi-line values, CRLF, a BOM", () => {
    const text = [
      "\uFEFF# a comment",
      "PLAIN=abc-123 # trailing comment",
      "export EXPORTED = spaced",
      "DOUBLE=\"it's here\"",
      "SINGLE='say \"hi\"'",
      "BOTH=`pa'ss\"word-42`",
      'NEWLINE="line1\\nline2"',
      'PEM="-----BEGIN KEY-----',
      "MIIEvQIBADAN",
      '-----END KEY-----" # the key',
      "HASH='a#b'",
      "EMPTY=",
      "",
    ].join("\r\n");
    expect(read(text)).toEqual({
      PLAIN: "abc-123",
      EXPORTED: "spaced",
      DOUBLE: "it's here",
      SINGLE: 'say "hi"',
      BOTH: `pa'ss"word-42`,
      NEWLINE: "line1\nline2",
      PEM: "-----BEGIN KEY-----\nMIIEvQIBADAN\n-----END KEY-----",
      HASH: "a#b",
      EMPTY: "",
    });
  });

  it("refuses a quoted value that Node cuts at an inner quote (an escaped one too), naming the line but never the value", () => {
    const escaped = refusal(`A=ok\nTOKEN="Sup3r'se\\"cret$-value\\nsecond-LINE-tok"\n`, "Sup3r");
    expect(escaped.message).toContain("The secrets file s.env, line 2, is not read as written: the value of TOKEN ends at the next \" (\\\" is not an escape)");
    expect(escaped.message).toContain("quote it with ' or backticks");
    expect(refusal("B='it's-my-pa55word'\n", "pa55word").message).toContain("line 1, is not read as written: the value of B ends at the next '");
    expect(refusal("C=`x`y-t0ken`\n", "t0ken").message).toContain("line 1,");
    // The cut is on a later line of a multi-line value.
    expect(refusal('D="first-l1ne\nsecond"-l1ne"\n', "l1ne").message).toContain('line 1, is not read as written: the value of D ends at the next " (on line 2)');
  });

  it("refuses an unquoted value Node cuts at a '#', an unclosed quote and a line that is not KEY=VALUE", () => {
    expect(refusal("P=abc#def-pa55\n", "pa55").message).toContain('line 1, is not read as written: the value of P ends at its "#"');
    expect(refusal("P=#def-pa55\n", "pa55").message).toContain("line 1,");
    expect(refusal('OK=1\nQ="never-cl0sed\nR=2\n', "cl0sed").message).toContain('line 2, is not read as written: the " that opens the value of Q is never closed');
    expect(refusal("OK=1\nsecret-val0e\nR=2\n", "val0e").message).toContain("line 2, is not read as written: it is not KEY=VALUE");
    // Any other difference between Node's reading and the strict one: Node reads "export  K" (two spaces) as the key " K".
    expect(refusal("OK=1\nexport  K=x-val0e\n", "val0e").message).toContain("line 2, is not read as written: Node's dotenv parser, which --secrets uses, reads the value of K differently");
  });

  it("refuses a secret named __proto__, which Node's parser drops, saying so; keys named as other Object.prototype members are read", () => {
    expect(refusal("OK=1\n__proto__=pr0to-value\n", "pr0to").message).toContain("line 2, is not read as written: a secret cannot be named __proto__: Node's dotenv parser, which --secrets uses, drops that key");
    expect(read("constructor=c0nstruct\ntoString=t0string\n")).toEqual({ constructor: "c0nstruct", toString: "t0string" });
  });
});
