/**
 * A failed process step's run carries how its process ended as a tag of its own,
 * `cairn.exit_code` or `cairn.signal`, so that MLflow's search can tell kinds of failure apart
 * (`tags."cairn.signal" = 'SIGKILL'`), set in the log-batch that closes the run.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flow, shell } from "cairn-dag";
import { LocalStore } from "@cairn/core";
import { readWithMlflow } from "../../packages/mlflow/test/mlflow-read.ts";
import { startMlflowServer, type MlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { hasVenv, tempRoot } from "./helpers.ts";

let server: MlflowServer | undefined;

beforeAll(async () => {
  if (hasVenv) server = await startMlflowServer();
}, 180_000);
afterAll(async () => {
  await server?.stop();
});

describe.skipIf(!hasVenv)("a failed process step's exit tags on an MLflow server", () => {
  const options = async () => ({ root: await tempRoot(), cache: false as const, env: { ...process.env, MLFLOW_TRACKING_URI: server!.uri } });

  it("tags a step that exited with its code", async () => {
    const t = shell("exits", "exit 7");
    const result = await (await flow("exits").build(() => ({ o: t().$out })).run(await options())).wait();
    const [run] = await readWithMlflow(server!.uri, [{ op: "get_run", run_id: result.tasks.exits!.runId! }]);
    expect(run.tags["cairn.exit_code"]).toBe("7");
    expect(run.tags["cairn.signal"]).toBeUndefined();
  }, 60_000);

  it("tags a step killed by a signal with the signal", async () => {
    const t = shell("killed", "kill -9 $$");
    const result = await (await flow("killed").build(() => ({ o: t().$out })).run(await options())).wait();
    expect(result.tasks.killed!.error?.name).toBe("ProcessFailedError");
    const [run] = await readWithMlflow(server!.uri, [{ op: "get_run", run_id: result.tasks.killed!.runId! }]);
    expect(run.tags["cairn.signal"]).toBe("SIGKILL");
    expect(run.tags["cairn.exit_code"]).toBeUndefined();
  }, 60_000);
});

describe("a failed process step's exit tags on the embedded store", () => {
  it("tags a step that exited with its code", async () => {
    const root = await tempRoot();
    const store = new LocalStore({ root: join(root, "store") });
    const t = shell("exits", "exit 3");
    const result = await (await flow("exits").build(() => ({ o: t().$out })).run({ tracker: store, root, cache: false })).wait();
    const run = await store.getRun(result.tasks.exits!.runId!);
    expect(run?.status).toBe("FAILED");
    expect(run?.tags["cairn.exit_code"]).toBe("3");
  });

  it("says a shell's code 128+N is a command in it killed by signal N, and tags the code", async () => {
    const root = await tempRoot();
    const store = new LocalStore({ root: join(root, "store") });
    // The shell outlives the command a signal killed, and exits with its 128+N code.
    const oom = shell("oom", "python3 -c 'import os; os.kill(os.getpid(), 9)'; exit $?");
    const segv = shell("segv", "sh -c 'kill -SEGV $$'; exit $?");
    const result = await (await flow("killed-inside").build(() => ({ a: oom().$out, b: segv().$out })).run({ tracker: store, root, cache: false, failurePolicy: "continue" })).wait();
    const oomError = result.tasks.oom!.error!;
    expect(oomError.message).toContain("exited with code 137: a command in it was killed by SIGKILL from outside: the kernel's out-of-memory killer");
    expect(oomError.message).toContain("if it ran out of memory, give it more memory");
    expect(oomError.message).not.toContain("fix the error above");
    expect(result.tasks.segv!.error!.message).toContain("exited with code 139: a command in it was killed by SIGSEGV.");
    const tags = (await store.getRun(result.tasks.oom!.runId!))!.tags;
    expect(tags["cairn.exit_code"]).toBe("137");
    expect(tags["cairn.signal"]).toBeUndefined();
  });

  it("leaves them off a run whose retry succeeded, and off a task that failed otherwise", async () => {
    const root = await tempRoot();
    const store = new LocalStore({ root: join(root, "store") });
    const flaky = shell("flaky", `test -e "${root}/tried" || { touch "${root}/tried"; exit 5; }; echo ok`).retries(1);
    const late = shell("late", "sleep 30").timeout(300);
    const result = await (await flow("mixed").build(() => ({ a: flaky().stdout, b: late().$out })).run({ tracker: store, root, cache: false, failurePolicy: "continue" })).wait();
    expect(result.tasks.flaky!.status).toBe("succeeded");
    expect(result.tasks.late!.error?.name).toBe("TaskTimeoutError");
    for (const task of ["flaky", "late"]) {
      const tags = (await store.getRun(result.tasks[task]!.runId!))!.tags;
      expect(tags["cairn.exit_code"]).toBeUndefined();
      expect(tags["cairn.signal"]).toBeUndefined();
    }
  });
});
