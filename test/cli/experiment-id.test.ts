/**
 * An experiment that MLFLOW_EXPERIMENT_ID (or --experiment) names and that is missing or deleted
 * is a setting (exit 2), refused by `run` and `plan` before anything runs. The run failed at its
 * create with MLflow's bare 404 / 400 (exit 1, no variable named), and plan planned hits for it.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairn, repo, tmp } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");

describe("MLFLOW_EXPERIMENT_ID naming no active experiment is a setting: exit 2, naming the variable, before anything runs", () => {
  let server: MlflowServer;
  let deletedId: string;
  beforeAll(async () => {
    server = await startMlflowServer();
    const post = async (path: string, body: unknown) =>
      (await (await fetch(`${server.uri}/api/2.0/mlflow/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).json()) as Record<string, string>;
    deletedId = (await post("experiments/create", { name: "gone-exp" })).experiment_id!;
    await post("experiments/delete", { experiment_id: deletedId });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it.each([["run"], ["plan"]])("cairn %s with an id no experiment has, or a deleted one's", async (command) => {
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const missing = await cairn([command, ok], { env: { ...env, MLFLOW_EXPERIMENT_ID: "999" } });
    expect(missing.stderr).toMatch(/OptionError: Expected MLFLOW_EXPERIMENT_ID to be the id of an experiment in the MLflow server at http:\/\/127\.0\.0\.1:\d+, got "999": there is no experiment with that id\. Set it to an existing experiment's id, or unset it/);
    expect(missing.stdout).not.toMatch(/would come from the cache/);
    expect(missing.code).toBe(2);
    const deleted = await cairn([command, ok], { env: { ...env, MLFLOW_EXPERIMENT_ID: deletedId } });
    expect(deleted.stderr).toMatch(new RegExp(`OptionError: Expected MLFLOW_EXPERIMENT_ID to be the id of an active experiment, got "${deletedId}": experiment "gone-exp" .* is deleted\\. Restore it \\(\`mlflow experiments restore --experiment-id ${deletedId}\`\\)`));
    expect(deleted.code).toBe(2);
    // The same experiment by name, on `run` as on `runs`: a setting too.
    const byName = await cairn([command, ok, "--experiment", "gone-exp"], { env });
    expect(byName.stderr).toMatch(/TrackingConfigError: MLflow experiment "gone-exp" .* is deleted\. Restore it/);
    expect(byName.code).toBe(2);
  });

  it("with the embedded store, an id of no experiment there is refused the same way", async () => {
    const cwd = await tmp("cairn-cli-exp-id-");
    const r = await cairn(["run", ok], { cwd, env: { MLFLOW_EXPERIMENT_ID: "0123456789abcdef" } });
    expect(r.stderr).toMatch(/OptionError: Expected MLFLOW_EXPERIMENT_ID to be the id of an experiment in the embedded store at .*, got "0123456789abcdef": there is no experiment with that id/);
    expect(r.code).toBe(2);
  });
});
