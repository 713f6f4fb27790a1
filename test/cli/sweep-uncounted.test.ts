/**
 * Trials a sweep started before its stopWhen was met and that ended after, past the trial that
 * met it, do not count: their runs, which end as any other's, are tagged `cairn.sweep.counted`
 * `false`, and `cairn show` marks them. On a real MLflow server, read back with MLflow's client.
 */
import { describe, expect, it } from "vitest";
import { readWithMlflow } from "../../packages/mlflow/test/mlflow-read.ts";
import { cairn, fixture, tmp, useMlflowServer } from "./helpers.ts";

interface Run {
  runId: string;
  name: string;
}

describe("trials past a stopWhen's cut", () => {
  const server = useMlflowServer();

  it("are tagged cairn.sweep.counted=false and marked in cairn show", async () => {
    const cwd = await tmp("cairn-cli-sweep-uncounted-");
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const ran = await cairn(["run", fixture("sweep-uncounted.flow.ts"), "--json"], { cwd, env });
    expect(ran.code, ran.stderr).toBe(0);
    const flowRunId = (JSON.parse(ran.stdout.split("\n")[0]!) as { runId: string }).runId;
    const json = await cairn(["show", flowRunId, "--json"], { cwd, env });
    expect(json.code, json.stderr).toBe(0);
    const tasks = (JSON.parse(json.stdout) as { tasks: Run[] }).tasks;
    const trials = ["probe[0]", "probe[1]", "probe[2]"].map((name) => tasks.find((t) => t.name === name)!);
    const read = await readWithMlflow(
      server.uri,
      trials.map((t) => ({ op: "get_run", run_id: t.runId })),
    );
    expect(read.map((r: { status: string; tags: Record<string, string> }) => [r.status, r.tags["cairn.sweep.counted"]])).toEqual([
      ["FINISHED", undefined],
      ["FINISHED", "false"],
      ["FINISHED", "false"],
    ]);

    const text = await cairn(["show", flowRunId], { cwd, env: { ...env, NO_COLOR: "1" } });
    expect(text.code, text.stderr).toBe(0);
    const rows = text.stdout.split("\n").filter((l) => /^ {2}probe\[\d\] /.test(l));
    expect(rows).toHaveLength(3);
    expect(rows[0]).not.toContain("not counted");
    for (const row of rows.slice(1)) expect(row).toContain("not counted: started before the sweep's stopWhen was met by an earlier trial");
    const one = await cairn(["show", trials[1]!.runId], { cwd, env: { ...env, NO_COLOR: "1" } });
    expect(one.stdout).toContain("\nnot counted: started before the sweep's stopWhen was met by an earlier trial\n");
  }, 180_000);
});
