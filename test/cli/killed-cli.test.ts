/**
 * `cairn run` killed with SIGKILL (`kill -9`, the OOM killer) while a shell task runs: the
 * unmasked copy Cairn keeps of the task's stdout (its output when it writes no $CAIRN_OUTPUTS)
 * must not stay on disk, where what the task printed (a secret among it) would outlive the run.
 * Real processes: `cairn run` as a child, killed for real.
 */
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cairnBin, childEnv, start, tmp } from "../cache/helpers.ts";
import { waitFor } from "../kinds/helpers.ts";
import { fixture } from "./helpers.ts";

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** Process groups to end after each test: the task's, which outlives a killed `cairn`. */
const groups: number[] = [];
afterEach(() => {
  for (const pid of groups.splice(0)) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

describe("cairn run killed with SIGKILL while a shell task runs", () => {
  it("leaves no file in TMPDIR holding what the task printed", async () => {
    const cwd = await tmp("cairn-cli-killed-");
    const temp = join(cwd, "tmp");
    mkdirSync(temp);
    const token = `tok-${process.pid}-${Date.now()}-unmasked`;
    const pidFile = join(cwd, "task.pid");
    const live = start(process.execPath, [cairnBin, "run", fixture("prints-token.flow.ts"), "--no-cache", "--no-tracking"], {
      cwd,
      env: childEnv({ TMPDIR: temp, TOKEN: token, PID_FILE: pidFile }),
    });
    if (live.child.pid) groups.push(live.child.pid);
    // The task printed the token, and Cairn read it: the CLI shows the line.
    let out = "";
    live.child.stdout!.on("data", (d: Buffer) => (out += d));
    expect(await waitFor(() => out.includes(`[talk] the token is ${token}`), 20_000), out).toBe(true);
    expect(await waitFor(() => statSafe(pidFile) > 0, 5000)).toBe(true);
    groups.push(Number(readFileSync(pidFile, "utf8")));
    live.child.kill("SIGKILL");
    await live.done;
    // Cairn's temp folder for the task is there (it held the copy); no file in TMPDIR holds the token.
    expect(readdirSync(temp).some((name) => name.startsWith("cairn-task-"))).toBe(true);
    const holding = filesUnder(temp).filter((file) => readFileSync(file, "utf8").includes(token));
    expect(holding).toEqual([]);
  }, 60_000);
});

/** The size of `file`, or -1 when it is not there. */
function statSafe(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return -1;
  }
}
