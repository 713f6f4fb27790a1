/**
 * A retried attempt starts from a clean state: the attempt before it has stopped (a process
 * group given up on at its timeout is gone), what it wrote does not reach the retry's outputs,
 * its late writes cannot replace the retry's files, and its logs are kept beside the retry's.
 * Real child processes and real files, in this process's flow runs.
 */
import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Artifact, flow, type RunEvent, task, TaskTimeoutError } from "@cairn/dsl";
import { shell } from "../../packages/process/src/index.ts";
import { readReportData, renderReport } from "@cairn/report";
import { runCollect, statuses, taskEvents, tmp } from "../cache/helpers.ts";
import { cairn } from "../cli/helpers.ts";

/** Blocks this thread (and so the flow's timers) for `ms`, as a task's synchronous work does. */
const block = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

const lines = async (file: string) => (await readFile(file, "utf8")).split("\n").filter(Boolean);

describe("a retried process task", () => {
  it("starts its next attempt only once the timed-out attempt's process group is gone, keeping its pool slot meanwhile", async () => {
    const dir = await tmp();
    const trace = join(dir, "trace.txt");
    // Attempt 1 outlives its timeout and, on SIGTERM, cleans up for 1 s (well within killGraceMs),
    // writing to its artifacts folder as a checkpoint save would.
    const gpu = shell(
      "gpu",
      `trap 'echo "a$CAIRN_ATTEMPT cleanup start" >> "$TRACE"; echo "a1 checkpoint" >> "$CAIRN_ARTIFACTS/model.txt"; sleep 1; echo "a$CAIRN_ATTEMPT cleanup end" >> "$TRACE"; exit 1' TERM
echo "a$CAIRN_ATTEMPT start" >> "$TRACE"
if [ "$CAIRN_ATTEMPT" = 1 ]; then sleep 30 & wait; fi
echo "model-from-attempt-$CAIRN_ATTEMPT" > "$CAIRN_ARTIFACTS/model.txt"
echo '{"model":{"$artifact":"model.txt"}}' > "$CAIRN_OUTPUTS"`,
      { env: { TRACE: trace } },
    )
      .pool("gpu")
      .timeout(1500)
      .retries(1, { minDelayMs: 0, maxDelayMs: 0 });
    const f = flow("retry-after-group").build(() => ({ exitCode: gpu().exitCode }));
    const { result } = await runCollect(f, { root: await tmp(), pools: { gpu: 1 } });
    expect(statuses(result)).toEqual({ gpu: "succeeded" });
    // Never two processes of the task at once: attempt 2 begins after attempt 1's cleanup ended.
    expect(await lines(trace)).toEqual(["a1 start", "a1 cleanup start", "a1 cleanup end", "a2 start"]);
    const model = (result.tasks.gpu!.outputs as { model: Artifact }).model;
    expect(await readFile(model.path, "utf8")).toBe("model-from-attempt-2\n");
  });
});

describe("a retried task's artifacts folder", () => {
  it("starts empty: a tool that refuses an existing folder succeeds on the retry, and the failed attempt's files are set aside, not output", async () => {
    // As mlflow.sklearn.save_model does, the task refuses a model folder that exists already;
    // attempt 1 then fails on a transient error, after writing a file only it writes.
    const train = shell(
      "train",
      `set -e
mkdir "$CAIRN_ARTIFACTS/model"
echo "weights of attempt $CAIRN_ATTEMPT" > "$CAIRN_ARTIFACTS/model/weights.txt"
if [ "$CAIRN_ATTEMPT" = 1 ]; then echo partial > "$CAIRN_ARTIFACTS/half-done.txt"; echo "ConnectionError: reset by peer" >&2; exit 3; fi
echo '{"model":{"$artifact":"model"}}' > "$CAIRN_OUTPUTS"`,
    ).retries(1, { minDelayMs: 0, maxDelayMs: 0 });
    const f = flow("clean-retry").build(() => ({ exitCode: train().exitCode }));
    const { result } = await runCollect(f, { root: await tmp() });
    expect(statuses(result)).toEqual({ train: "succeeded" });
    expect(result.tasks.train!.attempts).toBe(2);
    const model = (result.tasks.train!.outputs as { model: Artifact }).model;
    const dir = dirname(model.path);
    expect(await readFile(join(model.path, "weights.txt"), "utf8")).toBe("weights of attempt 2\n");
    // What attempt 1 left is kept in the run's record folder, out of the task's namespace.
    expect((await readdir(dir)).sort()).toEqual(["cairn", "logs", "model"]);
    expect(await readFile(join(dir, "cairn", "attempts", "1", "model", "weights.txt"), "utf8")).toBe("weights of attempt 1\n");
    expect(await readFile(join(dir, "cairn", "attempts", "1", "half-done.txt"), "utf8")).toBe("partial\n");
  });
});

