/**
 * A process task's stdout and stderr reach its run as the artifacts logs/stdout.txt and
 * logs/stderr.txt with an MLflow server too, for a task that succeeds and one that fails,
 * secrets masked: read back with MLflow's own MlflowClient.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flow, notebook, type RunEvent, script, shell, task } from "cairn-dag";
import { configDigest, kindTask, type KindTask, NO_RETRY, runProcess } from "cairn-dag/kind";
import { readWithMlflow } from "../../packages/mlflow/test/mlflow-read.ts";
import { startMlflowServer, type MlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { startProxy } from "../reliability/helpers.ts";
import { fixture, hasVenv, tempRoot, VENV_PYTHON } from "./helpers.ts";

let server: MlflowServer | undefined;
const execFileAsync = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, "../..");
const SECRET = "tok-s3cr3t-value-42";

async function options() {
  return {
    root: await tempRoot(),
    cache: false as const,
    secrets: { API_TOKEN: SECRET },
    env: { ...process.env, MLFLOW_TRACKING_URI: server!.uri },
  };
}

/** The text of each artifact under logs/ of `runId`, as MlflowClient lists and downloads it (one reader process: Python's start-up is seconds). */
async function logsOf(runId: string): Promise<Record<string, string>> {
  const [files] = await readWithMlflow(server!.uri, [{ op: "download_artifacts_under", run_id: runId, path: "logs", dst: await tempRoot() }]);
  const paths = Object.keys(files as Record<string, string>).sort();
  return Object.fromEntries(paths.map((p) => [p, Buffer.from(files[p] as string, "base64").toString("utf8")]));
}

/**
 * The text of artifact `logs/<name>` of `runId` as the server holds it the moment this is called
 * (one request, where MlflowClient's reader takes seconds to start: an upload still under way
 * after the flow's end has no time to land), or undefined when it holds none.
 */
async function logNow(runId: string, name: string): Promise<string | undefined> {
  return artifactNow(runId, `logs/${name}`);
}

/** As {@link logNow}, for any artifact `path` of `runId`. */
async function artifactNow(runId: string, path: string): Promise<string | undefined> {
  const res = await fetch(`${server!.uri}/get-artifact?path=${encodeURIComponent(path)}&run_uuid=${runId}`);
  return res.ok ? await res.text() : undefined;
}

beforeAll(async () => {
  if (hasVenv) server = await startMlflowServer();
}, 180_000);
afterAll(async () => {
  await server?.stop();
});

