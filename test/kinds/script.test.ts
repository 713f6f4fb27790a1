import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { flow, task, type Artifact, type InferInput, type InferOutput, type RunEvent } from "@cairn/dsl";
import { notebook, script, shell } from "../../packages/process/src/index.ts";
import { alive, fixture, logsOf, runOptions, tempRoot, waitFor } from "./helpers.ts";

const makeData = task("make-data")
  .input<{ values: number[] }>()
  .run(async ({ values }, ctx) => ({ data: await ctx.artifacts.write("data.json", JSON.stringify(values)) }));

const train = script("train", { file: fixture("train.py") })
  .input<{ data: Artifact; lr: number }>()
  .output<{ model: Artifact; accuracy: number; n: number }>();

const summarize = script("summarize", { file: fixture("summarize.ts") })
  .input<{ model: Artifact; label: string }>()
  .output<{ summary: Artifact; total: number }>();

/** A downstream TypeScript function task that reads the artifact the Python script produced. */
const readModel = task("read-model")
  .input<{ model: Artifact }>()
  .run(async ({ model }) => {
    const m = JSON.parse(await readFile(model.path, "utf8")) as { weights: number[]; lr: number };
    return { weights: m.weights, lr: m.lr };
  });

describe("script()", () => {
  it("round-trips inputs and outputs: a Python artifact read by a TS function task and a TS script", async () => {
    const f = flow("scripts").build(() => {
      const d = makeData({ values: [1, 2, 3] });
      const t = train({ data: d.data, lr: 0.5 });
      const r = readModel({ model: t.model });
      const s = summarize({ model: t.model, label: "sum" });
      return { accuracy: t.accuracy, n: t.n, model: t.model, weights: r.weights, lr: r.lr, total: s.total, summary: s.summary };
    });
    const events: RunEvent[] = [];
    const run = await f.run(await runOptions());
    run.on((e) => events.push(e));
    const out = await run.outputs();
    expect(out).toMatchObject({ accuracy: 0.75, n: 3, weights: [0.5, 1, 1.5], lr: 0.5, total: 3 });
    expect(out.model).toMatchObject({ kind: "cairn.artifact", artifactPath: "model/model.json" });
    expect(JSON.parse(readFileSync(out.model.path, "utf8"))).toEqual({ weights: [0.5, 1, 1.5], lr: 0.5 });
    expect(readFileSync(out.summary.path, "utf8")).toBe("sum=3\n");

    // stdout -> info, stderr -> warn, line by line, prefixed by task in the CLI; and saved as artifacts.
    const logs = logsOf(events).filter((e) => e.task === "train");
    expect(logs).toContainEqual(expect.objectContaining({ level: "info", message: "training on 3 rows with lr=0.5" }));
    expect(logs).toContainEqual(expect.objectContaining({ level: "warn", message: "a warning on stderr" }));
    const dir = join(out.model.path, "..", "..");
    expect(readFileSync(join(dir, "logs/stdout.txt"), "utf8")).toBe("training on 3 rows with lr=0.5\n");
    expect(readFileSync(join(dir, "logs/stderr.txt"), "utf8")).toBe("a warning on stderr\n");
  });

  it("is typed like any task", () => {
    type In = InferInput<typeof train>;
    type Out = InferOutput<typeof train>;
    const i: In = { data: {} as Artifact, lr: 1 };
    const o: Out = { model: {} as Artifact, accuracy: 1, n: 1 };
    expect([i, o]).toHaveLength(2);
    // @ts-expect-error lr is a number
    void (() => flow("typed").build(() => train({ data: makeData({ values: [] }).data, lr: "fast" })));
  });

  it("uses the script's content digest as the code fingerprint", () => {
    const digest = createHash("sha256").update(readFileSync(fixture("train.py"))).digest("hex");
    expect(train.definition.kind).toBe("script");
    expect(train.definition.code).toBe(`sha256:${digest}`);
    // settings return copies that keep the kind, the code and the builder methods
    const t2 = train.retries(2).timeout(5000).version("2");
    expect(t2.definition).toMatchObject({ kind: "script", code: `sha256:${digest}`, timeoutMs: 5000, version: "2" });
    expect(train.definition.timeoutMs).toBeUndefined();
    expect(typeof t2.input).toBe("function");
    expect(script("args", { file: fixture("echo_value.py"), args: ["--v", "{value}"] }).definition.code).toBe(
      `sha256:${createHash("sha256").update(readFileSync(fixture("echo_value.py"))).digest("hex")};args=["--v","{value}"]`,
    );
  });

  it("resolves a relative file against the declaring module's folder", () => {
    expect(script("rel", { file: "fixtures/train.py" }).definition.code).toBe(train.definition.code);
    expect(() => script("missing", { file: "fixtures/nope.py" })).toThrow(/TaskFileError|nope\.py" does not exist/);
  });

  it("passes {placeholders} in args as single arguments", async () => {
    const echo = script("echo", { file: fixture("echo_value.py"), args: ["--value", "{value}", "n={n}"] }).input<{ value: string; n: number }>();
    const f = flow("args").build(() => ({ out: echo({ value: "a b; c", n: 3 }).$out }));
    expect(await (await f.run(await runOptions())).outputs()).toEqual({ out: { value: "a b; c", argv: ["--value", "a b; c", "n=3"] } });
  });

  it("a task's own PYTHONPATH comes after Cairn's helper: both its modules and cairn_task import", async () => {
    const dir = await tempRoot();
    await mkdir(join(dir, "lib"));
    await writeFile(join(dir, "lib", "mylib.py"), "NAME = 'mylib'\n");
    const file = join(dir, "uses_lib.py");
    await writeFile(file, "import mylib, cairn_task\ncairn_task.set_outputs(lib=mylib.NAME)\n");
    const uses = script("uses-lib", { file, cwd: dir, env: { PYTHONPATH: "lib" } });
    const result = await (await flow("pythonpath").build(() => ({ x: uses().$out })).run(await runOptions())).wait();
    expect(result.tasks["uses-lib"]!.error).toBeUndefined(); // was ModuleNotFoundError: No module named 'cairn_task'
    expect(result.outputs).toEqual({ x: { lib: "mylib" } });
  });

  it("turns a non-zero exit into a task failure carrying the tail of stderr", async () => {
    const fail = script("fail", { file: fixture("fail.py") });
    const f = flow("fails").build(() => ({ x: fail().$out }));
    const result = await (await f.run(await runOptions())).wait();
    expect(result.status).toBe("failed");
    const error = result.tasks.fail!.error!;
    expect(error.name).toBe("ProcessFailedError");
    expect(error.message).toMatch(/fail\.py` exited with code 3/);
    expect(error.message).toContain("ValueError: bad things happened");
    expect(error.message).toContain("stderr line 30");
    expect(error.message).toContain("stderr line 12");
    expect(error.message).not.toContain("stderr line 11\n"); // only the last 20 lines
    expect(error.message).toContain("logs/stderr.txt");
  });

  it("says a script killed by SIGKILL was killed from outside, as the OOM killer does, without 'fix the error above'", async () => {
    const dir = await tempRoot();
    const file = join(dir, "wait.py");
    const pidFile = join(dir, "task.pid");
    await writeFile(file, `import os, sys, time\nopen(sys.argv[1], "w").write(str(os.getpid()))\ntime.sleep(60)\n`);
    const wait = script("wait", { file, args: [pidFile] });
    const run = await flow("oom").build(() => ({ x: wait().$out })).run(await runOptions());
    expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8") !== "", 10_000)).toBe(true);
    process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL");
    const error = (await run.wait()).tasks.wait!.error!;
    expect(error.name).toBe("ProcessFailedError");
    expect(error.message).toMatch(/wait\.py [^`]*` was killed by SIGKILL from outside the process: the kernel's out-of-memory killer sends SIGKILL/);
    expect(error.message).toContain("It wrote nothing to stderr.");
    expect(error.message).toContain("if it ran out of memory, give it more memory");
    expect(error.message).not.toContain("fix the error above");
  });

  it("says clearly when the interpreter does not exist, and does not retry it", async () => {
    const bad = script("bad", { file: fixture("train.py"), interpreter: "/nonexistent/python9" }).retries(2, { minDelayMs: 10 });
    const result = await (await flow("bad").build(() => ({ x: bad().$out })).run(await runOptions())).wait();
    expect(result.tasks.bad!.error).toMatchObject({ name: "ProcessStartError", message: expect.stringMatching(/ENOENT.*not found/) });
    expect(result.tasks.bad!.attempts).toBe(1);
  });

  it("a missing working folder is named as such, not blamed on the interpreter or /bin/sh", async () => {
    const root = await tempRoot();
    await writeFile(join(root, "a-file"), "");
    const errorOf = async (t: { (): { $out?: unknown; stdout?: unknown; notebook?: unknown }; definition: { name: string } }) => {
      const result = await (await flow("nocwd").build(() => ({ x: t() as never })).run(await runOptions())).wait();
      return result.tasks[t.definition.name]!.error!;
    };
    const missing = join(root, "data-dir-missing");
    for (const t of [script("s", { file: fixture("train.py"), cwd: missing }), shell("sh", "ls", { cwd: missing }), notebook("nb", fixture("report.ipynb"), { cwd: missing })]) {
      const error = await errorOf(t);
      expect(error.name).toBe("ProcessStartError");
      expect(error.message).toContain(`Its working folder ${missing} (the task's \`cwd\` option) does not exist: create it, or fix the task's \`cwd\` option.`);
      expect(error.message).not.toMatch(/was not found|recreate/);
    }
    const relative = await errorOf(shell("rel", "ls", { cwd: join("no-such-dir", "x") }));
    expect(relative.message).toContain(`Its working folder ${join(process.cwd(), "no-such-dir", "x")} (the task's \`cwd\` option, "no-such-dir/x" from ${process.cwd()}) does not exist`);
    const file = await errorOf(shell("file", "ls", { cwd: join(root, "a-file") }));
    expect(file.message).toContain(`Its working folder ${join(root, "a-file")} (the task's \`cwd\` option) is not a folder`);
  });

  it("says where a missing Python came from: CAIRN_PYTHON, or the task's option", async () => {
    const errorOf = async (t: ReturnType<typeof script>) => {
      const result = await (await flow("nopy").build(() => ({ x: t().$out })).run(await runOptions())).wait();
      return result.tasks[t.definition.name]!.error!;
    };
    const before = process.env.CAIRN_PYTHON;
    process.env.CAIRN_PYTHON = "/no/python3";
    try {
      const error = await errorOf(script("from-env", { file: fixture("train.py") }));
      expect(error.name).toBe("ProcessStartError");
      expect(error.message).toMatch(/"\/no\/python3" was not found.*CAIRN_PYTHON/);
      expect(error.message).toMatch(/set CAIRN_PYTHON to .*or unset it/);
      // A folder was "not executable: make it executable (chmod +x)", which would not help.
      process.env.CAIRN_PYTHON = "/usr/bin";
      const folder = await errorOf(script("from-env-folder", { file: fixture("train.py") }));
      expect(folder.message).toMatch(/"\/usr\/bin" is a folder, not a program; .*CAIRN_PYTHON.*\. To fix: give the program in it \(\/usr\/bin\/python3, say\), /);
      expect(folder.message).not.toMatch(/chmod/);
    } finally {
      if (before === undefined) delete process.env.CAIRN_PYTHON;
      else process.env.CAIRN_PYTHON = before;
    }
    const option = await errorOf(script("from-option", { file: fixture("train.py"), interpreter: "/no/python9" }));
    expect(option.message).toMatch(/"\/no\/python9" was not found.*task's `interpreter` option/);
    expect(option.message).not.toContain("CAIRN_PYTHON");
    const nb = notebook("from-notebook", fixture("report.ipynb"), { python: "/no/python8" });
    const result = await (await flow("nopy-nb").build(() => ({ x: nb().notebook })).run(await runOptions())).wait();
    expect(result.tasks["from-notebook"]!.error!.message).toMatch(/"\/no\/python8" was not found.*task's `python` option/);
  });

  it("ends the whole process tree on timeout: no orphan left", async () => {
    const pidFile = join(await tempRoot(), "grandchild.pid");
    const slow = script("slow", { file: fixture("grandchild.py"), killGraceMs: 2000 }).input<{ pidFile: string }>().timeout(4000);
    const started = Date.now();
    const result = await (await flow("timeout").build(() => ({ x: slow({ pidFile }).$out })).run(await runOptions())).wait();
    expect(result.status).toBe("failed");
    expect(result.tasks.slow!.error!.name).toBe("TaskTimeoutError");
    expect(Date.now() - started).toBeLessThan(10_000);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(pid).toBeGreaterThan(0);
    expect(await waitFor(() => !alive(pid), 5000)).toBe(true);
  });

  it("ends the process tree when the run is cancelled", async () => {
    const pidFile = join(await tempRoot(), "grandchild.pid");
    const slow = script("slow", { file: fixture("grandchild.py") }).input<{ pidFile: string }>();
    const run = await flow("cancel").build(() => ({ x: slow({ pidFile }).$out })).run(await runOptions());
    expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").length > 0, 10_000)).toBe(true);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(alive(pid)).toBe(true);
    const result = await run.cancel();
    expect(result.status).toBe("cancelled");
    expect(result.tasks.slow!.status).toBe("cancelled");
    expect(await waitFor(() => !alive(pid), 5000)).toBe(true);
  });

  it("refuses an artifact marker that names a file the script did not write", async () => {
    const dir = await tempRoot();
    const file = join(dir, "bad_marker.py");
    await writeFile(file, "import cairn_task\ncairn_task.set_outputs(model=cairn_task.artifact('nope.bin'))\n");
    const bad = script("bad-marker", { file }).retries(2, { minDelayMs: 10 });
    const result = await (await flow("marker").build(() => ({ x: bad().$out })).run(await runOptions())).wait();
    expect(result.tasks["bad-marker"]!.error).toMatchObject({ name: "ProcessOutputError", message: expect.stringContaining('"nope.bin"') });
    expect(result.tasks["bad-marker"]!.attempts).toBe(1); // an output error, as a function task's, is not retried
  });

  it("refuses an artifact that is a link to a file or folder outside CAIRN_ARTIFACTS, naming where it points; a link inside is fine", async () => {
    const dir = await tempRoot();
    const outside = join(dir, "outside.txt");
    await writeFile(outside, "host secrets");
    const file = join(dir, "links.py");
    await writeFile(
      file,
      [
        "import os, sys, cairn_task",
        "os.symlink(sys.argv[1], cairn_task.artifact_path('leak.txt'))",
        "open(cairn_task.artifact_path('real.txt'), 'w').write('mine')",
        "os.symlink(cairn_task.artifact_path('real.txt'), cairn_task.artifact_path('alias.txt'))",
        "cairn_task.set_outputs(f=cairn_task.artifact(sys.argv[2]))",
      ].join("\n"),
    );
    const run = async (target: string, name: string) => {
      const links = script(`links-${name.replace(/\W/g, "")}`, { file, args: [target, name] });
      return (await flow("links").build(() => ({ x: links().$out })).run(await runOptions())).wait();
    };
    for (const target of [outside, dir]) {
      const result = await run(target, "leak.txt");
      expect(result.tasks["links-leaktxt"]!.error).toMatchObject({ name: "ProcessOutputError", message: expect.stringContaining(`"leak.txt", a link to ${target}, outside CAIRN_ARTIFACTS`) });
    }
    expect((await run(outside, "alias.txt")).status).toBe("succeeded");
  });

  it("a script with an output schema that wrote no outputs is told so, with how to write them", async () => {
    const dir = await tempRoot();
    const file = join(dir, "silent.py");
    await writeFile(file, "print('done, but no set_outputs')\n");
    const silent = script("silent", { file }).output(z.object({ model: z.string() }));
    const result = await (await flow("silent").build(() => ({ m: silent().model })).run(await runOptions())).wait();
    expect(result.tasks.silent!.error).toMatchObject({ name: "OutputValidationError", message: expect.stringContaining("The script wrote no outputs at all: write them with cairn_task.set_outputs") });
    // One that wrote some, but not what its schema wants, gets the usual message.
    await writeFile(file, "import cairn_task\ncairn_task.set_outputs({'other': 1})\n");
    const wrong = script("wrong", { file }).output(z.object({ model: z.string() }));
    const again = await (await flow("wrong").build(() => ({ m: wrong().model })).run(await runOptions())).wait();
    expect(again.tasks.wrong!.error?.message).toContain("Fix what the task returns");
  });

  it("an output a script with .output<T>() (a type only) never wrote fails the task that takes it, naming the script, the output and what it wrote", async () => {
    const dir = await tempRoot();
    const file = join(dir, "noout.py");
    await writeFile(file, "print('forgot outputs')\n");
    const trainer = script("trainer", { file }).output<{ modelPath: string; n: number }>();
    const evaluate = shell("evaluate", "echo {model}");
    const doubled = task("double").input<{ n: number }>().run(({ n }) => ({ doubled: n * 2 }));
    const f = flow("noout").build(() => {
      const t = trainer({});
      return { s: evaluate({ model: t.modelPath }).stdout, d: doubled({ n: t.n }).doubled };
    });
    const options = await runOptions({ failurePolicy: "continue" });
    for (const status of ["succeeded", "cached"]) {
      const result = await (await f.run(options)).wait();
      expect(result.tasks.trainer!.status).toBe(status);
      expect(result.tasks.evaluate!.error).toMatchObject({
        name: "MissingOutputError",
        message: expect.stringContaining('Task "evaluate" takes trainer.modelPath, but task "trainer" has no output "modelPath" (its outputs: none): it ended without writing it. Make "trainer" write it (with cairn_task.set_outputs({...}) in Python'),
      });
      expect(result.tasks.double!.error?.message).toContain('task "trainer" has no output "n" (its outputs: none)');
    }
    // One that wrote some outputs, but not the one taken: they are named.
    await writeFile(file, "import cairn_task\ncairn_task.set_outputs({'model': 'm.pkl', 'n': 2})\n");
    const result = await (await f.run(await runOptions({ failurePolicy: "continue" }))).wait();
    expect(result.tasks.evaluate!.error?.message).toContain('task "trainer" has no output "modelPath" (its outputs: "model", "n")');
    expect(result.tasks.double!.outputs).toEqual({ doubled: 4 });
  });

  it("a flow output that a process task never wrote fails the flow, naming the flow output, the task and what it wrote", async () => {
    const writer = shell("writer", `echo '{"a": 1}' > "$CAIRN_OUTPUTS"`).output<{ a: number; b: number }>();
    const f = flow("flow-output-missing").build(() => {
      const w = writer({});
      return { a: w.a, b: w.b };
    });
    // Run, then a cache hit of the same writer: the flow fails alike, the writer's own result stands.
    const options = await runOptions();
    for (const status of ["succeeded", "cached"]) {
      const result = await (await f.run(options)).wait();
      expect(result.tasks.writer!.status).toBe(status);
      expect(result.status).toBe("failed");
      expect(result.outputs).toBeUndefined();
      expect(result.error).toMatchObject({
        name: "MissingOutputError",
        message: expect.stringContaining('Flow output "b" is writer.b, but task "writer" has no output "b" (its outputs: "a"): it ended without writing it. Make "writer" write it (as JSON written to $CAIRN_OUTPUTS'),
      });
    }
    // An output an .output(schema) lets be absent is undefined, and the flow succeeds.
    const checked = shell("checked", `echo '{"a": 1}' > "$CAIRN_OUTPUTS"`).output(z.object({ a: z.number(), b: z.number().optional() }));
    const ok = await (await flow("flow-output-optional").build(() => ({ b: checked({}).b })).run(await runOptions())).wait();
    expect(ok.status).toBe("succeeded");
    expect(ok.outputs).toEqual({ b: undefined });
  });

  it("an output an .output(schema) lets be absent, and a function task's undefined output, are still undefined downstream", async () => {
    const dir = await tempRoot();
    const file = join(dir, "some.py");
    await writeFile(file, "import cairn_task\ncairn_task.set_outputs({'model': 'm.pkl'})\n");
    const checked = script("checked", { file }).output(z.object({ model: z.string(), note: z.string().optional() }));
    const maybe = task("maybe").run(() => ({ note: undefined as string | undefined }));
    const show = task("show").input<{ a?: string; b?: string }>().run(({ a, b }) => ({ text: `${a ?? "none"}/${b ?? "none"}` }));
    const f = flow("optional").build(() => ({ text: show({ a: checked({}).note, b: maybe({}).note }).text }));
    const result = await (await f.run(await runOptions())).wait();
    expect(result.tasks.show!.outputs).toEqual({ text: "none/none" });
  });

  it("escalates to SIGKILL when the tree ignores SIGTERM", async () => {
    const pidFile = join(await tempRoot(), "stubborn.pid");
    // `trap '' TERM` makes the shell and the children it starts ignore SIGTERM.
    const stubborn = shell("stubborn", "trap '' TERM; sleep 300 & echo $! > {pidFile}; wait", { killGraceMs: 300 }).input<{ pidFile: string }>().timeout(3000);
    const result = await (await flow("stubborn").build(() => ({ x: stubborn({ pidFile }).stdout })).run(await runOptions())).wait();
    expect(result.tasks.stubborn!.error!.name).toBe("TaskTimeoutError");
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(await waitFor(() => !alive(pid), 3000)).toBe(true);
  });

  it("ends what a process leaves running in its group when it exits", async () => {
    const pidFile = join(await tempRoot(), "bg.pid");
    // The background sleep keeps stdout open; without ending the group the task would wait for it.
    const bg = shell("bg", "sleep 300 & echo $! > {pidFile}; echo started").input<{ pidFile: string }>();
    const started = Date.now();
    const out = await (await flow("bg").build(() => ({ x: bg({ pidFile }).stdout })).run(await runOptions())).outputs();
    expect(out).toEqual({ x: "started" });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await waitFor(() => !alive(Number(readFileSync(pidFile, "utf8"))), 3000)).toBe(true);
  });
});
