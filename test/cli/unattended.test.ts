/**
 * `cairn run` from cron and CI, where no one watches a terminal: a failure reaches stderr (what a
 * crontab that sends stdout to /dev/null mails), an error before the run is an event under
 * `--json`, each line tells the day it was written on, and `--quiet` prints only what needs a look.
 */
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { cairnBin, childEnv, jsonLines, start } from "../cache/helpers.ts";
import { reliabilityFixture, taskRunning } from "../reliability/helpers.ts";
import { cairn, fixture, repo, tmp } from "./helpers.ts";

const flowFile = fixture("unattended.flow.ts");
/** Four items, the third of which (item 7, `square[2]`) fails with an error of seven lines. */
const failing = ["-p", "items=[5,6,7,8]", "-p", "fail=7"];

describe("a flow that fails or is cancelled says so on stderr too", () => {
  it("which tasks failed, the first and last lines of each error, the run id and where to see more", async () => {
    const cwd = await tmp("cairn-cli-unattended-");
    const r = await cairn(["run", flowFile, ...failing], { cwd });
    expect(r.code).toBe(1);
    const runId = /Flow failed in .*, run ([0-9a-f]{32})/.exec(r.stdout)![1]!;
    expect(r.stderr).toContain(`cairn: flow "unattended" failed in `);
    expect(r.stderr).toContain(`, run ${runId}: 2 tasks failed\n`);
    expect(r.stderr).toContain("\n  square[2]: cannot square 7\n    … (3 lines left out)\n    line 5\n    line 6\n    line 7\n    at ");
    expect(r.stderr).not.toContain("line 4");
    // Where the task's whole error is on this machine, a path a CI step can upload; on stdout too.
    const errorFile = /\n {4}at [^\n]*\n {4}whole error: (\.cairn\/artifacts\/[0-9a-f]{32}\/cairn\/error\.txt)\n/.exec(r.stderr)?.[1];
    expect(errorFile, r.stderr).toBeDefined();
    expect(readFileSync(join(cwd, errorFile!), "utf8")).toMatch(/^Error: cannot square 7\nline 2 of the error\n[^]*\n {4}at /);
    expect(r.stdout).toContain(`\nsquare[2]: whole error: ${errorFile}\n`);
    expect(r.stderr).toContain(`cairn: \`cairn show ${runId}\` lists each task and what it failed with; \`cairn show TASK_RUN_ID\`, with a task's run id from that list, prints its whole error.\n`);
    expect(r.stderr).toMatch(/cairn: Report: .*report\.html\n$/);
    // stdout keeps the run's own view, table and all.
    expect(r.stdout).toMatch(/^square\[2\] +failed/m);
  });

  it("a Python script's traceback: its exception, not its first frames, in the summary, the flow's error and cairn show", async () => {
    const cwd = await tmp("cairn-cli-traceback-");
    const r = await cairn(["run", fixture("py-traceback.flow.ts")], { cwd });
    expect(r.code).toBe(1);
    const runId = /Flow failed in .*, run ([0-9a-f]{32})/.exec(r.stdout)![1]!;
    // The summary on stderr: what failed, then the traceback's last lines.
    expect(r.stderr).toMatch(/\n {2}fit: Task "fit": `[^`]*py-traceback\.py` exited with code 1\. Last \d+ lines of stderr:\n {4}… \(\d+ lines left out\)\n/);
    expect(r.stderr).toContain("\n      | ZeroDivisionError: division by zero\n");
    expect(r.stderr).not.toContain("Traceback (most recent call last)");
    // The flow run's error, as `cairn show` of the flow run prints it from its `cairn.error` tags.
    const show = await cairn(["show", runId], { cwd });
    expect(show.code).toBe(0);
    const error = show.stdout.split("\n\n")[0]!;
    expect(error).toMatch(/error: TaskFailed: task "fit" failed: Task "fit": `[^`]*` exited with code 1\./);
    expect(error).toContain("ZeroDivisionError: division by zero");
    expect(error).toMatch(/… \(\d+ lines left out\)/);
    // A task run's page has its whole error.
    const taskRunId = new RegExp(`^fit\\s+FAILED\\s+\\S+\\s+([0-9a-f]{32})`, "m").exec(show.stdout)![1]!;
    const task = await cairn(["show", taskRunId], { cwd });
    expect(task.stdout).toContain("Traceback (most recent call last)");
    expect(task.stdout).toContain("ZeroDivisionError: division by zero");
    // The summary names the process's logs by their paths, not only as "logs/stdout.txt".
    const logs = `.cairn/artifacts/${taskRunId}/logs`;
    const files = `whole error: .cairn/artifacts/${taskRunId}/cairn/error.txt; logs: ${logs}/stdout.txt, ${logs}/stderr.txt`;
    expect(r.stderr).toContain(`\n    ${files}\n`);
    expect(task.stdout).toContain(`\n${files}\n`);
    expect(readFileSync(join(cwd, logs, "stderr.txt"), "utf8")).toContain("ZeroDivisionError: division by zero");
  });

  it("not a second time where stdout and stderr are one file (>log 2>&1)", async () => {
    const cwd = await tmp("cairn-cli-cron-");
    const child = spawn("/bin/sh", ["-c", `"${process.execPath}" "${cairnBin}" run "${flowFile}" ${failing.map((a) => `'${a}'`).join(" ")} >log 2>&1`], { cwd, env: childEnv() });
    const code = await new Promise<number | null>((resolveExit) => child.on("close", resolveExit));
    expect(code).toBe(1);
    const log = readFileSync(join(cwd, "log"), "utf8");
    expect(log).toMatch(/Flow failed in /);
    expect(log).not.toContain(`cairn: flow "unattended" failed`);
    // The paths the stderr summary would name are in the one log all the same.
    expect(log).toMatch(/\nsquare\[2\]: whole error: \.cairn\/artifacts\/[0-9a-f]{32}\/cairn\/error\.txt\n/);
  });

  it("a succeeded flow writes nothing there", async () => {
    const r = await cairn(["run", flowFile, "-p", "items=[1,2]"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
  });

  it("a cancelled one says why, with --json too (its events on stdout, the summary on stderr)", async () => {
    const cwd = await tmp("cairn-cli-cron-");
    let sent = false;
    const live = start(process.execPath, [cairnBin, "run", reliabilityFixture("slow-task.flow.ts"), "--json"], {
      cwd,
      env: childEnv({ SLOW_MS: "60000" }),
      onStdout: (out, child) => {
        if (!sent && taskRunning("slow")(jsonLines(out))) sent = child.kill("SIGTERM");
      },
    });
    const exit = await live.done;
    expect(exit.code, exit.stderr).toBe(130);
    expect(exit.stderr).toMatch(/\ncairn: flow "slow-task" cancelled in .*, run [0-9a-f]{32}: The flow run was cancelled: SIGTERM\.\n/);
    for (const line of exit.stdout.trim().split("\n")) expect(() => JSON.parse(line), line).not.toThrow();
  });
});

describe("cairn run --json: an error before the run is one event on stdout", () => {
  const errorEvent = (stdout: string) => {
    const lines = stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    return JSON.parse(lines[0]!) as { type: string; exitCode: number; error: { name: string; message: string }; time: number };
  };

  it.each([
    ["a -p the flow does not take", ["run", flowFile, "--json", "-p", "bogus=1"], {}, 2, "ParamError", /has no param "bogus"/],
    ["a flag run does not take", ["run", flowFile, "--bogus", "--json"], {}, 2, "UsageError", /Unknown option '--bogus' for cairn run/],
    ["a flow file that does not load", ["run", "missing.flow.ts", "--json"], {}, 2, "FlowFileError", /Flow file missing\.flow\.ts does not exist/],
    // Once the run's reporter took stdout (it diverts the process's own writes to stderr).
    ["a server that does not answer", ["run", flowFile, "--json"], { MLFLOW_TRACKING_URI: "http://127.0.0.1:9" }, 3, "TrackerUnreachableError", /Cannot reach the MLflow tracking server/],
  ] as Array<[string, string[], NodeJS.ProcessEnv, number, string, RegExp]>)("%s", async (_, args, env, code, name, message) => {
    const r = await cairn(args, { env });
    expect(r.code).toBe(code);
    const event = errorEvent(r.stdout);
    expect(event).toMatchObject({ type: "error", exitCode: code, error: { name } });
    expect(event.error.message).toMatch(message);
    expect(event.time).toBeGreaterThan(Date.now() - 60_000);
    // The plain text stays on stderr.
    expect(r.stderr).toContain(`cairn: ${name}: ${event.error.message}`);
  });

  it("without --json, stdout has none", async () => {
    const r = await cairn(["run", flowFile, "-p", "bogus=1"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
  });
});

describe("off a terminal, each line is stamped with the date and time", () => {
  it("ISO 8601 in UTC, as cairn worker stamps its lines (a log appended to daily tells the days apart)", async () => {
    const before = new Date().toISOString().slice(0, 10);
    const r = await cairn(["run", flowFile, "-p", "items=[1,2]"]);
    expect(r.code).toBe(0);
    const stamped = r.stdout.split("\n").filter((line) => /^\S+ (flow |▶|✓)/.test(line));
    expect(stamped.length).toBeGreaterThanOrEqual(5);
    for (const line of stamped) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (flow unattended started, run [0-9a-f]{32}|▶ running|✓ succeeded)/);
    expect(stamped[0]!.slice(0, 10) >= before).toBe(true);
  });
});

describe("past 40 tasks, the summary's table lists only what did not succeed, then counts every task", () => {
  it("an all-hit run of 54 tasks has no table, only the count README quotes", async () => {
    const cwd = await tmp("cairn-cli-cron-");
    expect((await cairn(["run", flowFile], { cwd })).code).toBe(0);
    const again = await cairn(["run", flowFile], { cwd });
    expect(again.code).toBe(0);
    expect(again.stdout).not.toMatch(/^task +status +duration +run id$/m);
    expect(again.stdout).toContain("\n54 tasks: 1 succeeded, 53 cached\n");
    // README said every run ends with the table.
    expect(readFileSync(join(repo, "README.md"), "utf8").replace(/\s+/g, " ")).toContain(
      "Past 40 tasks (a map's items count, each its own), the table lists only the tasks that neither succeeded nor came from the cache, and successes that were not recorded, at most 40 (no table when there are none: a run where all succeeded or hit has none), and a line under it counts every task by status, `54 tasks: 1 succeeded, 53 cached`",
    );
  });
});

describe("--quiet (-q): only failures, warnings and the flow's closing line", () => {
  const closing = (status: string) => new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z Flow ${status} in \\S+, run [0-9a-f]{32}$`);

  it("a run that goes well: its warning and the closing line; an all-hit re-run: the closing line alone", async () => {
    const cwd = await tmp("cairn-cli-cron-");
    const first = await cairn(["run", flowFile, "--quiet"], { cwd });
    expect(first.code).toBe(0);
    const lines = first.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe("[square[0]] item 0 squares to nothing");
    expect(lines[1]).toMatch(closing("succeeded"));
    // Without it, the same all-hit run prints a line per item (62 lines for 54 tasks).
    expect((await cairn(["run", flowFile], { cwd })).stdout.split("\n").length).toBeGreaterThan(55);
    const again = await cairn(["run", flowFile, "-q"], { cwd });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(closing("succeeded").source.replace("$", "\\n$")));
    expect(again.stdout.split("\n")).toHaveLength(2);
  });

  it("a run that fails: the failed tasks with their errors and the closing line, no table; stderr's summary as ever", async () => {
    const r = await cairn(["run", flowFile, "-q", ...failing]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^\S+ ✗ failed +square\[2\] +\d+ms +cannot square 7$/m);
    expect(r.stdout).toMatch(/^\S+ ✗ failed +square +\d+ms +Map "square"/m);
    expect(r.stdout).not.toMatch(/running|succeeded|squaring|^task +status|Report:/m);
    expect(r.stdout.trimEnd().split("\n").at(-1)).toMatch(closing("failed"));
    expect(r.stderr).toContain(`cairn: flow "unattended" failed in `);
  });

  it("on a terminal too: no live view, the time of day", async () => {
    const command = [process.execPath, cairnBin, "run", flowFile, "-q", "-p", "items=[1]"].map((a) => `'${a}'`).join(" ");
    const { stdout } = await promisify(execFile)("script", ["-qfec", command, "/dev/null"], { cwd: await tmp("cairn-cli-cron-"), env: childEnv({ TERM: "xterm" }) });
    expect(stdout).toMatch(/^\d\d:\d\d:\d\d Flow succeeded in \S+, run [0-9a-f]{32}\r?\n$/);
  });

  it("is refused with --json, which prints every event (exit 2)", async () => {
    const r = await cairn(["run", flowFile, "-q", "--json"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("cairn: UsageError: Expected either --quiet or --json, got both");
  });
});
