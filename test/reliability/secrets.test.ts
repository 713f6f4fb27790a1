/**
 * Secrets cannot slip out: by value whatever their characters, in every string Cairn
 * writes (run files, outputs.json, cache entries) or prints (plain lines, --json events,
 * run.on), through outputs, keys, params, tags, metric names, errors, logs, process
 * output and flow params. Real `cairn run` processes, and the engine for the edge cases.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hashValue } from "@cairn/cache";
import { LocalStore } from "@cairn/core";
import { type Flow, type RunEvent, type RunOptions, type TaskContext, type TaskEvent, flow, notebook, shell, task } from "cairn-dag";
import { VENV_PYTHON, hasVenv } from "../kinds/helpers.ts";
import { HTML_WEIRD, REFUSED, WEIRD, cairn, filesContaining, fixture, formsIn, formsOf, secretPartIn } from "./secret-helpers.ts";

const scratch = () => mkdtemp(join(tmpdir(), "cairn-secrets-"));

describe("cairn run with a secret of quotes, backslashes, newlines and non-ASCII", () => {
  it("refuses it in outputs, keys, params, tags and metric names, and masks it in errors, logs and process output (plain lines, run files, cache entries)", async () => {
    const cwd = await scratch();
    const r = await cairn(["run", fixture("secret-leaks.flow.ts"), "--failure-policy", "continue"], cwd, { MY_TOKEN: WEIRD });
    expect(r.code).toBe(1);
    expect(formsIn(r.stdout, WEIRD)).toEqual([]);
    expect(formsIn(r.stderr, WEIRD)).toEqual([]);
    for (const name of REFUSED) expect(r.stdout).toMatch(new RegExp(`✗ failed\\s+${name}\\s.*put the value of secret "MY_TOKEN"`));
    expect(r.stdout).toContain('auth failed for *** (as JSON: {"s":"***"})');
    expect(r.stdout).toContain("[leak-logs] token is ***");
    expect(r.stdout).toContain('[leak-logs] as JSON: {"token":"***"}');
    expect(r.stdout).toContain("[prints-it] stderr says ***");
    expect(r.stdout).toMatch(/exited with code 3\. Last 2 lines of stderr:\n\s+\| denied for \*\*\*\n\s+\| \*\*\*/);

    const { hits, files } = await filesContaining(join(cwd, ".cairn"), formsOf(WEIRD));
    expect(hits).toEqual([]);
    // The search saw what matters: run records, outputs manifests, cache entries, process logs.
    expect(files.some((f) => f.endsWith("outputs.json"))).toBe(true);
    expect(files.some((f) => f.includes(join(".cairn", "cache")))).toBe(true);
    expect(files.some((f) => f.endsWith(join("logs", "stderr.txt")))).toBe(true);
    // A failed task's run records its error, masked.
    const runs = (await Promise.all(files.filter((f) => f.includes(join(".cairn", "runs"))).map((f) => readFile(f, "utf8")))).join("\n");
    expect(runs).toContain("auth failed for *** (as JSON:");
  });

  it("--json: events carry masked errors and logs go masked to stderr", async () => {
    const cwd = await scratch();
    const r = await cairn(["run", fixture("secret-leaks.flow.ts"), "--failure-policy", "continue", "--json"], cwd, { MY_TOKEN: WEIRD });
    expect(r.code).toBe(1);
    expect(formsIn(r.stdout, WEIRD)).toEqual([]);
    expect(formsIn(r.stderr, WEIRD)).toEqual([]);
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as RunEvent);
    const failed = new Map(events.filter((e): e is TaskEvent => e.type === "task" && e.status === "failed").map((e) => [e.task, e.error!]));
    for (const name of REFUSED) expect(failed.get(name)?.name).toBe("SecretLeakError");
    expect(failed.get("leak-throws")?.message).toBe('auth failed for *** (as JSON: {"s":"***"})');
    expect(r.stderr).toContain("[leak-logs] token is ***");
    const flowEnd = events.at(-1) as Extract<RunEvent, { type: "flow" }>;
    // The flow's error names its first failed tasks (in node order), masked as theirs are, and counts the rest.
    expect(flowEnd.error?.message).toContain('in metric "m-***"');
    expect(flowEnd.error?.message).toMatch(/; and \d+ more failed tasks$/);
  });

  it("refuses a flow param carrying a secret of the --secrets file before anything is written (exit 2)", async () => {
    const cwd = await scratch();
    const secret = 'q"u\\ote-é-🔑';
    await writeFile(join(cwd, "secrets.env"), `NOTE_SECRET='${secret}'\n`);
    for (const value of [secret, `see ${secret} here`]) {
      const r = await cairn(["run", fixture("secret-leaks.flow.ts"), "--secrets", "secrets.env", "-p", `note=${value}`], cwd, { MY_TOKEN: WEIRD });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('SecretParamError: Flow "secret-leaks" got param "note" carrying the value of secret "NOTE_SECRET"');
      expect(r.stderr).toContain('ctx.secret("NOTE_SECRET")');
      expect(formsIn(r.stdout + r.stderr, secret)).toEqual([]);
    }
    // A value the params schema rejects is quoted back in the error: masked there too.
    const bad = await cairn(["run", fixture("ok.flow.ts"), "--secrets", "secrets.env", "-p", `rows=${secret}`], cwd);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("(got -p rows=***)");
    expect(formsIn(bad.stderr, secret)).toEqual([]);
    expect((await filesContaining(cwd, formsOf(secret).filter((f) => !f.includes("'")))).hits.filter((h) => !h.includes("secrets.env"))).toEqual([]);
  });

  it("refuses a secrets file line whose value Node's dotenv parser would cut (exit 2), naming the file and line, never the value", async () => {
    const cwd = await scratch();
    await writeFile(join(cwd, "cut.env"), `OK=fine-value\nTOKEN="Sup3r'se\\"cret-value-42"\n`);
    const r = await cairn(["run", fixture("ok.flow.ts"), "--secrets", "cut.env"], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('UsageError: The secrets file cut.env, line 2, is not read as written: the value of TOKEN ends at the next " (\\" is not an escape)');
    expect(r.stderr + r.stdout).not.toMatch(/Sup3r|value-42/);
  });

  it("a param carrying a secret read from the environment fails every task that asks for it", async () => {
    const cwd = await scratch();
    const r = await cairn(["run", fixture("secret-leaks.flow.ts"), "--failure-policy", "continue", "--json", "-p", `note=${WEIRD}`], cwd, { MY_TOKEN: WEIRD });
    expect(r.code).toBe(1);
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as RunEvent);
    const failed = events.filter((e): e is TaskEvent => e.type === "task" && e.status === "failed");
    expect(failed.length).toBe(11); // every task asks for MY_TOKEN
    for (const e of failed) expect(e.error?.name).toBe("SecretParamError");
    expect(formsIn(r.stdout + r.stderr, WEIRD)).toEqual([]);
    // The run's params were recorded before the secret was known; the report, written at the
    // run's end, is masked with every secret known then, in the escaped forms the page uses.
    const { files } = await filesContaining(join(cwd, ".cairn"), []);
    const report = await readFile(files.find((f) => f.endsWith("report.html"))!, "utf8");
    expect(formsIn(report, WEIRD)).toEqual([]);
    expect(secretPartIn(report, WEIRD)).toBeUndefined();
    expect(report).toContain("<code>note=***</code>");
  });
});

