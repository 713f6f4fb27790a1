import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { formatDuration } from "../packages/cli/src/reporter.ts";

const repo = resolve(import.meta.dirname, "..");
const bin = join(repo, "packages/cli/bin/cairn.mjs");
const tsx = join(repo, "node_modules/.bin/tsx");
const fixture = (name: string) => join(repo, "test/fixtures", name);

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a real child process; the environment drops MLflow variables so the embedded store is used. */
function run(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; onStdout?: (chunk: string, child: ChildProcess) => void } = {}): Promise<Exit> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", ...options.env };
  delete env.MLFLOW_TRACKING_URI;
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd: options.cwd ?? root, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
      options.onStdout?.(stdout, child);
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}
const cairn = (args: string[], options?: Parameters<typeof run>[2]) => run(process.execPath, [bin, ...args], options);

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "cairn-cli-"));
});

describe("cairn run", () => {
  it("runs a flow, prints plain progress and a summary, exits 0", async () => {
    const r = await cairn(["run", fixture("ok.flow.ts"), "-p", "rows=4"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/✓ succeeded double\b/);
    expect(r.stdout).toMatch(/\[double\] doubling 4/);
    expect(r.stdout).toMatch(/^task\s+status\s+duration\s+run id$/m);
    expect(r.stdout).toMatch(/^double-2\s+succeeded\s+\S+\s+[0-9a-f]{32}$/m);
    expect(r.stdout).toContain('Outputs: {"result":16,"label":"none"}');
    expect(r.stdout).not.toMatch(/\x1b\[/); // NO_COLOR and no TTY: no escape codes
  });

  it("tsx flow.ts behaves the same as cairn run flow.ts", async () => {
    const r = await run(tsx, [fixture("ok.flow.ts"), "-p", "rows=4", "-p", "label=123"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Outputs: {"result":16,"label":"123"}');
  });

  it("--json prints one parseable event per line with the documented fields", async () => {
    const r = await cairn(["run", fixture("ok.flow.ts"), "--json", "--no-tracking"]);
    expect(r.code).toBe(0);
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events[0]).toMatchObject({ type: "flow", status: "running" });
    expect(events.at(-1)).toMatchObject({ type: "flow", status: "succeeded", durationMs: expect.any(Number) });
    const runId = events[0]!.runId;
    for (const e of events) expect(e.runId).toBe(runId);
    const finished = events.filter((e) => e.type === "task" && e.status === "succeeded");
    expect(finished.map((e) => e.task)).toEqual(["double", "double-2"]);
    for (const e of finished) expect(e.durationMs).toEqual(expect.any(Number));
    expect(r.stderr).toContain("[double] doubling 3");
  });

  it("exits 1 when the flow fails and shows the task's error", async () => {
    const r = await cairn(["run", fixture("fails.flow.ts")]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/✗ failed\s+bad/);
    expect(r.stdout).toContain("bad things happened");
    expect(r.stdout).toMatch(/Flow failed in/);
  });

  it.each([
    [["run", "does-not-exist.ts"], /Flow file does-not-exist.ts does not exist/],
    // Not "its module code threw": neither is code.
    [["run", fixture("")], /Expected a flow file, got the folder .*test\/fixtures\/?\. Name the flow file in it, e\.g\. .*test\/fixtures\/flow\.ts\./],
    [["plan", fixture("prints-secret.ipynb")], /Expected a flow file ending in \.ts, \.mts, .*, got .*prints-secret\.ipynb\./],
    [["run", fixture("no-default.flow.ts")], /has no default export\. It exports the flow notDefault by name, but the CLI runs the default export: add `export default notDefault;` at its end\./],
    [["run", fixture("not-a-flow.flow.ts")], /default export of .* is an object, not a flow/],
    [["run", fixture("ok.flow.ts"), "-p", "colums=3"], /no param "colums"\. Its params are: rows, label/],
    [["run", fixture("ok.flow.ts"), "-p", "rows=many"], /rows: Invalid input: expected number, received string.*\(got -p rows=many\)/s],
    // A number the schema rejects is reported as the number it is, not as a string.
    [["run", fixture("ok.flow.ts"), "-p", "rows=1.5"], /rows: Invalid input: expected int, received number.*\(got -p rows=1\.5\)/s],
    [["run", fixture("ok.flow.ts"), "-p", "rows"], /Expected -p name=value, got "-p rows"/],
    [["run", fixture("ok.flow.ts"), "--concurrency", "0"], /Expected `--concurrency` to be an integer >= 1, got `0`/],
    [["run", fixture("ok.flow.ts"), "--bogus"], /Unknown option '--bogus'.*cairn run --help/],
    [["run", fixture("ok.flow.ts"), "--secrets", "/nonexistent/secrets.env"], /Cannot read the secrets file/],
    [["frobnicate"], /Unknown command "frobnicate"\. Expected one of/],
    [["rum", fixture("ok.flow.ts")], /Unknown command "rum"; did you mean run\?/],
    [["show"], /Expected a run id/],
    [["explain", fixture("ok.flow.ts"), "load", "stats"], /Expected one task: cairn explain FILE TASK; got 2 \("load", "stats"\)/],
  ])("exits 2 with a clear message for bad input: %s", async (args, message) => {
    const r = await cairn(args as string[]);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });

  it("tsx on a file that default-exports no flow runs nothing: it may be an app's entry module (cairn run says what is missing)", async () => {
    for (const file of ["no-default.flow.ts", "not-a-flow.flow.ts"]) {
      const r = await run(tsx, [fixture(file)]);
      expect(r.stderr, file).toBe("");
      expect(r.stdout, file).toBe("");
      expect(r.code, file).toBe(0);
    }
  });

  it("tsx on a file that default-exports a flow without .build(...) says so, as cairn run does (exit 2)", async () => {
    for (const [cmd, args] of [[tsx, [fixture("unbuilt.flow.ts")]], [process.execPath, [bin, "run", fixture("unbuilt.flow.ts")]]] as const) {
      const r = await run(cmd, [...args]);
      expect(r.stderr, cmd).toMatch(/The default export of .*unbuilt\.flow\.ts is flow\("unbuilt"\) without \.build\(\.\.\.\), so no flow to run\. Export the result of flow\("unbuilt"\)\.build\(\.\.\.\)/);
      expect(r.stdout, cmd).toBe("");
      expect(r.code, cmd).toBe(2);
    }
  });

  it("tsx on a file that re-exports a flow built in another module runs it, as cairn run does", async () => {
    for (const [cmd, args] of [[tsx, [fixture("reexport/a.flow.ts"), "--no-cache"]], [process.execPath, [bin, "run", fixture("reexport/a.flow.ts"), "--no-cache"]]] as const) {
      const r = await run(cmd, [...args]);
      expect(r.stderr, cmd).toBe("");
      expect(r.stdout, cmd).toContain(`Outputs: {"text":"from the shared module"}`);
      expect(r.code, cmd).toBe(0);
    }
  });

  it("prints help for every command", async () => {
    for (const cmd of ["run", "graph", "runs", "show"]) {
      const r = await cairn([cmd, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`Usage: cairn ${cmd}`));
    }
    const top = await cairn(["--help"]);
    expect(top.stdout).toMatch(/Commands:/);
  });
});

describe("cairn graph", () => {
  it("prints mermaid, dot and json", async () => {
    const m = await cairn(["graph", fixture("ok.flow.ts")]);
    expect(m.stdout).toBe('flowchart LR\n  n0["double"]\n  n1["double-2"]\n  n0 --> n1\n');
    const d = await cairn(["graph", fixture("ok.flow.ts"), "--format", "dot"]);
    expect(d.stdout).toContain('"double" -> "double-2";');
    const j = await cairn(["graph", fixture("ok.flow.ts"), "--format", "json"]);
    expect(JSON.parse(j.stdout).nodes[1]).toEqual({ id: "double-2", task: "double", kind: "function", dependsOn: ["double"] });
  });
});

describe("runs recorded in the embedded store", () => {
  it("cairn runs and cairn show list what a run recorded", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "cairn-runs-"));
    const r = await cairn(["run", fixture("ok.flow.ts"), "--json"], { cwd });
    const runId = (JSON.parse(r.stdout.split("\n")[0]!) as { runId: string }).runId;
    const list = await cairn(["runs"], { cwd });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${runId}\\s+ok\\s+FINISHED`, "m"));
    const show = await cairn(["show", runId, "--json"], { cwd });
    const shown = JSON.parse(show.stdout) as { run: { status: string; params: Record<string, string> }; tasks: Array<{ name: string; status: string }> };
    expect(shown.run.status).toBe("FINISHED");
    expect(shown.run.params).toMatchObject({ rows: "3", label: "none" });
    expect(shown.tasks.map((t) => [t.name, t.status])).toEqual([
      ["double", "FINISHED"],
      ["double-2", "FINISHED"],
    ]);
  });

  it("cairn show lists the cached tasks of a re-run as cached, each with its source run and the duration the run's table gave it", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "cairn-runs-cached-"));
    const runIdOf = (r: { stdout: string }) => (JSON.parse(r.stdout.split("\n")[0]!) as { runId: string }).runId;
    type Run = { name: string; status: string; runId: string; startTime: number; endTime: number; tags: Record<string, string> };
    type Shown = { run: { status: string }; tasks: Run[] };
    const first = runIdOf(await cairn(["run", fixture("ok.flow.ts"), "--json"], { cwd }));
    const rerun = await cairn(["run", fixture("ok.flow.ts"), "--json"], { cwd });
    const second = runIdOf(rerun);
    const sources = (JSON.parse((await cairn(["show", first, "--json"], { cwd })).stdout) as Shown).tasks;
    const shown = JSON.parse((await cairn(["show", second, "--json"], { cwd })).stdout) as Shown;
    expect(shown.run.status).toBe("FINISHED");
    // Recorded FINISHED (MLflow's status), tagged with its source.
    expect(shown.tasks.map((t) => [t.name, t.status, t.tags["cairn.cached_from"]]).sort()).toEqual(
      sources.map((t) => [t.name, "FINISHED", t.runId]).sort(),
    );
    const events = rerun.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { type: string; task?: string; status: string; time: number });
    const plain = (await cairn(["show", second], { cwd })).stdout;
    expect(plain).toMatch(/^task\s+status\s+duration\s+run id\s+cached from\s+metrics$/m);
    for (const hit of shown.tasks) {
      // A hit's run starts when its lookup did (when it was queued) and ends when it was found.
      const queued = events.find((e) => e.type === "task" && e.task === hit.name && e.status === "queued")!;
      expect(hit.startTime).toBe(queued.time);
      expect(hit.endTime).toBeGreaterThanOrEqual(hit.startTime);
      const source = sources.find((t) => t.name === hit.name)!;
      // As the run's own table has it: `cached`, with its duration; its source run beside its id.
      expect(plain).toMatch(new RegExp(`^${hit.name}\\s+cached\\s+${formatDuration(hit.endTime - hit.startTime)}\\s+${hit.runId}\\s+${source.runId}\\s+x=`, "m"));
    }
    expect(plain).not.toContain("FINISHED  0ms");
  });

  it("Ctrl-C cancels cleanly: exit 130 and no run left RUNNING", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "cairn-sigint-"));
    let sent = false;
    const r = await cairn(["run", fixture("slow.flow.ts"), "--json"], {
      cwd,
      onStdout: (out, child) => {
        if (!sent && (out.match(/"status":"running","runId":"[0-9a-f]+","task"/g) ?? []).length >= 2) {
          sent = true;
          child.kill("SIGINT");
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    const last = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { type: string; status: string; runId: string };
    expect(last).toMatchObject({ type: "flow", status: "cancelled" });
    const show = JSON.parse((await cairn(["show", last.runId, "--json"], { cwd })).stdout) as {
      run: { status: string; tags: Record<string, string> };
      tasks: Array<{ status: string }>;
    };
    expect(show.run.status).toBe("KILLED");
    // Why it was cancelled, recorded on the flow run.
    expect(show.run.tags["cairn.cancel_reason"]).toBe("SIGINT");
    expect(show.tasks).toHaveLength(2);
    for (const t of show.tasks) expect(t.status).toBe("KILLED");
  });

  it("Ctrl-C: the summary's last lines say the run was cancelled and why, and so does its report's header", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "cairn-sigint-"));
    let sent = false;
    const r = await cairn(["run", fixture("slow.flow.ts")], {
      cwd,
      onStdout: (out, child) => {
        if (!sent && (out.match(/▶ running/g) ?? []).length >= 2) {
          sent = true;
          child.kill("SIGINT");
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    const lines = r.stdout.trim().split("\n");
    expect(lines.at(-3)).toMatch(/^Flow cancelled in \S+, run [0-9a-f]{32}$/);
    expect(lines.at(-2)).toBe("The flow run was cancelled: SIGINT.");
    const report = lines.at(-1)!.replace(/^Report: /, "");
    expect(readFileSync(report, "utf8")).toContain('<p class="cancel-reason" data-cancel-reason>Cancelled: SIGINT</p>');
  });

  it("a secret from --secrets reaches the task and is never written to the store", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "cairn-secrets-"));
    await writeFile(join(cwd, "secrets.env"), "MY_TOKEN=hunter2-very-secret\n");
    const r = await cairn(["run", fixture("secret.flow.ts"), "--secrets", join(cwd, "secrets.env")], { cwd });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("token is ***");
    expect(r.stdout).not.toContain("hunter2-very-secret");
    const grep = spawnSync("grep", ["-rl", "hunter2-very-secret", join(cwd, ".cairn")], { encoding: "utf8" });
    expect(grep.status).toBe(1); // 1: searched, no match
    expect(grep.stdout).toBe("");
  });
});
