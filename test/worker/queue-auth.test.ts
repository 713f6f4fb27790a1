/**
 * A queue's Redis behind a password (redis-server --requirepass, and an ACL user with few rights):
 * a password or user it refuses is a setting to fix (QueueAuthError, exit 2), not a Redis that did
 * not answer (exit 3, which a supervisor answers by starting the worker again, for ever). Real
 * redis-server, MLflow server and `cairn` processes.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServer, startRedisServer } from "../../packages/cache/test/redis-server.ts";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnBin, cairnRun, childEnv, killGroup, start, type Started, tmp } from "../cache/helpers.ts";
import { timesRun } from "./helpers.ts";

const PASSWORD = "q-pass-7d1e9c";
const oneFlow = join(import.meta.dirname, "fixtures/one.flow.ts");
const peekFlow = join(import.meta.dirname, "fixtures/peek.flow.ts");
let redis: RedisServer | undefined;
let mlflow: MlflowServer | undefined;
beforeAll(async () => {
  [redis, mlflow] = await Promise.all([startRedisServer({ args: ["--requirepass", PASSWORD] }), startMlflowServer()]);
  // An ACL user that may run nothing a queue needs.
  await promisify(execFile)("redis-cli", ["-p", String(redis.port), "-a", PASSWORD, "--no-auth-warning", "ACL", "SETUSER", "reader", "on", ">reader-pw", "~other:*", "+get"]);
}, 180_000);
afterAll(async () => {
  await Promise.all([redis?.stop(), mlflow?.stop()]);
});

const url = (auth: string) => `redis://${auth}127.0.0.1:${redis!.port}`;
const cairn = (args: string[], env: NodeJS.ProcessEnv = {}) => start(process.execPath, [cairnBin, ...args], { env: childEnv({ MLFLOW_TRACKING_URI: mlflow!.uri, ...env }) }).done;

describe("a queue password Redis refuses", () => {
  it.each([
    ["a wrong password", ":wrong-pw-31@", "WRONGPASS", "refused its password or user name"],
    ["no password", "", "NOAUTH", "asks for a password the URL does not give"],
    ["an ACL user without the rights", "reader:reader-pw@", "NOPERM", "refused what its user may do"],
  ])("%s: cairn worker, --healthcheck, cairn workers and cairn run --queue say so and exit 2, not 3", async (_what, auth, reply, says) => {
    const queue = url(auth);
    const runs = await Promise.all([
      cairn(["worker", oneFlow, "--queue", queue, "--root", await tmp("cairn-auth-")]),
      cairn(["worker", oneFlow, "--queue", queue, "--healthcheck"]),
      cairn(["workers", "--queue", queue]),
      cairnRun(oneFlow, await tmp("cairn-auth-"), ["--queue", queue], { MLFLOW_TRACKING_URI: mlflow!.uri, MLFLOW_EXPERIMENT_NAME: "queue-auth" }).done,
    ]);
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("QueueAuthError: The queue's Redis at redis://");
      expect(r.stderr).toContain(reply);
      expect(r.stderr).toContain(says);
      expect(r.stderr).not.toContain("did not answer");
      for (const secret of ["wrong-pw-31", "reader-pw", PASSWORD]) expect(r.stderr + r.stdout).not.toContain(secret);
    }
  }, 180_000);

  it("the right password still works: cairn workers lists none", async () => {
    const r = await cairn(["workers", "--queue", url(`:${PASSWORD}@`)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("No live workers.");
  });
});

describe("the queue URL's password, kept from tasks", () => {
  /** `cairn worker peek.flow.ts ...args` with `env`, resolved once ready; killed after the test. */
  async function peekWorker(args: string[], env: NodeJS.ProcessEnv) {
    const w = start(process.execPath, [cairnBin, "worker", peekFlow, "--root", await tmp("cairn-peek-"), ...args], { env: childEnv({ MLFLOW_TRACKING_URI: mlflow!.uri, PEEK_SAYS: PASSWORD, ...env }) });
    let log = "";
    w.child.stderr!.on("data", (d: Buffer) => (log += d));
    const end = Date.now() + 60_000;
    while (!/worker \S+ ready/.test(log)) {
      if (Date.now() > end || w.child.exitCode !== null) throw new Error(`the worker never said it was ready:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { log: () => log, stop: async () => (killGroup(w.child, "SIGKILL"), await w.done) };
  }

  /** The task run's stderr log, as the MLflow server keeps it. */
  async function stderrLog(runId: string): Promise<string> {
    const res = await fetch(`${mlflow!.uri}/get-artifact?path=logs/stderr.txt&run_uuid=${runId}`);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    return text;
  }

  it.each([
    ["CAIRN_QUEUE on both sides: the URL is on no command line, and task processes do not inherit the variable", "env"],
    ["--queue on the worker's command line: a task that reads it there prints the password masked", "flag"],
  ])("%s", async (_what, how) => {
    const queue = url(`:${PASSWORD}@`);
    const name = `peek-${how}`;
    const worker = await peekWorker(how === "flag" ? ["--queue", queue] : [], { FLOW_NAME: name, ...(how === "env" ? { CAIRN_QUEUE: queue } : {}) });
    try {
      const r = await cairnRun(peekFlow, await tmp("cairn-peek-"), [], { FLOW_NAME: name, MLFLOW_TRACKING_URI: mlflow!.uri, MLFLOW_EXPERIMENT_NAME: name, CAIRN_QUEUE: queue }).done;
      expect(r.code, r.stderr).toBe(0);
      const said = r.stdout + r.stderr;
      expect(said).toContain("says: ***");
      expect(said).toContain("queue env: unset");
      if (how === "flag") expect(said).toMatch(/parent: .*--queue redis:\/\/:\*\*\*@127\.0\.0\.1/);
      else expect(said).not.toContain("redis://");
      const runId = String(r.json.find((e) => e.type === "task" && e.task === "peek" && typeof e.taskRunId === "string")?.taskRunId);
      const logged = await stderrLog(runId);
      expect(logged).toContain("says: ***");
      for (const text of [said, worker.log(), logged]) expect(text).not.toContain(PASSWORD);
    } finally {
      await worker.stop();
    }
  }, 180_000);
});

describe("two teams on one Redis", () => {
  it("each with its own database number in the URL (/5, /6) and flows of the same name: a worker takes only its own database's jobs", async () => {
    const markerDir = await tmp("cairn-teams-marks-");
    const env = { FLOW_NAME: "same-name", MLFLOW_TRACKING_URI: mlflow!.uri, MLFLOW_EXPERIMENT_NAME: "teams", MARKER_DIR: markerDir };
    const [teamA, teamB] = [`${url(`:${PASSWORD}@`)}/5`, `${url(`:${PASSWORD}@`)}/6`];
    const started: Started[] = [];
    const worker = async (queue: string) => {
      const w = start(process.execPath, [cairnBin, "worker", oneFlow, "--root", await tmp("cairn-teams-")], { env: childEnv({ ...env, CAIRN_QUEUE: queue }) });
      started.push(w);
      let log = "";
      w.child.stderr!.on("data", (d: Buffer) => (log += d));
      while (!/worker \S+ ready/.test(log)) {
        if (w.child.exitCode !== null) throw new Error(`the worker exited:\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return { child: w.child, log: () => log };
    };
    try {
      const a = await worker(teamA);
      const run = cairnRun(oneFlow, await tmp("cairn-teams-"), ["-p", "n=41"], { ...env, CAIRN_QUEUE: teamB });
      await new Promise((r) => setTimeout(r, 3000));
      // Team A's worker, on database 5, neither sees team B's job nor is listed on database 6.
      expect(await timesRun(markerDir, "only")).toBe(0);
      expect((await cairn(["workers"], { CAIRN_QUEUE: teamB })).stdout).toContain("No live workers.");
      expect((await cairn(["workers"], { CAIRN_QUEUE: teamA })).stdout).toContain("same-name");
      await worker(teamB);
      const r = await run.done;
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded", outputs: { n: 41 } });
      expect(await timesRun(markerDir, "only")).toBe(1);
      expect(a.log()).not.toContain("task only");
    } finally {
      for (const w of started) killGroup(w.child);
      await Promise.all(started.map((w) => w.done));
    }
  }, 180_000);
});
