/**
 * A task's duration is its own work: from its first attempt's start to its last attempt's end,
 * retries and their waits included, not the bookkeeping around it (its run created, what it
 * logged and its outputs sent, its run ended, its cache entry stored). With MLflow on, that
 * bookkeeping once made a task of a few milliseconds show tens of them. The result, its event,
 * its run's `cairn.duration_ms` and `cairn show` say the same figure. The tracker is a real
 * LocalStore whose every write waits WRITE_MS first; a dispatched task's duration is measured
 * where it runs and sent back with its outcome.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { DURATION_TAG, LocalStore, runDispatchedTask, type TaskDispatcher, type Tracker } from "@cairn/core";
import { flow, task, type TaskEvent } from "cairn-dag";
import { readReportData } from "@cairn/report";
import { z } from "zod";
import { formatDuration } from "../packages/cli/src/reporter.ts";
import { runTime } from "../packages/report/src/render.ts";
import { cairn } from "./cli/helpers.ts";

/** How long each write of the tracker takes: far longer than the tasks' own work. */
const WRITE_MS = 700;
const WRITES = new Set(["createRun", "recordRun", "logBatch", "logArtifact", "logText", "endRun", "writeIndexEntry"]);

/** `store`, whose writes each take WRITE_MS longer. */
function slowWrites(store: LocalStore): Tracker {
  return new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function") return value;
      const bound = (value as (...a: unknown[]) => unknown).bind(target);
      if (typeof key !== "string" || !WRITES.has(key)) return bound;
      return async (...args: unknown[]) => {
        await new Promise((r) => setTimeout(r, WRITE_MS));
        return bound(...args);
      };
    },
  });
}

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("a task's duration", () => {
  it("is its attempts' time, retries included, not its record's slow writes; its run and cairn show say the same", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-task-duration-"));
    dirs.push(root);
    const quick = task("quick").run(() => ({ n: 1 }));
    let tries = 0;
    const retried = task("retried")
      .retries(1, { minDelayMs: 300, maxDelayMs: 300 })
      .run(() => {
        if (++tries === 1) throw new Error("first attempt fails");
        return { n: 2 };
      });
    const broken = task("broken").run((): { n: number } => {
      throw new Error("always fails");
    });
    const f = flow("durations").build(() => {
      quick({});
      retried({});
      broken({});
      return {};
    });
    const run = await f.run({ root, tracker: slowWrites(new LocalStore({ root })), cache: false, failurePolicy: "continue", env: {} });
    const ended = new Map<string, TaskEvent>();
    run.on((e) => {
      if (e.type === "task" && (e.status === "succeeded" || e.status === "failed")) ended.set(e.task, e);
    });
    const result = await run.wait();
    expect(result.tasks.quick?.status).toBe("succeeded");
    expect(result.tasks.retried).toMatchObject({ status: "succeeded", attempts: 2 });
    expect(result.tasks.broken?.status).toBe("failed");

    const quickMs = result.tasks.quick!.durationMs!;
    expect(quickMs).toBeLessThan(WRITE_MS);
    // The wait between its attempts is the task's own: it counts.
    expect(result.tasks.retried!.durationMs!).toBeGreaterThanOrEqual(300);
    expect(result.tasks.retried!.durationMs!).toBeLessThan(300 + WRITE_MS);
    expect(result.tasks.broken!.durationMs!).toBeLessThan(WRITE_MS);

    const store = new LocalStore({ root });
    for (const id of ["quick", "retried", "broken"]) {
      const taskResult = result.tasks[id]!;
      expect(ended.get(id)?.durationMs, id).toBe(taskResult.durationMs);
      const recorded = await store.getRun(taskResult.runId!);
      expect(recorded?.tags[DURATION_TAG], id).toBe(String(taskResult.durationMs));
    }

    // `cairn show` of the flow run: each task's row says the figure the run's summary said.
    const shown = await cairn(["show", run.runId, "--root", root], { cwd: root });
    expect(shown.code, shown.stderr).toBe(0);
    for (const id of ["quick", "retried", "broken"]) {
      const row = shown.stdout.split("\n").find((l) => l.startsWith(`${id} `));
      expect(row?.split(/\s+/)[2], shown.stdout).toBe(formatDuration(result.tasks[id]!.durationMs!));
    }
  });

  it("of a dispatched task is measured where it runs, not the coordinator's wait for it", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-task-duration-"));
    dirs.push(root);
    const tracker = slowWrites(new LocalStore({ root }));
    // A worker in this process: the task's run and attempts as `cairn worker` makes them.
    const dispatcher: TaskDispatcher = {
      open: () => {},
      run: (sent, signal, log) =>
        runDispatchedTask(sent.node, sent, {
          tracker,
          workDir: root,
          signal,
          emit: (e) => {
            if (e.type === "log") log(e);
          },
        }),
    };
    const f = flow("dispatched-duration").build(() => ({ n: task("quick").run(() => ({ n: 1 }))({}).n }));
    const run = await f.run({ root, tracker, cache: false, dispatcher, env: {} });
    const result = await run.wait();
    expect(result.status).toBe("succeeded");
    const quick = result.tasks.quick!;
    expect(quick.durationMs!).toBeLessThan(WRITE_MS);
    expect((await new LocalStore({ root }).getRun(quick.runId!))?.tags[DURATION_TAG]).toBe(String(quick.durationMs));
  });

  it("of a task a worker of an earlier version ran (its outcome has no durationMs) is the span the coordinator saw, succeeded, failed or cancelled", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-task-duration-"));
    dirs.push(root);
    const tracker = new LocalStore({ root });
    // A worker in this process that answers as one before durations were sent back: no durationMs.
    const dispatcher: TaskDispatcher = {
      open: () => {},
      run: async (sent, signal, log) => {
        const { durationMs: _, ...outcome } = await runDispatchedTask(sent.node, sent, {
          tracker,
          workDir: root,
          signal,
          emit: (e) => {
            if (e.type === "log") log(e);
          },
        });
        return outcome;
      },
    };
    /** Waits `ms`, or until the task is cancelled. */
    const sleepy = (ms: number, signal: AbortSignal) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        signal.addEventListener("abort", () => (clearTimeout(timer), resolve()));
      });
    const f = flow("old-worker-duration").build(() => {
      task("quick").run(async (_: Record<string, never>, ctx) => (await sleepy(50, ctx.signal), { n: 1 }))({});
      task("broken").run(async (_: Record<string, never>, ctx): Promise<{ n: number }> => {
        await sleepy(50, ctx.signal);
        throw new Error("always fails");
      })({});
      return {};
    });
    const result = await (await f.run({ root, tracker, cache: false, dispatcher, failurePolicy: "continue", env: {} })).wait();
    expect(result.tasks.quick?.status).toBe("succeeded");
    expect(result.tasks.broken?.status).toBe("failed");
    for (const id of ["quick", "broken"]) expect(result.tasks[id]!.durationMs, id).toBeGreaterThanOrEqual(45);

    const stuck = flow("old-worker-cancelled").build(() => ({ n: task("stuck").run(async (_: Record<string, never>, ctx) => (await sleepy(60_000, ctx.signal), { n: 1 }))({}).n }));
    const run = await stuck.run({ root, tracker, cache: false, dispatcher, env: {} });
    await new Promise((r) => setTimeout(r, 300));
    await run.cancel("enough");
    const cancelled = await run.wait();
    expect(cancelled.tasks.stuck?.status).toBe("cancelled");
    expect(cancelled.tasks.stuck!.durationMs).toBeGreaterThanOrEqual(250);
  });

  it("of a task that failed before its first attempt is none: in its result, cairn show and the report", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-task-duration-"));
    dirs.push(root);
    const positive = task("positive")
      .input(z.object({ n: z.number().positive() }))
      .run(({ n }) => ({ n }));
    const f = flow("unstarted-duration").build(() => ({ n: positive({ n: -1 }).n }));
    const tracker = new LocalStore({ root });
    const run = await f.run({ root, tracker, cache: false, env: {} });
    const result = await run.wait();
    const invalid = result.tasks.positive!;
    expect(invalid).toMatchObject({ status: "failed", attempts: 0 });
    expect(invalid.durationMs).toBeUndefined();
    expect((await tracker.getRun(invalid.runId!))?.tags).toMatchObject({ "cairn.attempts": "0" });
    expect((await tracker.getRun(invalid.runId!))?.tags[DURATION_TAG]).toBeUndefined();

    const shown = await cairn(["show", run.runId, "--root", root], { cwd: root });
    expect(shown.code, shown.stderr).toBe(0);
    const row = shown.stdout.split("\n").find((l) => l.startsWith("positive "));
    expect(row?.split(/\s+/)[2], shown.stdout).toBe("-");

    const report = await readReportData(tracker, run.runId);
    expect(runTime(report.tasks.find((t) => t.id === "positive")!)).toBeUndefined();
  });
});

