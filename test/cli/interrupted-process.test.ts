/**
 * Ctrl-C on a process task whose cleanup on SIGTERM takes a few seconds (within its
 * killGraceMs): `cairn run` waits for the process instead of exiting over it, so its cleanup
 * runs to its end, its logs are recorded (on the MLflow server too) and its run ends KILLED.
 * A second Ctrl-C still exits at once. So does a timeout: `cairn run` waits for the timed-out
 * process's cleanup before it exits, and its logs reach its run. Real processes: `cairn run` as a
 * child, a real server.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { readWithMlflow } from "../../packages/mlflow/test/mlflow-read.ts";
import { startMlflowServer, type MlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { type Exit, cairnBin, childEnv, killGroup, start, tmp } from "../cache/helpers.ts";
import { cairn, reliabilityFixture } from "../reliability/helpers.ts";
import { alive, hasVenv, VENV_PYTHON, waitFor } from "../kinds/helpers.ts";

const flowFile = reliabilityFixture("cleans-up-on-term.flow.ts");

/** The shells' process groups, killed after each test in case a check failed with one still there. */
const shells: number[] = [];
afterEach(() => {
  for (const pid of shells.splice(0)) killGroup({ pid } as ChildProcess);
});

/**
 * `cairn run` of the trap flow, sent SIGINT once the task wrote its diagnostic to stderr (which
 * `--json` prints as `[trap] ...` lines on stderr), and a second SIGINT as soon as the first one
 * is acknowledged with `twice`. Its process group is killed if it is still there after 45 s.
 */
async function interrupted(env: NodeJS.ProcessEnv, options: { twice?: boolean } = {}) {
  const root = await tmp("cairn-interrupted-process-");
  const marker = join(root, "cleaned-up");
  const pidFile = join(root, "shell.pid");
  const live = start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", root], {
    env: childEnv({ ...env, MARKER_FILE: marker, PID_FILE: pidFile }),
  });
  let err = "";
  let sent = 0;
  live.child.stderr!.on("data", (d: Buffer) => {
    err += d;
    if (sent === 0 && err.includes("[trap] important-diagnostic")) {
      sent = 1;
      live.child.kill("SIGINT");
    }
    if (sent === 1 && options.twice && err.includes("SIGINT: cancelling")) {
      sent = 2;
      live.child.kill("SIGINT");
    }
  });
  const guard = setTimeout(() => killGroup(live.child), 45_000);
  const exit: Exit = await live.done.finally(() => clearTimeout(guard));
  const shellPid = Number(await readFile(pidFile, "utf8").catch(() => "0"));
  if (shellPid > 0) shells.push(shellPid);
  expect(sent, exit.stderr).toBe(options.twice ? 2 : 1);
  const cancelled = exit.json.find((e) => e.type === "task" && e.task === "trap" && e.status === "cancelled");
  const taskRunId = exit.json.find((e) => e.type === "task" && e.task === "trap" && e.status === "running")?.taskRunId as string;
  return { root, marker, shellPid, exit, cancelled, taskRunId };
}

describe("cairn run sent SIGINT while a process task cleans up after SIGTERM", () => {
  it("waits for the cleanup (within killGraceMs), keeps its logs, and closes its run KILLED", async () => {
    const { root, marker, exit, cancelled, taskRunId } = await interrupted({});
    expect(exit.code, exit.stderr).toBe(130);
    expect(cancelled).toBeDefined();
    // The trap's cleanup ran to its end: it sleeps 3 s, then touches the marker.
    expect(existsSync(marker), exit.stderr).toBe(true);
    expect(exit.stderr).not.toContain("Exiting without waiting");
    expect(exit.stderr).not.toContain("Pass ctx.signal");
    // Said while it cleans up (3 s is past the 1 s notice): not abandoned, killed after its grace.
    expect(exit.stderr).toMatch(/Attempt 1 of task "trap": its process did not exit on SIGTERM when the flow stopped; it is killed \(SIGKILL\) after 5000 ms/);
    const logs = join(root, "artifacts", taskRunId, "logs");
    expect(await readFile(join(logs, "stdout.txt"), "utf8")).toContain("started-here\n");
    const stderr = await readFile(join(logs, "stderr.txt"), "utf8");
    expect(stderr).toContain("important-diagnostic\n");
    expect(stderr).toContain("got-TERM-cleaning-up\n");

    const shown = JSON.parse((await cairn(["show", exit.json.at(-1)!.runId as string, "--json", "--root", root])).stdout) as {
      run: { status: string };
      tasks: Array<{ status: string }>;
    };
    expect(shown.run.status).toBe("KILLED");
    expect(shown.tasks.map((t) => t.status)).toEqual(["KILLED"]);
  }, 90_000);

  it("a second SIGINT still exits at once, and the process group dies with cairn", async () => {
    const { marker, shellPid, exit } = await interrupted({}, { twice: true });
    expect(exit.code, exit.stderr).toBe(130);
    expect(exit.stderr).toContain("SIGINT again: exiting now; open runs may stay RUNNING (the next cairn command closes them as KILLED).");
    expect(await waitFor(() => !alive(shellPid), 10_000)).toBe(true);
    expect(existsSync(marker)).toBe(false); // killed in its cleanup's sleep
  }, 90_000);
});

