/**
 * A line a process rewrites with a lone `\r` (a progress bar: tqdm, pip) is shown as a terminal
 * shows it: each `\r` not followed by `\n` starts the line over and the text after it replaces the
 * line's earlier state. The terminal (log events) gets its states at most about once a second and
 * its final state always; the error's stderr tail gets final states only, so 3,000 progress
 * updates do not push a traceback out of the error. What is kept is data, every state a line: the
 * log files and a shell task's stdout output (a file with `\r` line endings loses no line). Real
 * child processes throughout (Python from the project's venv, Node, sh).
 */
import { spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { flow, type RunEvent } from "@cairn/dsl";
import { script, shell } from "../../packages/process/src/index.ts";
import { LINE_LIMIT, pumpLines, type Line } from "../../packages/process/src/spawn/lines.ts";
import { cairnBin, childEnv, repo, start } from "../cache/helpers.ts";
import { filesContaining, secretPartIn } from "../reliability/secret-helpers.ts";
import { logsOf, runOptions, tempRoot, VENV_PYTHON } from "./helpers.ts";

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

/** A fresh folder for a test's files, removed after the file's tests. */
async function folder(under?: string): Promise<string> {
  const dir = under ? await mkdtemp(join(under, ".x-progress-")) : await tempRoot();
  made.push(dir);
  return dir;
}

/** The files named `name` under `dir`, at any depth. */
async function filesNamed(dir: string, name: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name === name).map((e) => join(e.parentPath, e.name));
}

/** Runs flow `f` and collects its events. */
async function collect(f: { run(options: object): Promise<{ on(listener: (e: RunEvent) => void): void; wait(): Promise<any> }> }, options: object) {
  const run = await f.run(options);
  const events: RunEvent[] = [];
  run.on((e) => events.push(e));
  return { result: await run.wait(), events };
}

/** Three nested calls, so the traceback is a few lines, as a real one is. */
const RAISE = `
def load():
    raise ValueError("boom after 3000 frames")

def fit():
    load()

fit()
`;

