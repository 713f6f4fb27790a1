/**
 * The task pipeline alone, with no scheduler (what a worker process will run for one task):
 * runTask records a run, runs the attempts, checks the output, and says what happened;
 * the embedded store reads the record back.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NonRetryableError, RunScope, SecretRegistry, resolveTracker, type RunEvent, type Tracker } from "@cairn/core";
import { flow, task } from "@cairn/dsl";
import { AbandonedAttempts } from "../packages/core/src/pipeline/abandoned.ts";
import { rejectOnAbort } from "../packages/core/src/pipeline/attempts.ts";
import { type PipelineScope, type PipelineTask, releaseTask, runTask } from "../packages/core/src/pipeline/run-task.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function scope(): Promise<{ scope: PipelineScope; tracker: Tracker; events: RunEvent[] }> {
  const root = await mkdtemp(join(tmpdir(), "cairn-pipeline-"));
  dirs.push(root);
  const tracker = await resolveTracker({ root, env: {} });
  const experimentId = await tracker.ensureExperiment("pipeline");
  const flowRunId = await tracker.createRun({ experimentId, name: "pipeline" });
  const events: RunEvent[] = [];
  const emit = (e: RunEvent) => void events.push(e);
  const secrets = new SecretRegistry({}, {});
  const controller = new AbortController();
  const warn = (task: string, message: string) => emit({ type: "log", level: "warn", runId: flowRunId, task, message, time: Date.now() });
  const record = { tracker, experimentId, flowRunId, flowName: "pipeline", workDir: root, secrets };
  return {
    tracker,
    events,
    scope: {
      shared: {
        params: {},
        flowRunId,
        scope: new RunScope(),
        tracking: Object.freeze({ kind: tracker.kind, uri: tracker.uri, experimentId, capabilities: tracker.capabilities }),
        tracker,
        workDir: root,
        secrets,
        env: {},
        paramsCheck: { flowName: "pipeline", values: {} },
        emit,
      },
      flowSignal: controller.signal,
      flowAborted: rejectOnAbort(controller.signal),
      abandoned: new AbandonedAttempts(warn),
      record,
      warn,
    },
  };
}

/** The one node of a flow made of `t`. */
function nodeOf(t: (inputs: { x: number }) => unknown): PipelineTask {
  const f = flow("one").build(() => {
    t({ x: 1 });
    return {};
  });
  return { node: f.definition.nodes[0]!, result: { status: "queued", attempts: 0 } };
}

describe("runTask: one task through the pipeline, without a scheduler", () => {
  it("records a FINISHED run with the task's inputs as params and hands back its checked output", async () => {
    const { scope: s, tracker, events } = await scope();
    const double = task("double").input<{ x: number }>().run(({ x }) => ({ y: x * 2, gone: undefined }));
    const t = nodeOf(double);
    const outcome = await runTask(s, t, { x: 21 });
    await releaseTask(t);
    expect(outcome).toEqual({ ok: true, outputs: { y: 42 } }); // the stored form: undefined dropped
    const run = await tracker.getRun(t.result.runId!);
    expect(run).toMatchObject({ status: "FINISHED", params: { x: "21" }, tags: { "cairn.task": "double", "cairn.attempts": "1" } });
    expect(events.filter((e) => e.type === "task").map((e) => (e as { status: string }).status)).toEqual(["running"]);
  });

  it("retries, then fails with the last error; the run ends FAILED with its error tag", async () => {
    const { scope: s, tracker, events } = await scope();
    let calls = 0;
    const flaky = task("flaky")
      .input<{ x: number }>()
      .retries(2, { minDelayMs: 1, maxDelayMs: 1 })
      .run(() => {
        calls++;
        throw new Error(`attempt ${calls} broke`);
      });
    const t = nodeOf(flaky);
    const outcome = await runTask(s, t, { x: 1 });
    expect(outcome).toMatchObject({ ok: false, cancelled: false });
    expect((outcome as { error: Error }).error.message).toBe("attempt 3 broke");
    expect(calls).toBe(3);
    expect(events.filter((e) => e.type === "task").map((e) => (e as { status: string }).status)).toEqual(["running", "retrying", "running", "retrying", "running"]);
    const run = await tracker.getRun(t.result.runId!);
    expect(run).toMatchObject({ status: "FAILED", tags: { "cairn.error": "Error: attempt 3 broke", "cairn.attempts": "3" } });
  });

  it("does not retry a NonRetryableError, and fails bad inputs before any attempt", async () => {
    const { scope: s } = await scope();
    let calls = 0;
    const refuses = task("refuses")
      .input<{ x: number }>()
      .retries(3)
      .run(() => {
        calls++;
        throw new NonRetryableError("bad credentials");
      });
    const t = nodeOf(refuses);
    const outcome = await runTask(s, t, { x: 1 });
    expect(outcome).toMatchObject({ ok: false, cancelled: false });
    expect(calls).toBe(1);

    const never = task("never").input<{ x: number }>().run(() => ({ ran: true }));
    const bad = nodeOf(never);
    const failed = await runTask(s, bad, Promise.reject(new Error("inputs did not validate")));
    expect(failed).toMatchObject({ ok: false, cancelled: false });
    expect(bad.result.runId).toBeUndefined();
    expect(bad.result.attempts).toBe(0);
  });
});

