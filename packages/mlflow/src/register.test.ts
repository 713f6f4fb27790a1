import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalStore, resolveTracker, UnsupportedTrackingUriError } from "@cairn/core";
import { MlflowTracker } from "./tracker/index.ts";
import "./register.ts";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "cairn-resolve-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("resolveTracker", () => {
  it("uses the embedded store when no tracking URI is set", async () => {
    const tracker = await resolveTracker({ root, env: {} });
    expect(tracker).toBeInstanceOf(LocalStore);
    expect(tracker.kind).toBe("local");
    expect(await resolveTracker({ root, env: { MLFLOW_TRACKING_URI: "  " } })).toBeInstanceOf(LocalStore);
  });

  it("uses an MLflow server for http(s) URIs, from MLflow's environment", async () => {
    const tracker = await resolveTracker({ env: { MLFLOW_TRACKING_URI: "https://carol:pw@mlflow.example.com/", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "2" } });
    expect(tracker).toBeInstanceOf(MlflowTracker);
    expect(tracker.kind).toBe("mlflow");
    expect(tracker.uri).toBe("https://mlflow.example.com");
    expect((tracker as MlflowTracker).client.retry.retries).toBe(2);
  });

  it("lets options.uri override MLFLOW_TRACKING_URI", async () => {
    expect((await resolveTracker({ uri: "http://127.0.0.1:5000", env: { MLFLOW_TRACKING_URI: "sqlite:///x.db" } })).uri).toBe("http://127.0.0.1:5000");
  });

  it.each(["sqlite:///x.db", "file:///tmp/mlruns", "./mlruns", "/abs/mlruns", "databricks", "databricks://profile", "postgresql://u:pw@db/mlflow"])(
    "refuses %s with instructions",
    async (uri) => {
      const error = await resolveTracker({ env: { MLFLOW_TRACKING_URI: uri } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnsupportedTrackingUriError);
      const message = (error as Error).message;
      expect(message).toContain("mlflow server --backend-store-uri sqlite:///mlflow.db");
      expect(message).toMatch(/MLFLOW_TRACKING_URI=http:\/\//);
      expect(message).not.toContain(":pw@");
    },
  );
});