describe.skipIf(!hasVenv)("process logs in MLflow", () => {
  it("sends a succeeding script's stdout and stderr to its run, masked", async () => {
    const t = script("chatty", { file: fixture("chatty.py"), interpreter: VENV_PYTHON, secrets: ["API_TOKEN"] });
    const result = await (await flow("logs-ok").build(() => ({ out: t().$out })).run(await options())).wait();
    expect(result.status).toBe("succeeded");
    const logs = await logsOf(result.tasks.chatty!.runId!);
    expect(logs).toEqual({
      "logs/stdout.txt": "hello from stdout\nusing token=***\n",
      "logs/stderr.txt": "a warning on stderr\nstderr token=***\n",
    });
  }, 60_000);

  it("sends a failing script's logs to its run, where the error message points", async () => {
    const t = script("chatty", { file: fixture("chatty.py"), interpreter: VENV_PYTHON, secrets: ["API_TOKEN"], args: ["fail"] });
    const result = await (await flow("logs-fail").build(() => ({ out: t().$out })).run(await options())).wait();
    expect(result.status).toBe("failed");
    const task = result.tasks.chatty!;
    expect(task.error?.message).toContain("logs/stderr.txt");
    const [run] = await readWithMlflow(server!.uri, [{ op: "get_run", run_id: task.runId! }]);
    expect(run.status).toBe("FAILED");
    const logs = await logsOf(task.runId!);
    expect(logs["logs/stdout.txt"]).toBe("hello from stdout\nusing token=***\n");
    expect(logs["logs/stderr.txt"]).toContain("stderr token=***\n");
    expect(logs["logs/stderr.txt"]).toContain("ValueError: bad things happened");
    expect(JSON.stringify(logs)).not.toContain(SECRET);
  }, 60_000);

  it("sends a failing notebook's executed notebook and HTML to its run, and its error carries the cell's traceback", async () => {
    const dir = await tempRoot();
    const nb = JSON.parse(readFileSync(fixture("report.ipynb"), "utf8")) as { cells: Array<Record<string, unknown>> };
    nb.cells.push({ cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: ["def check(n):\n", "    raise ValueError(f'boom from cell {n}')\n", "check(7)\n"] });
    await writeFile(join(dir, "raises.ipynb"), JSON.stringify(nb));
    const t = notebook("raises", join(dir, "raises.ipynb"), { python: VENV_PYTHON });
    const result = await (await flow("nb-fail").build(() => ({ x: t({ data: null }).$out })).run(await options())).wait();
    const failed = result.tasks.raises!;
    expect(failed.status).toBe("failed");
    // The traceback, without the terminal's colour codes: where in the cell, and through which function.
    expect(failed.error?.message).toMatch(/in check\b[\s\S]*ValueError: boom from cell 7/);
    expect(failed.error?.message).not.toContain("\u001b[");
    const [listed] = await readWithMlflow(server!.uri, [{ op: "list_artifacts", run_id: failed.runId! }]);
    expect((listed as { path: string }[]).map((f) => f.path)).toEqual(expect.arrayContaining(["raises.ipynb", "raises.html"]));
  }, 120_000);

  it("records a function task's error source as a tag MLflow shows", async () => {
    const boom = task("boom").run(() => {
      throw new Error("boom in the user's code");
    });
    const result = await (await flow("error-source").build(() => ({ y: boom() })).run(await options())).wait();
    const at = result.tasks.boom!.error!.at!;
    expect(at).toMatch(/process-logs-mlflow\.test\.ts:\d+:\d+$/);
    const [run] = await readWithMlflow(server!.uri, [{ op: "get_run", run_id: result.tasks.boom!.runId! }]);
    expect(run.tags).toMatchObject({ "cairn.error.source": at });
  }, 60_000);

  it("sends the logs of an attempt that ran past its timeout, before the flow ends", async () => {
    const t = shell("slow", "echo before the timeout; echo on stderr too >&2; sleep 30").timeout(5000); // room for a loaded machine to start the shell
    const result = await (await flow("logs-timeout").build(() => ({ out: t().$out })).run(await options())).wait();
    expect(result.status).toBe("failed");
    expect(result.tasks.slow!.error?.name).toBe("TaskTimeoutError");
    expect(await logsOf(result.tasks.slow!.runId!)).toEqual({
      "logs/stdout.txt": "before the timeout\n",
      "logs/stderr.txt": "on stderr too\n",
    });
  }, 60_000);

  it("sends what a timed-out script prints during its 2 s cleanup on SIGTERM, then closes its run FAILED, before the flow ends", async () => {
    // Room for a loaded machine to start Python; the cleanup is well within the default 5 s killGraceMs.
    const t = script("cleans", { file: fixture("cleans_up_on_term.py"), interpreter: VENV_PYTHON }).timeout(5000);
    const result = await (await flow("timeout-cleanup").build(() => ({ out: t().$out })).run(await options())).wait();
    const failed = result.tasks.cleans!;
    // Sent before the flow ended: what the cleanup printed too.
    expect(await logNow(failed.runId!, "stdout.txt")).toBe("working\ngot SIGTERM, cleaning up\ncleanup done\n");
    expect(failed.error?.name).toBe("TaskTimeoutError");
    expect(await logsOf(failed.runId!)).toEqual({ "logs/stdout.txt": "working\ngot SIGTERM, cleaning up\ncleanup done\n" });
    const [run, listed] = await readWithMlflow(server!.uri, [
      { op: "get_run", run_id: failed.runId! },
      { op: "list_artifacts", run_id: failed.runId!, path: "cairn" },
    ]);
    expect(run.status).toBe("FAILED");
    expect((listed as { path: string }[]).map((f) => f.path)).toContain("cairn/error.txt");
  }, 60_000);

  it("with retries: each timed-out attempt's cleanup is in the logs, the retry starting after it", async () => {
    const t = script("cleans", { file: fixture("cleans_up_on_term.py"), interpreter: VENV_PYTHON })
      .timeout(5000)
      .retries(1, { minDelayMs: 10 });
    const result = await (await flow("timeout-cleanup-retried").build(() => ({ out: t().$out })).run(await options())).wait();
    const failed = result.tasks.cleans!;
    const once = "working\ngot SIGTERM, cleaning up\ncleanup done\n";
    expect(await logNow(failed.runId!, "stdout.txt")).toBe(`${once}=== attempt 2 ===\n${once}`);
    expect(failed.error?.name).toBe("TaskTimeoutError");
    expect(failed.attempts).toBe(2);
    expect(await logsOf(failed.runId!)).toEqual({ "logs/stdout.txt": `${once}=== attempt 2 ===\n${once}`, "logs/stderr.txt": "=== attempt 2 ===\n" });
  }, 90_000);

  it("when the timeout fails the flow: the other tasks are cancelled, and the timed-out one's cleanup still reaches its run", async () => {
    // A 4 s cleanup: the other task's cancel and the flow's closing, which take a while on a loaded machine, do not outlast it.
    const t = script("cleans", { file: fixture("cleans_up_on_term.py"), interpreter: VENV_PYTHON, args: ["4"] }).timeout(5000);
    const other = shell("other", "echo other started; sleep 60");
    const result = await (await flow("timeout-fails-flow").build(() => ({ out: t().$out, code: other().exitCode })).run(await options())).wait();
    expect(await logNow(result.tasks.cleans!.runId!, "stdout.txt")).toBe("working\ngot SIGTERM, cleaning up\ncleanup done\n");
    expect(result.status).toBe("failed");
    expect(result.tasks.other!.status).toBe("cancelled");
    const failed = result.tasks.cleans!;
    expect(failed.error?.name).toBe("TaskTimeoutError");
    expect(await logsOf(failed.runId!)).toEqual({ "logs/stdout.txt": "working\ngot SIGTERM, cleaning up\ncleanup done\n" });
    const [timedOut, cancelled] = await readWithMlflow(server!.uri, [
      { op: "get_run", run_id: failed.runId! },
      { op: "get_run", run_id: result.tasks.other!.runId! },
    ]);
    expect([timedOut.status, cancelled.status]).toEqual(["FAILED", "KILLED"]);
  }, 60_000);

  it("a timed-out process that ignores SIGTERM is killed after killGraceMs, then its logs are sent", async () => {
    const t = shell("deaf", "trap '' TERM; echo ignoring SIGTERM; sleep 30", { killGraceMs: 2000 }).timeout(5000);
    const started = Date.now();
    const result = await (await flow("timeout-deaf").build(() => ({ out: t().$out })).run(await options())).wait();
    expect(await logNow(result.tasks.deaf!.runId!, "stdout.txt")).toBe("ignoring SIGTERM\n");
    expect(result.tasks.deaf!.error?.name).toBe("TaskTimeoutError");
    expect(Date.now() - started).toBeLessThan(25_000); // killed at the end of its grace, not after its 30 s sleep
    expect(await logsOf(result.tasks.deaf!.runId!)).toEqual({ "logs/stdout.txt": "ignoring SIGTERM\n" });
  }, 60_000);

  it("sends a timed-out notebook's executed notebook and HTML to its run before the flow ends", async () => {
    const dir = await tempRoot();
    const nb = JSON.parse(readFileSync(fixture("report.ipynb"), "utf8")) as { cells: Array<Record<string, unknown>> };
    nb.cells.push({ cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: ["import time\n", "print('before the sleep', flush=True)\n", "time.sleep(120)\n"] });
    await writeFile(join(dir, "sleeps.ipynb"), JSON.stringify(nb));
    // Room for a loaded machine to start the kernel and reach the sleep.
    const t = notebook("sleeps", join(dir, "sleeps.ipynb"), { python: VENV_PYTHON }).timeout(20_000);
    const result = await (await flow("nb-timeout").build(() => ({ x: t({ data: null }).$out })).run(await options())).wait();
    const failed = result.tasks.sleeps!;
    const executed = await artifactNow(failed.runId!, "sleeps.ipynb");
    expect(failed.error?.name).toBe("TaskTimeoutError");
    const page = await artifactNow(failed.runId!, "sleeps.html");
    expect(executed).toContain("before the sleep");
    expect(page).toContain("before the sleep");
    expect(await logNow(failed.runId!, "stdout.txt")).toContain("Executing");
  }, 120_000);

  it("sends no file for a stream the process wrote nothing to", async () => {
    const t = shell("quiet", "echo only-stdout");
    const result = await (await flow("logs-quiet").build(() => ({ out: t().$out })).run(await options())).wait();
    expect(result.status).toBe("succeeded");
    expect(await logsOf(result.tasks.quiet!.runId!)).toEqual({ "logs/stdout.txt": "only-stdout\n" });
  }, 60_000);
});

