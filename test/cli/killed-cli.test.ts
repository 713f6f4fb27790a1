/**
 * `cairn run` killed with SIGKILL (`kill -9`, the OOM killer) while a shell task runs: the
 * unmasked copy Cairn keeps of the task's stdout (its output when it writes no $CAIRN_OUTPUTS)
 * must not stay on disk, where what the task printed (a secret among it) would outlive the run;
 * the task's temp folder (its inputs) is removed by the next run, a live run's kept.
 * Real processes: `cairn run` as a child, killed for real.
 */
import { chownSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
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

describe("the temp folder of a task whose `cairn run` was killed with SIGKILL", () => {
  it("is removed by the next run's first process task; a live run's folder, another user's, a link and an older Cairn's are kept", async () => {
    const cwd = await tmp("cairn-cli-killed-folder-");
    const temp = join(cwd, "tmp");
    mkdirSync(temp);
    const naps = (name: string, nap: number) => {
      const pidFile = join(cwd, `${name}.pid`);
      const started = start(process.execPath, [cairnBin, "run", fixture("naps.flow.ts"), "--no-cache", "--no-tracking"], {
        cwd,
        env: childEnv({ TMPDIR: temp, PID_FILE: pidFile, NAP: String(nap) }),
      });
      if (started.child.pid) groups.push(started.child.pid);
      return { ...started, pidFile };
    };
    const folders = () => readdirSync(temp).filter((name) => name.startsWith("cairn-task-"));
    /** Waits for the task of `run` to write its pid, then gives the task folder that appeared. */
    const taskFolderOf = async (run: ReturnType<typeof naps>, before: string[]) => {
      expect(await waitFor(() => statSafe(run.pidFile) > 0, 30_000)).toBe(true);
      groups.push(Number(readFileSync(run.pidFile, "utf8")));
      const made = folders().filter((name) => !before.includes(name));
      expect(made).toHaveLength(1);
      return made[0]!;
    };

    const killed = naps("killed", 60);
    const killedFolder = await taskFolderOf(killed, []);
    // A run still under way when the next starts: its folder must stay.
    const live = naps("live", 60);
    const liveFolder = await taskFolderOf(live, [killedFolder]);
    killed.child.kill("SIGKILL");
    await killed.done;
    expect(readFileSync(join(temp, killedFolder, "inputs.json"), "utf8")).toBe("{}");

    // Beside them, by the same dead owner: a link to a folder elsewhere, and a folder of another user.
    // The folder names its maker (host, pid, start time, ...: see process-owner.ts), `:` written `+`.
    const owner = /^cairn-task-(.+)-[A-Za-z0-9]{6}$/.exec(killedFolder)?.[1] ?? `unnamed+${killed.child.pid}+`;
    const elsewhere = join(cwd, "elsewhere");
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, "keep.txt"), "kept");
    symlinkSync(elsewhere, join(temp, `cairn-task-${owner}-Link01`));
    mkdirSync(join(temp, `cairn-task-${owner}-Other1`));
    chownSync(join(temp, `cairn-task-${owner}-Other1`), 12345, 12345);
    // The same owner's pid, now held by another process (this one): judged by its start time, it is gone.
    mkdirSync(join(temp, `cairn-task-${owner.replace(`+${killed.child.pid}+`, `+${process.pid}+`)}-Reuse1`));
    // An older Cairn's folder names no owner: nothing tells whether its run is over.
    mkdirSync(join(temp, "cairn-task-Old123"));
    // The model kind's folders (the rows it predicts on, a downloaded file) by the same dead owner, and a live one's.
    const liveOwner = /^cairn-task-(.+)-[A-Za-z0-9]{6}$/.exec(liveFolder)![1]!;
    for (const name of [`cairn-predict-${owner}-Pred01`, `cairn-model-${owner}-Mode01`, `cairn-predict-${liveOwner}-Pred02`]) {
      mkdirSync(join(temp, name));
      writeFileSync(join(temp, name, "input.json"), "{}");
    }

    const next = naps("next", 0);
    const exit = await next.done;
    expect(exit.code, exit.stderr).toBe(0);
    expect(folders().sort()).toEqual([liveFolder, `cairn-task-${owner}-Link01`, `cairn-task-${owner}-Other1`, "cairn-task-Old123"].sort());
    expect(readFileSync(join(elsewhere, "keep.txt"), "utf8")).toBe("kept");
    expect(readdirSync(temp).filter((name) => /^cairn-(predict|model)-/.test(name))).toEqual([`cairn-predict-${liveOwner}-Pred02`]);
    expect(owner).toMatch(new RegExp(`\\+${killed.child.pid}\\+t\\d+\\+s`));
    live.child.kill("SIGKILL");
    await live.done;
  }, 120_000);
});

/** The size of `file`, or -1 when it is not there. */
function statSafe(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return -1;
  }
}