describe("a flow's duration", () => {
  it("is measured on the monotonic clock: a wall clock stepped back an hour mid-run (NTP, a laptop waking) leaves it right in the result, the run's tag, cairn runs and the report", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-flow-duration-"));
    dirs.push(root);
    const realNow = Date.now.bind(Date);
    let shift = 0;
    const now = vi.spyOn(Date, "now").mockImplementation(() => realNow() + shift);
    try {
      const stepped = task("stepped").run(async () => {
        await new Promise((r) => setTimeout(r, 200));
        shift = -3600_000;
        await new Promise((r) => setTimeout(r, 200));
        return { n: 1 };
      });
      const f = flow("clock-step").build(() => {
        stepped({});
        return {};
      });
      const result = await (await f.run({ root, tracker: new LocalStore({ root }), cache: false, env: {} })).wait();
      expect(result.status).toBe("succeeded");
      expect(result.durationMs).toBeGreaterThanOrEqual(400);
      expect(result.durationMs).toBeLessThan(60_000);
      const recorded = await new LocalStore({ root }).getRun(result.runId);
      // Its start and end times stay wall times, an hour apart the wrong way.
      expect(recorded!.endTime! - recorded!.startTime).toBeLessThan(0);
      expect(recorded?.tags[DURATION_TAG]).toBe(String(result.durationMs));
      const data = await readReportData(new LocalStore({ root }), result.runId);
      expect(data.flow.durationMs).toBe(result.durationMs);
      const runs = await cairn(["runs", "--root", root], { cwd: root });
      expect(runs.code, runs.stderr).toBe(0);
      const row = runs.stdout.split("\n").find((l) => l.startsWith(`${result.runId} `));
      expect(row, runs.stdout).toContain(formatDuration(result.durationMs));
      expect(runs.stdout).not.toMatch(/-\d+ms/);
    } finally {
      now.mockRestore();
    }
  });
});