describe.skipIf(!existsSync(VENV_PYTHON))("a process that rewrites a line with \\r (a progress bar)", () => {
  it("3,000 tqdm-style frames to stderr, then a traceback: a few frame lines on the terminal, the traceback in the error, every frame in logs/stderr.txt", async () => {
    // Inside the workspace, where a flow file resolves cairn-dag.
    const cwd = await folder(join(repo, "test"));
    await writeFile(
      join(cwd, "tq.py"),
      `import sys\nfor i in range(3000):\n    sys.stderr.write("\\rtraining: %3d%% %d/3000" % (i * 100 // 2999, i + 1))\n    sys.stderr.flush()\n${RAISE}`,
    );
    await writeFile(join(cwd, "flow.ts"), `import { flow, script } from "cairn-dag";\nconst tq = script("tq", { file: "./tq.py" });\nexport default flow("tq").build(() => (tq({}), {}));\n`);
    const exit = await start(process.execPath, [cairnBin, "run", "flow.ts"], { cwd, env: childEnv({ CAIRN_PYTHON: VENV_PYTHON }) }).done;
    expect(exit.code, exit.stderr).toBe(1);

    // The terminal: was 3,000 `[tq] training: …` lines (205 KB).
    const frames = exit.stdout.split("\n").filter((l) => l.startsWith("[tq] training:"));
    expect(frames.length, exit.stdout.slice(0, 2000)).toBeGreaterThanOrEqual(1);
    expect(frames.length, exit.stdout.slice(0, 2000)).toBeLessThanOrEqual(3);
    expect(exit.stdout).toContain("[tq] training: 100% 3000/3000Traceback (most recent call last):");
    expect(exit.stdout.length).toBeLessThan(10_000);

    // The error's tail counts final states: the traceback whole, no progress frame before it (was 16 frames, 4 traceback lines).
    const error = await readFile((await filesNamed(join(cwd, ".cairn"), "error.txt"))[0]!, "utf8");
    const tail = /Last (\d+) lines of stderr:\n((?: {2}\| .*\n)+)/.exec(error);
    expect(tail, error).not.toBeNull();
    const tailLines = tail![2]!.trimEnd().split("\n").map((l) => l.slice(4));
    expect(tailLines[0]).toBe("training: 100% 3000/3000Traceback (most recent call last):");
    expect(tailLines.at(-1)).toBe("ValueError: boom after 3000 frames");
    expect(tailLines.filter((l) => l.startsWith("training:"))).toHaveLength(1);
    expect(exit.stderr).toContain("ValueError: boom after 3000 frames");

    // The log file keeps every frame, one a line (the `\r` before the first ends an empty line), then the tail's lines.
    const [stderrLog] = await filesNamed(join(cwd, ".cairn"), "stderr.txt");
    const log = await readFile(stderrLog!, "utf8");
    expect(log).not.toContain("\r");
    const logLines = log.trimEnd().split("\n");
    expect(logLines.slice(0, 3)).toEqual(["", "training:   0% 1/3000", "training:   0% 2/3000"]);
    expect(logLines[2999]).toBe("training:  99% 2999/3000");
    expect(logLines.filter((l) => l.startsWith("training:"))).toHaveLength(3000);
    expect(logLines.slice(3000)).toEqual(tailLines);
  }, 60_000);

  it("shows a slow bar's states about once a second and its final state once; the log (every state) and the outputs (an artifact marker) are as before", async () => {
    const dir = await folder();
    const file = join(dir, "slow.py");
    await writeFile(
      file,
      [
        "import sys, time, cairn_task",
        "for i in range(1, 151):",
        '    sys.stdout.write("\\rstep %d/150" % i)',
        "    sys.stdout.flush()",
        "    time.sleep(0.02)",
        'sys.stdout.write("\\n")',
        'print("done")',
        'with open(cairn_task.artifact_path("m.txt"), "w") as f:',
        '    f.write("model")',
        'cairn_task.set_outputs({"model": cairn_task.artifact("m.txt"), "n": 150})',
      ].join("\n"),
    );
    const slow = script("slow", { file, interpreter: VENV_PYTHON }).output<{ model: { path: string }; n: number }>();
    const options = await runOptions();
    const { result, events } = await collect(
      flow("slow").build(() => {
        const s = slow({});
        return { model: s.model, n: s.n };
      }),
      options,
    );
    expect(result.status).toBe("succeeded");
    expect(result.outputs.n).toBe(150);
    expect(await readFile(result.outputs.model.path, "utf8")).toBe("model");

    const lines = logsOf(events).filter((e) => e.task === "slow" && e.level === "info").map((e) => e.message);
    const steps = lines.filter((l) => l.startsWith("step"));
    // ~3.5 s of frames: the first at once, then about one a second (was all 150), then the final state.
    expect(steps.length, steps.join(" | ")).toBeGreaterThanOrEqual(3);
    expect(steps.length, steps.join(" | ")).toBeLessThanOrEqual(6);
    expect(steps[0]).toBe("step 1/150");
    expect(steps.at(-1)).toBe("step 150/150");
    expect(steps.filter((l) => l === "step 150/150")).toHaveLength(1);
    const numbers = steps.map((l) => Number(/step (\d+)/.exec(l)![1]));
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(lines.at(-1)).toBe("done");
    const [stdoutLog] = await filesNamed(join(options.root, "artifacts"), "stdout.txt");
    expect(await readFile(stdoutLog!, "utf8")).toBe(`\n${Array.from({ length: 150 }, (_, i) => `step ${i + 1}/150`).join("\n")}\ndone\n`);
  }, 60_000);

  it("masks a secret in every state shown or stored, also one that arrives in two writes while the terminal is due an update", async () => {
    const secret = "sk-live-9f8e7d6c5b4a-progress";
    const dir = await folder();
    const file = join(dir, "secret.py");
    await writeFile(
      file,
      [
        "import os, sys, time",
        'token = os.environ["API_TOKEN"]',
        "def w(text, pause=0.0):",
        "    sys.stderr.write(text)",
        "    sys.stderr.flush()",
        "    time.sleep(pause)",
        // Shown at once (the first state), then one waiting for the second to pass.
        'w("\\rstep 1")',
        'w("\\rstep 2")',
        // Half of the secret while the update of "step 2" falls due: what is shown must not be this half.
        'w("\\rkey " + token[:9], 1.5)',
        'w(token[9:] + " 10%\\r", 1.3)',
        'w("done " + token[:9], 0.2)',
        'w(token[9:] + "\\n")',
        'raise SystemExit("failed with " + token)',
      ].join("\n"),
    );
    const leaky = script("leaky", { file, interpreter: VENV_PYTHON, secrets: ["API_TOKEN"] });
    const root = await folder();
    const { result, events } = await collect(flow("leaky").build(() => (leaky({}), {})), { tracker: false, root, cache: false, env: { ...process.env, API_TOKEN: secret } });
    expect(result.tasks.leaky.status).toBe("failed");
    const warns = logsOf(events).filter((e) => e.task === "leaky" && e.level === "warn").map((e) => e.message);
    expect(warns).toEqual(["step 1", "step 2", "key *** 10%", "done ***", "failed with ***"]);
    for (const text of [JSON.stringify(events), result.tasks.leaky.error.message]) expect(secretPartIn(text, secret)).toBeUndefined();
    expect(result.tasks.leaky.error.message).toContain("| done ***\n  | failed with ***");
    const [stderrLog] = await filesNamed(join(root, "artifacts"), "stderr.txt");
    expect(await readFile(stderrLog!, "utf8")).toBe("\nstep 1\nstep 2\nkey *** 10%\ndone ***\nfailed with ***\n");
    expect((await filesContaining(root, [secret.slice(0, 9), secret.slice(9)])).hits).toEqual([]);
  }, 60_000);
});