describe("cairn run with lines of over 200 KB made of secrets end to end", () => {
  it("no part of a secret reaches the terminal or any file, where the line is cut into pieces: secrets that touch, or 8,000 and 16,384 characters long with '-' between", async () => {
    const cwd = await scratch();
    const token = (length: number) => randomBytes(length / 2).toString("hex");
    const secrets = { TOKEN_20: token(20), TOKEN_8000: token(8000), TOKEN_16K: token(16_384) };
    const r = await cairn(["run", fixture("secret-long-lines.flow.ts"), "--failure-policy", "continue"], cwd, secrets);
    expect(r.code).toBe(1);
    for (const task of ["repeats-token_20", "repeats-token_8000", "repeats-token_16k"]) expect(r.stdout).toMatch(new RegExp(`✗ failed\\s+${task}\\s[^\\n]*exited with code 3`));
    const files = (await readdir(join(cwd, ".cairn"), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
    const logs = files.filter((f) => f.endsWith(join("logs", "stderr.txt")));
    expect(logs).toHaveLength(3);
    const texts: [string, string][] = [["stdout", r.stdout], ["stderr", r.stderr]];
    for (const file of files) texts.push([file, await readFile(file, "utf8")]);
    for (const [name, secret] of Object.entries(secrets)) {
      for (const [where, text] of texts) expect(secretPartIn(text, secret), `a part of ${name} in ${where}`).toBeUndefined();
    }
  }, 60_000);
});

describe("cairn run with a Python script that prints its secrets quoted", () => {
  it.skipIf(!hasVenv)("masks them as repr, ascii(), bytes, %r, shlex.quote/join and printf %q write them, each line of a multi-line one too (terminal, logs, error, run files, report)", async () => {
    const cwd = await scratch();
    // Both quote kinds: Python's repr escapes the ' (\'), shlex writes it as '"'"'.
    await writeFile(join(cwd, "s.env"), "TOKEN=`Sup3r'se\"cret$(x)-value-42`\n");
    const env = { CAIRN_PYTHON: VENV_PYTHON, MINE: "it's-my-pa55word", PEM: "first-k3y-L1NE'of\"key-1\nsecond-k3y-L1NE-2\nthird'k3y-L1NE-3" };
    const r = await cairn(["run", fixture("secret-quoting.flow.ts"), "--secrets", "s.env"], cwd, env);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("returned non-zero exit status 1");
    // Every form keeps these characters as they are: none of them left means nothing leaked, not even a part.
    const parts = ["Sup3r", "value-42", "pa55word", "k3y-L1NE"];
    expect(parts.filter((part) => (r.stdout + r.stderr).includes(part))).toEqual([]);
    const { hits, files } = await filesContaining(join(cwd, ".cairn"), parts);
    expect(hits).toEqual([]);
    for (const name of ["stdout.txt", "stderr.txt", "error.txt", "report.html"]) expect(files.some((f) => f.endsWith(name))).toBe(true);
    const stdout = await readFile(files.find((f) => f.endsWith("stdout.txt"))!, "utf8");
    expect(stdout).toContain("{'user': 'bob', 'password': '***'}");
    expect(stdout).toContain("f-string: '***' ascii: '***' bytes: b'***'");
    expect(stdout).toContain("logged '***'");
    expect(stdout).toContain("shlex: '***' mysql '-p***'");
    expect(stdout).toContain("printf-q: *** $'***'");
  }, 60_000);
});

describe("the engine", () => {
  const off = { tracker: false, cache: false } as const;
  const collect = async (f: Flow<any, any>, options: RunOptions) => {
    const run = await f.run(options);
    const events: RunEvent[] = [];
    run.on((e) => events.push(e));
    return { result: await run.wait(), events };
  };

  it("masks overlapping secrets over their union, and JSON-escaped forms (JS and Python's ensure_ascii)", async () => {
    const a = "abcdef-secret";
    const b = "secret-xyz-é";
    const t = task("t").run((_, ctx) => {
      ctx.secret("A");
      ctx.secret("B");
      ctx.logger.info(`joined: abcdef-secret-xyz-é.`);
      ctx.logger.info(`python: ${JSON.stringify(b).replace("é", "\\u00e9")}`);
      throw new Error(`both ${a}|${b}`);
    });
    const { result, events } = await collect(flow("overlap").build(() => (t(), {})), { ...off, secrets: { A: a, B: b } });
    const logs = events.filter((e) => e.type === "log").map((e) => (e as { message: string }).message);
    expect(logs).toEqual(["joined: ***.", 'python: "***"']);
    expect(result.tasks.t!.error?.message).toBe("both ***|***");
    expect(JSON.stringify({ result, events })).not.toMatch(/secret|xyz/);
  });

  it("a secret read with a trailing \\r (from a CRLF file) is masked in a process's output and refused in its outputs", async () => {
    const secret = "sk-live-9f8e7d6c5b4a\r";
    const echo = shell("echo-token", `echo "token is $API_TOKEN"; echo "to stderr: $API_TOKEN" >&2`, { secrets: ["API_TOKEN"] });
    const root = await scratch();
    const { result, events } = await collect(flow("crlf").build(() => ({ out: echo({}).stdout })), { root, cache: false, env: { ...process.env, API_TOKEN: secret } });
    expect(result.tasks["echo-token"]!.status).toBe("failed");
    expect(result.tasks["echo-token"]!.error?.name).toBe("SecretLeakError");
    const logs = events.filter((e) => e.type === "log").map((e) => (e as { message: string }).message);
    expect(logs).toContain("token is ***");
    expect(logs).toContain("to stderr: ***");
    const { hits } = await filesContaining(root, ["sk-live-9f8e7d6c5b4a"]);
    expect(hits).toEqual([]);
  });

  it("short secrets (under 4 characters) are refused as whole values, never masked inside text, and warned about once", async () => {
    const t = task("t").run((_, ctx) => {
      ctx.logger.info(`a banana ${ctx.secret("ONE")} ${ctx.secret("ONE")}`);
      return { value: ctx.secret("ONE") };
    });
    const u = task("u").run((_, ctx) => ({ text: `x${ctx.secret("ONE")}y` }));
    const { result, events } = await collect(flow("short").build(() => (t(), u(), {})), { ...off, failurePolicy: "continue", secrets: { ONE: "a" } });
    expect(result.tasks.t!.error?.name).toBe("SecretLeakError");
    expect(result.tasks.u!.outputs).toEqual({ text: "xay" });
    const logs = events.filter((e) => e.type === "log").map((e) => (e as { message: string }).message);
    expect(logs.filter((m) => m.includes('secret "ONE" is shorter than 4 characters'))).toHaveLength(1);
    expect(logs).toContain("a banana a a");
  });

  it("an old cache entry whose outputs hold a secret (written before it was known) is evicted, not handed out", async () => {
    const root = await scratch();
    const t = task("legacy").run(() => ({ v: "legacy-token-value" }));
    const f = flow("legacy-cache").build(() => ({ v: t().v }));
    const first = await collect(f, { root, env: {} });
    expect(first.result.status).toBe("succeeded");
    const second = await collect(f, { root, env: {}, secrets: { TOKEN: "legacy-token-value" } });
    expect(second.result.tasks.legacy!.status).toBe("failed");
    expect(second.result.tasks.legacy!.error?.name).toBe("SecretLeakError");
    const warnings = second.events.filter((e) => e.type === "log").map((e) => (e as { message: string }).message);
    expect(warnings.some((m) => /unusable: its outputs hold the value of secret "TOKEN"; it was evicted/.test(m))).toBe(true);
    expect(formsIn(JSON.stringify(second), "legacy-token-value")).toEqual([]);
  });

  it("inputs wired from a literal that holds a secret are recorded masked (params and inputs.json)", async () => {
    const root = await scratch();
    const secret = 'lit"eral-é-secret';
    const t = task("uses").input<{ note: string; long: string }>().run(() => ({ ok: 1 }));
    const f = flow("literal").build(() => (t({ note: `see ${secret}`, long: `${"x".repeat(600)} ${secret}` }), {}));
    const { result } = await collect(f, { root, env: {}, secrets: { LIT: secret }, cache: false });
    expect(result.status).toBe("succeeded");
    const run = await new LocalStore({ root }).getRun(result.tasks.uses!.runId!);
    expect(run!.params.note).toBe("see ***");
    const { hits, files } = await filesContaining(root, formsOf(secret));
    expect(hits).toEqual([]);
    expect(files.some((file) => file.endsWith("inputs.json"))).toBe(true);
  });

  it("with caching on, the cache entry and the outputs manifest record such an input by a slow digest only, never its sha256", async () => {
    const root = await scratch();
    const secret = 'lit"eral-é-secret';
    const t = task("uses").input<{ note: string; plain: string }>().run(() => ({ ok: 1 }));
    const f = flow("literal-cached").build(() => (t({ note: `see ${secret}`, plain: "kept" }), {}));
    const { result } = await collect(f, { root, env: {}, secrets: { LIT: secret } });
    expect(result.status).toBe("succeeded");
    const { hits, files } = await filesContaining(root, formsOf(secret));
    expect(hits).toEqual([]);
    const entries = files.filter((file) => file.includes(join("cache", "entries")) && file.endsWith(".json"));
    const manifests = files.filter((file) => file.endsWith(join("cairn", "outputs.json")));
    expect(entries.length).toBe(1);
    expect(manifests.length).toBe(1);
    for (const file of [...entries, ...manifests]) {
      type Stored = { ingredients: { inputs: Record<string, { sha256: string; value?: unknown }> } };
      const doc = JSON.parse(await readFile(file, "utf8")) as Stored & { value?: Stored }; // an entry file wraps the entry in "value"
      const { inputs } = (doc.value ?? doc).ingredients;
      expect(inputs.note).toMatchObject({ value: { "cairn.secret_digest": expect.stringMatching(/^[0-9a-f]{64}$/) } });
      expect(inputs.plain).toMatchObject({ value: "kept" });
    }
    // A sha256 of the input, which a guess at a short secret could be checked against, is nowhere.
    expect((await filesContaining(root, [hashValue(`see ${secret}`)])).hits).toEqual([]);
    // The same inputs are still a hit; another secret in them is a miss.
    expect((await collect(f, { root, env: {}, secrets: { LIT: secret } })).result.tasks.uses!.status).toBe("cached");
    const other = flow("literal-cached").build(() => (t({ note: "see other-secret-value", plain: "kept" }), {}));
    expect((await collect(other, { root, env: {}, secrets: { LIT: "other-secret-value" } })).result.tasks.uses!.status).toBe("succeeded");
  });

  it.skipIf(!hasVenv).each([
    ["quotes, a backslash, a newline, non-ASCII", WEIRD],
    ["a quote beside <, > and &", HTML_WEIRD],
  ])("masks what a notebook printed in the executed notebook and its HTML (a secret with %s)", async (_, WEIRD) => {
    const root = await scratch();
    const nb = notebook("nb", fixture("prints-secret.ipynb"), { python: VENV_PYTHON, secrets: ["MY_TOKEN"] });
    const { result, events } = await collect(flow("nb-secret").build(() => {
      const r = nb();
      return { n: r.notebook, h: r.html };
    }), {
      root,
      env: {},
      secrets: { MY_TOKEN: WEIRD },
      cache: false,
    });
    expect(result.status).toBe("succeeded");
    const { hits, files } = await filesContaining(root, formsOf(WEIRD));
    expect(hits).toEqual([]);
    expect(files.some((f) => f.endsWith("prints-secret.ipynb"))).toBe(true);
    const html = files.find((f) => f.endsWith("prints-secret.html"))!;
    expect(await readFile(html, "utf8")).toContain("token: ***");
    expect(formsIn(JSON.stringify(events), WEIRD)).toEqual([]);
  }, 120_000);

  it.skipIf(!hasVenv)("masks the executed notebook of an attempt given up on at its timeout before the retry moves it aside", async () => {
    const root = await scratch();
    const dir = await scratch();
    const file = join(dir, "leak.ipynb");
    const cell = (source: string) => ({ cell_type: "code", execution_count: null, metadata: {}, outputs: [], source });
    const cells = [
      // A large output first, so that masking the executed notebook takes a while.
      cell(`import os\nfrom IPython.display import display\ndisplay({"text/plain": "y" * 8_000_000}, raw=True)\nprint("token is", os.environ["MY_TOKEN"])`),
      cell(`import os, time\nif os.environ.get("CAIRN_ATTEMPT") == "1":\n    time.sleep(60)\nprint("done")`),
    ];
    await writeFile(file, JSON.stringify({ cells, metadata: { kernelspec: { name: "python3", display_name: "Python 3", language: "python" } }, nbformat: 4, nbformat_minor: 5 }));
    const nb = notebook("nb", file, { python: VENV_PYTHON, secrets: ["MY_TOKEN"], html: false }).retries(1, { minDelayMs: 10 }).timeout(15_000);
    const { result } = await collect(flow("nb-timeout-secret").build(() => ({ n: nb().notebook })), { root, env: {}, secrets: { MY_TOKEN: "s3cr3t-T0KEN-xyz" }, cache: false });
    expect(result.status).toBe("succeeded");
    const { hits, files } = await filesContaining(root, formsOf("s3cr3t-T0KEN-xyz"));
    expect(hits).toEqual([]);
    // The first attempt's notebook is there, set aside, and it printed the token (masked).
    const first = files.find((f) => f.endsWith(join("cairn", "attempts", "1", "leak.ipynb")));
    expect(first).toBeDefined();
    expect(await readFile(first!, "utf8")).toContain("token is ***");
  }, 180_000);

  it("refuses an artifact name that holds a secret, as given or with its \\ read as /, writes no file under it, and quotes it nowhere (an unsafe name's suggestion too)", async () => {
    const root = await scratch();
    const backslashed = `Pä'ss"$w\\ord-9Zk`; // a name reads its \ as "/": the name then holds no form of it
    const slashed = "sl/ash-T0ken-77"; // a name with \ in place of its "/" holds it once normalised
    const fromEnv = `EnvT0k€n'Q"7$`; // known from the moment the task asks for it
    const names: Record<string, (ctx: TaskContext) => string> = {
      "plain-name": (ctx) => `f-${ctx.secret("API_KEY")}.txt`,
      "unsafe-name": (ctx) => `./keys/${ctx.secret("API_KEY")}.txt`,
      "env-name": (ctx) => `g-${ctx.secret("ENV_TOK")}.txt`,
      "normalised-name": (ctx) => `n-${ctx.secret("SLASHED").replace("/", "\\")}.txt`,
      "normalised-suggestion": (ctx) => `./n-${ctx.secret("SLASHED").replace("/", "\\")}.txt`,
    };
    const writers = Object.entries(names).map(([id, name]) => task(id).run(async (_, ctx) => ({ a: await ctx.artifacts.write(name(ctx), "x") })));
    const byPath = task("by-path").run(async (_, ctx) => ({ p: await ctx.artifacts.path(`p-${ctx.secret("API_KEY")}.txt`) }));
    // A script names its own file: the name is checked as a task's is.
    const node = JSON.stringify(process.execPath);
    const marker = shell("marker", `${node} -e 'const fs = require("fs"), n = "m-" + process.env.API_KEY + ".txt"; fs.writeFileSync(process.env.CAIRN_ARTIFACTS + "/" + n, "x"); fs.writeFileSync(process.env.CAIRN_OUTPUTS, JSON.stringify({ f: { $artifact: n } }))'`, { secrets: ["API_KEY"] });
    const f = flow("secret-names").build(() => {
      for (const w of writers) w();
      byPath();
      return { m: marker({}).exitCode };
    });
    const { result, events } = await collect(f, { root, cache: false, failurePolicy: "continue", env: { ...process.env, ENV_TOK: fromEnv }, secrets: { API_KEY: backslashed, SLASHED: slashed } });
    for (const id of [...Object.keys(names), "by-path", "marker"]) {
      expect(result.tasks[id]!.status, id).toBe("failed");
      expect(result.tasks[id]!.error?.name, id).toBe("SecretLeakError");
      expect(result.tasks[id]!.error?.message, id).toContain("in the name of an artifact (");
      expect(result.tasks[id]!.error?.message, id).toContain("name the artifact without it");
    }
    // Nowhere, in no form, neither as the secret nor as a name made of it: not in what the run
    // said, in any file's text, or in any file's name (the artifact was never written under it).
    const parts = ["ord-9Zk", "EnvT0k", "ash-T0ken"];
    const said = JSON.stringify({ result, events });
    expect(parts.filter((part) => said.includes(part))).toEqual([]);
    const { hits, files } = await filesContaining(root, [...parts, ...[backslashed, slashed, fromEnv].flatMap(formsOf)]);
    expect(hits).toEqual([]);
    // Only the file the script wrote itself is there under such a name: Cairn writes none.
    expect(files.filter((file) => parts.some((part) => file.includes(part)))).toEqual([expect.stringMatching(/m-Pä'ss"\$w\\ord-9Zk\.txt$/)]);
  });

  it("refuses a folder artifact holding a file whose name carries a secret, before its run records anything: no stamp, entry or record names it", async () => {
    const root = await scratch();
    const given = "F0lder-S3cret-91x"; // known from the start
    const fromEnv = "EnvF0ld-T0k-27q"; // known from the moment the task asks for it
    const folderTask = (id: string, secretName: string) =>
      task(id).run(async (_, ctx) => {
        const folder = await ctx.artifacts.path("model");
        await mkdir(join(folder, "sub"), { recursive: true });
        await writeFile(join(folder, "config.json"), "{}");
        await writeFile(join(folder, "sub", `tok-${ctx.secret(secretName)}.json`), "x");
        return { model: await ctx.artifacts.file("model") };
      });
    const givenTask = folderTask("given-secret", "API_KEY");
    const envTask = folderTask("env-secret", "ENV_TOK");
    // A folder whose names hold no secret is handed on as before, with the secrets known.
    const clean = task("clean").run(async (_, ctx) => {
      const folder = await ctx.artifacts.path("clean");
      await mkdir(folder, { recursive: true });
      await writeFile(join(folder, `tok-${ctx.secret("API_KEY").length}.json`), "x");
      return { model: await ctx.artifacts.file("clean") };
    });
    const f = flow("secret-folder-names").build(() => (givenTask(), envTask(), clean(), {}));
    const { result, events } = await collect(f, { root, failurePolicy: "continue", env: { ...process.env, ENV_TOK: fromEnv }, secrets: { API_KEY: given } });
    expect(result.tasks.clean!.status).toBe("succeeded");
    for (const id of ["given-secret", "env-secret"]) {
      expect(result.tasks[id]!.status, id).toBe("failed");
      expect(result.tasks[id]!.error?.name, id).toBe("SecretLeakError");
      expect(result.tasks[id]!.error?.message, id).toContain("in the name of a file in its folder artifact model (sub/tok-***.json)");
      expect(result.tasks[id]!.error?.message, id).toContain("name the folder's files without it");
    }
    // Nothing Cairn wrote or said holds it: not the artifact stamps, the cache, the runs' records.
    const said = JSON.stringify({ result, events });
    expect([given, fromEnv].filter((secret) => said.includes(secret))).toEqual([]);
    const { hits, files } = await filesContaining(root, [given, fromEnv]);
    expect(hits).toEqual([]);
    expect(files.some((file) => file.includes("artifact-stamps"))).toBe(true); // the clean folder's
    // Only the files the tasks wrote themselves are there under such names.
    expect(files.filter((file) => file.includes(given) || file.includes(fromEnv)).map((file) => file.split("/").slice(-3).join("/"))).toEqual(
      expect.arrayContaining([`model/sub/tok-${given}.json`, `model/sub/tok-${fromEnv}.json`]),
    );
    expect(files.filter((file) => file.includes(given) || file.includes(fromEnv))).toHaveLength(2);
  });

  it("an artifact refused for a secret from the environment in its name leaves no file under that name", async () => {
    const root = await scratch();
    const t = task("env-name").run(async (_, ctx) => ({ a: await ctx.artifacts.write(`g-${ctx.secret("ENV_TOK")}.txt`, "x") }));
    const { result } = await collect(flow("secret-file").build(() => (t(), {})), { root, cache: false, env: { ...process.env, ENV_TOK: "EnvT0k-value-55" } });
    expect(result.tasks["env-name"]!.error?.name).toBe("SecretLeakError");
    const names = await readdir(root, { recursive: true });
    expect(names.filter((name) => name.includes("EnvT0k"))).toEqual([]);
  });

  it("masks errors of retried attempts, results and FlowFailedError; refuses params before the run exists", async () => {
    const secret = "tok\\en\"-\n-ü";
    const t = task("t")
      .retries(1, { minDelayMs: 1 })
      .run((_, ctx) => {
        throw new Error(`denied: ${ctx.secret("TOKEN")}`);
      });
    const f = flow("retried").build(() => (t(), {}));
    const { result, events } = await collect(f, { ...off, secrets: { TOKEN: secret } });
    const retrying = events.find((e) => e.type === "task" && e.status === "retrying") as TaskEvent;
    expect(retrying.error?.message).toBe("denied: ***");
    expect(formsIn(JSON.stringify({ result, events }), secret)).toEqual([]);
    const thrown = await (await f.run({ ...off, secrets: { TOKEN: secret } })).outputs().catch((e: Error) => e.message);
    expect(thrown).toContain("denied: ***");

    // A param the flow reads: one it does not read is refused as unknown first.
    const p = flow("with-params").params<{ note: string }>().build(({ params }) => (t(), { note: params.note }));
    await expect(p.run({ ...off, params: { note: `x${secret}` }, secrets: { TOKEN: secret } })).rejects.toMatchObject({
      name: "SecretParamError",
      param: "note",
      secret: "TOKEN",
    });
  });
});