describe("a retried process task's logs", () => {
  it("keep every attempt's output, masked: a retry appends to logs/*.txt after a line === attempt N ===", async () => {
    const load = shell(
      "load",
      `echo "attempt $CAIRN_ATTEMPT starting"
if [ "$CAIRN_ATTEMPT" = 1 ]; then echo "Traceback: ConnectionResetError while reading shard 17 with $API_TOKEN" >&2; exit 3; fi
echo "loaded"`,
      { secrets: ["API_TOKEN"] },
    ).retries(1, { minDelayMs: 0, maxDelayMs: 0 });
    const f = flow("kept-logs").build(() => ({ exitCode: load().exitCode }));
    const { run, result } = await runCollect(f, { root: await tmp(), env: { PATH: process.env.PATH, API_TOKEN: "s3cr3t-t0ken-4711" } });
    expect(statuses(result)).toEqual({ load: "succeeded" });
    const dir = (run.tracker as unknown as { artifactDir(runId: string): string }).artifactDir(result.tasks.load!.runId!);
    expect(await readFile(join(dir, "logs", "stdout.txt"), "utf8")).toBe("attempt 1 starting\n=== attempt 2 ===\nattempt 2 starting\nloaded\n");
    expect(await readFile(join(dir, "logs", "stderr.txt"), "utf8")).toBe("Traceback: ConnectionResetError while reading shard 17 with ***\n=== attempt 2 ===\n");
  });
});

describe("a retried function task", () => {
  it("ctx.artifacts.write() still running at the timeout never replaces or corrupts the file the retry wrote", async () => {
    let late: Promise<unknown> | undefined;
    const make = task("make")
      .timeout(500)
      .retries(1, { minDelayMs: 0, maxDelayMs: 0 })
      .run(async (_inputs, ctx) => {
        if (ctx.attempt === 1) {
          const big = Buffer.alloc(64 * 1024 * 1024, 0x41);
          // Its timeout passes during this synchronous work: the write starts while the attempt is
          // still open, and goes on (chunk by chunk) after it was given up on.
          block(800);
          late = ctx.artifacts.write("data.bin", big).catch((error: unknown) => error);
          await late;
          return { data: undefined as unknown as Artifact };
        }
        return { data: await ctx.artifacts.write("data.bin", "GOOD\n") };
      });
    const f = flow("late-write").build(() => ({ data: make().data }));
    const { result } = await runCollect(f, { root: await tmp() });
    expect(statuses(result)).toEqual({ make: "succeeded" });
    expect(late).toBeDefined();
    // Attempt 1's write is told why it stopped, and leaves nothing behind.
    expect(await late).toBeInstanceOf(TaskTimeoutError);
    const data = (result.outputs as { data: Artifact }).data;
    expect(await readFile(data.path, "utf8")).toBe("GOOD\n");
    expect(await readdir(dirname(data.path))).not.toContainEqual(expect.stringMatching(/partial/));
  });
});

describe("a retried task's params", () => {
  it("a param whose value differs between attempts does not fail the retry: the run keeps the value of the attempt that ended it", async () => {
    const train = task("train")
      .retries(1, { minDelayMs: 0, maxDelayMs: 0 })
      .run(async (_inputs, ctx) => {
        ctx.log.param("seed", 1000 + ctx.attempt);
        // A training loop: more points than the recorder holds before it sends them.
        for (let step = 0; step < 1200; step++) ctx.log.metric("loss", 1 / (step + 1), step);
        if (ctx.attempt === 1) throw new Error("ConnectionError: reset by peer");
        return { ok: true };
      });
    const { run, result } = await runCollect(flow("seeded").build(() => ({ ok: train().ok })), { root: await tmp() });
    expect(statuses(result)).toEqual({ train: "succeeded" });
    const record = await run.tracker.getRun(result.tasks.train!.runId!);
    expect(record!.params.seed).toBe("1002");
  });
});