describe("pumpLines, with a real child writing \\r", () => {
  /** Pumps what `node -e code` writes to stdout; the log file's text, the lines, the updates. */
  async function pump(code: string) {
    const dir = await folder();
    const child = spawn(process.execPath, ["-e", `const w = (s) => new Promise((r) => process.stdout.write(s, r)); const pause = (ms) => new Promise((r) => setTimeout(r, ms)); (async () => { ${code} })();`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const file = createWriteStream(join(dir, "stdout.txt"));
    const lines: Line[] = [];
    const updates: Line[] = [];
    const copied: string[] = [];
    const copy = { write: (text: string) => void copied.push(text), file: undefined };
    const noSecrets = { mask: (text: string) => text.replaceAll("hunter2-secret", "***"), safeCut: (_: string, at: number) => at };
    await pumpLines(child.stdout!, file, noSecrets, (line) => void lines.push(line), { copy, onUpdate: (line) => void updates.push(line) });
    await new Promise((r) => file.end(r));
    return { log: await readFile(join(dir, "stdout.txt"), "utf8"), lines, updates, copied: copied.join("") };
  }

  it("a \\r\\n split across two writes ends one line, shown once; a lone \\r at the end of the stream shows the state before it, and ends an empty line in the log", async () => {
    const { log, lines, updates, copied } = await pump('await w("crlf\\r"); await pause(100); await w("\\nnext\\r"); await pause(100); await w("\\r");');
    expect(log).toBe("crlf\nnext\n\n");
    expect(copied).toBe("crlf\nnext\n\n");
    expect(lines.map((l) => [l.text, l.shown])).toEqual([
      ["crlf", true],
      ["next", false],
    ]);
    // "crlf" was whole at its `\r`, shown at once; "next" waited for a second that never came.
    expect(updates.map((l) => l.text)).toEqual(["crlf"]);
  });

  it("every state is a line of the log, one longer than 64 KB too; what is shown is the final state; an update is cut to 8 KB and masked; bad UTF-8 is U+FFFD", async () => {
    const { log, lines, updates, copied } = await pump(
      'await w("hunter2-secret " + "u".repeat(10000) + "\\r"); await w("x".repeat(70000)); await pause(50); await w("\\rshort\\n"); await w(Buffer.from([0x61, 0xff, 0x0d, 0x62, 0x0a]));',
    );
    expect(log).toBe(`*** ${"u".repeat(10000)}\n${"x".repeat(70000)}\nshort\na\uFFFD\nb\n`);
    expect(copied).toBe(`hunter2-secret ${"u".repeat(10000)}\n${"x".repeat(70000)}\nshort\na\uFFFD\nb\n`);
    // The first state is shown at once; the long one waits for a second, and "short" replaces it first.
    expect(updates).toHaveLength(1);
    expect(updates[0]!.text).toBe(`*** ${"u".repeat(LINE_LIMIT - 4)}`);
    expect(updates[0]!.more).toBe(15 + 10000 - LINE_LIMIT);
    expect(lines.map((l) => [l.text, l.more, l.shown])).toEqual([
      ["short", 0, false],
      ["b", 0, false],
    ]);
    const second = await pump('await w(Buffer.from([0x61, 0xff, 0x0d])); await pause(50); await w(Buffer.from([0x0a, 0xff, 0x0a]));');
    expect(second.log).toBe("a\uFFFD\n\uFFFD\n");
    expect(second.updates.map((l) => l.text)).toEqual(["a\uFFFD"]);
  });
});

describe("a shell task's stdout output", () => {
  it("holds every state of a \\r-updated line, each a line, as its log does", async () => {
    const frames = shell("frames", "for i in 1 2 3; do printf '\\r%s/3' $i; done; printf '\\n{\"rows\": 3}\\n'");
    const out = await (await flow("frames").build(() => ({ out: frames().stdout })).run(await runOptions())).outputs();
    expect(out.out).toBe('\n1/3\n2/3\n3/3\n{"rows": 3}');
    expect(JSON.parse(out.out.split("\n").at(-1)!)).toEqual({ rows: 3 });
  });
});