/** Forwards a PUT the proxy took to the real server `ms` late, as a server briefly down answers it. */
function forwardLate(req: IncomingMessage, res: ServerResponse, ms: number): void {
  const body: Buffer[] = [];
  req.on("data", (c: Buffer) => body.push(c));
  req.on("end", () => {
    setTimeout(() => {
      void fetch(`${server!.uri}${req.url}`, { method: "PUT", headers: { "content-type": req.headers["content-type"] ?? "application/octet-stream" }, body: Buffer.concat(body) }).then(
        async (up) => res.writeHead(up.status, { "content-type": up.headers.get("content-type") ?? "application/json" }).end(Buffer.from(await up.arrayBuffer())),
        () => res.writeHead(502).end(),
      );
    }, ms);
  });
}

describe.skipIf(!hasVenv)("a process task's log upload that stalls", () => {
  // A server briefly down: the upload of logs/stdout.txt answered 4 s late, twice the task's timeout.
  it("counts against neither its timeout nor its duration: the task succeeds, runs once, its run gets the logs, and the next run hits the cache", async () => {
    const STALL_MS = 4000;
    let stalled = 0;
    const proxy = await startProxy(server!.uri, (req, res) => {
      if (req.method !== "PUT" || !req.url!.includes("logs/stdout.txt")) return false;
      stalled++;
      forwardLate(req, res, STALL_MS);
      return true;
    });
    try {
      const sh = shell("tsh", "echo RAN {n}").timeout(2000);
      const untimed = shell("untimed", "echo RAN {n}");
      const f = flow("log-stall")
        .params<{ n: number }>()
        .build(({ params }) => ({ o: sh({ n: params.n }).stdout, u: untimed({ n: params.n }).stdout }));
      const options = { root: await tempRoot(), params: { n: 7 }, env: { ...process.env, MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "log-stall" } };
      const run = await f.run(options);
      const events: RunEvent[] = [];
      run.on((e) => events.push(e));
      const result = await run.wait();
      const done = result.tasks.tsh!;
      expect(done.error).toBeUndefined();
      expect(result.status).toBe("succeeded");
      expect(result.outputs).toEqual({ o: "RAN 7", u: "RAN 7" });
      expect(stalled).toBe(2);
      // One attempt, no retry; no warning (no timeout, no SIGTERM said, no upload given up on).
      expect(done.attempts).toBe(1);
      expect(events.filter((e) => e.type === "task" && e.task === "tsh" && e.status === "running")).toHaveLength(1);
      expect(events.filter((e) => e.type === "log" && e.level === "warn")).toEqual([]);
      // Its duration is the process's, not the 4 s upload after it; its run records the same figure.
      expect(done.durationMs).toBeLessThan(STALL_MS / 2);
      expect(result.tasks.untimed!.durationMs).toBeLessThan(STALL_MS / 2);
      const [recorded] = await readWithMlflow(server!.uri, [{ op: "get_run", run_id: done.runId! }]);
      expect(recorded.status).toBe("FINISHED");
      expect(recorded.tags).toMatchObject({ "cairn.duration_ms": String(done.durationMs) });
      // Sent before its run was closed, so before the flow ended.
      expect(await logNow(done.runId!, "stdout.txt")).toBe("RAN 7\n");
      const again = await (await f.run(options)).wait();
      expect(again.tasks.tsh!.status).toBe("cached");
      expect(again.outputs).toEqual({ o: "RAN 7", u: "RAN 7" });
    } finally {
      await proxy.close();
    }
  }, 60_000);
});

