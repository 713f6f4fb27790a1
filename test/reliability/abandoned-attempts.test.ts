/**
 * A task that ignores its AbortSignal never overruns its timeout (class 6 of the hardening
 * issue). At the timeout the attempt is over: the retry starts, the flow moves on, the stray
 * work is reported as abandoned, and nothing it does afterwards (return, throw, metrics,
 * artifacts) reaches the task's outcome, its run or the cache. The CLI exits without waiting
 * for it; a process group that ignores SIGTERM is killed after its killGraceMs, which the
 * flow's end waits for (its logs and run are recorded then). Bounds are loose: the stray work
 * lasts 30 s, the assertions allow a fraction of that.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { flow, task, TaskTimeoutError } from "@cairn/dsl";
import { shell } from "../../packages/process/src/index.ts";
import type { TaskEvent } from "@cairn/dsl";
import { cairnRun, runCollect, statuses, taskEvents, tmp } from "../cache/helpers.ts";

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url).pathname;
const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;

/** Polls `check` every 50 ms until it holds, for at most `ms`. */
async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("a task that ignores its AbortSignal", () => {
  it("cairn run: the retry starts at the timeout, the stray attempt is reported, and the CLI exits in seconds", async () => {
    const exit = await cairnRun(fixture("ignores-signal.flow.ts"), await tmp(), ["--no-tracking"]).done;
    expect(exit.code).toBe(1);
    expect(exit.json.at(-1)).toMatchObject({ type: "flow", status: "failed" });
    const running = taskEvents(exit.json, "stubborn").filter((e) => e.status === "running");
    expect(running.map((e) => e.attempt)).toEqual([1, 2]);
    // Attempt 1 sleeps 30 s: attempt 2 starts at its timeout (0.5 s), not after it.
    expect(running[1]!.time - running[0]!.time).toBeLessThan(10_000);
    const failed = taskEvents(exit.json, "stubborn").find((e) => e.status === "failed")!;
    expect(failed.error).toMatchObject({ name: "TaskTimeoutError" });
    expect(exit.stderr).toMatch(/Attempt 1 of task "stubborn" did not stop at its timeout: abandoned/);
    expect(exit.stderr).toMatch(/Exiting without waiting for abandoned work still running: "stubborn" attempt 1/);
    expect(exit.stderr).not.toMatch(STACK_LINE);
    expect(exit.ms).toBeLessThan(15_000); // the stray work lasts 30 s
  });

  it("its late return, throw, metrics and artifacts reach neither the outputs, nor the run, nor the cache", async () => {
    const root = await tmp();
    const late: { write?: unknown; returned?: boolean } = {};
    const calls = { n: 0 };
    // The stray work outlasts the timeout by far more than the engine's notice (1 s), so that a
    // timer fired late on a loaded machine still finds it running.
    const slowFirst = task("slow-first")
      .timeout(1000)
      .retries(1, { minDelayMs: 0 })
      .run(async (_inputs, ctx) => {
        calls.n++;
        if (ctx.attempt === 1) {
          await new Promise((r) => setTimeout(r, 4000)); // ignores ctx.signal
          ctx.log.metric("late_metric", 1);
          late.write = await ctx.artifacts.write("model.txt", "from attempt 1").catch((e: unknown) => e);
          late.returned = true;
          return { who: 1, model: late.write };
        }
        return { who: 2, model: await ctx.artifacts.write("model.txt", "from attempt 2") };
      });
    const throwsLate = task("throws-late")
      .timeout(1000)
      .retries(1, { minDelayMs: 0 })
      .run(async (_inputs, ctx) => {
        if (ctx.attempt === 1) {
          await new Promise((r) => setTimeout(r, 4000));
          throw new Error("late failure of attempt 1");
        }
        return { ok: true };
      });
    const f = flow("abandoned-late").build(() => ({ who: slowFirst().who, ok: throwsLate().ok }));

    const first = await runCollect(f, { root });
    expect(statuses(first.result)).toEqual({ "slow-first": "succeeded", "throws-late": "succeeded" });
    expect(first.result.outputs).toEqual({ who: 2, ok: true });
    expect(first.warnings.filter((w) => /did not stop at its timeout: abandoned/.test(w))).toHaveLength(2);
    // Still running (4 s from their start): listed as stray work, a function's without a grace.
    expect(first.run.abandoned().sort((a, b) => a.task.localeCompare(b.task))).toEqual([
      { task: "slow-first", attempt: 1 },
      { task: "throws-late", attempt: 1 },
    ]);
    // Let the stray attempts finish, then look at what they left.
    expect(await eventually(() => late.returned === true && first.run.abandoned().length === 0, 20_000)).toBe(true);
    expect(late.write).toBeInstanceOf(TaskTimeoutError);
    expect(late.write).toMatchObject({ nodeId: "slow-first", attempt: 1 });
    const taskRun = first.result.tasks["slow-first"]!;
    expect(taskRun.outputs).toMatchObject({ who: 2 });
    const model = (taskRun.outputs as { model: { path: string } }).model.path;
    expect(await readFile(model, "utf8")).toBe("from attempt 2");
    const record = await first.run.tracker.getRun(taskRun.runId!);
    expect(record!.metrics).not.toHaveProperty("late_metric");
    const artifactDir = (first.run.tracker as unknown as { artifactDir(runId: string): string }).artifactDir(taskRun.runId!);
    const outputsJson = JSON.parse(await readFile(join(artifactDir, "cairn", "outputs.json"), "utf8"));
    expect(outputsJson.values.who).toBe(2);

    // The cache holds attempt 2's outputs, and its artifact still matches: the next run is a hit.
    const second = await runCollect(f, { root });
    expect(statuses(second.result)).toEqual({ "slow-first": "cached", "throws-late": "cached" });
    expect(second.result.outputs).toEqual({ who: 2, ok: true });
    expect(second.warnings).toEqual([]);
    expect(calls.n).toBe(2);
  });

  it("a synchronous loop that runs past its timeout is a timeout: retried, never cached, said to have blocked the event loop", async () => {
    const root = await tmp();
    const spin = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until); // holds the event loop: the timeout's timer cannot fire
    };
    const calls = { sync: 0, async: 0 };
    // Attempt 1 returns (synchronously) past its timeout, attempt 2 in time.
    const syncSpin = task("sync-spin")
      .timeout(200)
      .retries(1, { minDelayMs: 0 })
      .run((_inputs, ctx) => {
        calls.sync++;
        if (ctx.attempt === 1) spin(600);
        return { who: ctx.attempt };
      });
    // Its promise is already settled when the loop lets go; a throw past the timeout is a timeout too.
    const asyncSpin = task("async-spin")
      .timeout(200)
      .run(async () => {
        calls.async++;
        await Promise.resolve();
        spin(600);
        throw new Error("thrown past the timeout");
      });
    const alone = task("spin-alone")
      .timeout(200)
      .run(() => {
        spin(600);
        return { ok: true };
      });
    const f = flow("spins").build(() => ({ who: syncSpin().who, a: asyncSpin(), ok: alone().ok }));

    const first = await runCollect(f, { root, failurePolicy: "continue" });
    expect(statuses(first.result)).toEqual({ "sync-spin": "succeeded", "async-spin": "failed", "spin-alone": "failed" });
    expect(first.result.tasks["sync-spin"]!.outputs).toEqual({ who: 2 });
    const retrying = taskEvents(first.events, "sync-spin").find((e) => e.status === "retrying")!;
    expect(retrying.error).toMatchObject({ name: "TaskTimeoutError" });
    for (const id of ["async-spin", "spin-alone"]) {
      const error = first.result.tasks[id]!.error!;
      expect(error).toMatchObject({ name: "TaskTimeoutError" });
      expect(error.message).toMatch(new RegExp(`^Task "${id}" attempt 1 ran \\d+ ms, past its timeout of 200 ms: synchronous code .* blocked Node's event loop`));
    }
    // Nothing that ran past its timeout was stored: only attempt 2 of sync-spin is a hit.
    const second = await runCollect(f, { root, failurePolicy: "continue" });
    expect(statuses(second.result)).toEqual({ "sync-spin": "cached", "async-spin": "failed", "spin-alone": "failed" });
    expect(second.result.tasks["sync-spin"]!.outputs).toEqual({ who: 2 });
    expect(calls).toEqual({ sync: 2, async: 2 });
  });

  it("a late result is a timeout whether the run tracks and caches or not (in-process runs)", async () => {
    // An async function that holds the event loop past its timeout, then returns: the timer fires
    // only after the attempt settled, in the turn it waits for what its code left behind.
    const busy = task("busy")
      .timeout(200)
      .run(async () => {
        const until = performance.now() + 600;
        while (performance.now() < until); // holds the event loop: the timeout's timer cannot fire
        return { ok: true };
      });
    const f = flow("late-result").build(() => ({ ok: busy().ok }));
    for (const tracker of [false, undefined]) {
      for (const cache of [false, true]) {
        const { result } = await runCollect(f, { root: await tmp(), ...(tracker === false ? { tracker } : {}), cache });
        const where = `tracker ${tracker ?? "local"}, cache ${cache}`;
        expect(statuses(result), where).toEqual({ busy: "failed" });
        expect(result.tasks.busy!.error, where).toMatchObject({ name: "TaskTimeoutError" });
        expect(result.tasks.busy!.error!.message, where).toMatch(/^Task "busy" attempt 1 ran \d+ ms, past its timeout of 200 ms/);
      }
    }
  });

  it("cairn run: a late result is a timeout with --no-tracking --no-cache, either flag, or neither", async () => {
    for (const flags of [["--no-tracking", "--no-cache"], ["--no-tracking"], ["--no-cache"], []]) {
      const exit = await cairnRun(new URL("../cli/fixtures/late-result.flow.ts", import.meta.url).pathname, await tmp(), flags).done;
      const where = `cairn run ${flags.join(" ")}`;
      expect(exit.code, where).toBe(1);
      const failed = taskEvents(exit.json, "busy").find((e) => e.status === "failed");
      expect(failed?.error, where).toMatchObject({ name: "TaskTimeoutError" });
      expect(failed!.error!.message, where).toMatch(/^Task "busy" attempt 1 ran \d+ ms, past its timeout of 300 ms: synchronous code/);
      expect(exit.json.at(-1), where).toMatchObject({ type: "flow", status: "failed" });
    }
  });

  it("cancelled while it ignores its signal, it is said to have not stopped when the flow stopped", async () => {
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const deaf = task("deaf").run(async () => {
      started();
      await new Promise((r) => setTimeout(r, 4000)); // ignores ctx.signal, past the 1 s notice
      return {};
    });
    const run = await flow("deaf").build(() => ({ done: deaf() })).run({ env: {}, root: await tmp() });
    const warnings: string[] = [];
    run.on((e) => {
      if (e.type === "log" && e.level === "warn") warnings.push(e.message);
    });
    void running.then(() => run.cancel("test"));
    const result = await run.wait();
    expect(statuses(result)).toEqual({ deaf: "cancelled" });
    expect(warnings).toEqual([
      'Attempt 1 of task "deaf" did not stop when the flow stopped: abandoned. The flow does not wait for it, and what it returns, throws, ' +
        "logs as metrics or writes as artifacts from now on is dropped. Pass ctx.signal to what the task awaits so that it stops.",
    ]);
  });

  it("a well-behaved task that stops at its signal is not reported as abandoned", async () => {
    const polite = task("polite")
      .timeout(300)
      .run(async (_inputs, ctx) => {
        await new Promise((resolve, reject) => {
          const timer = setTimeout(resolve, 30_000);
          ctx.signal.addEventListener("abort", () => (clearTimeout(timer), reject(ctx.signal.reason)), { once: true });
        });
        return {};
      });
    const run = await runCollect(flow("polite").build(() => ({ done: polite() })), { root: await tmp() });
    expect(statuses(run.result)).toEqual({ polite: "failed" });
    expect(run.result.tasks.polite!.error).toMatchObject({ name: "TaskTimeoutError" });
    expect(run.warnings).toEqual([]);
    expect(run.run.abandoned()).toEqual([]);
  });

  it("a process group that ignores SIGTERM at its timeout is listed by run.abandoned() with its killGraceMs until it is killed, and the flow's end waits for that", async () => {
    const dir = await tmp();
    const pidFile = join(dir, "pid");
    const traps = shell("traps", `trap '' TERM; echo $$ > "$PID_FILE"; sleep 30`, { env: { PID_FILE: pidFile }, killGraceMs: 2500 }).timeout(500);
    const run = await flow("listed").build(() => ({ code: traps().exitCode })).run({ env: {}, root: await tmp() });
    let failedAt = 0;
    run.on((e) => {
      if (e.type === "task" && e.status === "failed") failedAt = Date.now();
    });
    // Listed from its notice (1 s after the timeout) while the flow waits for its SIGKILL, 2.5 s after the timeout.
    expect(await eventually(() => run.abandoned().length > 0, 10_000)).toBe(true);
    expect(run.abandoned()).toEqual([{ task: "traps", attempt: 1, killGraceMs: 2500 }]);
    const result = await run.wait();
    expect(result.tasks.traps!.error).toMatchObject({ name: "TaskTimeoutError" });
    // Its failure is told at the timeout; the flow ends only once the group is killed, its logs and run recorded.
    expect(Date.now() - failedAt).toBeGreaterThan(1500);
    expect(run.abandoned()).toEqual([]);
    const pid = Number(await readFile(pidFile, "utf8"));
    expect(await eventually(() => !alive(pid), 2_000)).toBe(true);
  });

  it("a process that exits at its SIGTERM while a process outside its group holds its output is not said to have ignored SIGTERM", async () => {
    // The attempt reads the shell's pipes for 1.5 s after its exit (spawn.ts, DRAIN_MS): pending
    // at the notice, 1 s after the timeout, with no process of the task left to kill. `exec`: the
    // group is its leader alone, gone once Node reaps it (a member's zombie waits for PID 1).
    const dir = await tmp();
    const pidFile = join(dir, "pid");
    const holds = shell("holds", `setsid sleep 30 & echo $! > "$PID_FILE"; exec sleep 30`, { env: { PID_FILE: pidFile } }).timeout(1000);
    const run = await runCollect(flow("held-open").build(() => ({ code: holds().exitCode })), { root: await tmp() });
    try {
      expect(run.result.tasks.holds!.error).toMatchObject({ name: "TaskTimeoutError" });
      const said = run.warnings.filter((w) => w.startsWith("Attempt 1 of task \"holds\""));
      expect(said).toEqual([
        `Attempt 1 of task "holds" had not finished at the task's timeout, though its process has exited and its process group is gone: ` +
          `Cairn is still reading what the process printed or left (a process it started outside its group may still hold its stdout or stderr open). ` +
          `What the attempt returns from now on is dropped; the task's retry, if any, starts once it is done. The flow waits for it, then records its logs and its run.`,
      ]);
      expect(run.warnings.join("\n")).not.toContain("did not exit on SIGTERM");
    } finally {
      process.kill(Number(await readFile(pidFile, "utf8")), "SIGKILL");
    }
  });

  it("cairn run: a process group that ignores SIGTERM at its timeout keeps the CLI for its killGraceMs, no longer: it is killed, then the CLI exits", async () => {
    const dir = await tmp();
    const pidFile = join(dir, "pid");
    const doneFile = join(dir, "done");
    const exit = await cairnRun(fixture("traps-term.flow.ts"), await tmp(), ["--no-tracking"], { PID_FILE: pidFile, DONE_FILE: doneFile }).done;
    expect(exit.code).toBe(1);
    const failed = taskEvents(exit.json, "traps").find((e: TaskEvent) => e.status === "failed")!;
    expect(failed.error).toMatchObject({ name: "TaskTimeoutError" });
    // A process that Cairn ends is not told to pass ctx.signal: it is said when it is killed.
    expect(exit.stderr).toMatch(
      /Attempt 1 of task "traps": its process did not exit on SIGTERM at the task's timeout; it is killed \(SIGKILL\) after 4000 ms \(killGraceMs\) unless it exits before\. .*The flow waits for it, then records its logs and its run\./,
    );
    expect(exit.stderr).not.toContain("Exiting without waiting");
    expect(exit.stderr).not.toContain("Pass ctx.signal");
    // The flow's last event comes once the group is killed, 4 s after the timeout; its 30 s sleep never ends.
    expect((exit.json.at(-1)!.time as number) - failed.time).toBeGreaterThan(3000);
    expect(exit.ms).toBeLessThan(20_000);
    const pid = Number(await readFile(pidFile, "utf8"));
    expect(await eventually(() => !alive(pid), 2_000)).toBe(true);
    expect(existsSync(doneFile)).toBe(false);
  });
});
