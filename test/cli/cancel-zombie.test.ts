/**
 * `cairn run` cancelled (SIGTERM) while a process task runs whose members all die at SIGTERM
 * but one stays a zombie, not yet reaped (here by a parent that never waits; in a container or a
 * VM, by a PID 1 that reaps seconds later, as a task's orphaned `sleep` is): the group counted as
 * running, so Cairn warned that the task's process "did not exit on SIGTERM; it is killed
 * (SIGKILL) after 5000 ms" and waited out those 5 s, with nothing of the task left running.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { fixture, tmp } from "./helpers.ts";

const holders: number[] = [];
afterAll(() => {
  for (const pid of holders) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
});

describe.skipIf(process.platform !== "linux")("cairn run cancelled while a task's group holds a zombie alone", () => {
  it("says no false 'did not exit on SIGTERM' and does not wait out the kill grace", async () => {
    const cwd = await tmp("cairn-cli-cancel-zombie-");
    const pids = join(cwd, "pids");
    let out = "";
    const live = start(process.execPath, [cairnBin, "run", fixture("zombie-at-cancel.flow.ts"), "--no-tracking", "--no-cache"], {
      cwd,
      env: childEnv({ ZOMBIE_HOLDER: fixture("zombie-holder.py"), PIDS_FILE: pids }),
      onStdout: (o) => (out = o),
    });
    let text = "";
    for (let i = 0; i < 400 && !/^\d+ \d+$/.test(text); i++) {
      await sleep(50);
      text = await readFile(pids, "utf8").catch(() => "");
    }
    const [holder, zombie] = text.split(" ").map(Number) as [number, number];
    holders.push(holder);
    expect((await readFile(`/proc/${zombie}/stat`, "utf8")).split(") ")[1]!.startsWith("Z ")).toBe(true);
    // The task's line `[z] start` is printed once it runs: then the signal.
    for (let i = 0; i < 200 && !out.includes("[z] start"); i++) await sleep(25);
    const t0 = performance.now();
    live.child.kill("SIGTERM");
    const exit = await live.done;
    const took = performance.now() - t0;
    expect(exit.code, exit.stderr).toBe(130);
    expect(exit.stdout + exit.stderr).not.toContain("did not exit on SIGTERM");
    expect(exit.stdout).toMatch(/■ cancelled z/);
    expect(took).toBeLessThan(4000);
  });
});
