/**
 * A tracking server that dies mid-run, or that is slow when the run is cancelled: the run still
 * ends, in seconds rather than one full retry policy (about 4 minutes) per request. Once a
 * request has used up its retries without an answer, later requests are tried once (the circuit
 * breaker); after a cancel (SIGTERM, Ctrl-C) each request makes one short try. What could not be
 * closed is said, and the next command closes it as KILLED. Real `cairn` processes and a real
 * `mlflow server`, killed with SIGKILL of its process group; a proxy only to hold an answer.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnBin, childEnv, jsonLines, start, tmp } from "../cache/helpers.ts";
import { cairn, killServer, reliabilityFixture, startProxy, taskRunning } from "./helpers.ts";

const flowFile = reliabilityFixture("slow-task.flow.ts");

interface Run {
  runId: string;
  name: string;
  status: string;
  tags: Record<string, string>;
}

let servers: MlflowServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  servers = [];
});

async function server(again?: MlflowServer): Promise<MlflowServer> {
  const s = await startMlflowServer(again ? { again } : {});
  servers.push(s);
  return s;
}

/** `cairn run` of slow-task.flow.ts against `uri`; `onSlow` is called once, when "slow" runs. */
async function runFlow(uri: string, experiment: string, env: NodeJS.ProcessEnv, onSlow: (child: import("node:child_process").ChildProcess) => void) {
  let seen = false;
  return start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", await tmp()], {
    env: childEnv({ MLFLOW_TRACKING_URI: uri, MLFLOW_EXPERIMENT_NAME: experiment, ...env }),
    onStdout: (out, child) => {
      if (seen || !taskRunning("slow")(jsonLines(out))) return;
      seen = true;
      onSlow(child);
    },
  });
}

/** The next command against the server, back on the dead one's data, closes what the run left RUNNING as KILLED. */
async function closedByNextCommand(s: MlflowServer, experiment: string, flowRunId: string): Promise<void> {
  const back = await server(s);
  const listed = await cairn(["runs", "--experiment", experiment, "--json"], { MLFLOW_TRACKING_URI: back.uri });
  expect(listed.code, listed.stderr).toBe(0);
  expect(listed.stderr).toMatch(/Closed flow run \w+ \(slow-task\) and [12] task runs? as KILLED/);
  const shown = JSON.parse((await cairn(["show", flowRunId, "--json"], { MLFLOW_TRACKING_URI: back.uri })).stdout) as { run: Run; tasks: Run[] };
  expect(shown.run.status).toBe("KILLED");
  const byName = Object.fromEntries(shown.tasks.map((t) => [t.name, t.status]));
  expect(byName.slow).toBe("KILLED");
  // "prep" was closed before the server died, or, its closing cut short by the death, closed now.
  expect(["FINISHED", "KILLED"]).toContain(byName.prep);
}

describe("the MLflow server dies while a task runs", () => {
  it("SIGTERM then ends the run in seconds with the default retry policy, says which runs may stay RUNNING, and the next command closes them", async () => {
    const s = await server();
    let killed!: Promise<void>;
    // The default policy (7 retries, about 4 minutes per request): a supervisor's one SIGTERM must still end the run.
    const live = await runFlow(s.uri, "dead-then-term", { SLOW_MS: "600000" }, (child) => {
      killed = killServer(s).then(() => void child.kill("SIGTERM"));
    });
    const exit = await live.done;
    await killed;
    expect(exit.signal, exit.stderr).toBeNull();
    expect(exit.code, exit.stderr).toBe(130);
    // One request's retries alone would take about 250 s: each request after the cancel is tried once.
    expect(exit.ms).toBeLessThan(60_000);
    const flowRunId = exit.json.find((e) => e.type === "flow")!.runId as string;
    expect(exit.json.find((e) => e.type === "task" && e.task === "slow" && e.status === "cancelled")).toBeDefined();
    // The run ended (its flow run could not be closed: the flow says so, failed on that error).
    expect(exit.json.find((e) => e.type === "flow" && e.status !== "running")).toBeDefined();
    expect(exit.stderr).toContain("may stay RUNNING");
    expect(exit.stderr).toContain(`the flow run (${flowRunId})`);
    expect(exit.stderr).toMatch(/task "slow" \(\w+\)/);
    expect(exit.stderr).toContain("closes them as KILLED");
    await closedByNextCommand(s, "dead-then-term", flowRunId);
    // The run's own bound is asserted above; the test also starts and kills a server and runs the next command.
  }, 180_000);

  it("with no signal: once one request has used up its retries, later ones are tried once; the run fails, says what stays RUNNING, and the next command closes it", async () => {
    const s = await server();
    let killed!: Promise<void>;
    // A short policy (0.5 + 1 + 2 s) keeps the test short; the breaker is what the test looks for.
    const live = await runFlow(
      s.uri,
      "dead-no-signal",
      { SLOW_MS: "3000", CAIRN_MLFLOW_TRACE: "1", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "3", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0.5", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0" },
      () => (killed = killServer(s)),
    );
    const exit = await live.done;
    await killed;
    expect(exit.code, exit.stderr).toBe(1);
    const flowRunId = exit.json.find((e) => e.type === "flow")!.runId as string;
    const ended = exit.json.find((e) => e.type === "flow" && e.status !== "running");
    expect(ended).toMatchObject({ status: "failed" });
    // Said as the flow's error (the task's run could not be closed) or, when the server died while
    // an earlier task's closing was under way, also in a warning: which of them is a race.
    expect(`${JSON.stringify(ended)}\n${exit.stderr}`).toContain("Cannot reach the MLflow tracking server");
    // The trace (CAIRN_MLFLOW_TRACE): each request's start, duration and tries, on one clock.
    const requests = [...exit.stderr.matchAll(/\[cairn mlflow\] at ([\d.]+) ms (.+?) -> (\S+) in ([\d.]+) ms \((\d+) tr(?:y|ies)\)/g)].map((m) => ({
      start: Number(m[1]),
      end: Number(m[1]) + Number(m[4]),
      what: m[2],
      ok: m[3] !== "error",
      tries: Number(m[5]),
    }));
    const gaveUp = requests.filter((r) => !r.ok && r.tries === 4);
    expect(gaveUp.length, exit.stderr).toBeGreaterThan(0);
    const openedAt = Math.min(...gaveUp.map((r) => r.end));
    // Every request sent once the first had used up its retries was tried once (twice at most,
    // the second at once on a new connection after a reset one), not 4 times: the breaker.
    const later = requests.filter((r) => r.start > openedAt);
    expect(later.length, exit.stderr).toBeGreaterThan(0);
    expect(later.filter((r) => r.ok || r.tries > 2), exit.stderr).toEqual([]);
    expect(exit.stderr).toContain(`the flow run (${flowRunId})`);
    expect(exit.stderr).toMatch(/task "slow" \(\w+\)/);
    await closedByNextCommand(s, "dead-no-signal", flowRunId);
  });
});

