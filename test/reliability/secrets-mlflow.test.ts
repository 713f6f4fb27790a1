/**
 * Secrets against a real MLflow server: after a flow whose tasks try every way out
 * (outputs, keys, tags, metric names, errors, process output), nothing the server
 * stored (its database and its artifacts) holds the secret in any form, and a failed
 * task's run records its error masked, as MLflow's own client reads it.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "cairn-dag";
import { readWithMlflow } from "../../packages/mlflow/test/mlflow-read.ts";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { REFUSED, WEIRD, cairn, filesContaining, fixture, formsIn, formsOf } from "./secret-helpers.ts";

let server: MlflowServer;
beforeAll(async () => {
  server = await startMlflowServer();
});
afterAll(async () => {
  await server?.stop();
});

describe("secrets and a real MLflow server", () => {
  it("the error path: failed runs carry masked errors, and nothing stored holds the secret", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "cairn-secrets-mlflow-"));
    const r = await cairn(["run", fixture("secret-leaks.flow.ts"), "--json", "--failure-policy", "continue", "--experiment", "secret-leaks"], cwd, {
      MLFLOW_TRACKING_URI: server.uri,
      MY_TOKEN: WEIRD,
    });
    expect(r.code).toBe(1);
    expect(formsIn(r.stdout + r.stderr, WEIRD)).toEqual([]);
    const flowRunId = (JSON.parse(r.stdout.split("\n")[0]!) as RunEvent).runId;

    const [experiment] = await readWithMlflow(server.uri, [{ op: "experiment_by_name", name: "secret-leaks" }]);
    const [runs] = await readWithMlflow(server.uri, [{ op: "search_runs", experiment_ids: [experiment.experiment_id] }]);
    const byName = new Map<string, { status: string; tags: Record<string, string>; params: Record<string, string> }>(
      runs.filter((x: { tags: Record<string, string> }) => x.tags["mlflow.parentRunId"] === flowRunId).map((x: { run_name: string }) => [x.run_name, x]),
    );
    expect(byName.get("leak-throws")).toMatchObject({ status: "FAILED" });
    expect(byName.get("leak-throws")!.tags["cairn.error"]).toBe('Error: auth failed for *** (as JSON: {"s":"***"})');
    expect(byName.get("fails-with-it")!.tags["cairn.error"]).toMatch(/\| denied for \*\*\*\n {2}\| \*\*\*/);
    for (const name of REFUSED) expect(byName.get(name)!.tags["cairn.error"]).toMatch(/^SecretLeakError: /);
    expect(formsIn(JSON.stringify(runs), WEIRD)).toEqual([]);

    const stored = await filesContaining(server.dir, formsOf(WEIRD));
    expect(stored.hits).toEqual([]);
    expect(stored.files.some((f) => f.endsWith("mlflow.db"))).toBe(true);
    expect(stored.files.some((f) => f.endsWith("outputs.json"))).toBe(true);
    // Process logs stay in the local work folder with a server (they are not uploaded today): masked there.
    const local = await filesContaining(join(cwd, ".cairn"), formsOf(WEIRD));
    expect(local.hits).toEqual([]);
    expect(local.files.some((f) => f.endsWith(join("logs", "stderr.txt")))).toBe(true);
  });
});
