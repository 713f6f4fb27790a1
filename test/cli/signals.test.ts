/**
 * A signal that ends `cairn run` from outside cancels the run instead: running tasks are aborted,
 * every run is closed as KILLED by the process itself (nothing is left for the next command to
 * close), and it exits 130. SIGHUP is the terminal closing or an SSH session dropping.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairnBin, childEnv, jsonLines, killGroup, start, tmp } from "../cache/helpers.ts";
import { waitFor } from "../kinds/helpers.ts";
import { cairn, reliabilityFixture, taskRunning } from "../reliability/helpers.ts";
import { fixture } from "./helpers.ts";

const flowFile = reliabilityFixture("slow-task.flow.ts");

/** `cairn run` of a task that sleeps a minute, resolved once the task runs. */
async function runningSlowTask() {
  const root = await tmp("cairn-cli-signal-");
  let running!: () => void;
  const slowRunning = new Promise<void>((r) => (running = r));
  const live = start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", root], {
    env: childEnv({ SLOW_MS: "60000" }),
    onStdout: (out) => taskRunning("slow")(jsonLines(out)) && running(),
  });
  await slowRunning;
  return { root, live };
}

describe.each(["SIGHUP", "SIGTERM"] as const)("cairn run sent %s mid-task", (signal) => {
  it("cancels the run, closes its records as KILLED and exits 130", async () => {
    const { root, live } = await runningSlowTask();
    live.child.kill(signal);
    const exit = await live.done;
    expect(exit.signal).toBeNull();
    expect(exit.code, exit.stderr).toBe(130);
    expect(exit.stderr).toContain(`${signal}: cancelling the run`);
    const flowEnd = exit.json.filter((e) => e.type === "flow").at(-1);
    expect(flowEnd).toMatchObject({ status: "cancelled" });

    const after = await cairn(["runs", "--json", "--root", root]);
    expect(after.stderr).not.toMatch(/Closed/); // the run closed its own records
    expect((JSON.parse(after.stdout) as Array<{ status: string }>).map((r) => r.status)).toEqual(["KILLED"]);
  });
});

describe("cairn run that hangs up while it cancels", () => {
  it("goes on cancelling: a hang-up is not a second Ctrl-C", async () => {
    const { root, live } = await runningSlowTask();
    const cancelling = new Promise<void>((r) => live.child.stderr!.on("data", (d: Buffer) => String(d).includes("SIGINT: cancelling") && r()));
    live.child.kill("SIGINT");
    await cancelling;
    live.child.kill("SIGHUP");
    const exit = await live.done;
    expect(exit.code, exit.stderr).toBe(130);
    expect(exit.stderr).not.toContain("again: exiting now");
    const after = await cairn(["runs", "--json", "--root", root]);
    expect(after.stderr).not.toMatch(/Closed/);
    expect((JSON.parse(after.stdout) as Array<{ status: string }>).map((r) => r.status)).toEqual(["KILLED"]);
  });
});

describe("cairn run sent a signal while it still starts (its flow file loading)", () => {
  it.each(["SIGINT", "SIGTERM"] as const)("%s to its process group: one line says the run was cancelled before it started, exit 130, nothing recorded", async (signal) => {
    const dir = await tmp("cairn-cli-signal-starting-");
    const root = join(dir, ".cairn");
    const loading = join(dir, "loading");
    const live = start(process.execPath, [cairnBin, "run", fixture("slow-load.flow.ts"), "--root", root], {
      cwd: dir,
      env: childEnv({ LOADING_FILE: loading }),
    });
    const guard = setTimeout(() => killGroup(live.child), 60_000);
    try {
      expect(await waitFor(() => existsSync(loading), 30_000)).toBe(true);
      // To the whole group, as the terminal sends Ctrl-C.
      process.kill(-live.child.pid!, signal);
      const exit = await live.done;
      expect(exit.signal).toBeNull();
      expect(exit.code).toBe(130);
      expect(exit.stderr).toBe(`cairn: ${signal}: cancelled before the run started; nothing was run or recorded.\n`);
      expect(exit.stdout).toBe("");
      // Nothing left behind: no store made, so no run RUNNING in it (the --root folder itself is
      // made and probed before the flow loads, and left empty).
      expect(existsSync(root) ? readdirSync(root) : []).toEqual([]);
    } finally {
      clearTimeout(guard);
    }
  });

  it("under --json: the one line on stdout is the `error` event, exit code 130, as for any error that ends the command before its run", async () => {
    const dir = await tmp("cairn-cli-signal-starting-");
    const loading = join(dir, "loading");
    const live = start(process.execPath, [cairnBin, "run", fixture("slow-load.flow.ts"), "--json", "--root", join(dir, ".cairn")], {
      cwd: dir,
      env: childEnv({ LOADING_FILE: loading }),
    });
    const guard = setTimeout(() => killGroup(live.child), 60_000);
    try {
      expect(await waitFor(() => existsSync(loading), 30_000)).toBe(true);
      process.kill(-live.child.pid!, "SIGINT");
      const exit = await live.done;
      expect(exit.code).toBe(130);
      const said = "SIGINT: cancelled before the run started; nothing was run or recorded.";
      expect(exit.stderr).toBe(`cairn: ${said}\n`);
      expect(exit.stdout.split("\n")).toEqual([expect.any(String), ""]);
      expect(exit.json).toEqual([{ type: "error", exitCode: 130, error: { name: "CancelledError", message: said }, time: expect.any(Number) }]);
    } finally {
      clearTimeout(guard);
    }
  });
});

