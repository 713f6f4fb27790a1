/**
 * An MLflow experiment that Cairn shares with other MLflow code (a notebook's or a script's
 * `mlflow.start_run()`) holds runs that are not flow runs: `cairn runs` lists Cairn's flow runs
 * only and says how many others it left out, and `cairn report` (latest) reports the latest flow
 * run, not the newest run of any kind. A real MLflow server; the other runs made over its REST API.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairn, repo, tmp } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");

describe("cairn runs on an MLflow server shared with other MLflow code", () => {
  let server: MlflowServer;
  beforeAll(async () => {
    server = await startMlflowServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function mlflow(path: string, body: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`${server.uri}/api/2.0/mlflow/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  }

  /** A run as `mlflow.start_run()` makes it: a name and MLflow's own tags, nothing of Cairn's. */
  async function plainRun(experimentId: string, name: string): Promise<string> {
    const { run } = (await mlflow("runs/create", { experiment_id: experimentId, run_name: name, start_time: Date.now(), tags: [{ key: "mlflow.user", value: "notebook" }] })) as {
      run: { info: { run_id: string } };
    };
    return run.info.run_id;
  }

  it("lists flow runs only, and says how many runs it left out as not Cairn's", async () => {
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const cwd = await tmp("cairn-cli-foreign-runs-");
    const ran = await cairn(["run", ok, "--json", "--experiment", "shared", "--no-report"], { cwd, env });
    expect(ran.code, ran.stderr).toBe(0);
    const flowRunId = (JSON.parse(ran.stdout.split("\n")[0]!) as { runId: string }).runId;
    const experimentId = ((await (await fetch(`${server.uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=shared`)).json()) as { experiment: { experiment_id: string } })
      .experiment.experiment_id;
    // Made after the flow run: newer, they came first in the listing.
    await plainRun(experimentId, "notebook-1");
    await plainRun(experimentId, "notebook-2");

    const listed = await cairn(["runs", "--experiment", "shared"], { cwd, env });
    expect(listed.code, listed.stderr).toBe(0);
    const lines = listed.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(new RegExp(`^${flowRunId} +ok +FINISHED `));
    expect(lines[2]).toBe("Not listed: 2 runs that Cairn did not make (without the tag cairn.kind=flow its flow runs carry: another program's, such as a script's mlflow.start_run()).");
    expect(listed.stdout).not.toContain("notebook");

    // --json: the list holds flow runs only; the line goes to stderr, so that stdout stays JSON.
    const json = await cairn(["runs", "--json"], { cwd, env });
    expect(json.code, json.stderr).toBe(0);
    expect((JSON.parse(json.stdout) as { runId: string }[]).map((r) => r.runId)).toEqual([flowRunId]);
    expect(json.stderr).toContain("cairn: Not listed: 2 runs that Cairn did not make");

    // An experiment of other runs only: no flow runs, and why the list is empty.
    const other = await mlflow("experiments/create", { name: "notebooks-only" });
    await plainRun(other.experiment_id as string, "notebook-3");
    const none = await cairn(["runs", "--experiment", "notebooks-only"], { cwd, env });
    expect(none.stdout).toBe(`No flow runs yet in ${server.uri}.\nNot listed: 1 run that Cairn did not make (without the tag cairn.kind=flow its flow runs carry: another program's, such as a script's mlflow.start_run()).\n`);

    // The latest run to report on is the latest flow run, not a newer run of another program.
    const report = await cairn(["report", "--experiment", "shared"], { cwd, env });
    expect(report.code, report.stderr).toBe(0);
    expect(report.stdout).toContain(`Wrote the report of flow run ${flowRunId} (ok, FINISHED)`);
  });

  it("prints a run's name that anyone with the server set as text, never obeyed: cairn report, runs and show", async () => {
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const cwd = await tmp("cairn-cli-foreign-name-");
    const ran = await cairn(["run", ok, "--json", "--experiment", "renamed", "--no-report"], { cwd, env });
    expect(ran.code, ran.stderr).toBe(0);
    const flowRunId = (JSON.parse(ran.stdout.split("\n")[0]!) as { runId: string }).runId;
    // Another user of the server renames the flow run: a title, a screen cleared, a line rewritten.
    await mlflow("runs/update", { run_id: flowRunId, run_name: "\u001b]0;pwned\u0007\u001b[2J\rok" });
    const escaped = "\\x1b]0;pwned\\x07\\x1b[2J\\rok";
    const obeyed = /[\u001b\u0007\r]/;
    for (const args of [["report", flowRunId, "--out", join(cwd, "r.html")], ["runs", "--experiment", "renamed"], ["show", flowRunId]]) {
      const r = await cairn(args, { cwd, env: { ...env, NO_COLOR: "1" } });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout + r.stderr, args[0]).not.toMatch(obeyed);
      expect(r.stdout, args[0]).toContain(escaped);
    }
  });
});