describe("a retried task's earlier errors", () => {
  const SECRET = "s3cr3t-token-of-some-length";
  /** Attempt 1 fails as a dropped connection does (naming a secret), 2 with a TypeError, 3 with a RangeError, unless `succeedAt`. */
  const flaky = (succeedAt?: number) =>
    task("flaky")
      .retries(2, { minDelayMs: 0, maxDelayMs: 0 })
      .run(async (_inputs, ctx) => {
        if (ctx.attempt === succeedAt) return { ok: true };
        if (ctx.attempt === 1) throw Object.assign(new Error(`read ECONNRESET (token ${SECRET})`), { code: "ECONNRESET" });
        if (ctx.attempt === 2) throw new TypeError("Cannot read properties of undefined (reading 'rows')");
        throw new RangeError("Invalid array length");
      });
  const RETRIED = [
    { attempt: 1, error: "Error: read ECONNRESET (token ***)" },
    { attempt: 2, error: "TypeError: Cannot read properties of undefined (reading 'rows')" },
  ];
  const artifactText = (run: { tracker: unknown }, runId: string, path: string) =>
    readFile(join((run.tracker as { artifactDir(id: string): string }).artifactDir(runId), path), "utf8");

  it("a task that failed on its last attempt: its run's tags and cairn/error.txt say what each attempt failed with, masked", async () => {
    const { run, result } = await runCollect(flow("flaky").build(() => ({ ok: flaky()().ok })), { root: await tmp(), secrets: { API_TOKEN: SECRET } });
    expect(statuses(result)).toEqual({ flaky: "failed" });
    const runId = result.tasks.flaky!.runId!;
    const record = (await run.tracker.getRun(runId))!;
    expect(record.tags).toMatchObject({
      "cairn.attempts": "3",
      "cairn.error": "RangeError: Invalid array length",
      "cairn.attempt_error.1": "Error: read ECONNRESET (token ***)",
      "cairn.attempt_error.2": "TypeError: Cannot read properties of undefined (reading 'rows')",
    });
    expect(record.tags).not.toHaveProperty("cairn.attempt_error.3"); // the last attempt's is the run's error
    const text = await artifactText(run, runId, "cairn/error.txt");
    expect(text).not.toContain(SECRET);
    // The file starts as it does without retries: the error that ended the task, then the attempts before it, the newest first.
    expect(text).toMatch(/^RangeError: Invalid array length\n {4}at /);
    const sections = [...text.matchAll(/^Attempt (\d) of 3 failed:\n(.*)$/gm)].map((m) => [m[1], m[2]]);
    expect(sections).toEqual([
      ["2", "TypeError: Cannot read properties of undefined (reading 'rows')"],
      ["1", "Error: read ECONNRESET (token ***)"],
    ]);
    expect(text).toContain("Before it, 2 attempts failed and were retried:");
    // The report shows them beside the task's error.
    const report = await readReportData(run.tracker, result.runId);
    expect(report.tasks.find((t) => t.id === "flaky")!.retriedErrors).toEqual(RETRIED);
  });

  it("a task that succeeded after failed attempts: its run's tags say what they failed with", async () => {
    const root = await tmp();
    const { run, result } = await runCollect(flow("flaky-ok").build(() => ({ ok: flaky(3)().ok })), { root, secrets: { API_TOKEN: SECRET } });
    expect(statuses(result)).toEqual({ flaky: "succeeded" });
    const runId = result.tasks.flaky!.runId!;
    const record = (await run.tracker.getRun(runId))!;
    expect(record.tags).toMatchObject({
      "cairn.attempts": "3",
      "cairn.attempt_error.1": "Error: read ECONNRESET (token ***)",
      "cairn.attempt_error.2": "TypeError: Cannot read properties of undefined (reading 'rows')",
    });
    expect(record.tags).not.toHaveProperty("cairn.error");
    // `cairn show` of the task run and the report say them too.
    const shown = await cairn(["show", runId, "--root", root]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(
      "attempt 1 of 3 failed: Error: read ECONNRESET (token ***)\nattempt 2 of 3 failed: TypeError: Cannot read properties of undefined (reading 'rows')\n",
    );
    const report = await readReportData(run.tracker, result.runId);
    expect(report.tasks.find((t) => t.id === "flaky")!.retriedErrors).toEqual(RETRIED);
    expect(renderReport(report)).toContain("attempt 2 of 3 failed: TypeError: Cannot read properties of undefined (reading &#39;rows&#39;)");
  });
});

describe("a task cancelled while its retry waits for the timed-out attempt's process group", () => {
  it("starts no other attempt: no `running` event for it, its run counts one attempt, and the attempt's files stay in place", async () => {
    // Attempt 1 ignores SIGTERM at its timeout, so the retry waits the whole killGraceMs for its
    // group: the cancel comes inside that wait, at a point the test knows (after `retrying`).
    const stubborn = shell("stubborn", `trap '' TERM; echo half > "$CAIRN_ARTIFACTS/half.txt"; sleep 30 & wait; sleep 30`, { killGraceMs: 3000 })
      .timeout(1000)
      .retries(1, { minDelayMs: 0, maxDelayMs: 0 });
    const f = flow("cancel-in-retry-wait").build(() => ({ exitCode: stubborn().exitCode }));
    const controller = new AbortController();
    const run = await f.run({ root: await tmp(), env: {}, signal: controller.signal });
    const events: RunEvent[] = [];
    run.on((e) => {
      events.push(e);
      if (e.type === "task" && e.status === "retrying") setTimeout(() => controller.abort("SIGINT"), 500);
    });
    const result = await run.wait();
    expect(statuses(result)).toEqual({ stubborn: "cancelled" });
    const said = taskEvents(events, "stubborn").map((e) => `${e.status}${e.attempt ? ` ${e.attempt}` : ""}`);
    expect(said).toEqual(["queued", "running 1", "retrying 1", "cancelled"]);
    expect(result.tasks.stubborn!.attempts).toBe(1);
    const record = await run.tracker.getRun(result.tasks.stubborn!.runId!);
    expect(record!.tags["cairn.attempts"]).toBe("1");
    expect(record!.tags["cairn.attempt_starts"]).toBeUndefined(); // written from a second attempt's start on
    const artifactDir = (run.tracker as unknown as { artifactDir(runId: string): string }).artifactDir(result.tasks.stubborn!.runId!);
    expect(await readFile(join(artifactDir, "half.txt"), "utf8")).toBe("half\n");
  }, 30_000);
});
