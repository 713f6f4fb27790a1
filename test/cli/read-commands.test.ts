/**
 * `cairn runs`, `show` and `report` read what runs recorded: a server that is down is said at
 * once (as `run` says it), an experiment name that names none is an error and not "no runs
 * yet", and `show --json` writes NaN and ±Infinity metrics as MLflow's API does.
 */
import { spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnBin, childEnv, jsonLines, start } from "../cache/helpers.ts";
import { LocalStore } from "@cairn/core";
import { cairn, repo } from "./helpers.ts";

const made: string[] = [];
/** A folder inside the workspace, where a flow file resolves `cairn-dag` as the examples do. */
const tmp = async () => {
  const dir = await mkdtemp(join(repo, "test", ".read-commands-"));
  made.push(dir);
  return dir;
};
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

describe("cairn runs, show and report", () => {
  it("against a server that does not answer, fail at once saying so (not after every request's retries)", async () => {
    const env = { MLFLOW_TRACKING_URI: `http://127.0.0.1:${await freePort()}` };
    const results = await Promise.all([["runs"], ["show", "0123abcd"], ["report", "latest"]].map((args) => cairn(args, { env })));
    for (const r of results) {
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/Cannot reach the MLflow tracking server/);
    }
  }, 60_000); // the old code took ~250 s each: its requests' retries

  it("runs --experiment with a name no experiment has is an error naming it, not an empty list", async () => {
    const cwd = await tmp();
    await writeFile(join(cwd, "flow.ts"), `import { flow, task } from "cairn-dag";\nconst t = task("t").run(() => ({ v: 1 }));\nexport default flow("named").build(() => ({ v: t().v }));\n`);
    expect((await cairn(["run", "flow.ts"], { cwd })).code).toBe(0);
    const r = await cairn(["runs", "--experiment", "no-such"], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('No experiment named "no-such"');
    expect((await cairn(["runs", "--experiment", "named"], { cwd })).stdout).toContain("named");
  }, 60_000);

  it("report of a map's item or a sweep's trial names the flow run at the top, not the map's or sweep's run (itself refused the same way)", async () => {
    // Before: "got task run <item> of flow run <map's run>. Run cairn report <map's run>", which then said the same one level up.
    const cwd = await tmp();
    const ran = await cairn(["run", join(repo, "test/cli/fixtures/show-items.flow.ts"), "--json"], { cwd });
    const flowRunId = (JSON.parse(ran.stdout.split("\n")[0]!) as { runId: string }).runId;
    const shown = JSON.parse((await cairn(["show", flowRunId, "--json"], { cwd })).stdout) as { tasks: { runId: string; name: string; tags: Record<string, string> }[] };
    const run = (name: string) => shown.tasks.find((t) => t.name === name) ?? expect.fail(`no run ${name} in ${shown.tasks.map((t) => t.name).join(", ")}`);
    const map = run("item");
    const item = run("item[3]");
    const sweep = run("trial");
    const trial = shown.tasks.find((t) => t.tags["cairn.parent_node"] === sweep.tags["cairn.node_id"]) ?? expect.fail("no trial run");
    for (const [asked, said] of [
      [item, `item run ${item.runId} ("item[3]") of map run ${map.runId} ("item") of flow run ${flowRunId}`],
      [trial, `trial run ${trial.runId} ("${trial.name}") of sweep run ${sweep.runId} ("trial") of flow run ${flowRunId}`],
      [map, `task run ${map.runId} ("item") of flow run ${flowRunId}`],
    ] as const) {
      const r = await cairn(["report", asked.runId], { cwd });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`Expected a flow run, got ${said}. Run \`cairn report ${flowRunId}\`.`);
    }
  });

  it("show --json writes NaN and ±Infinity metrics as strings, as MLflow's API does, not as null", async () => {
    const cwd = await tmp();
    await writeFile(
      join(cwd, "flow.ts"),
      `import { flow, task } from "cairn-dag";\nconst t = task("t").run((_, ctx) => { ctx.log.metric("nan", NaN); ctx.log.metric("inf", Infinity); ctx.log.metric("ninf", -Infinity); return {}; });\nexport default flow("odd").build(() => (t(), {}));\n`,
    );
    const run = await cairn(["run", "flow.ts", "--json"], { cwd });
    expect(run.code, run.stderr).toBe(0);
    const runId = (JSON.parse(run.stdout.trim().split("\n").at(-1)!) as { runId: string }).runId;
    const shown = JSON.parse((await cairn(["show", runId, "--json"], { cwd })).stdout) as { tasks: Array<{ metrics: Record<string, unknown> }> };
    expect(shown.tasks[0]!.metrics).toMatchObject({ nan: "NaN", inf: "Infinity", ninf: "-Infinity" });
  }, 60_000);
});