describe("cairn run sent a signal after its run ended, while its process still ends", () => {
  // The task's leftover timer holds the process LINGER_MS after "Flow succeeded": the signal comes
  // then, at a known point, not in a window of a few ms as it does while the output drains.
  async function succeededAndLingering(args: string[]) {
    const root = await tmp("cairn-cli-late-signal-");
    let printed!: () => void;
    const succeeded = new Promise<void>((r) => (printed = r));
    const live = start(process.execPath, [cairnBin, "run", fixture("lingers.flow.ts"), "--no-cache", "--root", root, ...args], {
      env: childEnv({ LINGER_MS: "30000" }),
      onStdout: (out) => /Flow succeeded|"type":"flow","status":"succeeded"/.test(out) && printed(),
    });
    const guard = setTimeout(() => killGroup(live.child), 60_000);
    await succeeded;
    return { live, guard };
  }

  it.each([
    ["SIGINT", ["--quiet"]],
    ["SIGTERM", ["--json"]],
    ["SIGHUP", []],
  ] as const)("%s: exits with the run's code, 0, as the line said, not killed by the signal", async (signal, args) => {
    const { live, guard } = await succeededAndLingering([...args]);
    try {
      live.child.kill(signal);
      const exit = await live.done;
      expect({ code: exit.code, signal: exit.signal }, exit.stderr).toEqual({ code: 0, signal: null });
      expect(exit.ms).toBeLessThan(25_000); // not held for the task's timer
    } finally {
      clearTimeout(guard);
      killGroup(live.child);
    }
  });

  it.each(["SIGINT", "SIGTERM"] as const)("%s as the process ends by itself (where Node then closes its handlers and frees a large heap): exits with the run's code, 0", async (signal) => {
    const root = await tmp("cairn-cli-late-signal-");
    const live = start(process.execPath, [cairnBin, "run", fixture("big-heap.flow.ts"), "--no-cache", "--quiet", "--root", root], { env: childEnv() });
    // Its `exit` event: the point after which a process that ends by itself has Node's teardown ahead.
    let err = "";
    live.child.stderr!.on("data", (d: Buffer) => (err += d) && /^exiting$/m.test(err) && live.child.kill(signal));
    const guard = setTimeout(() => killGroup(live.child), 60_000);
    try {
      const exit = await live.done;
      expect({ code: exit.code, signal: exit.signal }, exit.stderr).toEqual({ code: 0, signal: null });
    } finally {
      clearTimeout(guard);
    }
  });

  it("a second Ctrl-C exits at once, with the run's code", async () => {
    const { live, guard } = await succeededAndLingering(["--quiet"]);
    try {
      live.child.kill("SIGINT");
      await new Promise((r) => setTimeout(r, 200));
      const t0 = performance.now();
      live.child.kill("SIGINT");
      const exit = await live.done;
      expect({ code: exit.code, signal: exit.signal }, exit.stderr).toEqual({ code: 0, signal: null });
      expect(performance.now() - t0).toBeLessThan(1500); // not the first one's 2 s
    } finally {
      clearTimeout(guard);
      killGroup(live.child);
    }
  });
});

describe("cairn run whose task spins in a synchronous loop", () => {
  it("is not stopped by Ctrl-C or SIGTERM (their handlers cannot run), is by SIGQUIT (Ctrl-\\), and the next command closes its runs KILLED", async () => {
    const root = await tmp("cairn-cli-busy-");
    let running!: () => void;
    const spinning = new Promise<void>((r) => (running = r));
    const live = start(process.execPath, [cairnBin, "run", fixture("busy-loop.flow.ts"), "--json", "--root", root], {
      env: childEnv(),
      onStdout: (out) => taskRunning("spin")(jsonLines(out)) && running(),
    });
    try {
      await spinning;
      for (const signal of ["SIGINT", "SIGINT", "SIGTERM"] as const) {
        live.child.kill(signal);
        await new Promise((r) => setTimeout(r, 700));
      }
      expect(live.child.exitCode).toBeNull();
      expect(live.child.signalCode).toBeNull();
      // Cairn does not handle SIGQUIT: Node's default ends the process.
      live.child.kill("SIGQUIT");
      const exit = await live.done;
      expect(exit.signal).toBe("SIGQUIT");
      const after = await cairn(["runs", "--json", "--root", root]);
      expect(after.stderr).toMatch(/Closed flow run \w+ \(busy-loop\) and 1 task run as KILLED/);
    } finally {
      killGroup(live.child);
    }
  });
});