describe.skipIf(!hasVenv)("a failing notebook whose executed notebook's upload stalls", () => {
  // The upload of raises.ipynb answered 12 s late: it was awaited inside the attempt, so its
  // duration held the 12 s (and a .timeout() shorter than that ended it as a timeout instead).
  it("fails with the cell's error in its own time, and its run still gets the executed notebook before the flow ends", async () => {
    const STALL_MS = 12_000;
    let stalled = 0;
    const proxy = await startProxy(server!.uri, (req, res) => {
      if (req.method !== "PUT" || !req.url!.includes("raises.ipynb")) return false;
      stalled++;
      forwardLate(req, res, STALL_MS);
      return true;
    });
    try {
      const dir = await tempRoot();
      const nb = JSON.parse(readFileSync(fixture("report.ipynb"), "utf8")) as { cells: Array<Record<string, unknown>> };
      nb.cells.push({ cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: ["raise ValueError('boom late')\n"] });
      await writeFile(join(dir, "raises.ipynb"), JSON.stringify(nb));
      const t = notebook("raises", join(dir, "raises.ipynb"), { python: VENV_PYTHON });
      const result = await (
        await flow("nb-stall")
          .build(() => ({ x: t({ data: null }).$out }))
          .run({ root: await tempRoot(), cache: false, env: { ...process.env, MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "nb-stall" } })
      ).wait();
      const failed = result.tasks.raises!;
      expect(failed.status).toBe("failed");
      expect(failed.error?.message).toContain("ValueError: boom late");
      expect(stalled).toBe(1);
      expect(failed.durationMs).toBeLessThan(STALL_MS);
      expect(await artifactNow(failed.runId!, "raises.ipynb")).toContain("boom late");
    } finally {
      await proxy.close();
    }
  }, 90_000);
});

