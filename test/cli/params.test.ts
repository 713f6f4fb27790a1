/** `-p NAME=VALUE` as a user types it: the value's text kept where JSON would change it, and names JavaScript would drop refused. */
import { describe, expect, it } from "vitest";
import { cairn, fixture } from "./helpers.ts";

const flowFile = fixture("exact-params.flow.ts");

describe("cairn run -p", () => {
  it("keeps 1.10 and a 20-digit id as typed for string params, and reads 0.10 as a number for a number param", async () => {
    const r = await cairn(["run", flowFile, "--json", "--no-tracking", "-p", "version=1.10", "-p", "id=12345678901234567890", "-p", "lr=0.10"]);
    expect(r.code, r.stderr).toBe(0);
    const end = r.json.find((e) => e.type === "flow" && e.status === "succeeded");
    expect(end?.outputs).toEqual({ version: "1.10", id: "12345678901234567890", lr: 0.1 });
  });

  it("refuses, for a flow with neither a params schema nor a type, a -p the flow never reads (exit 2), naming the one likely meant", async () => {
    const untyped = fixture("untyped-params.flow.ts");
    const r = await cairn(["run", untyped, "--no-tracking", "-p", "n=2", "-p", "flg=true"]);
    expect(r.stderr).toContain(
      'ParamError: Flow "untyped-params" has no param "flg" (did you mean "flag"?): neither its build function nor any of its tasks reads it. The params it reads: flag, n.',
    );
    expect(r.stderr).toContain("(got -p flg=true)");
    expect(r.code).toBe(2);
    const ok = await cairn(["run", untyped, "--json", "--no-tracking", "-p", "n=2", "-p", "flag=true"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json.find((e) => e.type === "flow" && e.status === "succeeded")?.outputs).toEqual({ doubled: 4, flag: true });
  });

  it("refuses, for a flow whose params are typed by .params<T>() only, a -p the flow never reads (exit 2): nothing type-checks -p", async () => {
    // run({ params }) takes such a param with a warning (its type can make the caller give it); -p is text no compiler saw.
    const typed = fixture("typed-params.flow.ts");
    const r = await cairn(["run", typed, "--no-tracking", "-p", "n=2", "-p", "flag=true", "-p", "flg=true"]);
    expect(r.stderr).toContain(
      'ParamError: Flow "typed-params" has no param "flg" (did you mean "flag"?): neither its build function nor any of its tasks reads it. The params it reads: flag, n. ' +
        "Its params are typed with .params<T>() only, and no compiler checked these against the type, so a param nothing reads is refused as a likely typo;",
    );
    expect(r.stderr).toContain("(got -p flg=true)");
    expect(r.code).toBe(2);
    const ok = await cairn(["run", typed, "--json", "--no-tracking", "-p", "n=2", "-p", "flag=true"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json.find((e) => e.type === "flow" && e.status === "succeeded")?.outputs).toEqual({ doubled: 4, flag: true });
  });

  it("refuses a -p value nested deeper than the limit as a bad param (exit 2), naming the param and the place", async () => {
    const deep = `${"[".repeat(5000)}1${"]".repeat(5000)}`;
    const r = await cairn(["run", fixture("typed-params.flow.ts"), "--no-tracking", "-p", `n=${deep}`, "-p", "flag=true"]);
    expect(r.stderr).toMatch(/NotSerializableError: Flow "typed-params" params at "n\[0\]\[0\].*" cannot be serialized: .*nested more than 1000 levels deep/);
    expect(r.code).toBe(2);
  });

  it("refuses -p __proto__=1 (exit 2) instead of dropping it", async () => {
    const r = await cairn(["run", flowFile, "--no-tracking", "-p", "version=1", "-p", "__proto__=1"]);
    expect(r.stderr).toContain('UsageError: Expected -p name=value with a param name, got "-p __proto__=1": `__proto__` cannot be a param\'s name');
    expect(r.code).toBe(2);
  });
});

describe("cairn run -p says what it read and how to write it", () => {
  const lists = fixture("list-params.flow.ts");

  it("a list given as text says it is not JSON, why, and the JSON to write (exit 2)", async () => {
    const commas = await cairn(["run", lists, "--no-tracking", "-p", "dates=2026-01-01,2026-01-02"]);
    expect(commas.code).toBe(2);
    // Before: only "dates: Invalid input: expected array, received string".
    expect(commas.stderr).toContain(
      "dates: Invalid input: expected array, received string (got -p dates=2026-01-01,2026-01-02): it is not JSON (Unexpected non-whitespace character after JSON at position 4), " +
        `so it was read as text. Written as JSON, quoted for the shell: -p 'dates=["2026-01-01","2026-01-02"]'`,
    );
    const python = await cairn(["run", lists, "--no-tracking", "-p", "dates=['2026-01-01']"]);
    expect(python.stderr).toContain(`it is not JSON (Unexpected token at position 1), so it was read as text. Written as JSON, quoted for the shell: -p 'dates=["2026-01-01"]'`);
    const cut = await cairn(["run", lists, "--no-tracking", "-p", 'dates=["a",']);
    expect(cut.stderr).toContain(`it is not JSON (Unexpected end of JSON input), so it was read as text. A list or an object is written as JSON, quoted for the shell: -p 'dates=["a","b"]'`);
  });

  it("a required param left out is said missing, with the -p that gives it", async () => {
    const r = await cairn(["run", lists, "--no-tracking"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("dates: missing (Invalid input: expected array, received undefined): pass -p dates=VALUE");
  });

  it("a string param whose text reads as a number is reported about its text: the pattern, not the type", async () => {
    const r = await cairn(["run", lists, "--no-tracking", "-p", 'dates=["a"]', "-p", "run=123"]);
    expect(r.code).toBe(2);
    // Before: "run: Invalid input: expected string, received number", about the JSON reading only.
    expect(r.stderr).toContain("run: Invalid string: must match pattern /^\\d{8}$/ (got -p run=123)");
    expect(r.stderr).not.toContain("expected string, received number");
  });

  it("refuses an empty -p value (an unset shell variable), and takes an empty string written as JSON, and spaces as given", async () => {
    for (const value of [""]) {
      const r = await cairn(["run", lists, "--no-tracking", "-p", 'dates=["a"]', "-p", `note=${value}`]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        `UsageError: Expected \`-p note=VALUE\` to have a value, got an empty one (\`-p note=${value}\`), often a shell variable that is not set. ` +
          `Give a value, or leave -p note out for its default; to pass an empty string on purpose, write it as JSON: -p 'note=""'.`,
      );
    }
    const ok = await cairn(["run", lists, "--json", "--no-tracking", "-p", 'dates=["a"]', "-p", 'note=""']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json.find((e) => e.type === "flow" && e.status === "succeeded")?.outputs).toEqual({ out: { dates: ["a"], run: "20260101", note: "" } });
    // A separator of one space is a value, as it was before empty values were refused.
    const space = await cairn(["run", lists, "--json", "--no-tracking", "-p", 'dates=["a"]', "-p", "note= "]);
    expect(space.code, space.stderr).toBe(0);
    expect(space.json.find((e) => e.type === "flow" && e.status === "succeeded")?.outputs).toEqual({ out: { dates: ["a"], run: "20260101", note: " " } });
  });
});
