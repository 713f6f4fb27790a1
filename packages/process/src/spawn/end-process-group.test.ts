/**
 * endProcessGroup with a group whose members have all died but are not yet reaped (zombies): a
 * task's `sleep`, orphaned when its shell died at SIGTERM, waits for PID 1 to reap it, which a
 * container's or a VM's init does seconds later. kill(-pgid, 0) finds the zombie, so the group
 * counted as running until the grace ran out, and a cancel said the task's process "did not exit
 * on SIGTERM; it is killed (SIGKILL) after 5000 ms" of a group with nothing left running.
 * Real processes: a leader that dies at SIGTERM, and a zombie of its group whose parent (outside
 * the group) never reaps it, so the zombie stays whatever PID 1 does.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { endProcessGroup } from "./spawn.ts";

/**
 * The leader forks a holder, which forks a child and leaves the group; the child exits at once
 * and stays a zombie (its parent, the holder, sleeps and never waits), the group's only member
 * besides the leader. The holder writes its pid and the zombie's, then sleeps. The same script
 * serves the CLI's test of a cancel (test/cli/cancel-zombie.test.ts).
 */
const LEADER = resolve(import.meta.dirname, "../../../../test/cli/fixtures/zombie-holder.py");

/** The pids of group `pgid`'s members that are not zombies. */
async function runningMembers(pgid: number): Promise<number[]> {
  const found: number[] = [];
  for (const pid of (await readdir("/proc")).filter((name) => /^\d+$/.test(name))) {
    const fields = (await readFile(`/proc/${pid}/stat`, "utf8").catch(() => ") Z 0 0")).split(") ").at(-1)!.split(" ");
    if (Number(fields[2]) === pgid && fields[0] !== "Z") found.push(Number(pid));
  }
  return found;
}

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

describe.skipIf(process.platform !== "linux")("endProcessGroup", () => {
  it("a group left with a zombie alone is gone: resolved at once, not after the grace", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-zombie-group-"));
    const pids = join(dir, "pids");
    const leader = spawn("python3", [LEADER, pids], { detached: true, stdio: "ignore" });
    const exited = new Promise((resolve) => leader.once("exit", resolve));
    let text = "";
    for (let i = 0; i < 100 && !/^\d+ \d+$/.test(text); i++) {
      await sleep(50);
      text = await readFile(pids, "utf8").catch(() => "");
    }
    const [holder, zombie] = text.split(" ").map(Number) as [number, number];
    holders.push(holder);
    const state = async () => (await readFile(`/proc/${zombie}/stat`, "utf8")).split(") ")[1]!.split(" ");
    expect((await state())[0]).toBe("Z");
    expect(Number((await state())[2])).toBe(leader.pid);

    const t0 = performance.now();
    await endProcessGroup(leader.pid!, 3000);
    const took = performance.now() - t0;
    await exited;
    // The leader died at SIGTERM (and Node reaped it): only the zombie was left, which no one may reap yet.
    expect((await state())[0]).toBe("Z");
    expect(took).toBeLessThan(1500);
    await rm(dir, { recursive: true, force: true });
  });

  it("a group started just after another group's end read /proc still gets SIGTERM and its grace: not taken for zombies from that reading", async () => {
    // A fail-fast stop or a timeout while another task has just started: the other group's /proc
    // reading (shared for 40 ms) did not hold the new group, which was SIGKILLed at once, its
    // cleanup (a trap, a `finally`, mlflow.end_run) never run.
    // The first group runs on after SIGTERM, so its polls read /proc (its first 20 ms after its end).
    const first = spawn("sh", ["-c", "trap '' TERM; sleep 30 & trap '' TERM; wait"], { detached: true, stdio: "ignore" });
    await sleep(200);
    const ending = endProcessGroup(first.pid!, 1000);
    const ends: Array<Promise<NodeJS.Signals | null>> = [];
    for (const wait of [25, 10, 10, 10, 10]) {
      await sleep(wait);
      // Ends at SIGTERM: by its trap (0.3 s of cleanup), or by the signal if it comes before the trap is set.
      const second = spawn("sh", ["-c", "trap 'sleep 0.3; exit 0' TERM; sleep 30 & wait"], { detached: true, stdio: "ignore" });
      ends.push(new Promise((resolve) => second.once("exit", (_code, signal) => resolve(signal))));
      void endProcessGroup(second.pid!, 3000);
    }
    await ending;
    expect(await Promise.all(ends)).not.toContain("SIGKILL");
  });

  it("a group with a member that runs on after SIGTERM is killed at the grace's end, as before", async () => {
    const leader = spawn("sh", ["-c", "trap '' TERM; sleep 30 & trap '' TERM; wait"], { detached: true, stdio: "ignore" });
    await sleep(200);
    const t0 = performance.now();
    await endProcessGroup(leader.pid!, 600);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(550);
    await sleep(100);
    // Killed: none left running (a zombie may wait for PID 1 to reap it).
    expect(await runningMembers(leader.pid!)).toEqual([]);
  });
});