describe.skipIf(!hasVenv)("a kind that starts two processes in one attempt", () => {
  // The first process's logs/stdout.txt upload answered 3 s late: the second process wrote the
  // file anew meanwhile and its own upload landed first, so the first one's older text won.
  it("starts the second once the first's logs are sent: the run's log is the last process's, as on disk", async () => {
    let puts = 0;
    const proxy = await startProxy(server!.uri, (req, res) => {
      if (req.method !== "PUT" || !req.url!.includes("logs/stdout.txt") || puts++ > 0) return false;
      forwardLate(req, res, 3000);
      return true;
    });
    try {
      const twice: KindTask<Record<string, unknown>, { done: boolean }> = kindTask({
        definition: {
          name: "twice", kind: "two-steps", retry: NO_RETRY, cache: {}, env: [],
          code: configDigest({ steps: 2 }),
          run: async (inputs, ctx) => {
            await runProcess({ command: "sh", args: ["-c", "echo FIRST"], inputs }, ctx);
            await runProcess({ command: "sh", args: ["-c", "echo SECOND"], inputs }, ctx);
            return { done: true };
          },
        },
      });
      const run = await flow("two-steps")
        .build(() => ({ d: twice({}).done }))
        .run({ root: await tempRoot(), env: { ...process.env, MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "two-steps" } });
      const result = await run.wait();
      expect(result.status, JSON.stringify(result.error)).toBe("succeeded");
      expect(puts).toBe(2);
      expect(await logNow(result.tasks.twice!.runId!, "stdout.txt")).toBe("SECOND\n");
    } finally {
      await proxy.close();
    }
  }, 60_000);
});

describe.skipIf(!hasVenv)("a process task cancelled while its logs upload stalls", () => {
  it("stops within the 5 s a stopped run's request is given: the task, whose process exited 0, succeeded, its run closed FINISHED", async () => {
    let stalled = 0;
    // Never answered: only the cancel ends the upload.
    const proxy = await startProxy(server!.uri, (req) => {
      if (req.method !== "PUT" || !req.url!.includes("logs/stdout.txt")) return false;
      stalled++;
      req.resume();
      return true;
    });
    try {
      const sh = shell("tsh", "echo RAN");
      const controller = new AbortController();
      const run = await flow("log-stall-cancel")
        .build(() => ({ o: sh().stdout }))
        .run({ root: await tempRoot(), signal: controller.signal, env: { ...process.env, MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "log-stall-cancel" } });
      const waiting = run.wait();
      while (stalled === 0) await new Promise((r) => setTimeout(r, 50));
      const cancelledAt = Date.now();
      controller.abort();
      const result = await waiting;
      expect(Date.now() - cancelledAt).toBeLessThan(15_000);
      expect(result.tasks.tsh!.status).toBe("succeeded");
      const [recorded] = await readWithMlflow(server!.uri, [{ op: "get_run", run_id: result.tasks.tsh!.runId! }]);
      expect(recorded.status).toBe("FINISHED");
    } finally {
      await proxy.close();
    }
  }, 60_000);
});

describe.skipIf(!hasVenv)("a large output with MLflow", () => {
  it("streams it to the files and to the run, never holding it in memory", async () => {
    const mb = 80;
    const { stdout } = await execFileAsync(process.execPath, ["--import", "tsx", fixture("log-memory.ts"), String(mb), server!.uri], {
      cwd: repoRoot,
      env: { ...process.env, PYTHON: VENV_PYTHON },
      maxBuffer: 1 << 20,
    });
    const out = JSON.parse(stdout.trim().split("\n").pop()!) as { status: string; peakGrowthMB: number; taskRunId: string; bytes: number };
    expect(out.status).toBe("succeeded");
    console.log(`peak RSS growth for ${mb} MB of output: ${out.peakGrowthMB.toFixed(1)} MB`);
    // Held in memory, each stream's lines alone (as strings and log events) would exceed the whole output's size.
    expect(out.peakGrowthMB).toBeLessThan(mb);
    const [listed] = await readWithMlflow(server!.uri, [{ op: "list_artifacts", run_id: out.taskRunId, path: "logs" }]);
    expect(listed).toEqual([
      { path: "logs/stderr.txt", is_dir: false, file_size: out.bytes },
      { path: "logs/stdout.txt", is_dir: false, file_size: out.bytes },
    ]);
  }, 180_000);
});