describe("cairn plan and explain take the run's --secrets and --experiment", () => {
  it("plan says cached for a task whose input holds a secret of the run's --secrets file, as the run finds it; explain too", async () => {
    const cwd = await tmp();
    await writeFile(join(cwd, "secrets.env"), "LIT=lit-eral-secret-value\n");
    await writeFile(
      join(cwd, "flow.ts"),
      `import { flow, task } from "cairn-dag";\nconst t = task("uses").input<{ note: string }>().run(() => ({ ok: 1 }));\nexport default flow("lit").build(() => ({ ok: t({ note: "see lit-eral-secret-value" }).ok }));\n`,
    );
    const args = ["--secrets", "secrets.env", "--experiment", "mine"];
    expect((await cairn(["run", "flow.ts", ...args], { cwd })).code).toBe(0);
    const again = await cairn(["run", "flow.ts", ...args], { cwd });
    expect(again.stdout).toMatch(/uses\s+cached/);
    // Before, plan refused --secrets and, without it, said the task would run: the key holds the secret's slow digest.
    const plan = await cairn(["plan", "flow.ts", ...args], { cwd });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/uses\s+cached\s+from run [0-9a-f]{32}/);
    const explain = await cairn(["explain", "flow.ts", "uses", ...args], { cwd });
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout).toMatch(/^uses would come from the cache: run [0-9a-f]{32}/);
    expect(plan.stdout + explain.stdout).not.toContain("lit-eral-secret-value");
    // Without the run's secrets the key is another one, as the README says.
    expect((await cairn(["plan", "flow.ts", "--experiment", "mine"], { cwd })).stdout).toMatch(/uses\s+runs/);
  });

  it("plan and explain of a task below one that runs say what changed in its own code, not that it may still hit", async () => {
    const cwd = await tmp();
    const flowFile = (up: number, times: number) =>
      `import { flow, task } from "cairn-dag";\n` +
      `const a = task("a").input<{ n: number }>().run(({ n }) => ({ v: n + ${up} }));\n` +
      `const b = task("b").input<{ v: number }>().run(({ v }) => ({ w: v * ${times} }));\n` +
      `export default flow("below").build(() => ({ w: b({ v: a({ n: 1 }).v }).w }));\n`;
    await writeFile(join(cwd, "flow.ts"), flowFile(1, 2));
    expect((await cairn(["run", "flow.ts"], { cwd })).code).toBe(0);
    await writeFile(join(cwd, "flow.ts"), flowFile(2, 3));
    const plan = await cairn(["plan", "flow.ts"], { cwd });
    expect(plan.code, plan.stderr).toBe(0);
    // Before: `b runs  upstream task "a" runs first (it may still hit if that task's outputs come out unchanged)`.
    expect(plan.stdout).toMatch(/^b\s+runs\s+no cache entry matches it, whatever upstream task "a" hands it: the function of task `b` changed/m);
    const explain = await cairn(["explain", "flow.ts", "b"], { cwd });
    expect(explain.code, explain.stderr).toBe(0);
    // Before: "Its inputs are known only once the upstream tasks have run, so its key cannot be computed yet."
    expect(explain.stdout).toMatch(/^Nearest earlier entry: run [0-9a-f]{32}, from .*\. Since then, whatever its inputs turn out to be:\n {2}- the function of task `b` changed/m);
    expect(explain.stdout).not.toContain("cannot be computed yet");
  });

  it("plan and explain of a task a run failed for say so, with its run, date and error, not that it is new (nor that its last run failed)", async () => {
    const cwd = await tmp();
    await writeFile(
      join(cwd, "flow.ts"),
      `import { flow, task } from "cairn-dag";\nconst t = task("t").input<{ n: number }>().run(({ n }) => { throw new Error("no data for " + n); });\nexport default flow("fails").build(() => ({ v: t({ n: 7 }) }));\n`,
    );
    const run = await cairn(["run", "flow.ts", "--json"], { cwd });
    expect(run.code).toBe(1);
    const runId = (run.json.find((e) => e.type === "task" && e.task === "t" && e.status === "failed") as { taskRunId: string }).taskRunId;
    expect(runId).toMatch(/^[0-9a-f]{32}$/);
    const plan = await cairn(["plan", "flow.ts"], { cwd });
    expect(plan.code, plan.stderr).toBe(0);
    // Before: "no cache entry for these inputs and code", as if it never ran.
    expect(plan.stdout).toMatch(new RegExp(`^t\\s+runs\\s+no cache entry for these inputs and code: a run with this key failed \\(run ${runId}, \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\); no entry is stored for it`, "m"));
    const explain = await cairn(["explain", "flow.ts", "t"], { cwd });
    expect(explain.code, explain.stderr).toBe(0);
    // Before: `No earlier cache entry of task "t" in the cache store at ...`.
    expect(explain.stdout).toContain(`A run with these inputs and code failed: run ${runId}, started `);
    expect(explain.stdout).toContain(`: Error: no data for 7; no entry is stored for them. \`cairn show ${runId}\` shows its error; a run computes it again.`);
    expect(explain.stdout).not.toContain("No earlier cache entry");
  });

  it("plan and explain of a task whose run was cancelled by Ctrl-C say so, with its run and SIGINT, not that it is new", async () => {
    const cwd = await tmp();
    await writeFile(
      join(cwd, "flow.ts"),
      `import { flow, task } from "cairn-dag";\nconst t = task("t").input<{ n: number }>().run((_, ctx) => new Promise((_r, j) => { const t = setTimeout(() => j(new Error("not cancelled")), 60_000); ctx.signal.addEventListener("abort", () => (clearTimeout(t), j(ctx.signal.reason))); }));\nexport default flow("interrupted").build(() => ({ v: t({ n: 7 }) }));\n`,
    );
    let sent = false;
    const live = start(process.execPath, [cairnBin, "run", "flow.ts", "--json"], {
      cwd,
      env: childEnv(),
      onStdout: (out, child) => {
        if (!sent && jsonLines(out).some((e) => e.type === "task" && e.status === "running")) (sent = true), child.kill("SIGINT");
      },
    });
    const run = await live.done;
    expect(run.code, run.stderr + run.stdout).toBe(130);
    const runId = (run.json.find((e) => e.type === "task" && e.task === "t" && e.status === "cancelled") as { taskRunId: string }).taskRunId;
    expect(runId).toMatch(/^[0-9a-f]{32}$/);
    const plan = await cairn(["plan", "flow.ts"], { cwd });
    expect(plan.code, plan.stderr).toBe(0);
    // Before: "no cache entry for these inputs and code", as if it never ran.
    expect(plan.stdout).toMatch(new RegExp(`^t\\s+runs\\s+no cache entry for these inputs and code: a run with this key was cancelled \\(run ${runId}, \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\): the flow run was cancelled: SIGINT; no entry is stored for it`, "m"));
    const explain = await cairn(["explain", "flow.ts", "t"], { cwd });
    expect(explain.code, explain.stderr).toBe(0);
    // Before: `No earlier cache entry of task "t" in the cache store at ...`.
    expect(explain.stdout).toMatch(new RegExp(`A run with these inputs and code was cancelled: run ${runId}, started \\S+ \\(the flow run was cancelled: SIGINT\\); no entry is stored for them\\. A run computes it again\\.`));
    expect(explain.stdout).not.toContain("No earlier cache entry");
  });

  it("explain of a key whose failed run is past the search's bound says where the search stopped, not only that the key is new", async () => {
    const cwd = await tmp();
    await writeFile(
      join(cwd, "flow.ts"),
      `import { flow, task } from "cairn-dag";\nconst t = task("t").input<{ n: number }>().run(({ n }) => { throw new Error("no data for " + n); });\nexport default flow("fails-long-ago").build(() => ({ v: t({ n: 7 }) }));\n`,
    );
    const run = await cairn(["run", "flow.ts", "--json"], { cwd });
    expect(run.code).toBe(1);
    const runId = (run.json.find((e) => e.type === "task" && e.task === "t" && e.status === "failed") as { taskRunId: string }).taskRunId;
    // 2,000 newer runs of the experiment: the failed one is past what the search reads.
    const store = new LocalStore({ root: join(cwd, ".cairn") });
    const { experimentId, startTime } = (await store.getRun(runId))!;
    for (let i = 1; i <= 2000; i++) await store.recordRun({ experimentId, name: `filler-${i}`, startTime: startTime + i, status: "FINISHED" });
    await store.flush();
    const explain = await cairn(["explain", "flow.ts", "t"], { cwd });
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout).not.toContain("A run with these inputs and code failed");
    // Before: `No earlier cache entry of task "t" in the cache store at ...`, and nothing more.
    expect(explain.stdout).toContain(
      "No failed or cancelled run with these inputs and code among the experiment's 2,000 newest runs, where the search stops: an older one may have failed or been cancelled.",
    );
  });

  it("explain of a miss whose earlier entry another Cairn build wrote says so; of one this build wrote, not", async () => {
    const cwd = await tmp();
    const flowFile = (up: number) => `import { flow, task } from "cairn-dag";\nconst a = task("a").run(() => ({ v: ${up} }));\nexport default flow("upgraded").build(() => ({ v: a().v }));\n`;
    await writeFile(join(cwd, "flow.ts"), flowFile(1));
    expect((await cairn(["run", "flow.ts"], { cwd })).code).toBe(0);
    const entries = join(cwd, ".cairn", "cache", "entries");
    const [file] = (await readdir(entries)).filter((n) => n.endsWith(".json")).map((n) => join(entries, n));
    // keyv's record: the entry is its value.
    const stored = JSON.parse(await readFile(file!, "utf8")) as { value: { cairn?: string } };
    // The entry names the Cairn that wrote it: this workspace's.
    expect(stored.value.cairn).toBe("0.1.0+workspace");
    await writeFile(join(cwd, "flow.ts"), flowFile(2));
    const same = await cairn(["explain", "flow.ts", "a"], { cwd });
    expect(same.code, same.stderr).toBe(0);
    expect(same.stdout).toContain("- the function of task `a` changed");
    expect(same.stdout).not.toContain("made by Cairn");
    // As if an older install had written it.
    await writeFile(file!, JSON.stringify({ ...stored, value: { ...stored.value, cairn: "0.1.0+0000000" } }));
    const other = await cairn(["explain", "flow.ts", "a"], { cwd });
    expect(other.code, other.stderr).toBe(0);
    expect(other.stdout).toContain("The earlier entry was made by Cairn 0.1.0+0000000, this is 0.1.0+workspace: an upgrade can change how keys are made.\n");
  });

  it("report --out over an existing file leaves it whole when the write fails part-way (a full disk), with no temp file beside it", async () => {
    const cwd = await tmp();
    await writeFile(join(cwd, "flow.ts"), `import { flow, task } from "cairn-dag";\nconst t = task("t").run(() => ({ v: 1 }));\nexport default flow("rep").build(() => ({ v: t().v }));\n`);
    expect((await cairn(["run", "flow.ts"], { cwd })).code).toBe(0);
    const out = join(cwd, "report.html");
    await writeFile(out, "the report of last week\n");
    // ulimit -f counts 512-byte blocks: the report's write fails after the first with a real EFBIG, as a full disk cuts it.
    const r = await start("sh", ["-c", `ulimit -f 1 && exec "$0" "$@"`, process.execPath, cairnBin, "report", "latest", "--out", out], { cwd, env: childEnv() }).done;
    // An output that could not be written: the command failed at its work (exit 1), not a usage error (2).
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `^cairn: Cannot write the report to ${out}: EFBIG: file too large, write\\. Raise this shell's file size limit \\(ulimit -f\\), or pass --out FILE on a file system that takes a file this large; a file already there is left as it was\\.\\n$`,
      ),
    );
    expect(await readFile(out, "utf8")).toBe("the report of last week\n");
    expect((await readdir(cwd)).filter((name) => name.includes("report.html"))).toEqual(["report.html"]);
    const written = await cairn(["report", "latest", "--out", out], { cwd });
    expect(written.code, written.stderr).toBe(0);
    expect(await readFile(out, "utf8")).toMatch(/^<!doctype html>/i);
    // A full disk (a small tmpfs, where this process may mount one): exit 1, saying to free space.
    const disk = await tmp();
    if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", disk]).status !== 0) return;
    try {
      await writeFile(join(disk, "filler"), Buffer.alloc(256 * 1024)).catch(() => {});
      const full = await cairn(["report", "latest", "--out", join(disk, "report.html")], { cwd });
      expect(full.code).toBe(1);
      expect(full.stderr).toContain(`cairn: Cannot write the report to ${join(disk, "report.html")}: ENOSPC: no space left on device, write. Free space there, or pass --out FILE on another disk;`);
    } finally {
      spawnSync("umount", [disk]);
    }
  });

  it("report --out over an existing file keeps its mode (0600 stays private, 0666 is not cut by the umask); a new file gets 0666 & ~umask", async () => {
    const cwd = await tmp();
    await writeFile(join(cwd, "flow.ts"), `import { flow, task } from "cairn-dag";\nconst t = task("t").run(() => ({ v: 1 }));\nexport default flow("rep").build(() => ({ v: t().v }));\n`);
    expect((await cairn(["run", "flow.ts"], { cwd })).code).toBe(0);
    const umask = 0o022;
    const report = (out: string) => start("sh", ["-c", `umask 022 && exec "$0" "$@"`, process.execPath, cairnBin, "report", "latest", "--out", out], { cwd, env: childEnv() }).done;
    for (const mode of [0o600, 0o666, 0o640]) {
      const out = join(cwd, `kept-${mode.toString(8)}.html`);
      await writeFile(out, "the report of last week\n");
      await chmod(out, mode);
      const r = await report(out);
      expect(r.code, r.stderr).toBe(0);
      expect(await readFile(out, "utf8")).toMatch(/^<!doctype html>/i);
      expect([out, (await stat(out)).mode & 0o7777]).toEqual([out, mode]);
    }
    const fresh = join(cwd, "new.html");
    expect((await report(fresh)).code).toBe(0);
    expect((await stat(fresh)).mode & 0o7777).toBe(0o666 & ~umask);
  });

  it("report --out to what is not a file (a named pipe, /dev/stdout) writes into it, and leaves it what it was: renamed over, /dev/null became a file for the whole machine", async () => {
    const cwd = await tmp();
    await writeFile(join(cwd, "flow.ts"), `import { flow, task } from "cairn-dag";\nconst t = task("t").run(() => ({ v: 1 }));\nexport default flow("rep").build(() => ({ v: t().v }));\n`);
    expect((await cairn(["run", "flow.ts"], { cwd })).code).toBe(0);
    const fifo = join(cwd, "report.pipe");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const reader = start("cat", [fifo], { cwd, env: childEnv() }).done;
    const r = await cairn(["report", "latest", "--out", fifo], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect((await reader).stdout).toMatch(/^<!doctype html>/i);
    expect((await stat(fifo)).isFIFO()).toBe(true);
    expect((await readdir(cwd)).filter((name) => name.includes("report.pipe"))).toEqual(["report.pipe"]);
    const toStdout = await start("sh", ["-c", `exec "$0" "$@" | cat`, process.execPath, cairnBin, "report", "latest", "--out", "/dev/stdout"], { cwd, env: childEnv() }).done;
    expect(toStdout.code, toStdout.stderr).toBe(0);
    expect(toStdout.stdout).toMatch(/^<!doctype html>/i);
  });

  it("prints the Report: path of a project folder whose name holds an escape sequence and a newline escaped, on one line", async () => {
    const cwd = await tmp();
    const odd = join(cwd, "esc\u001b[31mRED\u001b[0m\nline");
    await mkdir(odd);
    await writeFile(join(odd, "flow.ts"), `import { flow, task } from "cairn-dag";\nconst t = task("t").run(() => ({ v: 1 }));\nexport default flow("odd").build(() => ({ v: t().v }));\n`);
    const r = await cairn(["run", "flow.ts"], { cwd: odd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Report: ${cwd}/esc\\\\x1b\\[31mRED\\\\x1b\\[0m\\\\nline/\\.cairn/artifacts/[0-9a-f]{32}/cairn/report\\.html$`, "m"));
    expect(r.stdout).not.toContain("\u001b");
  });

  it("plan and run from another folder say when a .cairn beside the flow file holds its entries and the working directory has none", async () => {
    const cwd = await tmp();
    await writeFile(join(cwd, "flow.ts"), `import { flow, task } from "cairn-dag";\nconst t = task("t").run(() => ({ v: 1 }));\nexport default flow("beside").build(() => ({ v: t().v }));\n`);
    const first = await cairn(["run", "flow.ts"], { cwd });
    expect(first.stderr).toBe("");
    const sub = join(cwd, "sub");
    await mkdir(sub);
    const note = `cairn: note: using ${join(sub, ".cairn")} (.cairn in the working directory, new); ${join(cwd, ".cairn")}, beside ../flow.ts, has runs and cache entries of its own: pass --root ${join(cwd, ".cairn")} to use them.\n`;
    const plan = await cairn(["plan", "../flow.ts"], { cwd: sub });
    expect(plan.stderr).toBe(note);
    expect(plan.stdout).toMatch(/t\s+run/);
    expect((await cairn(["plan", "../flow.ts", "--root", join(cwd, ".cairn")], { cwd: sub })).stderr).toBe("");
    await rm(join(sub, ".cairn"), { recursive: true, force: true }); // plan's lookup made it
    const run = await cairn(["run", "../flow.ts"], { cwd: sub });
    expect(run.stderr).toBe(note);
    // Once the working directory has its own, it is the user's choice: no note.
    expect((await cairn(["run", "../flow.ts"], { cwd: sub })).stderr).toBe("");
  });
});

describe("cairn explain names the true cause of a miss", () => {
  it("an entry past its ttl: which run made it, how long ago it expired, its ttl; no 'earlier entry' hunt, and nothing on disk changes", async () => {
    const cwd = await tmp();
    await writeFile(join(cwd, "flow.ts"), `import { flow, task } from "cairn-dag";\nconst t = task("brief").cache({ ttl: "1s" }).run(() => ({ v: 1 }));\nexport default flow("brief").build(() => ({ v: t().v }));\n`);
    const run = await cairn(["run", "flow.ts", "--json"], { cwd });
    expect(run.code, run.stderr).toBe(0);
    const runId = (run.stdout.split("\n").map((l) => (l ? JSON.parse(l) : {})) as Array<{ status?: string; taskRunId?: string }>).find((e) => e.status === "succeeded" && e.taskRunId)!.taskRunId;
    await new Promise((r) => setTimeout(r, 1500));
    const entries = join(cwd, ".cairn", "cache", "entries");
    const before = await readdir(entries);
    const explain = await cairn(["explain", "flow.ts", "brief"], { cwd });
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout.split("\n")).toEqual([
      expect.stringMatching(new RegExp(`^brief would run: its entry from run ${runId} expired [\\d.]+ (?:ms|s) ago \\(ttl 1 s, at \\S+Z\\)\\.$`)),
      "Nothing else changed: its inputs and code are that entry's. A run deletes it and computes them again (`.cache({ ttl })` sets how long entries last).",
      "",
    ]);
    expect(await readdir(entries)).toEqual(before);
  });

  it("a task whose inputs fail its schema, or whose caching is off, is not said to wait on upstream tasks; one below a task that runs is", async () => {
    const cwd = await tmp();
    await writeFile(
      join(cwd, "flow.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        `import { z } from "zod";`,
        `const positive = task("positive").input(z.object({ n: z.number().positive() })).run(({ n }) => ({ m: n }));`,
        `const loose = task("loose").cache(false).run(() => ({ v: 1 }));`,
        `const up = task("up").run(() => ({ k: 1 }));`,
        `const down = task("down").input<{ k: number }>().run(({ k }) => ({ j: k }));`,
        `export default flow("refused").build(() => ({ m: positive({ n: -1 }).m, v: loose().v, j: down({ k: up().k }).j }));`,
      ].join("\n"),
    );
    const explain = async (task: string) => {
      const r = await cairn(["explain", "flow.ts", task], { cwd });
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim().split("\n");
    };
    // Before, each also said "Its inputs are known only once the upstream tasks have run": they have none.
    expect(await explain("positive")).toEqual([expect.stringMatching(/^positive would run: fails before it starts: its inputs do not match its input schema \(.*\)\.$/)]);
    expect(await explain("loose")).toEqual(["loose would run: caching is off for this task."]);
    expect(await explain("down")).toEqual([
      'down would run: no cache entry of this task yet, whatever upstream task "up" hands it.',
      expect.stringMatching(/^No earlier cache entry of task "down" in the cache store at .*, whatever its inputs turn out to be \(they are known only once the upstream tasks have run\)\.$/),
    ]);
  });
});
