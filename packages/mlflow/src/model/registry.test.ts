/**
 * The model kind talks to MLflow's registry through the one REST client: the same
 * credentials, retries and error mapping as the tracker. A fake server is used here only to
 * inject what a real one will not do on demand (a 503, then an answer).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MlflowApiError } from "@cairn/core";
import { ModelRegistry } from "./run-model.ts";

let server: http.Server;
let uri: string;
const seen: Array<{ url: string; auth: string | undefined }> = [];
let failNext = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? "", auth: req.headers.authorization });
    res.setHeader("content-type", "application/json");
    if (failNext > 0) {
      failNext--;
      res.writeHead(503).end(JSON.stringify({ error_code: "TEMPORARILY_UNAVAILABLE", message: "busy" }));
    } else if (req.url?.includes("name=missing")) {
      res.writeHead(404).end(JSON.stringify({ error_code: "RESOURCE_DOES_NOT_EXIST", message: "no such model" }));
    } else if (req.url?.includes("name=forbidden")) {
      res.writeHead(400).end(JSON.stringify({ error_code: "INVALID_PARAMETER_VALUE", message: "bad name" }));
    } else {
      res.writeHead(200).end(JSON.stringify({ model_version: { name: "churn", version: "3" } }));
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const env = (extra: NodeJS.ProcessEnv = {}) => ({ MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0", ...extra });

describe("the model registry over the MLflow client", () => {
  it("sends the client's credentials and retries a 503 like every other request", async () => {
    seen.length = 0;
    failNext = 2;
    const registry = await ModelRegistry.connect(uri, env({ MLFLOW_TRACKING_TOKEN: "t0k'en\"x" }));
    const body = await registry.get("model-versions/get", { name: "churn", version: "3" });
    expect(body).toEqual({ model_version: { name: "churn", version: "3" } });
    expect(seen).toHaveLength(3);
    expect(seen.every((s) => s.auth === `Bearer t0k'en"x`)).toBe(true);
    expect(seen[0]!.url).toBe("/api/2.0/mlflow/model-versions/get?name=churn&version=3");
  });

  it("answers undefined for what does not exist, and throws MLflow's own refusal", async () => {
    const registry = await ModelRegistry.connect(uri, env());
    expect(await registry.get("registered-models/get", { name: "missing" })).toBeUndefined();
    const error = await registry.get("registered-models/get", { name: "forbidden" }).catch((e: unknown) => e);
    expect(MlflowApiError.is(error)).toBe(true);
    expect((error as Error).message).toContain("INVALID_PARAMETER_VALUE: bad name");
  });
});