describe("interceptors: the embedder's hooks around every attempt", () => {
  const noTracking = { tracker: false as const, cache: false as const, env: {} };

  it("wrap each attempt, first outermost, see the attempt and its inputs, and may change the output", async () => {
    const seen: string[] = [];
    const double = task("double").input<{ x: number }>().run(({ x }) => ({ y: x * 2 }));
    const f = flow("intercepted").build(() => ({ y: double({ x: 4 }).y }));
    const run = await f.run({
      ...noTracking,
      interceptors: [
        async (call, next) => {
          seen.push(`outer ${call.nodeId} ${call.taskName} ${call.kind} #${call.attempt} ${JSON.stringify(call.inputs)} ${call.ctx.runId ? "ctx" : "no ctx"}`);
          const out = (await next()) as { y: number };
          seen.push("outer after");
          return { y: out.y + 1 };
        },
        async (_call, next) => {
          seen.push("inner");
          return next();
        },
      ],
    });
    expect(await run.outputs()).toEqual({ y: 9 });
    expect(seen).toEqual([`outer double double function #1 {"x":4} ctx`, "inner", "outer after"]);
  });

  it("see every retry, can stop retries with NonRetryableError, and their output is checked like the task's", async () => {
    const attempts: number[] = [];
    let calls = 0;
    const flaky = task("flaky")
      .retries(3, { minDelayMs: 1, maxDelayMs: 1 })
      .run((): { v: number } => {
        calls++;
        throw new Error("flaky");
      });
    const f = flow("vetoed").build(() => ({ v: flaky({}).v }));
    const run = await f.run({
      ...noTracking,
      interceptors: [
        async (call, next) => {
          attempts.push(call.attempt);
          if (call.attempt === 2) throw new NonRetryableError("enough");
          return next();
        },
      ],
    });
    const result = await run.wait();
    expect(result.status).toBe("failed");
    expect(attempts).toEqual([1, 2]);
    expect(calls).toBe(1);
    expect(result.tasks.flaky!.error).toMatchObject({ name: "NonRetryableError", message: "enough" });

    const ok = task("ok").run(() => ({ fine: true }));
    const bad = await flow("bad-output")
      .build(() => ({ v: ok({}).fine }))
      .run({ ...noTracking, interceptors: [async () => ({ when: new Date() })] });
    expect((await bad.wait()).tasks.ok!.error?.name).toBe("NotSerializableError");
  });

  it("a task that returns a thenable that is not a Promise (a query builder) gets its value awaited, with or without interceptors", async () => {
    const query = { then: (resolve: (rows: { rows: number[] }) => void) => resolve({ rows: [8] }) };
    const q = task("q").run(() => query as unknown as Promise<{ rows: number[] }>);
    const f = flow("thenable").build(() => ({ rows: q({}).rows }));
    for (const interceptors of [[], [(_: unknown, next: () => Promise<unknown>) => next()]]) {
      expect(await (await f.run({ ...noTracking, interceptors })).outputs()).toEqual({ rows: [8] });
    }
  });

  it("are refused when they are not functions", async () => {
    const one = task("one").run(() => ({ v: 1 }));
    const f = flow("refused").build(() => ({ v: one({}).v }));
    await expect(f.run({ ...noTracking, interceptors: ["log" as never] })).rejects.toThrow(/Expected `interceptors` to be an array of functions/);
  });
});
