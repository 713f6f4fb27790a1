/**
 * A task's run whose closing writes fail (the experiment's artifact store refuses them, a real
 * server answering 500) still ends: FAILED, never left RUNNING for a later command to close as
 * KILLED; and `cairn run` says why the flow failed.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnBin, childEnv, runCollect, start, taskEvents, tmp } from "../cache/helpers.ts";
import unclosable from "./fixtures/unclosable.flow.ts";

const FLOW_FILE = join(import.meta.dirname, "fixtures/unclosable.flow.ts");

let server: MlflowServer;
beforeAll(async () => {
  server = await startMlflowServer();
});
afterAll(async () => {
  await server?.stop();
});

async function api(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`${server.uri}/api/2.0/mlflow/${path}`, { method, headers: { "content-type": "application/json" }, ...(body ? { body: JSON.stringify(body) } : {}) });
  expect(r.ok, await r.clone().text()).toBe(true);
  return (await r.json()) as Record<string, unknown>;
}

/** An experiment whose artifacts go where the server cannot make a folder (a file is in the way): every upload answers 500. */
async function blockedExperiment(name: string): Promise<string> {
  const { experiment_id } = await api("POST", "experiments/create", { name, artifact_location: `mlflow-artifacts:/${name}-blocked` });
  await mkdir(join(server.dir, "artifacts"), { recursive: true });
  await writeFile(join(server.dir, "artifacts", `${name}-blocked`), "a file where a folder should be");
  return String(experiment_id);
}

async function taskRuns(experimentId: string): Promise<Record<string, string>> {
  const { runs = [] } = (await api("POST", "runs/search", { experiment_ids: [experimentId], max_results: 100 })) as { runs?: Array<{ info: { run_name: string; status: string }; data: { tags?: Array<{ key: string; value: string }> } }> };
  return Object.fromEntries(runs.filter((r) => r.data.tags?.some((t) => t.key === "mlflow.parentRunId")).map((r) => [r.info.run_name, r.info.status]));
}

describe("a task run whose closing writes fail", () => {
  it("ends, never left RUNNING: the one that succeeded FAILED (no cache entry), the one that threw too", async () => {
    const id = await blockedExperiment("unclosable-api");
    const options = {
      root: await tmp(),
      env: { MLFLOW_TRACKING_URI: server.uri, MLFLOW_EXPERIMENT_NAME: "unclosable-api", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "1" },
      failurePolicy: "continue",
    };
    const { result, warnings } = await runCollect(unclosable, options);
    expect(result.status).toBe("failed");
    // `throws` may end cancelled (KILLED) when the flow's own files, refused too, stop the flow first: either way not RUNNING.
    const runs = await taskRuns(id);
    expect(runs.writes).toBe("FAILED");
    expect(runs.values).toBe("FAILED");
    expect(["FAILED", "KILLED"]).toContain(runs.throws);
    expect(warnings.join("\n")).not.toMatch(/RUNNING/);
    // Their work is not recorded whole, so they have no cache entry: the next run runs them again.
    const again = await runCollect(unclosable, options);
    // No entry at all, not one found and refused for its FAILED source run.
    expect(again.warnings.join("\n")).not.toMatch(/cache entry \w+ was unusable/);
    for (const name of ["writes", "values"]) {
      const seen = taskEvents(again.events, name).map((e) => e.status);
      expect(seen, name).toContain("running");
      expect(seen, name).not.toContain("cached");
    }
  }, 120_000);

  it("cairn run prints why the flow failed when no task did, and no outputs", async () => {
    await blockedExperiment("unclosable-cli");
    const r = await start(process.execPath, [cairnBin, "run", FLOW_FILE, "--root", await tmp()], {
      env: childEnv({ UNCLOSABLE_NO_THROW: "1", MLFLOW_TRACKING_URI: server.uri, MLFLOW_EXPERIMENT_NAME: "unclosable-cli", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "1" }),
    }).done;
    expect(r.code).toBe(1);
    // The line under "Flow failed" says why: the server refused the run's files.
    expect(r.stdout).toMatch(/Flow failed in .*\n.*(MlflowApiError|TrackingError): .*HTTP 500/);
    expect(r.stdout).not.toContain("Outputs:");
  }, 120_000);
});
