/**
 * Runs left RUNNING by a `cairn run` killed with -9 (class 3 of the hardening issue): the task
 * that was running has a record, and the next `cairn` command that opens the store or the
 * experiment closes the flow run and its running task as KILLED, says so once on stderr, and
 * leaves the runs of a live process alone. Real `cairn` processes, the embedded store and a
 * real MLflow server.
 */
import { readFileSync } from "node:fs";
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import http from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { LocalStore } from "@cairn/core";
import { flow, task } from "cairn-dag";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnBin, childEnv, start, tmp } from "../cache/helpers.ts";
import { cairn, cairnRunKilled, jsonLines, reliabilityFixture, startProxy, taskRunning } from "./helpers.ts";

const flowFile = reliabilityFixture("slow-task.flow.ts");
const CLOSED = /Closed flow run (\w+) \(slow-task\) and 1 task run as KILLED/;

interface Run {
  runId: string;
  name: string;
  status: string;
  endTime?: number;
  tags: Record<string, string>;
}

const flowRunIdOf = (events: Array<Record<string, unknown>>) => events.find((e) => e.type === "flow")!.runId as string;

describe.each([
  // Killed at once: the task's run exists only as its index line (its run file is written within a second).
  { when: "at once", delayMs: 0 },
  // Killed later: the flow's and the task's run files were written, saying RUNNING.
  { when: "after 1.5 s", delayMs: 1500 },
])("embedded store, cairn run killed with -9 mid-task $when", ({ delayMs }) => {
  it("cairn runs / show close the flow run and its running task as KILLED, once, and a later run leaves them so", async () => {
    const root = await tmp();
    const killed = await cairnRunKilled(flowFile, root, taskRunning("slow"), { delayMs });
    expect(killed.signal).toBe("SIGKILL");
    const flowRunId = flowRunIdOf(killed.json);

    const listed = await cairn(["runs", "--json", "--root", root]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stderr).toMatch(CLOSED);
    expect(listed.stderr).toContain("no longer exists (killed, crashed, or it could not write the run's closing record: a full disk)");
    expect(listed.stderr.match(/Closed/g)).toHaveLength(1);
    const runs = JSON.parse(listed.stdout) as Run[];
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ runId: flowRunId, status: "KILLED" });
    expect(runs[0]!.endTime).toBeGreaterThanOrEqual((runs[0] as unknown as { startTime: number }).startTime);
    expect(runs[0]!.tags["cairn.abandoned"]).toContain(`pid ${killed.pid}`);

    const shown = await cairn(["show", flowRunId, "--json", "--root", root]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stderr).not.toMatch(/Closed/); // said once, by the command that closed them
    const { run, tasks } = JSON.parse(shown.stdout) as { run: Run; tasks: Run[] };
    expect(run.status).toBe("KILLED");
    const byName = Object.fromEntries(tasks.map((t) => [t.name, t]));
    expect(Object.keys(byName).sort()).toEqual(["prep", "slow"]);
    expect(byName.prep!.status).toBe("FINISHED");
    expect(byName.slow).toMatchObject({ status: "KILLED" });
    expect(byName.slow!.endTime).toBeDefined();
    // Killed or crashed, or (with no process to tell) a closing record that a full disk refused: the tag does not claim to know which.
    expect(byName.slow!.tags["cairn.abandoned"]).toMatch(/ended without closing it: killed, crashed, or its closing record could not be written \(a full disk\)/);

    // Read by a person: why it is KILLED (it printed `KILLED 5.5s` and nothing else), and what its duration is.
    const said = await cairn(["show", flowRunId, "--root", root]);
    expect(said.code, said.stderr).toBe(0);
    const abandoned = new RegExp(
      `^abandoned: Its process \\(pid ${killed.pid} on [^)]+\\) ended without closing it: killed, crashed, or its closing record could not be written \\(a full disk\\); ` +
        `closed as KILLED by process \\d+ at [^ ]+Z\\. Its duration runs until then, when it was found, not until its process ended\\.$`,
      "m",
    );
    expect(said.stdout).toMatch(abandoned);
    expect(said.stdout.split("\n").find((l) => l.startsWith("slow "))).toMatch(/ KILLED .* abandoned: its process ended without closing it$/);
    const slowShown = await cairn(["show", byName.slow!.runId, "--root", root]);
    expect(slowShown.code, slowShown.stderr).toBe(0);
    expect(slowShown.stdout).toMatch(abandoned);

    // A later, successful run of the same flow does not bring them back to RUNNING.
    const again = await cairn(["run", flowFile, "--json", "--root", root], { SLOW_MS: "0" });
    expect(again.code, again.stderr).toBe(0);
    const after = JSON.parse((await cairn(["runs", "--json", "--root", root])).stdout) as Run[];
    expect(after.map((r) => [r.runId === flowRunId ? "old" : "new", r.status]).sort()).toEqual([
      ["new", "FINISHED"],
      ["old", "KILLED"],
    ]);
  });
});

