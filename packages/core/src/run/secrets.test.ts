import { describe, expect, it } from "vitest";
import { SecretLeakError, SecretNotFoundError, SecretParamError } from "../errors.ts";
import { SecretRegistry, textForms } from "./secrets.ts";

const registry = (secrets: Record<string, string>) => new SecretRegistry(secrets, {});

describe("SecretRegistry", () => {
  it("a secret named as an Object.prototype member is not found until given, in the file or the environment", () => {
    const r = new SecretRegistry({}, {});
    for (const name of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
      expect(() => r.get(name, "t")).toThrow(SecretNotFoundError);
      expect(r.learn(name)).toBe(false);
    }
    const given = new SecretRegistry(JSON.parse('{"__proto__":"pr0to-secret"}') as Record<string, string>, { constructor: "c0nstructor-secret" });
    expect(given.get("__proto__", "t")).toBe("pr0to-secret");
    expect(given.get("constructor", "t")).toBe("c0nstructor-secret");
    expect(() => given.get("toString", "t")).toThrow(SecretNotFoundError);
  });

  it("finds a secret by value in strings, keys and nested data, whatever its characters", () => {
    const s = 'q"u\\o\nte-é-🔑';
    const r = registry({ TOKEN: s });
    for (const value of [s, `x${s}y`, { [s]: 1 }, [1, { deep: [`a${s}`] }], { text: JSON.stringify({ s }) }, { py: textForms(s)[2] }]) {
      expect(r.find(value)).toBe("TOKEN");
    }
    expect(r.find({ a: "q", b: 'u\\o', c: 1 })).toBeUndefined();
    expect(() => r.assertClean({ k: s }, "t", "its outputs")).toThrow(SecretLeakError);
  });

  it("checks numbers only against secrets made of a number's characters", () => {
    expect(registry({ PIN: "12345678" }).find({ pin: 12345678 })).toBe("PIN");
    expect(registry({ PIN: "12345678" }).find({ n: 1234567 })).toBeUndefined();
    expect(registry({ TOKEN: "abcd1234" }).find({ n: 1234 })).toBeUndefined();
    // A number whose digits merely contain a numeric secret is not the secret: a 4-digit PIN
    // would otherwise refuse ordinary metrics at random.
    expect(registry({ PIN: "4829" }).find({ loss: 0.1482917, count: 148291 })).toBeUndefined();
    expect(registry({ PIN: "4829" }).find({ pin: 4829 })).toBe("PIN");
    expect(registry({ PIN: "4829" }).find({ text: "pin 4829" })).toBe("PIN");
    // A numeric secret read with its file's "\r" is still that number.
    expect(registry({ PIN: "12345678\r" }).find({ pin: 12345678 })).toBe("PIN");
  });

  it("masks raw and escaped forms, overlapping secrets over their union, and each line of a multi-line secret", () => {
    const r = registry({ A: "abcd-1234", B: "1234-wxyz", KEY: "-----BEGIN KEY-----\nMIIEvQIBADAN\n-----END KEY-----" });
    expect(r.mask("abcd-1234-wxyz!")).toBe("***!");
    expect(r.mask("x abcd-1234 y 1234-wxyz z")).toBe("x *** y *** z");
    expect(r.mask(JSON.stringify({ k: "-----BEGIN KEY-----\nMIIEvQIBADAN\n-----END KEY-----" }))).toBe('{"k":"***"}');
    expect(r.mask("line: MIIEvQIBADAN")).toBe("line: ***");
    expect(r.mask("nothing here")).toBe("nothing here");
  });

  it("safeCut: a cut that no secret spans, so text masked in two pieces masks each secret whole", () => {
    const r = registry({ A: "abcd-1234", B: "1234-wxyz", T: "tok0tok1" });
    const pieces = (text: string, at: number) => {
      const cut = r.safeCut(text, at);
      return [r.mask(text.slice(0, cut)), r.mask(text.slice(cut))];
    };
    // No secret across the cut, or none known: the cut stays.
    expect(r.safeCut("xx abcd-1234 yy", 3)).toBe(3);
    expect(registry({}).safeCut("xx abcd-1234 yy", 5)).toBe(5);
    // One across it: the cut moves back to its start.
    expect(pieces("xx abcd-1234 yy", 7)).toEqual(["xx ", "*** yy"]);
    // Secrets that overlap: back to the start of the first.
    expect(pieces("xx abcd-1234-wxyz yy", 14)).toEqual(["xx ", "*** yy"]);
    // Secrets that touch: back to the start of the one across the cut.
    expect(r.safeCut("tok0tok1tok0tok1tok0tok1", 20)).toBe(16);
    expect(pieces("tok0tok1tok0tok1tok0tok1", 20)).toEqual(["***", "***"]);
    // Overlapping back to the text's start: forward to their end, never past the text.
    expect(pieces("abcd-1234-wxyz yy", 7)).toEqual(["***", " yy"]);
    expect(r.safeCut("abcd-1234-wxyz", 7)).toBe(14);
  });

  it("masks the lines of a secret at a lone \\r too (a token read from a CRLF file), and its single-quoted shell form", () => {
    const r = registry({ CRLF: "sk-live-9f8e7d6c5b4a\r", MID: "left-half\rright-half", Q: "p'ass-word" });
    // A process's output is read in lines that end at "\r" as well: the stored form never arrives whole.
    expect(r.mask("token is sk-live-9f8e7d6c5b4a")).toBe("token is ***");
    expect(r.mask("left-half")).toBe("***");
    expect(r.mask("right-half")).toBe("***");
    expect(r.find({ out: "token is sk-live-9f8e7d6c5b4a" })).toBe("CRLF");
    expect(r.mask("echo 'p'\\''ass-word'")).toBe("echo '***'");
  });

  it("masks a secret as Python's repr, ascii() and bytes, shlex.quote and bash's printf %q write it, each line of a multi-line one too, and nothing shorter", () => {
    const r = registry({ BOTH: `pa'ss"word-42`, ONE: "it's-my-pa55word", ML: `Sup3r'se"cret\\x-é\nsecond-LINE-tok`, TINY: "a'b" });
    expect(r.mask(`{'password': 'pa\\'ss"word-42'}`)).toBe("{'password': '***'}");
    expect(r.mask(`mysql -p'it'"'"'s-my-pa55word' 'pa'"'"'ss"word-42'`)).toBe("mysql -p'***' '***'");
    expect(r.mask(`printf: pa\\'ss\\"word-42`)).toBe("printf: ***");
    // The whole multi-line value on one line (repr, ascii(), bytes, printf %q's $'…'), and its first line alone.
    expect(r.mask(`'Sup3r\\'se"cret\\\\x-é\\nsecond-LINE-tok'`)).toBe("'***'");
    expect(r.mask(`'Sup3r\\'se"cret\\\\x-\\xe9\\nsecond-LINE-tok'`)).toBe("'***'");
    expect(r.mask(`b'Sup3r\\'se"cret\\\\x-\\xc3\\xa9\\nsecond-LINE-tok'`)).toBe("b'***'");
    expect(r.mask(`$'Sup3r\\'se"cret\\\\x-é\\nsecond-LINE-tok'`)).toBe("$'***'");
    expect(r.mask(`['Sup3r\\'se"cret\\\\x-é', 'second-LINE-tok']`)).toBe("['***', '***']");
    // A 3-character secret has no form inside text, whatever its quotes: "a'b" as repr or shlex writes it stays.
    expect(r.mask(`"a'b" 'a'"'"'b' a\\'b`)).toBe(`"a'b" 'a'"'"'b' a\\'b`);
    for (const value of ["x-y", "it's", `a"b'c-d`]) for (const form of textForms(value)) expect(form.length).toBeGreaterThanOrEqual(value.length);
  });

  it("masks a secret with quotes and <, >, & as HTML writers that leave quotes alone write it (nbconvert's outputs), also inside a notebook's JSON", () => {
    const r = registry({ TOK: 'pa<ss"word1', AMP: "p4ss<w\"o&rd>" });
    expect(r.mask("<pre>pa&lt;ss\"word1</pre>")).toBe("<pre>***</pre>");
    expect(r.mask('"text/html": ["p4ss&lt;w\\"o&amp;rd&gt;"]')).toBe('"text/html": ["***"]');
    expect(r.mask("pa&lt;ss&quot;word1 pa&lt;ss&#34;word1")).toBe("*** ***");
  });

  it("a value the engine holds (the tracker's password) is masked in text but refused nowhere; a short one is left alone", () => {
    const r = registry({});
    r.maskCredentials({ MLFLOW_TRACKING_USERNAME: "alice-user", MLFLOW_TRACKING_PASSWORD: "mlflow-pw", MLFLOW_TRACKING_TOKEN: "abc" });
    expect(r.empty).toBe(false);
    expect(r.mask("alice-user's password: mlflow-pw, token abc")).toBe("alice-user's password: ***, token abc");
    expect(r.find({ out: "mlflow-pw" })).toBeUndefined();
    expect(() => r.assertClean({ uri: "mlflow-pw" }, "t", "its outputs")).not.toThrow();
  });

  it("never masks inside text with a secret under 4 characters, but refuses it as a whole value", () => {
    const r = registry({ ONE: "a", TWO: "é🔑" });
    expect(r.mask("a banana é🔑")).toBe("a banana é🔑");
    expect(r.find("a")).toBe("ONE");
    expect(r.find({ x: "é🔑" })).toBe("TWO");
    expect(r.find("banana")).toBeUndefined();
  });

  it("learns a secret from the environment without a task asking for it (a worker, from the names its job carries); false when it is not set", () => {
    const r = new SecretRegistry({ FILED: "from-the-file-1" }, { API_TOKEN: "tok-9f8e7d6c5b4a", EMPTY: "" });
    expect(r.find({ conf: "tok-9f8e7d6c5b4a" })).toBeUndefined();
    expect(r.learn("API_TOKEN")).toBe(true);
    expect(() => r.assertClean({ conf: "tok-9f8e7d6c5b4a" }, "leak", "its outputs")).toThrow(SecretLeakError);
    expect(r.mask("config is tok-9f8e7d6c5b4a")).toBe("config is ***");
    expect(r.learn("FILED")).toBe(true);
    expect(r.learn("MISSING")).toBe(false);
    expect(r.learn("EMPTY")).toBe(false);
  });

  it("names the secrets tasks asked for, here or in another process that said so, never their values; one told of without a value here is named all the same", () => {
    const r = new SecretRegistry({}, { ENV_TOK: "envtok-5c4b3a2918", OTHER: "other-value-1" });
    expect(r.askedNames).toEqual([]);
    expect(r.get("ENV_TOK", "ask")).toBe("envtok-5c4b3a2918");
    expect(() => r.get("UNSET", "ask")).toThrow(/which is not set/);
    expect(r.askedNames).toEqual(["ENV_TOK"]);
    // Told by a worker's answer: known by this process's own value from now on.
    expect(r.learnAsked("OTHER")).toBe(true);
    expect(() => r.assertClean({ v: "out:other-value-1" }, "leak", "its outputs")).toThrow(SecretLeakError);
    expect(r.mask("leak sees other-value-1")).toBe("leak sees ***");
    expect(r.learnAsked("NOT_HERE")).toBe(false);
    expect(r.askedNames).toEqual(["ENV_TOK", "OTHER", "NOT_HERE"]);
  });

  it("digests a secret's value salted with a run's id and its name, the same from a file or the environment; none without a value", async () => {
    const coordinator = new SecretRegistry({ API_TOKEN: "tok-current-8d7c6b5a" }, {});
    const worker = new SecretRegistry({}, { API_TOKEN: "tok-current-8d7c6b5a", OTHER: "tok-current-8d7c6b5a" });
    const rotated = new SecretRegistry({ API_TOKEN: "tok-rotated-1a2b3c4d" }, {});
    const digest = await coordinator.digest("API_TOKEN", "run-1");
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(digest).not.toContain("tok-current");
    expect(await worker.digest("API_TOKEN", "run-1")).toBe(digest);
    expect(await rotated.digest("API_TOKEN", "run-1")).not.toBe(digest);
    expect(await worker.digest("API_TOKEN", "run-2")).not.toBe(digest);
    expect(await worker.digest("OTHER", "run-1")).not.toBe(digest);
    expect(await worker.digest("MISSING", "run-1")).toBeUndefined();
    // A name that is an Object.prototype member is a secret like any other, or none (it read the prototype's function).
    expect(await worker.digest("toString", "run-1")).toBeUndefined();
    const named = await new SecretRegistry({}, { constructor: "tok-current-8d7c6b5a" }).digest("constructor", "run-1");
    expect(named).toMatch(/^[0-9a-f]{64}$/);
    expect(named).toBe(await new SecretRegistry({ constructor: "tok-current-8d7c6b5a" }, {}).digest("constructor", "run-1"));
  });

  it("an empty secret is not set, and is never matched", () => {
    const r = registry({ EMPTY: "" });
    expect(r.empty).toBe(true);
    expect(() => r.get("EMPTY", "t")).toThrow(/which is not set/);
    expect(r.mask("text")).toBe("text");
  });

  it("refuses params that carry a secret: known ones at once, one from the environment when a task first asks", () => {
    const r = new SecretRegistry({ FILE: "from-the-file" }, { ENV: "from-the-env" });
    expect(() => r.assertParamsClean("f", { note: "see from-the-file" })).toThrow(SecretParamError);
    const params = { flowName: "f", values: { note: "from-the-env" } };
    r.assertParamsClean("f", params.values); // not known yet
    expect(() => r.get("ENV", "t1", params)).toThrow(/param "note" carrying the value of secret "ENV"/);
    expect(() => r.get("ENV", "t2", params)).toThrow(SecretParamError);
  });
});
