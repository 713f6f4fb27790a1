/**
 * A task whose code would end its `cairn worker`'s process (an unawaited rejection, a throw in a
 * timer, `process.exit()`), all real: redis-server, an MLflow server, a worker process and
 * `cairn run --queue`. The task fails with the error a run in one process gives, recorded so, the
 * coordinator fails the flow with it at once (no job left to stall and run again), and the worker
 * goes on to the next job. An error no task's code raised stops the worker (exit 1), as a
 * process's state cannot be trusted after one, and the job it ran goes back to the queue, for
 * another worker, as when the process died before the guard.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairnBin, cairnRun, childEnv, start, tmp } from "../cache/helpers.ts";
import { startWorker, timesRun, useQueueServers } from "./helpers.ts";

const servers = useQueueServers();
const file = join(import.meta.dirname, "fixtures/crash.flow.ts");

async function testEnv(name: string) {
  const markerDir = await tmp("cairn-crash-marks-");
  return { markerDir, env: { FLOW_NAME: name, MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: name, MARKER_DIR: markerDir } };
}

/** The status and error tag of task `name` of flow run `runId`, as `cairn show` reads them from MLflow. */
async function taskRecord(runId: string, name: string, env: NodeJS.ProcessEnv, experiment: string) {
  const r = await start(process.execPath, [cairnBin, "show", runId, "--json", "--experiment", experiment], { env: childEnv(env) }).done;
  expect(r.code, r.stderr).toBe(0);
  const shown = JSON.parse(r.stdout) as { tasks: Array<{ name: string; status: string; tags: Record<string, string> }> };
  const t = shown.tasks.find((x) => x.name === name)!;
  return { status: t.status, error: t.tags["cairn.error"] };
}

describe("a task whose code would end its worker's process", () => {
  it("a throw in its timer, an unawaited rejection and process.exit() fail it with the local run's error and record; the worker goes on to the next job", async () => {
    const { env, markerDir } = await testEnv("queue-crash-task");
    const worker = await startWorker(file, servers.redis.url, ["--root", await tmp()], env);
    servers.workers.push(worker);
    const cases = [
      { how: "timer", message: /The process met an uncaught exception in the code of task "crasher": Error: thrown in a timer \(at .*crash\.flow\.ts:\d+:\d+\)\)/, name: "ProcessCrashError" },
      { how: "reject", message: /The process met an unhandled promise rejection in the code of task "crasher": Error: nobody awaited me/, name: "ProcessCrashError" },
      { how: "exit", message: /Task "crasher" called process\.exit\(3\) while the flow ran/, name: "TaskExitError" },
    ];
    for (const [i, c] of cases.entries()) {
      const started = Date.now();
      const r = await cairnRun(file, await tmp(), ["--queue", servers.redis.url, "-p", `how=${c.how}`], env).done;
      expect(r.code, r.stderr).toBe(1);
      // At once, not after the task's 20 s wait, nor after a lock lapsed and the job was sent again.
      expect(Date.now() - started).toBeLessThan(15_000);
      const final = r.json.at(-1)!;
      expect(final).toMatchObject({ type: "flow", status: "failed" });
      const failed = r.json.find((e) => e.type === "task" && e.task === "crasher" && e.status === "failed") as { error: { name: string; message: string } };
      expect(failed.error.name).toBe(c.name);
      expect(failed.error.message).toMatch(c.message);
      expect(failed.error.message).toContain(`(on worker `);
      const record = await taskRecord(String(final.runId), "crasher", env, "queue-crash-task");
      expect(record.status).toBe("FAILED");
      expect(record.error).toMatch(new RegExp(`^${c.name}: `));
      expect(await timesRun(markerDir, "crasher")).toBe(i + 1);
      expect(worker.child.exitCode).toBeNull();
    }
    // The same worker takes the next job.
    const ok = await cairnRun(file, await tmp(), ["--queue", servers.redis.url, "-p", "how=none"], env).done;
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded", outputs: { how: "none" } });
    expect(await timesRun(markerDir, "crasher")).toBe(4);
    expect(worker.child.exitCode).toBeNull();
  }, 180_000);

  it("with --unhandled-rejections=warn the worker only warns of a task's rejection, and with none says nothing: the task succeeds, as without Cairn", async () => {
    for (const mode of ["warn", "none"]) {
      const { env } = await testEnv(`queue-crash-${mode}`);
      const worker = await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...env, NODE_OPTIONS: `--unhandled-rejections=${mode}` });
      servers.workers.push(worker);
      const r = await cairnRun(file, await tmp(), ["--queue", servers.redis.url, "-p", "how=reject-and-return"], env).done;
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded", outputs: { how: "reject-and-return" } });
      await worker.waitFor(/task crasher succeeded/);
      if (mode === "warn") await worker.waitFor(/nobody awaited me/);
      else expect(worker.log()).not.toContain("nobody awaited me");
      expect(worker.child.exitCode).toBeNull();
    }
  }, 180_000);

  it("an error no task's code raised stops the worker with exit 1 and hands the job it runs back to the queue, not failed: another worker runs it", async () => {
    const { env, markerDir } = await testEnv("queue-crash-outside");
    const workers = [];
    for (let i = 0; i < 2; i++) {
      const worker = await startWorker(file, servers.redis.url, ["--root", await tmp()], env);
      servers.workers.push(worker);
      workers.push(worker);
    }
    const r = await cairnRun(file, await tmp(), ["--queue", servers.redis.url, "-p", "how=outside-once"], env).done;
    // Before, the job failed with ProcessCrashError although its code had nothing to do with it.
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded", outputs: { how: "outside-once" } });
    expect(r.stderr).toMatch(/did not finish task "crasher": handed back to the queue for another worker: this worker stopped for an error its code did not raise \(.*thrown outside any task/);
    expect(await timesRun(markerDir, "crasher")).toBe(2);
    // The worker that met the error stops; the other goes on.
    const crashed = await Promise.race(workers.map((w) => w.done.then(() => w)));
    expect(crashed.child.exitCode, crashed.log()).toBe(1);
    expect(crashed.log()).toMatch(/an error that no task's code raised escaped while tasks ran/);
    expect(crashed.log()).toMatch(/task crasher handed-back: /);
    expect(crashed.log()).toMatch(/worker stopped: the tasks it ran went back to the queue for another worker/);
    expect(workers.find((w) => w !== crashed)!.child.exitCode).toBeNull();
  }, 180_000);
});
