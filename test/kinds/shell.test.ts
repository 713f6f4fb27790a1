import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { flow, grid, map, max, sweep, task, type Artifact } from "@cairn/dsl";
import { notebook, script, shell } from "../../packages/process/src/index.ts";
import { CommandTemplateError, UnknownPlaceholderError } from "../../packages/process/src/spawn/index.ts";
import { mlflowProject } from "../../packages/mlflow/src/project/mlflow-project.ts";
import { OptionError } from "@cairn/core";
import { secretPartIn } from "../reliability/secret-helpers.ts";
import { alive, fixture, runOptions, tempRoot, waitFor } from "./helpers.ts";

/** What pumpLines masks with when no secret is known. */
const NO_SECRETS = { mask: (text: string) => text, safeCut: (_: string, at: number) => at };

describe("shell()", () => {
  it("substitutes {placeholders} and outputs { stdout, exitCode }", async () => {
    const wc = shell("wc", "printf '%s|' {word} {n} && wc -c < {file}").input<{ word: string; n: number; file: Artifact }>();
    const data = task("data").run(async (_, ctx) => ({ file: await ctx.artifacts.write("d.txt", "12345") }));
    const f = flow("sh").build(() => {
      const d = data();
      const r = wc({ word: "hi", n: 2, file: d.file });
      return { stdout: r.stdout, exitCode: r.exitCode };
    });
    expect(await (await f.run(await runOptions())).outputs()).toEqual({ stdout: "hi|2|5", exitCode: 0 });
    expect(wc.definition).toMatchObject({ kind: "shell", code: "printf '%s|' {word} {n} && wc -c < {file}" });
  });

  it("the folder a command runs in is part of its key: the same command in another cwd runs again", async () => {
    const root = await tempRoot();
    for (const [dir, lines] of [["a", "x\n"], ["b", "x\ny\nz\n"]] as const) {
      await mkdir(join(root, dir));
      await writeFile(join(root, dir, "data.txt"), lines);
    }
    const counted = async (cwd: string) => {
      const count = shell("count", "wc -l < data.txt", { cwd: join(root, cwd) });
      const run = await flow("cwd").build(() => ({ n: count().stdout })).run({ root });
      const result = await run.wait();
      return { outputs: result.outputs, status: result.tasks.count?.status };
    };
    expect(await counted("a")).toEqual({ outputs: { n: "1" }, status: "succeeded" });
    expect(await counted("b")).toEqual({ outputs: { n: "3" }, status: "succeeded" });
    expect(await counted("b")).toEqual({ outputs: { n: "3" }, status: "cached" });
    // So are a script's folder and a notebook's Python, as given.
    const code = (t: { definition: { code?: string } }) => t.definition.code;
    const py = fixture("echo_value.py");
    expect(code(script("s", { file: py, cwd: "a" }))).not.toBe(code(script("s", { file: py, cwd: "b" })));
    const nb = fixture("report.ipynb");
    expect(code(notebook("n", nb, { cwd: "a" }))).not.toBe(code(notebook("n", nb, { cwd: "b" })));
    expect(code(notebook("n", nb, { python: "/usr/bin/python3" }))).not.toBe(code(notebook("n", nb)));
  });

  it("a process's env enters its key by value, whatever its keys' order", () => {
    const code = (env: Record<string, string>) => shell("s", "true", { env }).definition.code!;
    expect(code({ PIN: "4712" })).not.toBe(code({ PIN: "4711" }));
    expect(code({ A: "1", B: "2" })).toBe(code({ B: "2", A: "1" }));
    expect(code({ A: "1" })).not.toContain("1\"");
  });

  it("refuses an env or secret name that is empty or holds \"=\", NUL or a line break, in every process kind, when the task is declared", async () => {
    const { execFileSync } = await import("node:child_process");
    const evil = "PATH=/tmp/evil:/usr/bin:/bin";
    // What such a name did: the child's PATH became the name's tail.
    expect(execFileSync("/bin/sh", ["-c", "echo $PATH"], { env: { [evil]: "x" }, encoding: "utf8" })).toBe("/tmp/evil:/usr/bin:/bin=x\n");
    const declare = (options: { env?: Record<string, string>; secrets?: string[] }) => [
      () => shell("sh", "echo $PATH", options),
      () => script("s", { file: fixture("echo_value.py"), ...options }),
      () => notebook("n", fixture("report.ipynb"), options),
      () => mlflowProject("p", { uri: fixture("mlproject"), ...options }),
    ];
    for (const make of declare({ env: { [evil]: "x" } })) {
      expect(make).toThrow(OptionError);
      expect(make).toThrow(`option \`env\` names an environment variable "${evil}", which holds "=", so the process would get "PATH" set instead. Expected a name that is not empty and holds no "=", NUL or line break, such as MY_VAR: rename it`);
    }
    for (const bad of ["", "A\nB", "A\rB", "A\0B"]) for (const make of declare({ env: { [bad]: "x" } })) expect(make).toThrow(/option `env` names an environment variable .* which (is empty|holds a line break|holds a NUL character)/);
    for (const make of declare({ secrets: ["TOKEN=x"] })) expect(make).toThrow(/option `secrets` names a secret, which the process gets as an environment variable of that name, "TOKEN=x", which holds "="/);
    for (const make of declare({ env: { MY_VAR: "a=b\nc" }, secrets: ["API_TOKEN"] })) expect(make).not.toThrow();
  });

  it("a log file that cannot be written (a full disk) does not stall the process: its output is still read to the end", async () => {
    const { spawn } = await import("node:child_process");
    const { createWriteStream } = await import("node:fs");
    const { pumpLines } = await import("../../packages/process/src/spawn/lines.ts");
    const child = spawn("sh", ["-c", "i=0; while [ $i -lt 40000 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done"], { stdio: ["ignore", "pipe", "ignore"] });
    const file = createWriteStream("/dev/full").on("error", () => {});
    let lines = 0;
    const exited = new Promise<number | null>((r) => child.on("exit", r));
    await pumpLines(child.stdout!, file, NO_SECRETS, () => void lines++);
    expect(await exited).toBe(0);
    expect(lines).toBe(40000);
  }, 30_000);

  it("keeps a shell-injection attempt literal", async () => {
    const marker = `/tmp/pwned-${process.pid}-${Date.now()}`;
    await rm(marker, { force: true });
    const echo = shell("echo", "printf '%s\\n' {value} {more}").input<{ value: string; more: string[] }>();
    const values = [`"; touch ${marker}`, `$(touch ${marker})`, `\`touch ${marker}\``, `' ; touch ${marker}; '`];
    const f = flow("inject").build(() => ({ out: echo({ value: `; touch ${marker}`, more: values }).stdout }));
    const { out } = await (await f.run(await runOptions())).outputs();
    expect(out.split("\n")).toEqual([`; touch ${marker}`, ...values]);
    expect(existsSync(marker)).toBe(false);
  });

  it("refuses a placeholder inside quotes, where quoting could not protect it", () => {
    expect(() => shell("q1", `echo "{value}"`)).toThrow(CommandTemplateError);
    expect(() => shell("q2", `echo '{value}'`)).toThrow(/inside single quotes/);
    // ${VAR}, awk braces and {{literal}} are not placeholders
    const ok = shell("ok", `echo \${HOME} {{x}} | awk '{print $1}'`);
    expect(ok.definition.code).toContain("awk");
  });

  it("refuses a placeholder in arithmetic or backticks when the task is declared, where sh or bash would run the quoted value", () => {
    expect(() => shell("double", "echo $(( {n} * 2 ))").input<{ n: number }>()).toThrow(/placeholder \{n\} is inside an arithmetic expression/);
    expect(() => shell("big", "if [[ {x} -gt 0 ]]; then echo big; fi", { shell: "bash" })).toThrow(/operand of -gt inside \[\[ \.\.\. \]\]/);
    expect(() => shell("sub", "echo `echo {x}`", { shell: "bash" })).toThrow(CommandTemplateError);
    expect(shell("file", "[[ -f {x} ]] && echo $(echo {x})", { shell: "bash" }).definition.code).toContain("-f {x}");
  });

  it("refuses a placeholder in a here-document's body, and keeps a value passed through the environment literal", async () => {
    const marker = `/tmp/pwned-heredoc-${process.pid}-${Date.now()}`;
    const unquoted = (() => {
      try {
        return shell("h1", "cat <<EOF\nvalue: {x}\nEOF");
      } catch (error) {
        return error as Error;
      }
    })();
    // The old parser let this through, and `$(touch ...)` ran inside the body.
    expect(unquoted).toBeInstanceOf(CommandTemplateError);
    expect((unquoted as Error).message).toContain("the placeholder {x} is in the body of the here-document <<EOF (line 2), where the shell still runs $(...)");
    expect((unquoted as Error).message).toContain(`x={x} python - <<'EOF' with os.environ["x"]`);
    expect(() => shell("h2", "cat <<-EOF\n\tvalue: {x}\n\tEOF")).toThrow(/here-document <<-EOF/);
    expect(() => shell("h3", "python - <<'EOF'\nprint({x})\nEOF")).toThrow(/<<'EOF' \(line 2\), where nothing is expanded: the value would arrive with Cairn's shell quotes/);
    // What the message advises runs, and the value stays literal; quotes and {{x}} in a body are text.
    const safe = shell("safe", "x={x} sh <<'EOF'\nprintf '%s|{{x}}|' \"$x\"\nEOF\ncat <<END\nit's done\nEND").input<{ x: string }>();
    const f = flow("heredoc").build(() => ({ out: safe({ x: `$(touch ${marker})` }).stdout }));
    expect(await (await f.run(await runOptions())).outputs()).toEqual({ out: `$(touch ${marker})|{x}|it's done` });
    expect(existsSync(marker)).toBe(false);
  });

  it("ignores quotes in a shell comment and refuses a placeholder there, whose value would never arrive", async () => {
    const named = shell("named", "echo {a} # the user's name").input<{ a: string }>();
    const f = flow("comment").build(() => ({ out: named({ a: "Ann Lee" }).stdout }));
    expect(await (await f.run(await runOptions())).outputs()).toEqual({ out: "Ann Lee" });
    expect(() => shell("c2", "echo {a} # was {b}")).toThrow(/the placeholder \{b\} is in a shell comment \(after the "#" on line 1\)/);
    // `#` inside a word or `${#VAR}` starts no comment.
    expect(shell("c3", "echo a#{a} ${#HOME}").definition.code).toContain("a#{a}");
  });

  it("rejects an unknown placeholder when the task is called in build()", () => {
    const t = shell("greet", "echo {greeting} {name}");
    expect(() => flow("unknown").build(() => ({ x: t({ greeting: "hi" }).stdout }))).toThrow(UnknownPlaceholderError);
    expect(() => flow("unknown2").build(() => ({ x: t({ greeting: "hi" }).stdout }))).toThrow(/placeholder \{name\}.*inputs: "greeting"/);
  });

  it("rejects an unknown placeholder in build() for map() and sweep() too, advising `with`", () => {
    const t = shell("s", "echo {x} {y}");
    const mapped = () => flow("mapcc").build(() => ({ o: map(t, { over: [1, 2], as: "x" } as never).outputs }));
    expect(mapped).toThrow(UnknownPlaceholderError);
    expect(mapped).toThrow(/placeholder \{y\}.*inputs: "x".*map\(s, \{ \.\.\., with: \{ y: \.\.\. \} \}\)/);
    const swept = () => flow("sweepcc").build(() => ({ o: sweep(t, { over: grid({ x: [1, 2] }), select: max("exitCode") } as never).outputs }));
    expect(swept).toThrow(/placeholder \{y\}.*sweep\(s, \{ \.\.\., with: \{ y: \.\.\. \} \}\)/);
    // Satisfied by `with`, by the item (a ref to a list known at run time), or by the space.
    const list = task("list").run(() => ({ xs: [1, 2] }));
    flow("mapok").build(() => ({ o: map(t, { over: list().xs, as: "x", with: { y: 2 } }).outputs }));
    flow("sweepok").build(() => ({ o: sweep(t, { over: grid({ x: [1], y: [2] }), select: max("exitCode") }).outputs }));
  });

  it("rejects an unknown placeholder at run time, before the process starts", async () => {
    const marker = join(await tempRoot(), "started");
    // A schema whose keys are not visible: only the run can tell.
    const opaque = { "~standard": { version: 1 as const, vendor: "test", validate: (v: unknown) => ({ value: v as Record<string, unknown> }) } };
    const t = shell("late", `touch ${marker} && echo {missing}`).input(opaque);
    const result = await (await flow("late").build(() => ({ x: t({ other: 1 }).stdout })).run(await runOptions())).wait();
    expect(result.tasks.late!.error).toMatchObject({ name: "UnknownPlaceholderError", message: expect.stringContaining("{missing}") });
    expect(existsSync(marker)).toBe(false);
  });

  it("lets a schema default fill a placeholder", async () => {
    const t = shell("def", "echo {n}").input(z.object({ n: z.number().default(7) }));
    expect(await (await flow("def").build(() => ({ x: t({}).stdout })).run(await runOptions())).outputs()).toEqual({ x: "7" });
  });

  it("uses CAIRN_OUTPUTS instead of stdout when the command writes it", async () => {
    const t = shell("json", `echo ignored && printf '{"n": %s}' {n} > "$CAIRN_OUTPUTS"`).input<{ n: number }>().output<{ n: number }>();
    expect(await (await flow("json").build(() => ({ n: t({ n: 4 }).n })).run(await runOptions())).outputs()).toEqual({ n: 4 });
  });

  it("keeps an output key named __proto__ as its own data, as a function task does", async () => {
    const text = '{"d":{"__proto__":1},"__proto__":{"x":1}}';
    const sh = shell("proto-sh", `printf '%s' '${text}' > "$CAIRN_OUTPUTS"`);
    const fn = task("proto-fn").run(() => JSON.parse(text) as Record<string, unknown>);
    const f = flow("proto-out").build(() => ({ sh: sh().$out, fn: fn().$out }));
    const options = await runOptions();
    const result = await (await f.run(options)).wait();
    expect(result.status).toBe("succeeded");
    // And as the cache gives them back.
    const again = await (await f.run(options)).wait();
    expect([again.tasks["proto-sh"]?.status, again.tasks["proto-fn"]?.status]).toEqual(["cached", "cached"]);
    for (const out of [result.outputs?.sh, result.outputs?.fn, again.outputs?.sh, again.outputs?.fn] as Record<string, Record<string, unknown>>[]) {
      expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
      expect(Object.keys(out)).toEqual(["d", "__proto__"]);
      expect(Object.hasOwn(out.d!, "__proto__") && out.d!["__proto__"]).toBe(1);
      expect(JSON.stringify(out)).toBe(text);
    }
  });

  it("fails on a non-zero exit with the tail of stderr", async () => {
    const t = shell("boom", "echo oops >&2; exit 4");
    const result = await (await flow("boom").build(() => ({ x: t().stdout })).run(await runOptions())).wait();
    expect(result.tasks.boom!.error).toMatchObject({ name: "ProcessFailedError", message: expect.stringMatching(/exited with code 4[\s\S]*oops/) });
  });

  it("passes secrets as environment variables and masks them in the log artifacts", async () => {
    const secret = "s3cr3t-value-for-test";
    const t = shell("sec", "echo token=$API_TOKEN >&2; echo done", { secrets: ["API_TOKEN"] });
    const options = await runOptions({ secrets: { API_TOKEN: secret } });
    const run = await flow("sec").build(() => ({ x: t().stdout })).run(options);
    const messages: string[] = [];
    run.on((e) => e.type === "log" && messages.push(e.message));
    const result = await run.wait();
    expect(result.outputs).toEqual({ x: "done" });
    expect(messages.join("\n")).not.toContain(secret);
    const stderr = readFileSync(join(options.root, "artifacts", result.tasks.sec!.runId!, "logs/stderr.txt"), "utf8");
    expect(stderr).toBe("token=***\n");
  });

  it("a line without a newline, however long, reaches the log file whole, and the logger and the error cut short", async () => {
    // 3 MB on stderr without a newline, then a short line; 200 KB on stdout without one.
    const code = "import sys; sys.stdout.write('y'*200000); sys.stderr.write('x'*3000000); sys.stderr.write('\\nlast words\\n'); sys.exit(1)";
    const t = shell("long", `python3 -c ${JSON.stringify(code)}`);
    const options = await runOptions();
    const run = await flow("long").build(() => ({ x: t().stdout })).run(options);
    const logs: string[] = [];
    run.on((e) => e.type === "log" && logs.push(e.message));
    const result = await run.wait();
    const dir = join(options.root, "artifacts", result.tasks.long!.runId!, "logs");
    // The log files get every byte.
    expect(statSync(join(dir, "stderr.txt")).size).toBe(3_000_000 + 1 + "last words\n".length);
    expect(readFileSync(join(dir, "stdout.txt"), "utf8")).toBe(`${"y".repeat(200_000)}\n`);
    // The logger (the CLI's lines, events) gets the start of each long line and how much was cut.
    const long = logs.filter((m) => m.startsWith("xxxx"));
    expect(long).toHaveLength(1);
    expect(long[0]!.length).toBeLessThan(10_000);
    expect(long[0]).toMatch(/… \(2991808 more bytes, in logs\/stderr\.txt\)$/);
    expect(logs.find((m) => m.startsWith("yyyy"))).toMatch(/… \(191808 more bytes, in logs\/stdout\.txt\)$/);
    expect(logs).toContain("last words");
    expect(logs.every((m) => m.length < 10_000)).toBe(true);
    // The error's stderr tail is a few KB, each line cut with a note of what was cut.
    const error = result.tasks.long!.error!;
    expect(error.name).toBe("ProcessFailedError");
    expect(error.message.length).toBeLessThan(6000);
    expect(error.message).toMatch(/\| x+ … \(2999\d\d\d more bytes\)\n {2}\| last words\n/);
  });

  it("a long line is masked in its log file wherever a secret falls in it", async () => {
    const secret = "tok-0123456789abcdef";
    // One 420 KB line on stderr that is nearly all secrets: wherever it is cut into pieces, the cut falls in one.
    const t = shell("masked", `python3 -c "import os, sys; sys.stderr.write((os.environ['API_TOKEN'] + '-') * 20000 + '\\n')"`, { secrets: ["API_TOKEN"] });
    const options = await runOptions({ secrets: { API_TOKEN: secret } });
    const run = await flow("masked").build(() => ({ x: t().stdout })).run(options);
    const logs: string[] = [];
    run.on((e) => e.type === "log" && logs.push(e.message));
    const result = await run.wait();
    expect(result.status).toBe("succeeded");
    const text = readFileSync(join(options.root, "artifacts", result.tasks.masked!.runId!, "logs/stderr.txt"), "utf8");
    expect(text).toBe(`${"***-".repeat(20_000)}\n`);
    expect(logs.join("\n")).not.toContain(secret);
  });

  it("a secret of 16 KB that falls across two pieces of a long line is masked whole", async () => {
    // 16,384 characters that repeat nothing, 12 times in a line of 200 KB with other text between
    // them: the line is written in pieces of 64 KB, and some cuts fall inside a secret.
    let secret = "";
    for (let i = 0; secret.length < 16 * 1024; i++) secret += `${i.toString(36)}.`;
    secret = secret.slice(0, 16 * 1024);
    const t = shell("masked", `python3 -c "import os, sys; sys.stderr.write(('x' * 100 + os.environ['API_TOKEN']) * 12 + '\\n')"`, { secrets: ["API_TOKEN"] });
    const options = await runOptions({ secrets: { API_TOKEN: secret } });
    const result = await (await flow("masked-long").build(() => ({ x: t().stdout })).run(options)).wait();
    expect(result.status).toBe("succeeded");
    const text = readFileSync(join(options.root, "artifacts", result.tasks.masked!.runId!, "logs/stderr.txt"), "utf8");
    expect(text).toBe(`${`${"x".repeat(100)}***`.repeat(12)}\n`);
  });

  // An audit's reproductions: lines over 64 KB (written to the log file in pieces) made of secrets
  // end to end, where every cut falls in one and no cut with text on both sides exists nearby.
  it.each([
    { what: "a 20-character secret repeated with nothing between", length: 20, between: "", times: 10_000 },
    { what: "an 8,000-character secret repeated with '-' between", length: 8000, between: "-", times: 30 },
    { what: "a 16,384-character secret repeated with '-' between", length: 16_384, between: "-", times: 15 },
  ])("$what in a line of over 200 KB: no part of it reaches the log file, log events or the error", async ({ length, between, times }) => {
    const secret = randomBytes(length / 2).toString("hex");
    const code = `import os, sys; sys.stderr.write((os.environ['API_TOKEN'] + '${between}') * ${times} + '\\n'); sys.exit(3)`;
    const t = shell("masked", `python3 -c ${JSON.stringify(code)}`, { secrets: ["API_TOKEN"] });
    const options = await runOptions({ secrets: { API_TOKEN: secret } });
    const run = await flow("masked-end-to-end").build(() => ({ x: t().stdout })).run(options);
    const logs: string[] = [];
    run.on((e) => e.type === "log" && logs.push(e.message));
    const result = await run.wait();
    const error = result.tasks.masked!.error!;
    expect(error.message).toMatch(/exited with code 3/);
    const text = readFileSync(join(options.root, "artifacts", result.tasks.masked!.runId!, "logs/stderr.txt"), "utf8");
    for (const [where, seen] of [["logs/stderr.txt", text], ["log events", logs.join("\n")], ["the error", error.message]] as const) {
      expect(secretPartIn(seen, secret), `a part of the secret in ${where}`).toBeUndefined();
    }
    // Every byte but the secrets' reached the file: secrets that touch may be masked as one *** or several.
    expect(text.replace(/(\*\*\*)+/g, "***")).toBe(`${`***${between}`.repeat(times)}\n`.replace(/(\*\*\*)+/g, "***"));
  });

  it("a secret that overlaps itself (abcabc…), repeated over a line of 210 KB, is masked as the whole line would be: nothing of it at the cuts", async () => {
    // Every 3 characters another occurrence starts: the line is one run of overlapping secrets,
    // with no cut outside them, and each piece ends inside one that goes on.
    const secret = "abc".repeat(7).slice(0, 20);
    const t = shell("masked", `python3 -c "import sys; sys.stderr.write('abc' * 70000 + '\\n')"`, { secrets: ["API_TOKEN"] });
    const options = await runOptions({ secrets: { API_TOKEN: secret } });
    const run = await flow("masked-overlapping").build(() => ({ x: t().stdout })).run(options);
    const logs: string[] = [];
    run.on((e) => e.type === "log" && logs.push(e.message));
    const result = await run.wait();
    expect(result.status).toBe("succeeded");
    const text = readFileSync(join(options.root, "artifacts", result.tasks.masked!.runId!, "logs/stderr.txt"), "utf8");
    // The last occurrence ends one character before the line does: that "c" is in none.
    expect(text).toBe("***c\n");
    expect(logs.filter((m) => m.startsWith("***"))).toEqual([expect.stringMatching(/^\*\*\* … \(\d+ more bytes, in logs\/stderr\.txt\)$/)]);
  });

  it("holds a 150 MB line without a newline in pieces: the process running the flow grows by far less than the line", async () => {
    // The flow runs in a child of its own, whose peak memory (maxRSS) is its alone: once with a
    // line of 1 KB on stderr, once with one of 150 MB. Held whole, the line alone would be 150 MB.
    const code = `
      import { flow } from "@cairn/dsl";
      import { shell } from ${JSON.stringify(join(import.meta.dirname, "../../packages/process/src/index.ts"))};
      const [bytes, root] = process.argv.slice(-2);
      const loud = shell("loud", \`head -c \${bytes} /dev/zero | tr '\\\\0' y >&2; echo done\`);
      const result = await (await flow("loud").build(() => ({ out: loud().stdout })).run({ tracker: false, root, cache: false })).wait();
      console.log(JSON.stringify({ status: result.status, runId: result.tasks.loud.runId, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
    `;
    const { execFileSync } = await import("node:child_process");
    const peak = async (bytes: number) => {
      const root = await tempRoot();
      try {
        const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code, String(bytes), root], { cwd: import.meta.dirname, encoding: "utf8" });
        const r = JSON.parse(out.trim().split("\n").at(-1)!) as { status: string; runId: string; maxRssMB: number };
        expect(r.status).toBe("succeeded");
        // Every byte reached the log file all the same.
        expect(statSync(join(root, "artifacts", r.runId, "logs", "stderr.txt")).size).toBe(bytes + 1);
        return r.maxRssMB;
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    };
    const small = await peak(1000);
    const large = await peak(150_000_000);
    expect(large - small, `peak memory ${Math.round(small)} MB with a 1 KB line, ${Math.round(large)} MB with a 150 MB one`).toBeLessThan(100);
  }, 120_000);

  it("does not hold stdout in memory when the command writes $CAIRN_OUTPUTS: 600 MB on one line and 100 MB of short lines leave the flow's process far below that", async () => {
    // Both tasks run at once in a child of its own, whose peak memory (maxRSS) is its alone. Held
    // as the stdout output it is not, the long line would not fit in a string (RangeError) and the
    // short lines would take hundreds of MB.
    const code = `
      import { flow } from "@cairn/dsl";
      import { shell } from ${JSON.stringify(join(import.meta.dirname, "../../packages/process/src/index.ts"))};
      const root = process.argv.at(-1);
      const done = \`echo '{"ok":1}' > "$CAIRN_OUTPUTS"\`;
      const long = shell("long", \`head -c 600000000 /dev/zero | tr '\\\\0' x; \${done}\`);
      const lines = shell("lines", \`yes ${"y".repeat(99)} | head -c 100000000; \${done}\`);
      const result = await (await flow("dump").build(() => ({ long: long(), lines: lines() })).run({ tracker: false, root, cache: false })).wait();
      const tasks = Object.fromEntries(Object.values(result.tasks).map((t) => [t.task, { runId: t.runId, error: t.error?.message }]));
      console.log(JSON.stringify({ status: result.status, outputs: result.outputs, tasks, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
    `;
    const { execFileSync } = await import("node:child_process");
    const root = await tempRoot();
    try {
      const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code, root], { cwd: import.meta.dirname, encoding: "utf8" });
      const r = JSON.parse(out.trim().split("\n").at(-1)!) as { status: string; outputs: unknown; tasks: Record<string, { runId: string; error?: string }>; maxRssMB: number };
      expect(r.status, JSON.stringify(r.tasks)).toBe("succeeded");
      expect(r.outputs).toEqual({ long: { ok: 1 }, lines: { ok: 1 } });
      // Every byte reached the log files all the same.
      expect(statSync(join(root, "artifacts", r.tasks.long!.runId, "logs", "stdout.txt")).size).toBe(600_000_001);
      expect(statSync(join(root, "artifacts", r.tasks.lines!.runId, "logs", "stdout.txt")).size).toBe(100_000_000);
      expect(r.maxRssMB, `peak memory of the flow's process: ${Math.round(r.maxRssMB)} MB`).toBeLessThan(300);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }, 60_000);

  it("refuses a stdout output over 64 MB with an error saying its size, the limit and what to write instead", async () => {
    const t = shell("dump", `yes ${"y".repeat(99)} | head -c 70000000`);
    const options = await runOptions();
    const result = await (await flow("dump").build(() => ({ out: t().stdout })).run(options)).wait();
    const task = result.tasks.dump!;
    expect(task.status).toBe("failed");
    expect(task.error?.name).toBe("ProcessOutputError");
    expect(task.error?.message).toMatch(/wrote no \$CAIRN_OUTPUTS, so its stdout is its `stdout` output, and that was 66\.8 MB, over the 64 MB .*logs\/stdout\.txt.*Write the outputs as JSON to \$CAIRN_OUTPUTS/s);
    expect(statSync(join(options.root, "artifacts", task.runId!, "logs", "stdout.txt")).size).toBe(70_000_000);
  }, 60_000);

  it("a process that writes faster than its log file is written waits for the file: its output is not held in memory", async () => {
    const { execFileSync, spawn } = await import("node:child_process");
    const { createWriteStream } = await import("node:fs");
    const { pumpLines } = await import("../../packages/process/src/spawn/lines.ts");
    const dir = await tempRoot();
    // A log file on a disk that takes nothing until told to: a named pipe whose reader waits for `go`.
    const disk = join(dir, "slow-disk");
    execFileSync("mkfifo", [disk]);
    const go = join(dir, "go");
    const reader = spawn("sh", ["-c", 'exec 3<"$0"; while [ ! -e "$1" ]; do sleep 0.05; done; cat <&3 > /dev/null', disk, go], { stdio: "ignore" });
    const file = createWriteStream(disk);
    // 20 MB of lines, then a mark once the last of them is in its stdout pipe.
    const wrote = join(dir, "wrote");
    const line = "x".repeat(99);
    const writer = spawn("sh", ["-c", `yes ${line} | head -c 20000000; : > "$0"`, wrote], { stdio: ["ignore", "pipe", "ignore"] });
    let lines = 0;
    const pumped = pumpLines(writer.stdout!, file, NO_SECRETS, () => void lines++);
    try {
      await new Promise((r) => setTimeout(r, 1500));
      expect(existsSync(wrote), "the writer is still waiting for the disk").toBe(false);
      expect(file.writableLength, "bytes held for the log file").toBeLessThan(1024 * 1024);
      await writeFile(go, "");
      await pumped;
      expect(lines).toBe(200_000);
      expect(await waitFor(() => existsSync(wrote))).toBe(true);
    } finally {
      writer.kill("SIGKILL");
      await writeFile(go, "");
      await pumped;
      await new Promise((r) => file.end(r));
      reader.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("a failure handling a line rejects the read, never escaping from a stream handler, and the rest is drained so the process is not blocked", async () => {
    const { spawn } = await import("node:child_process");
    const { createWriteStream } = await import("node:fs");
    const { pumpLines } = await import("../../packages/process/src/spawn/lines.ts");
    const dir = await tempRoot();
    const file = createWriteStream(join(dir, "stdout.txt"));
    // The fault: masking throws on one line, as an engine bug would. 5 MB follow it, more than a pipe holds.
    const failing = {
      ...NO_SECRETS,
      mask(text: string) {
        if (text === "boom") throw new RangeError("Invalid string length");
        return text;
      },
    };
    const writer = spawn("sh", ["-c", `echo before; echo boom; yes ${"x".repeat(99)} | head -c 5000000`], { stdio: ["ignore", "pipe", "ignore"] });
    const exited = new Promise<number | null>((r) => writer.once("exit", r));
    const lines: string[] = [];
    try {
      await expect(pumpLines(writer.stdout!, file, failing, (line) => void lines.push(line.text))).rejects.toThrow("Invalid string length");
      expect(lines).toEqual(["before"]);
      expect(await exited).toBe(0);
    } finally {
      writer.kill("SIGKILL");
      await new Promise((r) => file.end(r));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reads a process's output as UTF-8: a character split across two writes stays whole, a byte that is not UTF-8 becomes U+FFFD", async () => {
    const t = shell("bytes", "printf 'caf\\303' >&2; sleep 0.3; printf '\\251 \\377 end\\n' >&2; echo done");
    const options = await runOptions();
    const run = await flow("bytes").build(() => ({ x: t().stdout })).run(options);
    const logs: string[] = [];
    run.on((e) => e.type === "log" && logs.push(e.message));
    const result = await run.wait();
    expect(result.status).toBe("succeeded");
    expect(readFileSync(join(options.root, "artifacts", result.tasks.bytes!.runId!, "logs/stderr.txt"), "utf8")).toBe("café \uFFFD end\n");
    expect(logs).toContain("café \uFFFD end");
  });

  it("keeps a long line whole in a shell task's stdout output, and splits lines at \\n, \\r\\n and \\r", async () => {
    const big = shell("big", `python3 -c "print('y' * 300000)"`);
    const cr = shell("cr", "printf 'a\\rb\\r\\nc\\n'");
    const out = await (await flow("big").build(() => ({ big: big().stdout, cr: cr().stdout })).run(await runOptions())).outputs();
    expect(out.big).toBe("y".repeat(300_000));
    expect(out.cr).toBe("a\nb\nc");
  });

  it("keeps every row of output with \\r line endings (an old Mac or Excel CSV) in its stdout output and logs/stdout.txt", async () => {
    const csv = shell("csv", "printf 'id,name\\r1,alice\\r2,bob\\r3,carol\\r'");
    const options = await runOptions();
    const run = await flow("csv").build(() => ({ rows: csv().stdout })).run(options);
    const result = await run.wait();
    expect(result.status).toBe("succeeded");
    // Was "3,carol": each row replaced the one before, as a progress bar's update does on a terminal.
    expect(result.outputs?.rows).toBe("id,name\n1,alice\n2,bob\n3,carol");
    expect(readFileSync(join(options.root, "artifacts", result.tasks.csv!.runId!, "logs/stdout.txt"), "utf8")).toBe("id,name\n1,alice\n2,bob\n3,carol\n");
  });

  it("ends when its process does, even if a process it started in another session (setsid) keeps stdout open", async () => {
    const pidFile = join(await tempRoot(), "daemon.pid");
    // setsid puts the sleep in a session of its own, where ending the task's group cannot reach it;
    // the command waits until it is there (its pid written) before it exits.
    // Once the task has let its pipes go, the daemon writes to them again: it must live on (no SIGPIPE), and say so in ALIVE_FILE.
    const daemon = `setsid sh -c 'echo $$ > "$PID_FILE"; sleep 3; echo still-here; echo alive > "$ALIVE_FILE"; exec sleep 30' & while [ ! -s "$PID_FILE" ]; do sleep 0.05; done; echo launched`;
    const aliveFile = `${pidFile}.alive`;
    const t = shell("daemon", daemon, { env: { PID_FILE: pidFile, ALIVE_FILE: aliveFile } });
    const started = Date.now();
    const run = await flow("daemon").build(() => ({ x: t().stdout })).run(await runOptions());
    const warnings: string[] = [];
    run.on((e) => e.type === "log" && e.level === "warn" && warnings.push(e.message));
    const result = await run.wait();
    const pid = Number(readFileSync(pidFile, "utf8"));
    try {
      expect(result.status).toBe("succeeded");
      expect(result.outputs).toEqual({ x: "launched" });
      expect(Date.now() - started).toBeLessThan(20_000); // well before the daemon's 30 s are up
      expect(alive(pid)).toBe(true); // it was not waited for (nor is it Cairn's to kill)
      expect(await waitFor(() => existsSync(aliveFile), 10_000)).toBe(true); // its writes after the let-go did not kill it
      expect(warnings.join("\n")).toMatch(/task "daemon".*outside its process group.*stdout\/stderr[\s\S]*> \/dev\/null 2>&1/);
    } finally {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  });
});

describe("a process task whose TMPDIR cannot take its temp folder or inputs", () => {
  it("fails naming the folder or file and TMPDIR, and leaves no cairn-task-* folder behind", async () => {
    const temp = await tempRoot();
    const notAFolder = join(temp, "not-a-folder");
    await writeFile(notAFolder, "");
    const root = await tempRoot();
    // The child runs the flow twice: under a file size limit of 512 bytes (ulimit -f counts blocks)
    // the 2000-character inputs are cut off part-way by a real EFBIG, as a full disk cuts them; then
    // with TMPDIR a file, where no folder can be made.
    const code = `
      import { flow } from "@cairn/dsl";
      import { shell } from ${JSON.stringify(join(import.meta.dirname, "../../packages/process/src/index.ts"))};
      const echo = shell("echo", "echo {text}");
      const f = flow("tmp").build(() => ({ out: echo({ text: "x".repeat(2000) }).stdout }));
      for (const dir of [${JSON.stringify(join(temp, "tmp"))}, ${JSON.stringify(join(notAFolder, "tmp"))}]) {
        process.env.TMPDIR = dir;
        const result = await (await f.run({ tracker: false, root: ${JSON.stringify(root)}, cache: false })).wait();
        console.log(JSON.stringify({ status: result.tasks.echo.status, error: result.tasks.echo.error?.name + ": " + result.tasks.echo.error?.message }));
      }
    `;
    await mkdir(join(temp, "tmp"));
    const { spawnSync } = await import("node:child_process");
    const child = spawnSync("sh", ["-c", `ulimit -f 1 && exec "${process.execPath}" --import tsx --input-type=module -e '${code.replaceAll("'", "'\\''")}'`], {
      cwd: import.meta.dirname,
      encoding: "utf8",
    });
    expect(child.stderr).toBe("");
    const [full, notDir] = child.stdout.trim().split("\n").map((line) => JSON.parse(line) as { status: string; error: string });
    expect(full).toEqual({
      status: "failed",
      error: expect.stringMatching(
        new RegExp(
          `^ProcessStartError: Task "echo" could not start \`.*\` \\(EFBIG\\)\\. Cairn could not write the task's inputs to ${join(temp, "tmp")}/cairn-task-[\\w.+-]+/inputs\\.json \\(TMPDIR is ${join(temp, "tmp")}\\): EFBIG: file too large, write\\. Point TMPDIR at a folder you can write to\\.$`,
        ),
      ),
    });
    expect(notDir).toEqual({
      status: "failed",
      error: expect.stringContaining(`Cairn could not write the task's temp folder (TMPDIR is ${join(notAFolder, "tmp")}): ENOTDIR: not a directory, mkdtemp`),
    });
    expect(readdirSync(join(temp, "tmp"))).toEqual([]);
    await rm(temp, { recursive: true, force: true });
    await rm(root, { recursive: true, force: true });
  });
});
