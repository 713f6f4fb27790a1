/**
 * script() with `preload`: tasks fork from a warm Python that imported the modules once.
 * Real processes: the server, the launchers and the forked children.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { flow, type RunEvent } from "@cairn/dsl";
import { script } from "../../packages/process/src/index.ts";
import { alive, fixture, hasVenv, logsOf, runOptions, tempRoot, VENV_PYTHON, waitFor } from "./helpers.ts";

type Probe = { preloaded: boolean; pid: number; ppid: number; argv: string[]; cwd: string; name: string; path0: string; label: string };

const probe = (preload?: string[]) =>
  script("probe", { file: fixture("preload_probe.py"), args: ["--label", "{label}"], ...(preload ? { preload } : {}) })
    .input<{ label: string }>()
    .output<Probe>();

describe("script() with preload", () => {
  it("forks each task from one warm Python that imported the modules once", async () => {
    const warm = probe(["xml.dom.minidom"]);
    const f = flow("preload").build(() => ({
      a: warm({ label: "a b" }, { id: "a" }).$out,
      b: warm({ label: "c" }, { id: "b" }).$out,
      cold: probe()({ label: "d" }, { id: "cold" }).$out,
    }));
    const events: RunEvent[] = [];
    const run = await f.run(await runOptions());
    run.on((e) => events.push(e));
    const out = (await run.outputs()) as Record<"a" | "b" | "cold", Probe>;
    expect(out.a).toMatchObject({ preloaded: true, argv: ["--label", "a b"], cwd: process.cwd(), name: "__main__", path0: dirname(fixture("preload_probe.py")), label: "a b" });
    expect(out.b).toMatchObject({ preloaded: true, label: "c" });
    expect(out.cold.preloaded).toBe(false); // no preload: a new interpreter, as before
    // Both children of the same server, which is not Cairn's own process.
    expect(out.a.ppid).toBe(out.b.ppid);
    expect(out.a.ppid).not.toBe(process.pid);
    expect(out.a.pid).not.toBe(out.b.pid);
    // stdout and stderr reach the task's log like any process's.
    const logs = logsOf(events).filter((e) => e.task === "a");
    expect(logs).toContainEqual(expect.objectContaining({ level: "info", message: "probe a b" }));
    expect(logs).toContainEqual(expect.objectContaining({ level: "warn", message: "probe stderr" }));
  });

  it.skipIf(!hasVenv)("gives each task its own random state, as a new interpreter would (random and numpy)", async () => {
    const draw = script("draw", { file: fixture("random_draw.py"), interpreter: VENV_PYTHON, preload: ["numpy.random"] })
      .input<{ numpy: boolean; i: number }>()
      .output<{ random: number; numpy: number }>();
    const f = flow("draws").build(() => ({ a: draw({ numpy: true, i: 1 }, { id: "a" }).$out, b: draw({ numpy: true, i: 2 }, { id: "b" }).$out }));
    const out = (await (await f.run(await runOptions())).outputs()) as Record<"a" | "b", { random: number; numpy: number }>;
    expect(out.a.random).not.toBe(out.b.random);
    expect(out.a.numpy).not.toBe(out.b.numpy);
  });

  it("turns an exception into a task failure whose message ends with the script's traceback", async () => {
    const dir = await tempRoot();
    const file = join(dir, "boom.py");
    const { writeFile } = await import("node:fs/promises");
    await writeFile(file, "import sys\nprint('before', file=sys.stderr)\ndef boom():\n    raise ValueError('bad things happened')\nboom()\n");
    const boom = script("boom", { file, preload: ["xml.dom.minidom"] });
    const result = await (await flow("boom").build(() => ({ x: boom().$out })).run(await runOptions())).wait();
    expect(result.status).toBe("failed");
    const error = result.tasks.boom!.error!;
    expect(error.name).toBe("ProcessFailedError");
    expect(error.message).toMatch(/boom\.py` exited with code 1/);
    expect(error.message).toContain("ValueError: bad things happened");
    expect(error.message).toContain(`File "${file}", line 5, in <module>`);
    expect(error.message).not.toContain("cairn_preload"); // the traceback starts at the script
  });

  it("reports a task killed by SIGKILL from outside (as the OOM killer does) as killed, as without preload", async () => {
    const dir = await tempRoot();
    const file = join(dir, "wait.py");
    const pidFile = join(dir, "task.pid");
    const { writeFile } = await import("node:fs/promises");
    await writeFile(file, `import os, sys, time\nopen(sys.argv[1], "w").write(str(os.getpid()))\ntime.sleep(60)\n`);
    const wait = script("wait", { file, args: [pidFile], preload: ["xml.dom.minidom"] });
    const run = await flow("oom").build(() => ({ x: wait().$out })).run(await runOptions());
    expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8") !== "", 10_000)).toBe(true);
    process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL");
    const result = await run.wait();
    const error = result.tasks.wait!.error!;
    expect(error.name).toBe("ProcessFailedError");
    expect(error.message).toMatch(/wait\.py [^`]*` was killed by SIGKILL/);
    expect(error.message).not.toContain("cairn_preload");
    expect(error.message).not.toContain("Invalid argument");
  });

  it.each([
    // grandchild.py starts a `sleep 300` and records its pid: SIGTERM, passed on by the launcher, ends the group.
    ["ends the task's process tree on timeout: no orphan left", "grandchild.py", 2000],
    // ignore_term.py ignores SIGTERM: Node SIGKILLs the launcher, and the server then kills the child's group.
    ["kills a child that ignores SIGTERM once the grace period is over", "ignore_term.py", 300],
  ])("%s", async (_, file, killGraceMs) => {
    const pidFile = join(await tempRoot(), "task.pid");
    const slow = script("slow", { file: fixture(file), killGraceMs, preload: ["xml.dom.minidom"] }).input<{ pidFile: string }>().timeout(4000);
    const result = await (await flow("timeout").build(() => ({ x: slow({ pidFile }).$out })).run(await runOptions())).wait();
    expect(result.tasks.slow!.error!.name).toBe("TaskTimeoutError");
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(pid).toBeGreaterThan(0);
    expect(await waitFor(() => !alive(pid), 5000)).toBe(true);
  });

  it("warns about a module it cannot import and still runs the task", async () => {
    const warm = probe(["xml.dom.minidom", "no_such_module_here"]);
    const events: RunEvent[] = [];
    const run = await flow("missing").build(() => ({ x: warm({ label: "x" }).$out })).run(await runOptions());
    run.on((e) => events.push(e));
    const out = (await run.outputs()) as { x: Probe };
    expect(out.x.preloaded).toBe(true);
    expect(logsOf(events).map((e) => e.message)).toContainEqual(expect.stringMatching(/preload: could not import no_such_module_here \(ModuleNotFoundError/));
  });

  it("runs the task in a new interpreter, with a warning, when the warm Python cannot start", async () => {
    const dir = await tempRoot();
    const fake = join(dir, "python-that-dies");
    const { writeFile, chmod } = await import("node:fs/promises");
    // Starts the script normally, but exits at once when asked to serve.
    await writeFile(fake, `#!/bin/sh\nif [ "$2" = serve ]; then echo "no serving here" >&2; exit 4; fi\nexec ${JSON.stringify(process.env.CAIRN_PYTHON ?? "python3")} "$@"\n`);
    await chmod(fake, 0o755);
    const warm = script("probe", { file: fixture("preload_probe.py"), args: ["--label", "{label}"], interpreter: fake, preload: ["xml.dom.minidom"] }).input<{ label: string }>();
    const events: RunEvent[] = [];
    const run = await flow("no-server").build(() => ({ x: warm({ label: "y" }).$out })).run(await runOptions());
    run.on((e) => events.push(e));
    const out = (await run.outputs()) as { x: Probe };
    expect(out.x).toMatchObject({ preloaded: false, label: "y" });
    expect(logsOf(events).map((e) => e.message)).toContainEqual(expect.stringMatching(/preload: the warm Python did not start .*exited \(code 4\).*no serving here/));
  });

  it("refuses preload on a file that is not Python, with a custom launcher, or with bad module names", () => {
    expect(() => script("ts", { file: fixture("summarize.ts"), preload: ["pandas"] })).toThrow(/option `preload`.*Python script \(\.py\)/);
    expect(() => script("uv", { file: fixture("train.py"), interpreter: ["uv", "run"], preload: ["pandas"] })).toThrow(/single Python program/);
    expect(() => script("bad", { file: fixture("train.py"), preload: ["pandas; rm -rf"] as string[] })).toThrow(/Python module names/);
    expect(() => script("bad", { file: fixture("train.py"), preload: "pandas" as never })).toThrow(/Python module names/);
    expect(existsSync(fixture("train.py"))).toBe(true);
  });
});
