import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

  it("refuses a placeholder where the shell evaluates the value as arithmetic, whose array subscript would run $(...)", () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-arith-"));
    const n = `x[$(touch ${join(dir, "pwned")})]`;
    // What each template did before it was refused: the quoted value ran as code, in dash as in bash.
    const dangerous: [string, string][] = [
      ["/bin/sh", "echo $(( {n} * 2 ))"],
      ["bash", "(( {n} > 0 )) && echo big"],
      ["bash", "echo $[ {n} + 1 ]"],
      ["bash", "if [[ {n} -gt 0 ]]; then echo big; fi"],
      ["bash", "[[ 0 -lt {n} ]]"],
      ["bash", "[[ -v {n} ]]"],
      ["bash", "echo $(( $(echo {n}) + 1 ))"],
    ];
    for (const [shell, template] of dangerous) {
      expect(() => parseTemplate(template, "t", { shell: true }), template).toThrow(CommandTemplateError);
      const quoted = template.replace("{n}", shellQuote(n));
      spawnSync(shell, ["-c", quoted], { stdio: "ignore" });
      expect(existsSync(join(dir, "pwned")), `${shell} -c ${quoted}`).toBe(true);
      rmSync(join(dir, "pwned"));
    }
    expect(() => parseTemplate("echo $(( {n} * 2 ))", "t", { shell: true })).toThrow(
      /the placeholder \{n\} is inside an arithmetic expression \(\$\(\(\.\.\.\)\) or \(\(\.\.\.\)\)\), where the shell evaluates the quoted value as an expression: a value such as x\[\$\(cmd\)\] runs cmd\. Pass the value in a variable and check that it is a number/,
    );
    expect(() => parseTemplate("[[ {n} -gt 0 ]]", "t", { shell: true })).toThrow(/the placeholder \{n\} is an operand of -gt inside \[\[ \.\.\. \]\] \(line 1\).*Compare numbers with \[ \] instead/);
    expect(() => parseTemplate("[[ {a} {op} 1 ]]", "t", { shell: true })).toThrow(/next to \{op\}, which may be an operator such as -gt/);
    expect(() => parseTemplate("[[ -v {n} ]]", "t", { shell: true })).toThrow(/an operand of -v .*check the name first \(a \[ -v \] evaluates its subscript too\)/);
    // What the messages advise runs, and keeps the value from running; other tests in [[ ]], and arithmetic without placeholders, are left alone.
    const advised = [
      "n={n}; case $n in ''|*[!0-9]*) echo \"not a whole number: $n\" >&2; exit 2;; esac; echo $(( n * 2 ))",
      "[ {n} -gt 0 ] && echo big",
      "v={n}; case $v in ''|*[!A-Za-z0-9_]*) echo \"not a variable name: $v\" >&2; exit 2;; esac; [[ -v $v ]]",
      "[[ -f {n} || {n} == x* ]] && echo $((1 << 2)) $[3] [[",
    ];
    for (const template of advised) {
      const line = renderShell(parseTemplate(template, "t", { shell: true }), { n }, "t");
      spawnSync("bash", ["-c", line], { stdio: "ignore" });
      expect(existsSync(join(dir, "pwned")), line).toBe(false);
    }
    expect(renderShell(parseTemplate(advised[0]!, "t", { shell: true }), { n: 21 }, "t")).toBe(advised[0]!.replace("{n}", "21"));
    expect(sh(renderShell(parseTemplate(advised[0]!, "t", { shell: true }), { n: 21 }, "t"))).toBe("42\n");
    rmSync(dir, { recursive: true });
  });

  it("refuses a placeholder in an array subscript or a ${v:offset:length}, which bash evaluates as arithmetic", () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-subscript-"));
    const i = `x[$(touch ${join(dir, "pwned")})]`;
    // What each template did before it was refused: quoted as Cairn quotes any value, the value ran as code.
    const dangerous = [
      "arr=(a b); echo ${arr[{i}]}",
      "arr=(a b); echo ${#arr[{i}]}",
      "arr=(a b); echo ${!arr[{i}]}",
      "arr[{i}]=x",
      "arr=(a); arr[ {i} ]+=x",
      "arr=(a b); echo ${arr[0]:{i}}",
      "v=abc; echo ${v:{i}}",
      "v=abc; echo ${v:1:{i}}",
    ];
    for (const template of dangerous) {
      const quoted = template.replace("{i}", shellQuote(i));
      spawnSync("bash", ["-c", quoted], { stdio: "ignore" });
      expect(existsSync(join(dir, "pwned")), `bash -c ${quoted}`).toBe(true);
      rmSync(join(dir, "pwned"));
      expect(() => parseTemplate(template, "t", { shell: true }), template).toThrow(CommandTemplateError);
    }
    expect(() => parseTemplate("echo ${arr[{i}]}", "t", { shell: true })).toThrow(
      /the placeholder \{i\} is in the array subscript of \$\{arr\[\.\.\.\]\} \(line 1\), where bash evaluates the quoted value as an arithmetic expression: a value such as x\[\$\(cmd\)\] runs cmd\. Pass the value in a variable and check that it is a whole number first/,
    );
    expect(() => parseTemplate("a[{i}]=x", "t", { shell: true })).toThrow(/is in the subscript of the assignment a\[\.\.\.\]= \(line 1\)/);
    expect(() => parseTemplate("echo ${v:1:{i}}", "t", { shell: true })).toThrow(/is in the offset or length of \$\{v:\.\.\.\} \(line 1\)/);
    // What the messages advise runs, and keeps the value from running; a default, a pattern, a glob and a subscript without placeholders are left alone.
    const advised = [
      "arr=(a b); i={i}; case $i in ''|*[!0-9]*) echo \"not a whole number: $i\" >&2; exit 2;; esac; echo \"${arr[$i]}\"",
      "v=abc; i={i}; case $i in ''|*[!0-9]*) echo \"not a whole number: $i\" >&2; exit 2;; esac; echo \"${v:$i}\"",
      "declare -A m; i={i}; m[$i]=x; echo \"${m[$i]}\"",
      "echo ${v:-{i}} ${v#{i}} ls[{i}] ${arr[0]} {i}",
    ];
    for (const template of advised) {
      const line = renderShell(parseTemplate(template, "t", { shell: true }), { i }, "t");
      spawnSync("bash", ["-c", line], { stdio: "ignore" });
      expect(existsSync(join(dir, "pwned")), line).toBe(false);
    }
    expect(execFileSync("bash", ["-c", renderShell(parseTemplate(advised[0]!, "t", { shell: true }), { i: 1 }, "t")], { encoding: "utf8" })).toBe("b\n");
    rmSync(dir, { recursive: true });
  });

  it("refuses a placeholder in the subscript of unset a[...] or of a compound assignment a=([...]=v), which bash evaluates as arithmetic", () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-subscript-"));
    const i = `x[$(touch ${join(dir, "pwned")})0]`;
    // What each template did before it was refused: its rendered line ran the value as code.
    const dangerous = [
      "a=(1 2); unset a[{i}]",
      "a=(1 2); unset -v b a[{i}]",
      "a=([{i}]=v)",
      "a=(x $(echo y) [{i}]=v)",
      "a=(1); a+=([{i}]=v)",
      "declare -a a=(\n  [{i}]=v\n)",
    ];
    for (const template of dangerous) {
      const line = template.replace("{i}", shellQuote(i));
      spawnSync("bash", ["-c", line], { stdio: "ignore" });
      expect(existsSync(join(dir, "pwned")), `bash -c ${line}`).toBe(true);
      rmSync(join(dir, "pwned"));
      expect(() => parseTemplate(template, "t", { shell: true }), template).toThrow(CommandTemplateError);
    }
    expect(() => parseTemplate("unset a[{i}]", "t", { shell: true })).toThrow(/the placeholder \{i\} is in the subscript of unset a\[\.\.\.\] \(line 1\), where bash evaluates/);
    expect(() => parseTemplate("a+=([{i}]=v)", "t", { shell: true })).toThrow(/is in a subscript of the compound assignment a=\( \[\.\.\.\]=\.\.\. \) \(line 1\)/);
    // What the messages advise runs and keeps the value from running; a value in a compound assignment, and unset's names, are left alone.
    const advised = [
      "a=(x y z); i={i}; case $i in ''|*[!0-9]*) echo \"not a whole number: $i\" >&2; exit 2;; esac; unset 'a[$i]'",
      "declare -A m; k={i}; m=([$k]=v); unset 'm[$k]'",
      "a=({i} [0]=x); unset a {i}",
    ];
    for (const template of advised) {
      const line = renderShell(parseTemplate(template, "t", { shell: true }), { i }, "t");
      spawnSync("bash", ["-c", line], { stdio: "ignore" });
      expect(existsSync(join(dir, "pwned")), line).toBe(false);
    }
    expect(execFileSync("bash", ["-c", `${renderShell(parseTemplate(advised[0]!, "t", { shell: true }), { i: 1 }, "t")}; echo "\${a[@]}"`], { encoding: "utf8" })).toBe("x z\n");
    rmSync(dir, { recursive: true });
  });

  it("refuses a placeholder inside backticks, where bash ends the substitution at a backquote in the value", () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-backtick-"));
    const x = `\`;touch ${join(dir, "pwned")};\``;
    // Quoted as Cairn quotes any value, it still ran under bash before it was refused.
    spawnSync("bash", ["-c", `echo \`echo ${shellQuote(x)}\``], { stdio: "ignore" });
    expect(existsSync(join(dir, "pwned"))).toBe(true);
    rmSync(dir, { recursive: true });
    expect(() => parseTemplate("echo `echo {x}`", "t", { shell: true })).toThrow(
      /the placeholder \{x\} is inside backticks \(`\.\.\.`\).*Write \$\(\.\.\.\) instead of backticks, e\.g\. \$\(echo \{x\}\)\./,
    );
    expect(() => parseTemplate('echo "`cat {x}`"', "t", { shell: true })).toThrow(/inside (double quotes|backticks)/);
    expect(() => parseTemplate("echo `date", "t", { shell: true })).toThrow(/a backtick \(`\) is not closed/);
    // Quotes inside backticks do not hide their end; \` is a literal backquote, and so are backticks in single quotes.
    expect(parseTemplate("echo `echo ')'` \\` '`' {x}", "t", { shell: true }).placeholders).toEqual(["x"]);
    expect(sh(renderShell(parseTemplate("echo $(echo {x}) `echo ok`", "t", { shell: true }), { x: "`id`" }, "t"))).toBe("`id` ok\n");
  });

  it("does not quote argv arguments (no shell involved)", () => {
    expect(renderArg(parseTemplate("--path={p}", "t", { shell: false }), { p: "a b'c" }, "t")).toBe("--path=a b'c");
    expect(() => renderArg(parseTemplate("{missing}", "t", { shell: false }), { p: 1 }, "t")).toThrow(/UnknownPlaceholder|placeholder \{missing\}/);
  });
});