let server: MlflowServer | undefined;
beforeAll(async () => {
  if (hasVenv) server = await startMlflowServer();
}, 180_000);
afterAll(async () => {
  await server?.stop();
});

describe.skipIf(!hasVenv)("cairn run with an MLflow server sent SIGINT while a process task cleans up", () => {
  it("uploads the task's logs and closes its run KILLED", async () => {
    const { marker, exit, taskRunId } = await interrupted({ MLFLOW_TRACKING_URI: server!.uri });
    expect(exit.code, exit.stderr).toBe(130);
    const dst = await tmp("cairn-interrupted-process-dl-");
    const [run, listed] = await readWithMlflow(server!.uri, [
      { op: "get_run", run_id: taskRunId },
      { op: "list_artifacts", run_id: taskRunId, path: "logs" },
    ]);
    expect(run.status).toBe("KILLED");
    expect((listed as Array<{ path: string }>).map((f) => f.path).sort()).toEqual(["logs/stderr.txt", "logs/stdout.txt"]);
    const [stdout, stderr] = await readWithMlflow(server!.uri, [
      { op: "download_artifact", run_id: taskRunId, path: "logs/stdout.txt", dst },
      { op: "download_artifact", run_id: taskRunId, path: "logs/stderr.txt", dst },
    ]);
    const text = (f: { base64: string }) => Buffer.from(f.base64, "base64").toString("utf8");
    expect(text(stdout)).toContain("started-here\n");
    expect(text(stderr)).toContain("important-diagnostic\n");
    expect(text(stderr)).toContain("got-TERM-cleaning-up\n");
    expect(existsSync(marker), exit.stderr).toBe(true);
  }, 120_000);
});

describe.skipIf(!hasVenv)("cairn run with an MLflow server, a script timing out while it cleans up after SIGTERM", () => {
  it("uploads what the cleanup printed to the task's logs, closes its run FAILED, then exits", async () => {
    const root = await tmp("cairn-timed-out-process-");
    const exit = await start(process.execPath, [cairnBin, "run", reliabilityFixture("cleans-up-at-timeout.flow.ts"), "--json", "--root", root], {
      env: childEnv({ MLFLOW_TRACKING_URI: server!.uri, TASK_PYTHON: VENV_PYTHON }),
    }).done;
    expect(exit.code, exit.stderr).toBe(1);
    const failed = exit.json.find((e) => e.type === "task" && e.task === "cleans" && e.status === "failed");
    expect(failed?.error, exit.stderr).toMatchObject({ name: "TaskTimeoutError" });
    expect(exit.stderr).not.toContain("Exiting without waiting");
    const taskRunId = exit.json.find((e) => e.type === "task" && e.task === "cleans" && e.status === "running")?.taskRunId as string;
    const dst = await tmp("cairn-timed-out-process-dl-");
    const [run, listed, stdout] = await readWithMlflow(server!.uri, [
      { op: "get_run", run_id: taskRunId },
      { op: "list_artifacts", run_id: taskRunId },
      { op: "download_artifact", run_id: taskRunId, path: "logs/stdout.txt", dst },
    ]);
    expect(run.status).toBe("FAILED");
    expect((listed as Array<{ path: string }>).map((f) => f.path).sort()).toEqual(["cairn", "logs"]);
    expect(Buffer.from((stdout as { base64: string }).base64, "base64").toString("utf8")).toBe("working\ngot SIGTERM, cleaning up\ncleanup done\n");
  }, 120_000);
});