describe("embedded store, a second cairn run after kill -9", () => {
  it("closes the killed run itself and says so once (--json: on stderr, as a flow log line)", async () => {
    const root = await tmp();
    const killed = await cairnRunKilled(flowFile, root, taskRunning("slow"), { delayMs: 200 });
    const flowRunId = flowRunIdOf(killed.json);
    const again = await cairn(["run", flowFile, "--json", "--root", root], { SLOW_MS: "0" });
    expect(again.code, again.stderr).toBe(0);
    const notices = again.stderr.split("\n").filter((l) => /Closed flow run/.test(l));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/^\[flow\] Closed flow run/);
    expect(notices[0]).toContain(flowRunId);
    const shown = JSON.parse((await cairn(["show", flowRunId, "--json", "--root", root])).stdout) as { run: Run; tasks: Run[] };
    expect(shown.run.status).toBe("KILLED");
    expect(shown.tasks.find((t) => t.name === "slow")?.status).toBe("KILLED");
  });

  it.each([
    ["plan", []],
    ["explain", ["slow"]],
  ])("cairn %s closes the killed run and says so once, as the other commands do", async (command, rest) => {
    const root = await tmp();
    const killed = await cairnRunKilled(flowFile, root, taskRunning("slow"), { delayMs: 200 });
    const flowRunId = flowRunIdOf(killed.json);
    const read = await cairn([command, flowFile, ...rest, "--root", root]);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stderr).toMatch(CLOSED);
    expect(read.stderr).toContain(flowRunId);
    expect(read.stderr.match(/Closed/g)).toHaveLength(1);
    const shown = await cairn(["show", flowRunId, "--json", "--root", root]);
    expect(shown.stderr).not.toMatch(/Closed/); // closed already, by the command above
    const { run, tasks } = JSON.parse(shown.stdout) as { run: Run; tasks: Run[] };
    expect(run.status).toBe("KILLED");
    expect(tasks.find((t) => t.name === "slow")?.status).toBe("KILLED");
  });

  it("an app that lives on closes the runs of a process killed after its first flow.run(), at a flow.run() once a minute has passed", async () => {
    const root = await tmp();
    const quick = task("quick").run(() => ({ n: 1 }));
    const inApp = flow("slow-task").build(() => ({ n: quick().n }));
    expect((await (await inApp.run({ root, env: {}, cache: false })).wait()).status).toBe("succeeded");
    const killed = await cairnRunKilled(flowFile, root, taskRunning("slow"), { delayMs: 200 });
    const flowRunId = flowRunIdOf(killed.json);
    // A minute on (LOOK_AGAIN_MS in core/src/tracking/abandoned-runs.ts): the app looks at the store again.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 61_000 });
    try {
      expect((await (await inApp.run({ root, env: {}, cache: false })).wait()).status).toBe("succeeded");
      // Read the store as it is now, here: the app's own run closed them (a cairn command would close them itself).
      expect((await new LocalStore({ root }).getRun(flowRunId))?.status).toBe("KILLED");
    } finally {
      vi.useRealTimers();
    }
  });

  it("leaves the runs of a process that is still running alone", async () => {
    const root = await tmp();
    let running!: () => void;
    const slowRunning = new Promise<void>((r) => (running = r));
    const live = start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", root], {
      env: childEnv({ SLOW_MS: "60000" }),
      onStdout: (out) => taskRunning("slow")(jsonLines(out)) && running(),
    });
    try {
      await slowRunning;
      await new Promise((r) => setTimeout(r, 1500)); // its run files are written, RUNNING
      const listed = await cairn(["runs", "--json", "--root", root]);
      expect(listed.stderr).not.toMatch(/Closed/);
      expect((JSON.parse(listed.stdout) as Run[])[0]!.status).toBe("RUNNING");
    } finally {
      live.child.kill("SIGTERM");
      await live.done;
    }
    // Ended by SIGTERM, it closed its own runs: nothing is left to close.
    const after = await cairn(["runs", "--json", "--root", root]);
    expect(after.stderr).not.toMatch(/Closed/);
    expect((JSON.parse(after.stdout) as Run[])[0]!.status).toBe("KILLED");
  });
});

