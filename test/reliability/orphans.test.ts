/**
 * Children die with their parent (class 4 of the hardening issue): after kill -9 of `cairn
 * run`, no process of a task's tree (shell, script, warm-Python script, and what each started)
 * lives on or finishes its side effects, and a re-run started right after the kill does not
 * run the task beside the killed one's tree. Real `cairn` processes, real process trees.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { flow, shell } from "cairn-dag";
import { hasVenv, VENV_PYTHON } from "../kinds/helpers.ts";
import { runCollect, sleep, start, taskEvents, tmp } from "../cache/helpers.ts";
import { cairn, cairnRunKilled, reliabilityFixture } from "./helpers.ts";

/** Alive: the pid exists and is not a zombie (a dead process its new parent has not reaped yet). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The process group of live process `pid` (undefined once it is gone or a zombie). */
function groupOf(pid: number): number | undefined {
  if (!alive(pid)) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
  } catch {
    return undefined;
  }
}

/** The pids the tasks recorded in MARKER_DIR/<task>.pids. */
async function recordedPids(markers: string): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const name of await readdir(markers)) {
    if (!name.endsWith(".pids")) continue;
    out[name.slice(0, -5)] = (await readFile(join(markers, name), "utf8")).trim().split(/\s+/).map(Number);
  }
  return out;
}

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(50);
  }
  return check();
}

describe.skipIf(process.platform === "win32")("kill -9 of cairn run", () => {
  it("kills every process of every running task's tree at once; no late side effect ever happens", async () => {
    const root = await tmp();
    const markers = await tmp();
    // Each tree's side effect comes this long after it started: longer than the Python trees may
    // lag the shell's on a loaded machine before the kill.
    const DELAY_S = 10;
    const env = { MARKER_DIR: markers, DELAY_S: String(DELAY_S), ...(hasVenv ? { CAIRN_TEST_PYTHON: VENV_PYTHON } : {}) };
    const tasks = ["sh-tree", "py-tree", "warm-tree"];
    // Killed once all three trees have started (each wrote its pids).
    const killed = await cairnRunKilled(
      reliabilityFixture("trees.flow.ts"),
      root,
      () => tasks.every((t) => existsSync(join(markers, `${t}.pids`))),
      { env, poll: true },
    );
    expect(killed.signal).toBe("SIGKILL");
    const pids = await recordedPids(markers);
    expect(Object.keys(pids).sort()).toEqual([...tasks].sort());
    const all = Object.values(pids).flat();
    expect(all.length).toBe(6);

    // Every process of the trees is gone promptly (no grace period: nobody is left to wait for).
    const gone = await until(() => all.every((pid) => !alive(pid)), 5000);
    expect(all.filter(alive), `still alive: ${JSON.stringify(pids)}`).toEqual([]);
    expect(gone).toBe(true);

    // And none of their side effects ever happens.
    await sleep(DELAY_S * 1000 + 1000);
    expect((await readdir(markers)).filter((n) => !n.endsWith(".pids")).sort()).toEqual([]);
  });

  it("a re-run started right after the kill runs the task once, never beside the killed run's tree", async () => {
    const root = await tmp();
    const markers = await tmp();
    const env = { MARKER_DIR: markers, DELAY_S: "3" };
    const file = reliabilityFixture("single-flight.flow.ts");
    const log = join(markers, "log");
    const killed = await cairnRunKilled(file, root, () => existsSync(log), { env, poll: true });
    expect(killed.signal).toBe("SIGKILL");
    const again = await cairn(["run", file, "--json", "--root", root], env);
    expect(again.code, again.stderr).toBe(0);
    await sleep(1000);
    const lines = (await readFile(log, "utf8")).trim().split("\n");
    // The killed run's step began and never ended; the re-run's began after it and ended.
    expect(lines, lines.join(" / ")).toHaveLength(3);
    const [first, second, third] = lines.map((l) => l.split(" ")) as [string[], string[], string[]];
    expect(first[0]).toBe("begin");
    expect(second).toEqual(["begin", second[1]]);
    expect(third).toEqual(["end", second[1]]);
    expect(second[1]).not.toBe(first[1]);
  });
});

describe.skipIf(process.platform !== "linux")("kill -9 between a spawn and its adoption", () => {
  it("the group a dying Node had spawned but not yet listed still dies with it", async () => {
    // The fixture spawns a group (a shell and its child) and never adopts it, as if killed right
    // after the spawn: only the announcement before the spawn guards it.
    const started = start(process.execPath, ["--import", "tsx", reliabilityFixture("unadopted-group.ts")], {
      onStdout: (out, child) => {
        if (out.includes("\n")) child.kill("SIGKILL");
      },
    });
    const exit = await started.done;
    expect(exit.signal, exit.stderr).toBe("SIGKILL");
    const leader = Number(exit.stdout.trim());
    expect(leader).toBeGreaterThan(0);
    const members = () => readdirSync("/proc").filter((p) => /^\d+$/.test(p) && groupOf(Number(p)) === leader);
    try {
      expect(await until(() => members().length === 0, 5000), `still alive in group ${leader}: ${members().join(" ")}`).toBe(true);
    } finally {
      try {
        process.kill(-leader, "SIGKILL"); // what a failure left, not beside the rest of the suite
      } catch {
        // gone, as it should be
      }
    }
  });
});