describe("a slow MLflow server when cairn run is cancelled while starting", () => {
  it("a signal before the flow run is created records nothing: no flow run, no task runs, exit 130", async () => {
    const s = await server();
    let child: import("node:child_process").ChildProcess | undefined;
    // The lookup of the experiment is answered only once the signal is in: the run is then
    // still starting, its flow run not asked for. A delay the real server cannot be made to show.
    let held = false;
    const proxy = await startProxy(s.uri, (req, res) => {
      if (!req.url?.startsWith("/api/2.0/mlflow/experiments/get-by-name") || held) return false;
      held = true;
      child!.kill("SIGTERM");
      setTimeout(() => {
        const target = new URL(s.uri);
        fetch(`${target.origin}${req.url}`).then(async (up) => res.writeHead(up.status, { "content-type": "application/json" }).end(await up.text()));
      }, 1000);
      return true;
    });
    try {
      const started = start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", await tmp()], {
        env: childEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "term-while-opening", SLOW_MS: "60000" }),
      });
      child = started.child;
      const exit = await started.done;
      expect(held).toBe(true);
      expect(exit.code, exit.stderr).toBe(130);
      expect(exit.stderr).toContain("before its flow run was created; nothing was recorded");
      const listed = await cairn(["runs", "--experiment", "term-while-opening", "--json"], { MLFLOW_TRACKING_URI: s.uri });
      expect(listed.stdout.trim() === "" ? [] : (JSON.parse(listed.stdout) as Run[])).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it("a signal while the experiment lookup gets no answer ends the run in seconds, having recorded nothing", async () => {
    const s = await server();
    let child: import("node:child_process").ChildProcess | undefined;
    // The lookup is never answered: only the short deadline after the cancel ends it (the
    // default policy would wait out the 120 s request timeout, then retry).
    let held = false;
    let signalledAt = 0;
    const proxy = await startProxy(s.uri, (req) => {
      if (!req.url?.startsWith("/api/2.0/mlflow/experiments/get-by-name")) return false;
      if (!held) {
        child!.kill("SIGTERM");
        signalledAt = performance.now();
      }
      held = true;
      return true;
    });
    try {
      const started = start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", await tmp()], {
        env: childEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "term-while-hung", SLOW_MS: "60000" }),
      });
      child = started.child;
      const exit = await started.done;
      expect(exit.code, exit.stderr).toBe(130);
      expect(exit.ms).toBeLessThan(60_000);
      // One try of at most 5 s after the signal (README: Ctrl-C, SIGTERM and SIGHUP), with room for a loaded machine.
      expect(performance.now() - signalledAt).toBeLessThan(12_000);
      expect(exit.stderr).toContain("no answer within 5 s");
      expect(exit.stderr).toContain("the limit for a request once the run is cancelled");
      const listed = await cairn(["runs", "--experiment", "term-while-hung", "--json"], { MLFLOW_TRACKING_URI: s.uri });
      expect(listed.stdout.trim() === "" ? [] : (JSON.parse(listed.stdout) as Run[])).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});
