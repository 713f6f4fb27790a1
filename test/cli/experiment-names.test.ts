/**
 * Experiment names that work on the embedded store and broke on an MLflow server (a real one,
 * for this file):
 * - a name over MLflow's 500 characters (the flow's name, `--experiment`, MLFLOW_EXPERIMENT_NAME,
 *   the `experiment` run option) failed with exit 1 and MLflow's "exceeds the maximum length"
 *   only once the run was created; it is refused up front, with the limit, on both stores;
 * - `cairn runs --experiment café` typed in another Unicode form (NFD) than the experiment was
 *   made with (NFC) said "No experiment named ..." and nothing more; it names the one meant.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flow, OptionError, task } from "cairn-dag";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairn, repo, tmp } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");
const LONG = "e".repeat(501);

let server: MlflowServer;
beforeAll(async () => {
  server = await startMlflowServer();
});
afterAll(async () => {
  await server?.stop();
});

const STORES = { mlflow: () => ({ MLFLOW_TRACKING_URI: server.uri }), embedded: () => ({}) };

describe("an experiment name over MLflow's 500 characters is refused before anything runs", () => {
  it.each(Object.keys(STORES) as (keyof typeof STORES)[])("--experiment and MLFLOW_EXPERIMENT_NAME: exit 2 with the limit (%s store)", async (store) => {
    const cwd = await tmp("cairn-exp-long-");
    const flag = await cairn(["run", ok, "--experiment", LONG], { cwd, env: STORES[store]() });
    expect(flag.stderr).toContain("Expected `--experiment` to be an experiment name of at most 500 characters, got one of 501 characters");
    expect(flag.stderr).not.toContain(LONG); // the name is not printed whole
    expect(flag.code).toBe(2);
    const runs = await cairn(["runs", "--experiment", LONG], { cwd, env: STORES[store]() });
    expect(runs.stderr).toContain("at most 500 characters");
    expect(runs.code).toBe(2);
    const variable = await cairn(["run", ok], { cwd, env: { ...STORES[store](), MLFLOW_EXPERIMENT_NAME: LONG } });
    expect(variable.stderr).toContain("OptionError: Expected MLFLOW_EXPERIMENT_NAME to be an experiment name of at most 500 characters, got one of 501 characters");
    expect(variable.code).toBe(2);
    // 500 characters are MLflow's own limit, not over it.
    const fits = await cairn(["run", ok, "--experiment", "e".repeat(500)], { cwd, env: STORES[store]() });
    expect(fits.stderr).toBe("");
    expect(fits.code).toBe(0);
  });

  it("a flow's name: an OptionError where the flow is declared", () => {
    let error: unknown;
    try {
      flow("f".repeat(501));
    } catch (e) {
      error = e;
    }
    expect(OptionError.is(error)).toBe(true);
    expect((error as Error).message).toContain("Expected `flow name` to be at most 500 characters, got one of 501 characters");
    expect((error as Error).message).toContain("Give the flow a shorter name.");
    expect(() => flow("f".repeat(500))).not.toThrow();
  });

  it("the run option `experiment`: an OptionError before the run's records are made, on the server", async () => {
    const t = task("t").run(() => ({ n: 1 }));
    const f = flow("long-experiment").build(() => ({ n: t({}).n }));
    const root = await tmp("cairn-exp-long-api-");
    await expect(f.run({ root, experiment: LONG, env: STORES.mlflow() })).rejects.toThrow(/Expected `experiment` to be an experiment name of at most 500 characters, got one of 501 characters/);
    const listed = (await (await fetch(`${server.uri}/api/2.0/mlflow/experiments/search?max_results=1000`)).json()) as { experiments?: { name: string }[] };
    expect((listed.experiments ?? []).some((e) => e.name.length > 500)).toBe(false);
  });
});

describe("an experiment named in another Unicode normalisation form", () => {
  it("cairn runs --experiment café (NFD) names the experiment café (NFC), and keeps them two names", async () => {
    const nfc = "caf\u00e9";
    const nfd = "cafe\u0301";
    const cwd = await tmp("cairn-exp-nfd-");
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const made = await cairn(["run", ok, "--experiment", nfc], { cwd, env });
    expect(made.code).toBe(0);
    const r = await cairn(["runs", "--experiment", nfd], { cwd, env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`No experiment named "${nfd}"`);
    expect(r.stderr).toContain(`did you mean "${nfc}"? It looks the same but is written with other Unicode code points`);
    expect(r.stderr).toContain('the experiment\'s name is "caf\\u00e9" (composed, NFC), the one given is "cafe\\u0301" (decomposed, NFD)');
    // The name as the experiment has it lists its run.
    const listed = await cairn(["runs", "--experiment", nfc], { cwd, env });
    expect(listed.code).toBe(0);
  });
});