describe.skipIf(process.platform === "win32")("a cancelled task whose process ignores SIGTERM", () => {
  it("keeps its single-flight lease until its process tree is gone: a run that needs the same task meanwhile waits", async () => {
    const root = await tmp();
    const dir = await tmp();
    // Logs "overlap PID" if a process of an earlier run of this task still lives when it begins.
    const step = shell(
      "hold",
      `trap '' TERM; for p in $(cat {dir}/pids 2>/dev/null); do kill -0 "$p" 2>/dev/null && echo "overlap $p" >> {dir}/log; done; ` +
        `echo $$ >> {dir}/pids; echo "begin $$" >> {dir}/log; sleep 4; echo "end $$" >> {dir}/log`,
      { killGraceMs: 1500 },
    ).input<{ dir: string }>();
    const holding = flow("holding").build(() => ({ out: step({ dir }).stdout }));
    const first = await holding.run({ env: {}, root });
    await until(() => existsSync(join(dir, "log")), 10_000);
    const cancelled = first.cancel();
    // Started while the cancelled run's process still lives (it ignores SIGTERM until SIGKILL).
    const second = await runCollect(holding, { root });
    expect((await cancelled).status).toBe("cancelled");
    expect(second.result.status).toBe("succeeded");
    expect(taskEvents(second.events, "hold").map((e) => e.status)).toContain("waiting");
    const log = (await readFile(join(dir, "log"), "utf8")).trim().split("\n");
    expect(log.filter((l) => l.startsWith("overlap")), log.join(" / ")).toEqual([]);
    expect(log.map((l) => l.split(" ")[0])).toEqual(["begin", "begin", "end"]);
  });

  it("keeps it after its timeout too, until the group is killed after killGraceMs: a run that needs the same task meanwhile waits", async () => {
    const root = await tmp();
    const dir = await tmp();
    // The first process ever ignores SIGTERM and outlives the timeout (SIGKILL comes 2.5 s after
    // it); a later one ends at once. Logs "overlap PID" if an earlier one still lives when it begins.
    const step = shell(
      "hold",
      `for p in $(cat {dir}/pids 2>/dev/null); do kill -0 "$p" 2>/dev/null && echo "overlap $p" >> {dir}/log; done; ` +
        `echo $$ >> {dir}/pids; echo "begin $$" >> {dir}/log; ` +
        `if [ ! -e {dir}/first ]; then : > {dir}/first; trap '' TERM; sleep 6; fi; echo "end $$" >> {dir}/log`,
      { killGraceMs: 2500 },
    )
      .input<{ dir: string }>()
      .timeout(800);
    const holding = flow("holding-timeout").build(() => ({ out: step({ dir }).stdout }));
    const first = await holding.run({ env: {}, root });
    const timedOut = new Promise<void>((r) => first.on((e) => e.type === "task" && e.status === "failed" && r()));
    await timedOut;
    // Started while the timed-out attempt's process still lives (it ignores SIGTERM until SIGKILL).
    const second = await runCollect(holding, { root });
    const firstResult = await first.wait();
    expect(firstResult.tasks.hold!.error).toMatchObject({ name: "TaskTimeoutError" });
    expect(second.result.status).toBe("succeeded");
    expect(taskEvents(second.events, "hold").map((e) => e.status)).toContain("waiting");
    const log = (await readFile(join(dir, "log"), "utf8")).trim().split("\n");
    expect(log.filter((l) => l.startsWith("overlap")), log.join(" / ")).toEqual([]);
    expect(log.map((l) => l.split(" ")[0])).toEqual(["begin", "begin", "end"]);
  });

  it("keeps its pool slot after its timeout until the group is killed: the next task of the pool starts only then", async () => {
    const dir = await tmp();
    // "first" ignores SIGTERM and outlives its timeout (SIGKILL 2.5 s later); "second", in the
    // same one-slot pool, logs "overlap PID" if first's process still lives when it begins.
    const first = shell("first", `trap '' TERM; echo $$ > {dir}/pid; echo "first begin" >> {dir}/log; sleep 6; echo "first end" >> {dir}/log`, { killGraceMs: 2500 })
      .input<{ dir: string }>()
      .pool("gpu")
      .timeout(800);
    const second = shell("second", `p=$(cat {dir}/pid); kill -0 "$p" 2>/dev/null && echo "overlap $p" >> {dir}/log; echo "second begin" >> {dir}/log`)
      .input<{ dir: string }>()
      .pool("gpu");
    const f = flow("slot-after-timeout").build(() => ({ a: first({ dir }).exitCode, b: second({ dir }).exitCode }));
    const { result } = await runCollect(f, { root: await tmp(), pools: { gpu: 1 }, failurePolicy: "continue", cache: false });
    expect(result.tasks.first!.error).toMatchObject({ name: "TaskTimeoutError" });
    expect(result.tasks.second!.status).toBe("succeeded");
    const log = (await readFile(join(dir, "log"), "utf8")).trim().split("\n");
    expect(log.filter((l) => l.startsWith("overlap")), log.join(" / ")).toEqual([]);
    expect(log).toEqual(["first begin", "second begin"]);
  });
});
