/**
 * What a run carries is printed, never obeyed: control characters in a task's log line, an
 * error, a param or a metric name (anyone's, with a shared server) reach the terminal as
 * escapes, from `cairn run` and `cairn show`; a log message's every line carries its task's
 * prefix, so none can pass for a line of Cairn's own.
 */
import { describe, expect, it } from "vitest";
import { cairn, fixture, tmp } from "./helpers.ts";

const file = fixture("hostile-text.flow.ts");
/** ESC, BEL, CR, BS and the C1 CSI: what a terminal acts on. */
const OBEYED = /[\u001b\u0007\r\b\u009b]/;

describe("text from a run on a terminal", () => {
  it("is shown with its control characters escaped, and a log message's lines each carry the task's prefix", async () => {
    const cwd = await tmp("cairn-terminal-");
    // A newline in a param, shown by `cairn show`, must not add a line of its own.
    const param = "PARAM:\u001b]0;title\u0007\u001b[31m\nstatus: FINISHED (faked)";
    const run = await cairn(["run", file, "-p", `note=${param}`], { cwd, env: { NO_COLOR: "1" } });
    expect(run.code).toBe(1); // the flow fails, as the fixture means it to
    for (const text of [run.stdout, run.stderr]) expect(text).not.toMatch(OBEYED);
    expect(run.stdout).toContain("[speak] LOG:\\x1b[2J\\x1b]0;pwned\\x07\\x1b]8;;http://evil.example\\x07CLICK\\x1b]8;;\\x07\\rOVER\\bX\\x9b31m");
    expect(run.stdout).toContain("[speak] first line\n[speak] 12:00:00 ✓ succeeded fake-task");
    expect(run.stdout).toContain("ERR:\\x1b[2J");

    const json = await cairn(["run", file, "-p", `note=${param}`, "--json", "--rerun", "speak"], { cwd });
    expect(json.stderr).not.toMatch(OBEYED);
    expect(json.stderr).toContain("[speak] first line\n[speak] 12:00:00 ✓ succeeded fake-task");

    const flowRun = JSON.parse(json.stdout.trim().split("\n").at(-1)!) as { runId: string };
    const shown = await cairn(["show", flowRun.runId], { cwd, env: { NO_COLOR: "1" } });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).not.toMatch(OBEYED);
    expect(shown.stdout).toContain("note=PARAM:\\x1b]0;title\\x07\\x1b[31m\\nstatus: FINISHED (faked)");
    expect(shown.stdout).not.toMatch(/^status: FINISHED/m);
    const speak = (JSON.parse((await cairn(["show", flowRun.runId, "--json"], { cwd })).stdout) as { tasks: Array<{ name: string; runId: string }> }).tasks.find((t) => t.name === "speak")!;
    const task = await cairn(["show", speak.runId], { cwd, env: { NO_COLOR: "1" } });
    expect(task.stdout).not.toMatch(OBEYED);
    expect(task.stdout).toContain("m\\x1b[2J\\x1b]=1");
    const failRun = (JSON.parse((await cairn(["show", flowRun.runId, "--json"], { cwd })).stdout) as { tasks: Array<{ name: string; runId: string }> }).tasks.find((t) => t.name === "fail")!;
    const failed = await cairn(["show", failRun.runId], { cwd, env: { NO_COLOR: "1" } });
    expect(failed.stdout).not.toMatch(OBEYED);
    expect(failed.stdout).toContain("ERR:\\x1b[2J\\x1b]0;pwned");
  }, 60_000);

  it("a task's error of several lines: each line after the first carries the task's prefix, in the plain view", async () => {
    const run = await cairn(["run", fixture("prints-itself.flow.ts"), "--no-cache"], { env: { NO_COLOR: "1" } });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toMatch(/ ✗ failed +fail +\d+ms +boom\n\[fail\] 00:00:00 ✓ succeeded {2}notreal\n\[fail\] {3}✓ succeeded notreal\n {4}at \S*prints-itself\.flow\.ts:\d+:\d+\n/);
    expect(run.stdout).not.toMatch(/^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z |\d\d:\d\d:\d\d | {2})?✓ succeeded +notreal/m);
  }, 60_000);
});