/** What `cairn plan` and `cairn explain slow` say of the slow task whose run a kill -9 left RUNNING and a later command closed. */
async function expectInterrupted(root: string, flowRunId: string, env: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<void> {
  const shown = JSON.parse((await cairn(["show", flowRunId, "--json", "--root", root], env)).stdout) as { tasks: Run[] };
  const slow = shown.tasks.find((t) => t.name === "slow")!;
  // The key it ran for, from its create request, copied where plan looks by the command that closed it.
  expect(slow).toMatchObject({ status: "KILLED", tags: { "cairn.key": expect.stringMatching(/^[0-9a-f]{64}$/) } });
  expect(slow.tags["cairn.failed_key"]).toBe(slow.tags["cairn.key"]);
  const plan = await cairn(["plan", flowFile, "--root", root, ...args], env);
  expect(plan.code, plan.stderr).toBe(0);
  // Before: "no cache entry for these inputs and code", as if it had never run.
  expect(plan.stdout).toMatch(new RegExp(`a run with this key was interrupted \\(run ${slow.runId}, \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\); no entry is stored for it`));
  const explained = await cairn(["explain", flowFile, "slow", "--root", root, ...args], env);
  expect(explained.code, explained.stderr).toBe(0);
  expect(explained.stdout).toContain(`A run with these inputs and code was interrupted: run ${slow.runId}, started `);
}

describe("embedded store, a task run killed with -9 and closed by a later command", () => {
  it("is said by plan and explain to have been interrupted with this key, naming its run, not new", async () => {
    const root = await tmp();
    const killed = await cairnRunKilled(flowFile, root, taskRunning("slow"), { delayMs: 1500 });
    await expectInterrupted(root, flowRunIdOf(killed.json));
  });
});

describe("embedded store, a killed run's task record that cannot be read when the next command closes the run", () => {
  it("is left as it is, not replaced by a KILLED record, with a warning naming its file; the next command after it is restored leaves it FINISHED", async () => {
    const root = await tmp();
    // After 1.5 s, prep's run file says FINISHED and the flow's and slow's say RUNNING.
    const killed = await cairnRunKilled(flowFile, root, taskRunning("slow"), { delayMs: 1500 });
    const flowRunId = flowRunIdOf(killed.json);
    const runsDir = join(root, "runs");
    const files = (await readdir(runsDir)).filter((n) => /^[0-9a-f]{32}\.json$/.test(n));
    const prepFile = join(runsDir, files.find((n) => JSON.parse(readFileSync(join(runsDir, n), "utf8")).name === "prep")!);
    expect(JSON.parse(readFileSync(prepFile, "utf8")).status).toBe("FINISHED");
    const saved = `${prepFile}.saved`;
    await rename(prepFile, saved);
    await mkdir(prepFile); // a folder in its place: EISDIR on read (as root, modes would not stop a read)

    const listed = await cairn(["runs", "--json", "--root", root]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stderr).toMatch(CLOSED);
    expect(listed.stderr).toContain("no longer exists (killed, crashed, or it could not write the run's closing record: a full disk)");
    expect(listed.stderr).toContain(`cairn: Cannot read ${prepFile}`);
    expect(listed.stderr).toMatch(/\("prep"\) is left as it is, not closed as KILLED/);
    expect((JSON.parse(listed.stdout) as Run[])[0]).toMatchObject({ runId: flowRunId, status: "KILLED" });

    // The next run says it too, among its own warnings (not as a bare process warning).
    const next = await cairn(["run", flowFile, "--root", root, "--no-report"], { SLOW_MS: "10" });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stdout).toMatch(/^\[flow\] Cannot read .*\("prep"\) is left as it is, not closed as KILLED/m);
    expect(next.stderr).not.toContain("Warning:");

    await rm(prepFile, { recursive: true });
    await rename(saved, prepFile);
    const shown = await cairn(["show", flowRunId, "--json", "--root", root]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stderr).toBe("");
    const { tasks } = JSON.parse(shown.stdout) as { tasks: Run[] };
    expect(Object.fromEntries(tasks.map((t) => [t.name, t.status]))).toEqual({ prep: "FINISHED", slow: "KILLED" });
    expect(tasks.find((t) => t.name === "prep")!.tags["cairn.abandoned"]).toBeUndefined();
  });
});

