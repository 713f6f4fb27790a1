import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { CommandTemplateError, parseTemplate, renderArg, renderShell, shellQuote } from "../../packages/process/src/spawn/index.ts";

const sh = (line: string) => execFileSync("/bin/sh", ["-c", line], { encoding: "utf8" });

describe("command templates", () => {
  it("quotes every value as one literal shell word", () => {
    const nasty = ["", "a b", "it's", `"; rm -rf ~ #`, "$(id)", "`id`", "\\n", "*", "~", "-n", "a\nb"];
    for (const v of nasty) {
      const line = renderShell(parseTemplate("printf '[%s]' {v}", "t", { shell: true }), { v }, "t");
      expect(sh(line)).toBe(`[${v}]`);
      expect(sh(`printf '[%s]' ${shellQuote(v)}`)).toBe(`[${v}]`);
    }
  });

  it("renders arrays as one word per element, artifacts as their path, objects as JSON, null as empty", () => {
    const t = parseTemplate("printf '[%s]' {list} {file} {obj} {none}", "t", { shell: true });
    const artifact = { kind: "cairn.artifact", path: "/tmp/a b.csv", artifactPath: "a b.csv" };
    expect(sh(renderShell(t, { list: ["x y", "z"], file: artifact, obj: { a: 1 }, none: null }, "t"))).toBe('[x y][z][/tmp/a b.csv][{"a":1}][]');
  });

  it("leaves ${VAR}, awk programs, brace expansion and {{escaped}} braces alone", () => {
    const t = parseTemplate("echo ${HOME} {a,b} {{n}} | awk '{print $1}' {n}", "t", { shell: true });
    expect(t.placeholders).toEqual(["n"]);
    expect(renderShell(t, { n: 5 }, "t")).toBe("echo ${HOME} {a,b} {n} | awk '{print $1}' 5");
  });

  it("refuses placeholders inside quotes and unclosed quotes", () => {
    expect(() => parseTemplate(`echo "x {v}"`, "t", { shell: true })).toThrow(CommandTemplateError);
    expect(() => parseTemplate(`echo 'x`, "t", { shell: true })).toThrow(/not closed/);
    expect(parseTemplate(`echo \\'{v}`, "t", { shell: true }).placeholders).toEqual(["v"]); // an escaped quote is not a quote
  });

  it("finds here-document bodies as the shell does: after their line, in order, up to the delimiter; not in arithmetic or here-strings", () => {
    const shell = { shell: true };
    expect(() => parseTemplate("cat <<A <<'B'\nfoo\nA\n{x}\nB\n", "t", shell)).toThrow(/here-document <<'B' \(line 4\)/);
    expect(parseTemplate("cat <<A; echo {x}\nit's\nA\necho {y}", "t", shell).placeholders).toEqual(["x", "y"]);
    expect(parseTemplate("echo $((1<<2)) <<<{x}\necho {y}", "t", shell).placeholders).toEqual(["x", "y"]);
    expect(renderShell(parseTemplate("cat <<-E\n\t${HOME} {{x}}\n\tE\necho {x}", "t", shell), { x: "a b" }, "t")).toBe("cat <<-E\n\t${HOME} {x}\n\tE\necho 'a b'");
  });

  it("does not quote argv arguments (no shell involved)", () => {
    expect(renderArg(parseTemplate("--path={p}", "t", { shell: false }), { p: "a b'c" }, "t")).toBe("--path=a b'c");
    expect(() => renderArg(parseTemplate("{missing}", "t", { shell: false }), { p: 1 }, "t")).toThrow(/UnknownPlaceholder|placeholder \{missing\}/);
  });
});
