/**
 * A task's `succeeded` is said once its run is closed and its result stored, though with a
 * server that closing goes on beside its dependants: a `succeeded` the user saw survives a
 * kill -9 (the next run takes the task from the cache), and one whose run could not be closed
 * (the server died) says it was not recorded. Real `cairn` processes and a real `mlflow server`.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnBin, childEnv, jsonLines, start, tmp } from "../cache/helpers.ts";
import { cairnRunKilled, killServer, reliabilityFixture, startProxy, taskRunning } from "./helpers.ts";

const flowFile = reliabilityFixture("closing-task.flow.ts");

let servers: MlflowServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  servers = [];
});

async function server(): Promise<MlflowServer> {
  const s = await startMlflowServer();
  servers.push(s);
  return s;
}

/** True once `events` has task `task`'s `succeeded`. */
const taskSucceeded = (task: string) => (events: Array<Record<string, unknown>>) => events.some((e) => e.type === "task" && e.task === task && e.status === "succeeded");

describe("a task's succeeded with an MLflow server", () => {
  it("survives a kill -9 right after its line: the next run takes the task from the cache", async () => {
    const s = await server();
    // Every run's end is answered 1.5 s late: a closing still under way when the line is read
    // (as a loaded server makes it, 8 times in 19 in the review) is then certain, not a race.
    const target = new URL(s.uri);
    const proxy = await startProxy(s.uri, (req, res) => {
      if (req.method !== "POST" || !req.url?.startsWith("/api/2.0/mlflow/runs/update")) return false;
      const body: Buffer[] = [];
      req.on("data", (d: Buffer) => body.push(d));
      req.on("end", () =>
        setTimeout(() => {
          fetch(`${target.origin}${req.url}`, { method: "POST", headers: { "content-type": "application/json" }, body: Buffer.concat(body) }).then(
            async (up) => res.writeHead(up.status, { "content-type": "application/json" }).end(await up.text()),
            () => res.writeHead(502).end(),
          );
        }, 1500),
      );
      return true;
    });
    const root = await tmp();
    try {
      const env = { MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "succeeded-then-kill9", SLOW_MS: "60000" };
      const killed = await cairnRunKilled(flowFile, root, taskSucceeded("prep"), { env });
      expect(killed.signal).toBe("SIGKILL");
    } finally {
      await proxy.close();
    }
    const again = await start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", root], {
      env: childEnv({ MLFLOW_TRACKING_URI: s.uri, MLFLOW_EXPERIMENT_NAME: "succeeded-then-kill9", SLOW_MS: "10" }),
    }).done;
    expect(again.code, again.stderr).toBe(0);
    const prep = again.json.filter((e) => e.type === "task" && e.task === "prep").map((e) => e.status);
    expect(prep, again.stderr).toContain("cached");
    expect(prep).not.toContain("running");
  }, 120_000);

  it("a task whose run could not be closed (the server died) ends `succeeded` with recorded: false, and the next run computes it", async () => {
    const s = await server();
    let killed: Promise<void> | undefined;
    const root = await tmp();
    const env = { MLFLOW_EXPERIMENT_NAME: "dead-while-closing", SLOW_MS: "10", ...FAST };
    // Killed while prep works (3 s): its closing, after, meets a dead server.
    const exit = await start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", root], {
      env: childEnv({ ...env, MLFLOW_TRACKING_URI: s.uri, PREP_MS: "3000" }),
      onStdout: (out) => {
        if (killed || !taskRunning("prep")(jsonLines(out))) return;
        killed = killServer(s);
      },
    }).done;
    expect(killed, exit.stdout).toBeDefined();
    await killed;
    expect(exit.code, exit.stderr).toBe(1);
    const prep = exit.json.filter((e) => e.type === "task" && e.task === "prep" && e.status === "succeeded");
    expect(prep, exit.stdout).toHaveLength(1);
    expect(prep[0]).toMatchObject({ recorded: false });
    expect(`${exit.stdout}\n${exit.stderr}`).toMatch(/could not be closed/);
    // What `recorded: false` says: the task has no cache entry; a run against a live server computes it again.
    const back = await server();
    const again = await start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", root], {
      env: childEnv({ ...env, MLFLOW_TRACKING_URI: back.uri }),
    }).done;
    expect(again.code, again.stderr).toBe(0);
    const statuses = again.json.filter((e) => e.type === "task" && e.task === "prep").map((e) => e.status);
    expect(statuses).toContain("running");
    expect(again.json.find((e) => e.type === "task" && e.task === "prep" && e.status === "succeeded")).not.toHaveProperty("recorded");
  }, 180_000);
});

/** A short retry policy: a dead server is given up on in seconds. */
const FAST = { MLFLOW_HTTP_REQUEST_MAX_RETRIES: "2", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0.2", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0" };