describe("MLflow server, cairn run killed with -9 mid-task", () => {
  let server: MlflowServer;
  beforeAll(async () => {
    server = await startMlflowServer();
  });
  afterAll(() => server?.stop());

  it("cairn runs closes the flow run and its running task as KILLED on the server; show and a later run read that back", async () => {
    const root = await tmp();
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const killed = await cairnRunKilled(flowFile, root, taskRunning("slow"), { delayMs: 300, env });
    expect(killed.signal).toBe("SIGKILL");
    const flowRunId = flowRunIdOf(killed.json);

    const listed = await cairn(["runs", "--experiment", "slow-task", "--json"], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stderr).toMatch(CLOSED);
    expect(listed.stderr).toContain("no longer exists (killed, crashed, or it could not write the run's closing record: a full disk)");
    const runs = JSON.parse(listed.stdout) as Run[];
    expect(runs.find((r) => r.runId === flowRunId)).toMatchObject({ status: "KILLED" });

    const shown = await cairn(["show", flowRunId, "--json"], env);
    expect(shown.stderr).not.toMatch(/Closed/);
    const { run, tasks } = JSON.parse(shown.stdout) as { run: Run; tasks: Run[] };
    expect(run.status).toBe("KILLED");
    expect(run.endTime).toBeDefined();
    expect(run.tags["cairn.abandoned"]).toContain(`pid ${killed.pid}`);
    expect(tasks.find((t) => t.name === "slow")).toMatchObject({ status: "KILLED" });
    expect(tasks.find((t) => t.name === "prep")).toMatchObject({ status: "FINISHED" });

    const again = await cairn(["run", flowFile, "--json", "--root", root], { ...env, SLOW_MS: "0" });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/Closed/);
    const reread = JSON.parse((await cairn(["show", flowRunId, "--json"], env)).stdout) as { run: Run };
    expect(reread.run.status).toBe("KILLED");
  });

  it("a task run it closed is said by plan and explain to have been interrupted with this key, not new", async () => {
    const root = await tmp();
    const env = { MLFLOW_TRACKING_URI: server.uri };
    // An experiment of its own: the other tests' runs of the same key stored its entry in theirs.
    const args = ["--experiment", `interrupted-${Date.now()}`];
    const killed = await cairnRunKilled(flowFile, root, taskRunning("slow"), { delayMs: 300, env, args });
    await expectInterrupted(root, flowRunIdOf(killed.json), env, args);
  });

  it("killed while a finished task's run is still being closed: the next run runs that task again, and the half-closed run ends KILLED", async () => {
    // A proxy holds every request that would end a run FINISHED: "prep"'s run stays open while
    // "slow", its dependant, starts (runs close beside their dependants), and the kill lands then.
    const held: http.ServerResponse[] = [];
    const proxy = await startProxy(server.uri, (req, res) => {
      if (req.url !== "/api/2.0/mlflow/runs/update") return false;
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk));
      req.on("end", () => {
        if ((JSON.parse(body) as { status?: string }).status === "FINISHED") held.push(res);
        else forward(server.uri, req, body, res);
      });
      return true;
    });
    const root = await tmp();
    const experiment = { MLFLOW_EXPERIMENT_NAME: "killed-while-closing" };
    try {
      const killed = await cairnRunKilled(flowFile, root, taskRunning("slow"), { delayMs: 300, env: { MLFLOW_TRACKING_URI: proxy.uri, ...experiment } });
      expect(killed.signal).toBe("SIGKILL");
      expect(held.length).toBe(1); // prep's end, never answered
      const flowRunId = flowRunIdOf(killed.json);

      const env = { MLFLOW_TRACKING_URI: server.uri, ...experiment };
      const again = await cairn(["run", flowFile, "--json", "--root", root], { ...env, SLOW_MS: "0" });
      expect(again.code, again.stderr).toBe(0);
      // prep's entry was to be stored once its run had ended: there is none, so it runs again.
      const statuses = Object.fromEntries(again.json.filter((e) => e.type === "task" && e.status !== "running").map((e) => [e.task, e.status]));
      expect(statuses).toEqual({ prep: "succeeded", slow: "succeeded" });
      expect(again.stderr).toMatch(/Closed flow run \w+ \(slow-task\) and 2 task runs as KILLED/);
      const { tasks } = JSON.parse((await cairn(["show", flowRunId, "--json"], env)).stdout) as { tasks: Run[] };
      expect(tasks.find((t) => t.name === "prep")).toMatchObject({ status: "KILLED" });
      expect(tasks.find((t) => t.name === "slow")).toMatchObject({ status: "KILLED" });
    } finally {
      for (const res of held) res.destroy();
      await proxy.close();
    }
  });

  it("cairn runs whose listing fails still says what it closed, then fails with the server's error", async () => {
    const root = await tmp();
    const experiment = { MLFLOW_EXPERIMENT_NAME: "listing-fails" };
    const killed = await cairnRunKilled(flowFile, root, taskRunning("slow"), { delayMs: 300, env: { MLFLOW_TRACKING_URI: server.uri, ...experiment } });
    const flowRunId = flowRunIdOf(killed.json);
    // The listing gets a 500; the search for runs left RUNNING, and its second read of them by
    // id, go through. A fault the real server cannot be made to show.
    const proxy = await startProxy(server.uri, (req, res) => {
      if (req.url !== "/api/2.0/mlflow/runs/search") return false;
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk));
      req.on("end", () => {
        if (body.includes("RUNNING") || body.includes("run_id IN")) forward(server.uri, req, body, res);
        else res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error_code: "INTERNAL_ERROR", message: "listing refused" }));
      });
      return true;
    });
    try {
      const listed = await cairn(["runs", "--experiment", "listing-fails", "--json"], { MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0" });
      expect(listed.code).not.toBe(0);
      expect(listed.stderr).toMatch(/Closed flow run (\w+) \(slow-task\) and 1 task run as KILLED/);
      expect(listed.stderr).toContain(flowRunId);
      expect(listed.stderr).toMatch(/listing refused|500/);
      expect(listed.stdout).toBe("");
    } finally {
      await proxy.close();
    }
    // The closing landed: the run reads KILLED, and nothing is left to close.
    const shown = await cairn(["show", flowRunId, "--json"], { MLFLOW_TRACKING_URI: server.uri });
    expect(shown.stderr).not.toMatch(/Closed/);
    expect((JSON.parse(shown.stdout) as { run: Run }).run.status).toBe("KILLED");
  });

  it("a run that ended FINISHED while another command's search for abandoned runs was answered is left FINISHED", async () => {
    const experiment = { MLFLOW_EXPERIMENT_NAME: "finished-meanwhile" };
    const root = await tmp();
    // The live run: straight to the server, its task running for a moment.
    let exited!: () => void;
    const done = new Promise<void>((r) => (exited = r));
    let sawSlow!: () => void;
    const slowRunning = new Promise<void>((r) => (sawSlow = r));
    const live = start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", root], {
      env: childEnv({ MLFLOW_TRACKING_URI: server.uri, ...experiment, SLOW_MS: "1500" }),
      onStdout: (out) => {
        if (taskRunning("slow")(jsonLines(out))) sawSlow();
      },
    });
    void live.done.then(() => exited());
    await slowRunning;
    // cairn runs, through a proxy that holds the answer to the search for RUNNING runs until the
    // live run has ended its runs and exited: the answer still lists them RUNNING, their owner gone.
    const proxy = await startProxy(server.uri, (req, res) => {
      if (req.url !== "/api/2.0/mlflow/runs/search") return false;
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk));
      req.on("end", () => {
        if (!body.includes("RUNNING")) return forward(server.uri, req, body, res);
        const target = new URL(server.uri);
        const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } }, (up) => {
          const chunks: Buffer[] = [];
          up.on("data", (c: Buffer) => chunks.push(c));
          up.on("end", () => void done.then(() => res.writeHead(up.statusCode ?? 502, up.headers).end(Buffer.concat(chunks))));
        });
        upstream.end(body);
      });
      return true;
    });
    try {
      const listed = await cairn(["runs", "--experiment", "finished-meanwhile", "--json"], { MLFLOW_TRACKING_URI: proxy.uri });
      const exit = await live.done;
      expect(exit.code, exit.stderr).toBe(0);
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.stderr).not.toMatch(/Closed/);
      const flowRunId = flowRunIdOf(exit.json);
      const { run, tasks } = JSON.parse((await cairn(["show", flowRunId, "--json"], { MLFLOW_TRACKING_URI: server.uri })).stdout) as { run: Run; tasks: Run[] };
      expect(run.status).toBe("FINISHED");
      expect(run.tags["cairn.abandoned"]).toBeUndefined();
      expect(tasks.map((t) => t.status)).toEqual(["FINISHED", "FINISHED"]);
    } finally {
      await proxy.close();
    }
  });

  it("SIGTERM while cairn run is starting, and the start then fails: the error is said, and the exit is 130", async () => {
    let child: import("node:child_process").ChildProcess | undefined;
    // The flow run's create is refused once the signal has been sent: the start fails after it.
    const proxy = await startProxy(server.uri, (req, res) => {
      if (req.url !== "/api/2.0/mlflow/runs/create") return false;
      child!.kill("SIGTERM");
      setTimeout(() => res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error_code: "INTERNAL_ERROR", message: "create refused" })), 300);
      return true;
    });
    try {
      const started = start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", await tmp()], {
        env: childEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "term-then-fail", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0" }),
      });
      child = started.child;
      const exit = await started.done;
      expect(exit.signal, exit.stderr).toBeNull();
      expect(exit.code, exit.stderr).toBe(130);
      expect(exit.stderr).toContain("create refused");
    } finally {
      await proxy.close();
    }
  });

  // The work is all done and recorded when the report is uploaded: a signal then does not undo it.
  // It printed "Flow succeeded" and exited 130, with the flow run FINISHED: now all three agree.
  it.each([
    { mode: "--json", args: ["--json"], experiment: "term-at-report-json" },
    { mode: "plain", args: [], experiment: "term-at-report-plain" },
  ])("SIGTERM while the run's report is being uploaded ($mode): the run succeeded, is recorded FINISHED, and cairn exits 0 at once, not when the upload ends", async ({ args, experiment }) => {
    // The proxy holds the report's upload for as long as the test wants: a server that hangs.
    let child: import("node:child_process").ChildProcess | undefined;
    const held: http.ServerResponse[] = [];
    let released = false;
    const proxy = await startProxy(server.uri, (req, res) => {
      if (req.method !== "PUT" || !req.url?.endsWith("/cairn/report.html")) return false;
      held.push(res);
      req.resume();
      child!.kill("SIGTERM");
      return true;
    });
    const release = () => {
      released = true;
      for (const res of held) res.writeHead(200).end("{}");
    };
    // Released after 45 s at the latest, so that the old code ends too (and fails below).
    const deadline = setTimeout(release, 45_000);
    try {
      const started = start(process.execPath, [cairnBin, "run", flowFile, ...args, "--root", await tmp()], {
        env: childEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: experiment, SLOW_MS: "0" }),
      });
      child = started.child;
      const exit = await started.done;
      const whileHeld = !released;
      expect(held.length).toBe(1);
      expect(exit.code, exit.stderr).toBe(0);
      // The notice is on stderr with --json, on stdout among the run's lines without.
      const said = exit.stdout + exit.stderr;
      const runId = /cairn report ([0-9a-f]{32})/.exec(said)?.[1];
      expect(said).toContain(`SIGTERM came after every task had finished and was recorded: the run succeeded, recorded FINISHED; its report was not waited for and may be missing or unfinished (\`cairn report ${runId}\` writes it).`);
      if (args.length) expect(jsonLines(exit.stdout).filter((e) => e.type === "flow").at(-1)).toMatchObject({ status: "succeeded", runId });
      else expect(exit.stdout).toMatch(/Flow succeeded in /);
      // Before, the process lived until the upload ended, though it had said the run ended without waiting for the report.
      expect(whileHeld, "cairn exited while the report's upload was still held").toBe(true);
      const shown = await cairn(["show", runId!, "--json"], { MLFLOW_TRACKING_URI: server.uri });
      expect((JSON.parse(shown.stdout) as { run: Run }).run.status).toBe("FINISHED");
    } finally {
      clearTimeout(deadline);
      release();
      await proxy.close();
    }
  }, 90_000);

  it("SIGTERM while cairn run is still starting its flow run cancels the run: exit 130, and its runs end KILLED", async () => {
    // The proxy holds the flow run's create until the signal has been sent: the process is then
    // inside the start of the run, which has asked for the flow run but not yet got it.
    let signalled!: () => void;
    const sent = new Promise<void>((r) => (signalled = r));
    let child: import("node:child_process").ChildProcess | undefined;
    let held = false;
    const proxy = await startProxy(server.uri, (req, res) => {
      if (req.url !== "/api/2.0/mlflow/runs/create" || held) return false;
      held = true;
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk));
      req.on("end", () => {
        child!.kill("SIGTERM");
        signalled();
        void sent.then(() => setTimeout(() => forward(server.uri, req, body, res), 300));
      });
      return true;
    });
    try {
      const root = await tmp();
      const started = start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", root], {
        env: childEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "term-at-start", SLOW_MS: "60000" }),
      });
      child = started.child;
      const exit = await started.done;
      expect(held).toBe(true);
      expect(exit.signal, exit.stderr).toBeNull();
      expect(exit.code, exit.stderr).toBe(130);
      const ended = exit.json.find((e) => e.type === "flow" && e.status !== "running");
      expect(ended).toMatchObject({ status: "cancelled" });
      const { run, tasks } = JSON.parse((await cairn(["show", String(ended!.runId), "--json"], { MLFLOW_TRACKING_URI: server.uri })).stdout) as { run: Run; tasks: Run[] };
      expect(run.status).toBe("KILLED");
      expect(run.tags["cairn.abandoned"]).toBeUndefined(); // ended by the run itself, not by a later command
      // Cancelled before any task started: no task run is created for it (one request each, on a cancel).
      expect(tasks).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it("a second cairn run closes them itself", async () => {
    const root = await tmp();
    const env = { MLFLOW_TRACKING_URI: server.uri, MLFLOW_EXPERIMENT_NAME: "second-run" };
    const killed = await cairnRunKilled(flowFile, root, taskRunning("slow"), { delayMs: 300, env });
    const flowRunId = flowRunIdOf(killed.json);
    const again = await cairn(["run", flowFile, "--json", "--root", root], { ...env, SLOW_MS: "0" });
    expect(again.code, again.stderr).toBe(0);
    const notices = again.stderr.split("\n").filter((l) => /Closed flow run/.test(l));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/^\[flow\] Closed flow run/);
    expect(notices[0]).toContain(flowRunId);
  });
});

/** Sends a request whose body was already read on to the server at `uri`, and its answer back. */
function forward(uri: string, req: http.IncomingMessage, body: string, res: http.ServerResponse): void {
  const target = new URL(uri);
  const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } }, (up) => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    up.pipe(res);
  });
  upstream.on("error", () => res.writeHead(502).end());
  upstream.end(body);
}
