/**
 * A process task's stdout and stderr reach its run as the artifacts logs/stdout.txt and
 * logs/stderr.txt with an MLflow server too, for a task that succeeds and one that fails,
 * secrets masked: read back with MLflow's own MlflowClient.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flow, script, shell } from "cairn-dag";
import { readWithMlflow } from "../../packages/mlflow/test/mlflow-read.ts";
import { startMlflowServer, type MlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { fixture, hasVenv, tempRoot, VENV_PYTHON } from "./helpers.ts";

let server: MlflowServer | undefined;
const SECRET = "tok-s3cr3t-value-42";

async function options() {
  return {
    root: await tempRoot(),
    cache: false as const,
    secrets: { API_TOKEN: SECRET },
    env: { ...process.env, MLFLOW_TRACKING_URI: server!.uri },
  };
}

/** The text of each artifact under logs/ of `runId`, as MlflowClient downloads it. */
async function logsOf(runId: string): Promise<Record<string, string>> {
  const dst = await tempRoot();
  const [listed] = await readWithMlflow(server!.uri, [{ op: "list_artifacts", run_id: runId, path: "logs" }]);
  const paths = (listed as { path: string }[]).map((f) => f.path).sort();
  const files = await readWithMlflow(server!.uri, paths.map((path) => ({ op: "download_artifact", run_id: runId, path, dst })));
  return Object.fromEntries(paths.map((p, i) => [p, Buffer.from(files[i].base64 as string, "base64").toString("utf8")]));
}

describe.skipIf(!hasVenv)("process logs in MLflow", () => {
  beforeAll(async () => {
    server = await startMlflowServer();
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
  });

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

  it("sends no file for a stream the process wrote nothing to", async () => {
    const t = shell("quiet", "echo only-stdout");
    const result = await (await flow("logs-quiet").build(() => ({ out: t().$out })).run(await options())).wait();
    expect(result.status).toBe("succeeded");
    expect(await logsOf(result.tasks.quiet!.runId!)).toEqual({ "logs/stdout.txt": "only-stdout\n" });
  }, 60_000);
});
