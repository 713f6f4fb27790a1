/**
 * MlflowTracker against a real `mlflow server` (one for this file), read back
 * with MLflow's own Python client. Only the fault-injecting proxies are fake.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir, uptime } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { currentOwner, formatOwner } from "@cairn/cache";
import { ArtifactLocationError, TrackerUnreachableError } from "@cairn/core";
import { type MlflowServer, startMlflowServer, workspaceRoot } from "../../test/mlflow-server.ts";
import { trackerComplianceSuite } from "@cairn/core/testing";
import { readWithMlflow } from "../../test/mlflow-read.ts";
import { MlflowTracker } from "./mlflow-tracker.ts";

const here = dirname(fileURLToPath(import.meta.url));

let server: MlflowServer;
let work: string;

beforeAll(async () => {
  server = await startMlflowServer();
  work = await mkdtemp(join(tmpdir(), "cairn-mlflow-test-"));
});

afterAll(async () => {
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function tracker(env: NodeJS.ProcessEnv = {}): MlflowTracker {
  return MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: server.uri, ...env });
}

/** Counts the requests a tracker sends, by `METHOD path`. */
function countRequests(t: MlflowTracker): string[] {
  const seen: string[] = [];
  t.client.http.observe((e) => {
    if (e.phase === "request") seen.push(`${e.method} ${new URL(e.url).pathname}`);
  });
  return seen;
}

/** Asks MLflow's Python client; one process for all queries. */
function pyRead(queries: object[]): Promise<any[]> {
  return readWithMlflow(server.uri, queries);
}

/**
 * A loopback proxy in front of the server. `intercept` returns true when it
 * handles the request itself: answering it, or calling `forward` later.
 */
async function startProxy(
  intercept: (req: http.IncomingMessage, res: http.ServerResponse, forward: () => void) => boolean,
): Promise<{ uri: string; hits: string[]; close(): Promise<void> }> {
  const target = new URL(server.uri);
  const hits: string[] = [];
  const proxy = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    const forward = () => {
        const upstream = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on("error", () => {
        res.writeHead(502);
        res.end();
      });
      req.pipe(upstream);
    };
    if (!intercept(req, res, forward)) forward();
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  const { port } = proxy.address() as AddressInfo;
  return {
    uri: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        proxy.closeAllConnections();
        proxy.close(() => r());
      }),
  };
}

async function sha256(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

trackerComplianceSuite("MlflowTracker", () => tracker());

describe("MlflowTracker, read back by MLflow's Python client", () => {
  it("records params, stepped metrics, tags, the parent and artifact bytes", async () => {
    const t = tracker();
    const experimentId = await t.ensureExperiment("readback");
    const parent = await t.createRun({ experimentId, name: "flow", tags: { "cairn.kind": "flow" } });
    const child = await t.createRun({ experimentId, name: "train", parentRunId: parent, tags: { "cairn.cache_key": "it's \"k\"" } });
    await t.logBatch(child, { params: { lr: "0.1", "model.depth": "3" }, tags: { "cairn.task": "train" } });
    for (let step = 0; step < 5; step++) await t.logBatch(child, { metrics: [{ key: "loss", value: 1 / (step + 1), step, timestamp: 1000 + step }] });
    await t.logBatch(child, { metrics: [{ key: "odd", value: Number.NaN, step: 0, timestamp: 1 }, { key: "big", value: Infinity, step: 0, timestamp: 1 }] });
    // Keys with `:` as MLflow's own clients log them (mlflow.log_metric("val:loss", ...)).
    await t.logBatch(child, { metrics: [{ key: "val:loss", value: 0.3, step: 0, timestamp: 1 }], tags: { "team:owner": "ml" } });

    const bytes = randomBytes(4096);
    await writeFile(join(work, "model.bin"), bytes);
    await mkdir(join(work, "report/plots/deep"), { recursive: true });
    await writeFile(join(work, "report/index.html"), "<h1>hi</h1>");
    await writeFile(join(work, "report/plots/deep/a b.csv"), "x,y\n1,2\n");
    await t.logArtifact(child, join(work, "model.bin"), "models");
    await t.logArtifact(child, join(work, "report"));
    await t.endRun(child, "FINISHED", 5000);

    const [run, history, rootList, nested, model, search] = await pyRead([
      { op: "get_run", run_id: child },
      { op: "metric_history", run_id: child, key: "loss" },
      { op: "list_artifacts", run_id: child },
      { op: "list_artifacts", run_id: child, path: "report/plots/deep" },
      { op: "download_artifact", run_id: child, path: "models/model.bin", dst: join(work, "py-dl") },
      { op: "search_runs", experiment_ids: [experimentId], filter: `tags.\`mlflow.parentRunId\` = '${parent}'` },
    ]);
    expect(run).toMatchObject({
      run_name: "train",
      status: "FINISHED",
      end_time: 5000,
      params: { lr: "0.1", "model.depth": "3" },
      metrics: { loss: 0.2, odd: "nan", "val:loss": 0.3 },
      tags: { "mlflow.parentRunId": parent, "cairn.task": "train", "cairn.cache_key": "it's \"k\"", "mlflow.runName": "train", "team:owner": "ml" },
    });
    expect(history.map((p: { step: number; value: number }) => [p.step, p.value])).toEqual([0, 1, 2, 3, 4].map((s) => [s, 1 / (s + 1)]));
    expect(rootList.map((f: { path: string }) => f.path)).toEqual(["models", "report"]);
    expect(nested).toEqual([{ path: "report/plots/deep/a b.csv", is_dir: false, file_size: 8 }]);
    expect(Buffer.from(model.base64, "base64").equals(bytes)).toBe(true);
    expect(search.map((r: { run_id: string }) => r.run_id)).toEqual([child]);

    // And our own reads agree.
    const record = await t.getRun(child);
    expect(record).toMatchObject({ name: "train", parentRunId: parent, status: "FINISHED", endTime: 5000, metrics: { loss: 0.2, big: Infinity } });
    expect(record?.metrics.odd).toBeNaN();
    const found = await t.searchRuns({ experimentIds: [experimentId], tags: { "cairn.cache_key": "it's \"k\"" } });
    expect(found.map((r) => r.runId)).toEqual([child]);
    expect((await t.searchRuns({ experimentIds: [experimentId], topLevelOnly: true })).map((r) => r.runId)).toEqual([parent]);
    expect((await t.searchRuns({ experimentIds: [experimentId], parentRunId: parent, status: "FINISHED" })).map((r) => r.runId)).toEqual([child]);
    const dest = await t.downloadArtifact(child, "report", join(work, "ts-dl"));
    expect(await readFile(join(dest, "plots/deep/a b.csv"), "utf8")).toBe("x,y\n1,2\n");
  });

  it("splits one logBatch of 2500 metrics, 250 params and 120 tags into requests MLflow accepts", async () => {
    const t = tracker();
    const experimentId = await t.ensureExperiment("chunking");
    const runId = await t.createRun({ experimentId, name: "many" });
    const seen = countRequests(t);
    const params = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`p${i}`, `v${i}`]));
    const tags = Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`t.${i}`, `v${i}`]));
    const metrics = Array.from({ length: 2500 }, (_, i) => ({ key: "m", value: i, step: i, timestamp: 1_700_000_000_000 + i }));
    await t.logBatch(runId, { params, tags, metrics });
    await t.endRun(runId, "FINISHED");
    expect(seen.filter((r) => r.endsWith("/runs/log-batch"))).toHaveLength(3);
    const [run, history] = await pyRead([
      { op: "get_run", run_id: runId },
      { op: "metric_history", run_id: runId, key: "m" },
    ]);
    expect(Object.keys(run.params)).toHaveLength(250);
    expect(run.tags["t.119"]).toBe("v119");
    expect(history).toHaveLength(2500);
    expect(history.at(-1)).toMatchObject({ step: 2499, value: 2499 });
  });

  it("keeps a param longer than MLflow's limit whole, as an artifact", async () => {
    const t = tracker();
    const experimentId = await t.ensureExperiment("long-values");
    const runId = await t.createRun({ experimentId, name: "long" });
    const long = "0123456789".repeat(700);
    await t.logBatch(runId, { params: { config: long } });
    const [run, file] = await pyRead([
      { op: "get_run", run_id: runId },
      { op: "download_artifact", run_id: runId, path: "cairn/long-values/params/config.txt", dst: join(work, "long") },
    ]);
    expect(run.params.config).toMatch(/^0123456789.*full value in artifact cairn\/long-values\/params\/config\.txt\]$/);
    expect(run.params.config.length).toBeLessThanOrEqual(6000);
    expect(Buffer.from(file.base64, "base64").toString()).toBe(long);
  });

  it("streams a large artifact both ways", async () => {
    const t = tracker();
    const experimentId = await t.ensureExperiment("large");
    const runId = await t.createRun({ experimentId, name: "large" });
    const file = join(work, "large.bin");
    const block = randomBytes(1 << 20);
    await writeFile(file, Buffer.concat(Array.from({ length: 24 }, () => block)));
    await t.logArtifact(runId, file, "data/big");
    expect(await t.listArtifacts(runId, "data/big")).toEqual([{ path: "data/big/large.bin", isDir: false, size: 24 << 20 }]);
    const local = await t.downloadArtifact(runId, "data/big/large.bin", join(work, "large-dl"));
    expect(await sha256(local)).toBe(await sha256(file));
  });
});

describe("MlflowTracker over HTTP faults", () => {
  it("retries 500s with backoff, then succeeds", async () => {
    let failures = 3;
    let uploadFailures = 2;
    const proxy = await startProxy((req, res) => {
      if (req.url?.includes("/runs/create") && failures > 0) {
        failures--;
        req.resume();
        res.writeHead(500, { "Content-Type": "text/html" }).end("<h1>Internal Server Error</h1>");
        return true;
      }
      // An upload refused after its body was read: the retry must send the file again, whole.
      if (req.method === "PUT" && uploadFailures > 0) {
        uploadFailures--;
        req.resume();
        req.on("end", () => res.writeHead(502).end());
        return true;
      }
      return false;
    });
    try {
      const t = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0.05", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0" });
      const experimentId = await t.ensureExperiment("retries");
      const runId = await t.createRun({ experimentId, name: "flaky" });
      expect(runId).toMatch(/^[0-9a-f]{32}$/);
      expect(proxy.hits.filter((h) => h.includes("/runs/create"))).toHaveLength(4);
      const body = randomBytes(300_000);
      await writeFile(join(work, "retried.bin"), body);
      await t.logArtifact(runId, join(work, "retried.bin"));
      expect(proxy.hits.filter((h) => h.startsWith("PUT"))).toHaveLength(3);
      const back = await t.downloadArtifact(runId, "retried.bin", join(work, "retried-dl"));
      expect((await readFile(back)).equals(body)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it("a create that reached the server but whose answer was lost (a reset) is not made twice: the retry finds the run by its cairn.create_id", async () => {
    const target = new URL(server.uri);
    let resets = 2;
    // Passes the create on, lets the server write the run, then resets the client's connection
    // instead of answering: a fault a real server cannot be made to show.
    const proxy = await startProxy((req, res) => {
      if (!(req.url?.includes("/runs/create") && resets > 0)) return false;
      resets--;
      const upstream = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
        (up) => {
          up.resume();
          up.on("end", () => res.socket?.resetAndDestroy());
        },
      );
      req.pipe(upstream);
      return true;
    });
    try {
      const t = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0.05", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0" });
      const experimentId = await t.ensureExperiment(`idempotent-create-${randomBytes(4).toString("hex")}`);
      const flowRunId = await t.createRun({ experimentId, name: "flow" });
      // A cache hit's record goes through the same create.
      const hitId = await t.recordRun({ experimentId, name: "b", parentRunId: flowRunId, tags: { "cairn.status": "cached" }, status: "FINISHED" });
      expect(resets).toBe(0);
      expect(proxy.hits.filter((h) => h.includes("/runs/search"))).toHaveLength(2);
      const runs = await pyRead([{ op: "search_runs", experiment_ids: [experimentId], filter: "" }]);
      const all = runs[0] as { run_id: string; run_name: string; status: string; tags: Record<string, string> }[];
      expect(all.map((r) => r.run_name).sort()).toEqual(["b", "flow"]);
      expect(all.find((r) => r.run_name === "flow")?.run_id).toBe(flowRunId);
      expect(all.find((r) => r.run_name === "b")).toMatchObject({ run_id: hitId, status: "FINISHED" });
      for (const r of all) expect(r.tags["cairn.create_id"]).toMatch(/^[0-9a-f]{32}$/);
    } finally {
      await proxy.close();
    }
  });

  it("a create that never reached the server is sent again after the search finds nothing", async () => {
    let refusals = 1;
    const proxy = await startProxy((req, res) => {
      if (!(req.url?.includes("/runs/create") && refusals > 0)) return false;
      refusals--;
      req.resume();
      req.on("end", () => res.socket?.resetAndDestroy());
      return true;
    });
    try {
      const t = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0.05", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0" });
      const experimentId = await t.ensureExperiment(`lost-create-${randomBytes(4).toString("hex")}`);
      const runId = await t.createRun({ experimentId, name: "a" });
      expect(proxy.hits.filter((h) => h.includes("/runs/"))).toEqual(["POST /api/2.0/mlflow/runs/create", "POST /api/2.0/mlflow/runs/search", "POST /api/2.0/mlflow/runs/create"]);
      const [runs] = await pyRead([{ op: "search_runs", experiment_ids: [experimentId], filter: "" }]);
      expect((runs as { run_id: string }[]).map((r) => r.run_id)).toEqual([runId]);
    } finally {
      await proxy.close();
    }
  });

  /** A proxy that answers a runs/search holding `IS NULL` as an MLflow 2.x server does (2.9.2, 2.17.2: HTTP 400); the filters asked, in order. */
  async function startOldSearchProxy(): Promise<{ uri: string; filters: string[]; close(): Promise<void> }> {
    const target = new URL(server.uri);
    const filters: string[] = [];
    const proxy = await startProxy((req, res) => {
      if (!req.url?.endsWith("/runs/search")) return false;
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        const filter = String((JSON.parse(body) as { filter?: string }).filter ?? "");
        filters.push(filter);
        const absent = /(tags\.`[^`]+`) IS NULL/.exec(filter);
        if (absent) {
          const message = `Invalid clause(s) in filter string: '${absent[1]}', 'IS', 'NULL'`;
          res.writeHead(400, { "Content-Type": "application/json" }).end(JSON.stringify({ error_code: "INVALID_PARAMETER_VALUE", message }));
          return;
        }
        const upstream = http.request({ host: target.hostname, port: target.port, method: "POST", path: req.url, headers: { "content-type": "application/json" } }, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
        upstream.end(body);
      });
      return true;
    });
    return { uri: proxy.uri, filters, close: () => proxy.close() };
  }

  it("withoutTag against a server that refuses IS NULL on tags (an older MLflow): one search of all, filtered here", async () => {
    const proxy = await startOldSearchProxy();
    const filters = proxy.filters;
    try {
      const t = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri });
      const experimentId = await t.ensureExperiment("old-server-without-tag");
      const parent = await t.createRun({ experimentId, name: "flow" });
      for (const [i, status] of ["cached", "succeeded", undefined].entries()) {
        await t.createRun({ experimentId, name: `r${i}`, parentRunId: parent, startTime: 1_700_000_000_000 + i, ...(status ? { tags: { "cairn.status": status } } : {}) });
      }
      const others = await t.searchRuns({ experimentIds: [experimentId], parentRunId: parent, withoutTag: { key: "cairn.status", value: "cached" } });
      expect(others.map((r) => r.name)).toEqual(["r2", "r1"]);
      expect(filters.some((f) => f.includes("IS NULL"))).toBe(true);
      expect(filters.at(-1)).not.toMatch(/IS NULL|!=/); // the search of all, as before withoutTag
    } finally {
      await proxy.close();
    }
  });

  it("topLevelOnly against a server that refuses IS NULL on tags (MLflow 2.9, 2.17): top-level runs found past pages of child runs, refused once per client", async () => {
    const proxy = await startOldSearchProxy();
    try {
      const t = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri });
      const experimentId = await t.ensureExperiment(`old-server-top-level-${randomBytes(4).toString("hex")}`);
      const flows: string[] = [];
      for (let f = 0; f < 3; f++) {
        const flowRun = await t.createRun({ experimentId, name: `flow${f}`, startTime: 1_700_000_000_000 + f * 10_000, tags: { "cairn.kind": "flow" } });
        flows.unshift(flowRun);
        // Children newer than every flow run: the newest runs of the experiment are all children.
        for (let i = 0; i < 4; i++) await t.createRun({ experimentId, name: `task${f}.${i}`, parentRunId: flowRun, startTime: 1_800_000_000_000 + f * 10 + i });
      }
      const top = await t.searchRuns({ experimentIds: [experimentId], topLevelOnly: true, tags: { "cairn.kind": "flow" }, maxResults: 2 });
      expect(top.map((r) => r.runId)).toEqual(flows.slice(0, 2));
      const others = await t.searchRuns({ experimentIds: [experimentId], topLevelOnly: true, withoutTag: { key: "cairn.kind", value: "flow" } });
      expect(others).toEqual([]);
      expect(proxy.filters.filter((f) => f.includes("IS NULL"))).toHaveLength(1); // the first search only: the client remembers
      expect(t.client.refusesTagAbsence).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it("topLevelOnly on a server that takes IS NULL (the newest MLflow) asks it of the server, which answers", async () => {
    const t = tracker();
    const experimentId = await t.ensureExperiment(`top-level-${randomBytes(4).toString("hex")}`);
    const flowRun = await t.createRun({ experimentId, name: "flow", startTime: 1_700_000_000_000 });
    await t.createRun({ experimentId, name: "task", parentRunId: flowRun, startTime: 1_800_000_000_000 });
    expect((await t.searchRuns({ experimentIds: [experimentId], topLevelOnly: true, maxResults: 1 })).map((r) => r.runId)).toEqual([flowRun]);
    expect(t.client.refusesTagAbsence).toBe(false);
  });

  it("gives up after MLFLOW_HTTP_REQUEST_MAX_RETRIES with an MlflowApiError naming the endpoint", async () => {
    const proxy = await startProxy((req, res) => {
      if (req.url?.includes("/runs/update")) {
        req.resume();
        res.writeHead(503, { "Content-Type": "application/json" }).end(JSON.stringify({ error_code: "TEMPORARILY_UNAVAILABLE", message: "busy" }));
        return true;
      }
      return false;
    });
    try {
      const t = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES: "2", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0.01" });
      const runId = await t.createRun({ experimentId: await t.ensureExperiment("retries"), name: "busy" });
      await expect(t.endRun(runId, "FINISHED")).rejects.toMatchObject({
        name: "MlflowApiError",
        endpoint: "runs/update",
        runId,
        status: 503,
        errorCode: "TEMPORARILY_UNAVAILABLE",
      });
      expect(proxy.hits.filter((h) => h.includes("/runs/update"))).toHaveLength(3);
    } finally {
      await proxy.close();
    }
  });

  it("sends basic auth from MLFLOW_TRACKING_USERNAME / PASSWORD, and says so when refused", async () => {
    const expected = `Basic ${Buffer.from("alice:s3cret").toString("base64")}`;
    const proxy = await startProxy((req, res) => {
      if (req.headers.authorization === expected) return false;
      req.resume();
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="mlflow"' }).end("You are not authenticated.");
      return true;
    });
    try {
      const ok = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_TRACKING_USERNAME: "alice", MLFLOW_TRACKING_PASSWORD: "s3cret" });
      await ok.ping();
      const runId = await ok.createRun({ experimentId: await ok.ensureExperiment("auth"), name: "auth" });
      await writeFile(join(work, "auth.txt"), "secret-free");
      await ok.logArtifact(runId, join(work, "auth.txt"));
      expect(await ok.listArtifacts(runId)).toEqual([{ path: "auth.txt", isDir: false, size: 11 }]);

      const anonymous = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri });
      const refused = await anonymous.ping().catch((e: unknown) => e as Error);
      expect(refused).toBeInstanceOf(TrackerUnreachableError);
      expect(refused?.message).toMatch(/HTTP 401.*no credentials were given.*MLFLOW_TRACKING_USERNAME/);

      const wrong = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_TRACKING_USERNAME: "alice", MLFLOW_TRACKING_PASSWORD: "wrong-pw" });
      const denied = await wrong.ensureExperiment("auth").then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(denied).toBeInstanceOf(TrackerUnreachableError);
      expect(denied?.message).toContain("the credentials given were not accepted");
      expect(denied?.message).not.toContain("wrong-pw");
    } finally {
      await proxy.close();
    }
  });
});

describe("MlflowTracker keys", () => {
  it("keeps keys that differ only in characters MLflow refuses distinct: one log-batch, nothing lost", async () => {
    const t = tracker();
    const experimentId = await t.ensureExperiment("keys");
    const runId = await t.createRun({ experimentId, name: "keys" });
    await t.logBatch(runId, {
      params: { "lr@val": "0.1", "lr#val": "0.2", lr_val: "0.3" },
      metrics: [
        { key: "acc@val", value: 0.5, step: 0, timestamp: Date.now() },
        { key: "acc#val", value: 0.6, step: 0, timestamp: Date.now() },
      ],
      tags: { "t@x": "1", "t#x": "2" },
    });
    await t.endRun(runId, "FINISHED");
    await t.flush();
    const [run] = await pyRead([{ op: "get_run", run_id: runId }]);
    expect(Object.values(run.params).sort()).toEqual(["0.1", "0.2", "0.3"]);
    expect(run.params.lr_val).toBe("0.3");
    expect(Object.values(run.metrics).sort()).toEqual([0.5, 0.6]);
    expect(Object.keys(run.tags).filter((k) => k.startsWith("t_x"))).toHaveLength(2);
    expect(run.status).toBe("FINISHED");
  });
});

describe("MlflowTracker run names", () => {
  it("cuts a name longer than MLflow's runs.name column (String(250), which PostgreSQL and MySQL enforce) to 250 characters, items of one map apart, the whole name in cairn.node_id", async () => {
    const t = tracker();
    const experimentId = await t.ensureExperiment("long-names");
    const name = `t${"x".repeat(299)}`;
    const ids = await Promise.all(["", "[11]", "[12]"].map((item) => t.createRun({ experimentId, name: name + item, tags: { "cairn.node_id": name + item } })));
    const runs = await pyRead(ids.map((run_id) => ({ op: "get_run", run_id })));
    for (const [i, run] of runs.entries()) {
      expect(Array.from(run.run_name as string)).toHaveLength(250);
      expect(run.run_name).toMatch(/^tx+-[0-9a-f]{8}$/);
      expect(run.tags["cairn.node_id"]).toBe(name + ["", "[11]", "[12]"][i]);
    }
    expect(new Set(runs.map((run) => run.run_name)).size).toBe(3);
    // A name that fits is sent as it is.
    const [short] = await pyRead([{ op: "get_run", run_id: await t.createRun({ experimentId, name: "y".repeat(250) }) }]);
    expect(short.run_name).toBe("y".repeat(250));
  });
});

describe("MlflowTracker with several processes", () => {
  it("two processes creating the same new experiments at once both succeed", async () => {
    const names = Array.from({ length: 3 }, (_, i) => `race-${Date.now()}-${i}`);
    // A barrier: each process's first look-up of a name is answered only once both have asked,
    // so both see "no such experiment" and both try to create it.
    const waiting = new Map<string, (() => void)[]>();
    const released = new Set<string>();
    const proxy = await startProxy((req, _res, forward) => {
      const name = new URL(req.url ?? "", "http://x").searchParams.get("experiment_name");
      if (!req.url?.includes("/experiments/get-by-name") || !name || !names.includes(name) || released.has(name)) return false;
      const queue = [...(waiting.get(name) ?? []), forward];
      waiting.set(name, queue);
      if (queue.length === 2) {
        released.add(name);
        for (const f of queue) f();
      }
      return true;
    });
    try {
      const clientModule = join(here, "../client/client.ts");
      const code = `
        import { MlflowClient } from ${JSON.stringify(clientModule)};
        const client = new MlflowClient({ uri: ${JSON.stringify(proxy.uri)}, backoffFactor: 0.05 });
        let lost = 0;
        client.http.observe((e) => {
          if (e.phase === "response" && e.url.endsWith("/experiments/create") && String(e.data).includes("RESOURCE_ALREADY_EXISTS")) lost++;
        });
        const ids = await Promise.all(${JSON.stringify(names)}.map((n) => client.ensureExperiment(n)));
        process.stdout.write(JSON.stringify({ ids, lost }));
      `;
      const runOne = () =>
        new Promise<{ ids: string[]; lost: number }>((resolve, reject) => {
          const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: workspaceRoot, stdio: ["ignore", "pipe", "pipe"] });
          let out = "";
          let err = "";
          child.stdout.on("data", (c: Buffer) => (out += c.toString()));
          child.stderr.on("data", (c: Buffer) => (err += c.toString()));
          child.on("close", (status) => (status === 0 ? resolve(JSON.parse(out) as { ids: string[]; lost: number }) : reject(new Error(`exit ${status}: ${err}`))));
        });
      const [a, b] = await Promise.all([runOne(), runOne()]);
      expect(a.ids).toEqual(b.ids);
      expect(new Set(a.ids).size).toBe(names.length);
      // Every name was created by one process and lost by the other.
      expect(a.lost + b.lost).toBe(names.length);
    } finally {
      await proxy.close();
    }
  });
});

describe("MlflowTracker request budget", () => {
  it("a typical task costs create + one log-batch + one artifact + update", async () => {
    const t = tracker();
    const experimentId = await t.ensureExperiment("budget");
    const flowRunId = await t.createRun({ experimentId, name: "flow" });
    const seen = countRequests(t);
    await writeFile(join(work, "outputs.json"), JSON.stringify({ accuracy: 0.9 }));

    const runId = await t.createRun({ experimentId, name: "task", parentRunId: flowRunId, tags: { "cairn.task": "train" } });
    // What the engine's recorder sends at the end of a task: inputs as params, logged metrics, tags.
    await t.logBatch(runId, {
      params: { lr: "0.1", epochs: "3" },
      metrics: [0, 1, 2].map((step) => ({ key: "loss", value: 1 / (step + 1), step, timestamp: Date.now() })),
      tags: { "cairn.attempts": "1" },
    });
    await t.logArtifact(runId, join(work, "outputs.json"), "cairn");
    await t.endRun(runId, "FINISHED");
    await t.flush();

    expect(seen).toEqual([
      "POST /api/2.0/mlflow/runs/create",
      "POST /api/2.0/mlflow/runs/log-batch",
      `PUT /api/2.0/mlflow-artifacts/artifacts/${experimentId}/${runId}/artifacts/cairn/outputs.json`,
      "POST /api/2.0/mlflow/runs/update",
    ]);
  });

  it("opening an existing experiment is one request, which is the reachability check too", async () => {
    const t = tracker();
    const name = `open-${randomBytes(4).toString("hex")}`;
    const seenFirst = countRequests(t);
    const created = await t.openExperiment(name);
    // The first time: the lookup answers "no such experiment", then one create, and one read of where its artifacts go.
    expect(seenFirst).toEqual(["GET /api/2.0/mlflow/experiments/get-by-name", "POST /api/2.0/mlflow/experiments/create", "GET /api/2.0/mlflow/experiments/get"]);
    const again = tracker();
    const seen = countRequests(again);
    expect(await again.openExperiment(name)).toBe(created);
    expect(seen).toEqual(["GET /api/2.0/mlflow/experiments/get-by-name"]);
  });

  it("a cache hit's run (recordRun) is create + update, and reads back FINISHED with its tags", async () => {
    const t = tracker();
    const experimentId = await t.ensureExperiment("budget");
    const flowRunId = await t.createRun({ experimentId, name: "flow" });
    const seen = countRequests(t);
    const hit = await t.recordRun({ experimentId, name: "hit", parentRunId: flowRunId, tags: { "cairn.cached_from": "abc" }, status: "FINISHED" });
    expect(seen).toEqual(["POST /api/2.0/mlflow/runs/create", "POST /api/2.0/mlflow/runs/update"]);
    const [run] = await pyRead([{ op: "get_run", run_id: hit }]);
    expect(run).toMatchObject({ run_name: "hit", status: "FINISHED", tags: { "cairn.cached_from": "abc", "mlflow.parentRunId": flowRunId } });
    expect(run.end_time).toBeGreaterThanOrEqual(run.start_time);
  });

  it("getRuns reads many runs with one search, and settles a deleted run as gone", async () => {
    const t = tracker();
    const experimentId = await t.ensureExperiment("budget-many");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = await t.createRun({ experimentId, name: `r${i}` });
      await t.endRun(id, "FINISHED");
      ids.push(id);
    }
    const res = await fetch(`${server.uri}/api/2.0/mlflow/runs/delete`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ run_id: ids[2] }) });
    expect(res.ok).toBe(true);
    const seen = countRequests(t);
    const found = await t.getRuns(ids, [experimentId]);
    expect(seen).toEqual(["POST /api/2.0/mlflow/runs/search"]);
    expect(found.size).toBe(5);
    expect(found.has(ids[2]!)).toBe(true);
    expect(found.get(ids[2]!)).toBeUndefined(); // deleted: gone, as getRun says
    expect(await t.getRun(ids[2]!)).toBeUndefined();
    for (const i of [0, 1, 3, 4]) expect(found.get(ids[i]!)).toMatchObject({ runId: ids[i], name: `r${i}`, status: "FINISHED" });
  });

  it("metrics logged one at a time are sent together", async () => {
    const t = tracker();
    const runId = await t.createRun({ experimentId: await t.ensureExperiment("budget"), name: "loop" });
    const seen = countRequests(t);
    for (let step = 0; step < 300; step++) await t.logBatch(runId, { metrics: [{ key: "acc", value: step / 300, step, timestamp: Date.now() }] });
    await t.endRun(runId, "FINISHED");
    expect(seen).toEqual(["POST /api/2.0/mlflow/runs/log-batch", "POST /api/2.0/mlflow/runs/update"]);
    expect(await t.getMetricHistory(runId, "acc")).toHaveLength(300);
  });
});

describe("MlflowTracker and an experiment whose artifacts the server does not proxy", () => {
  /** The server's REST API, asked directly (what MLflow's UI or a script would do). */
  async function api(path: string, body?: object): Promise<Record<string, any>> {
    const res = await fetch(`${server.uri}/api/2.0/mlflow/${path}`, body ? { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : {});
    return (await res.json()) as Record<string, any>;
  }

  // Cairn created it and only then refused it: once the server was started with --artifacts-destination, the name stayed unusable.
  it("one Cairn just created (a server started with --no-serve-artifacts --default-artifact-root DIR) is renamed aside and deleted: the name is free again", async () => {
    const direct = join(work, "direct-root");
    // Only the create is changed: given the location such a server gives every new experiment.
    const proxy = await startProxy((req, res) => {
      if (!req.url?.endsWith("/experiments/create")) return false;
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        const create = JSON.parse(body) as { name: string };
        void api("experiments/create", { ...create, artifact_location: `${direct}/${create.name}` }).then((answer) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer)));
      });
      return true;
    });
    const name = `direct-new-${randomBytes(4).toString("hex")}`;
    try {
      const refused = await MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri })
        .openExperiment(name)
        .then(() => undefined, (e: unknown) => e as ArtifactLocationError);
      expect(refused).toBeInstanceOf(ArtifactLocationError);
      expect(refused?.createdNow).toMatchObject({ removed: true });
      const aside = (refused?.createdNow as { asideName: string }).asideName;
      expect(refused?.message).toContain(`which Cairn just created, was given the artifact location "${direct}/${name}", which Cairn cannot write`);
      expect(refused?.message).toContain(`Cairn renamed it to "${aside}" and deleted it, so the name "${name}" is free again.`);
      expect((await api(`experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`)).error_code).toBe("RESOURCE_DOES_NOT_EXIST");
      expect((await api(`experiments/get?experiment_id=${refused!.experimentId}`)).experiment).toMatchObject({ name: aside, lifecycle_stage: "deleted" });
      // The server fixed, the same name opens: a new experiment, written through the proxy.
      const id = await tracker().openExperiment(name);
      expect(id).not.toBe(refused!.experimentId);
      expect((await api(`experiments/get?experiment_id=${id}`)).experiment.artifact_location).toMatch(/^mlflow-artifacts:/);
    } finally {
      await proxy.close();
    }
  });

  it("one that existed before is left as it is, and the error says how to free its name", async () => {
    const name = `direct-old-${randomBytes(4).toString("hex")}`;
    const id = String((await api("experiments/create", { name, artifact_location: join(work, "direct-old") })).experiment_id);
    const refused = await tracker()
      .openExperiment(name)
      .then(() => undefined, (e: unknown) => e as ArtifactLocationError);
    expect(refused).toBeInstanceOf(ArtifactLocationError);
    expect(refused?.createdNow).toBeUndefined();
    expect(refused?.message).toContain("record to a new experiment (`--experiment NAME` or MLFLOW_EXPERIMENT_NAME)");
    expect(refused?.message).toContain(`\`mlflow experiments rename --experiment-id ${id} --new-name OTHER\``);
    expect(refused?.message).toContain(`\`mlflow gc --backend-store-uri <the server's store> --experiment-ids ${id}\``);
    expect((await api(`experiments/get?experiment_id=${id}`)).experiment).toMatchObject({ name, lifecycle_stage: "active" });
  });
});

describe("MlflowTracker, runs left RUNNING by another boot id under this host name", () => {
  it.runIf(currentOwner().space !== undefined)("closes those that can be of an earlier boot of this machine, and leaves another machine's of this name alone", async () => {
    const t = tracker();
    const experimentId = await t.ensureExperiment(`other-boot-${randomBytes(4).toString("hex")}`);
    const me = currentOwner();
    const beforeBoot = Math.floor(Date.now() - uptime() * 1000 - 5 * 60_000);
    // Another boot id; its pid is a live process here, which says nothing of a process of another boot.
    const otherBoot = { host: me.host, pid: process.ppid, space: `0badf0${me.space!.slice(6)}`, ...(me.machine !== undefined ? { machine: me.machine } : {}) };
    const runOwnedBy = async (owner: string, startTime: number) => {
      const runId = await t.createRun({ experimentId, name: "r", startTime });
      await t.logBatch(runId, { tags: { "cairn.owner": owner } });
      return runId;
    };
    const earlier = await runOwnedBy(formatOwner({ ...otherBoot, startedAt: Math.floor(beforeBoot / 1000) }), beforeBoot);
    // An older Cairn's owner (no start on the wall clock): its run's start tells.
    const earlierOld = await runOwnedBy(`${me.host}:${process.ppid}:t1:s${otherBoot.space}`, beforeBoot);
    // A machine given this host name (a cloned VM, a container's --hostname): it started, or its run did, since this boot.
    const started = await runOwnedBy(formatOwner({ ...otherBoot, startedAt: Math.floor(Date.now() / 1000) - 5 }), Date.now());
    const runSince = await runOwnedBy(formatOwner({ ...otherBoot, startedAt: Math.floor(beforeBoot / 1000) }), Date.now());
    const oldSince = await runOwnedBy(`${me.host}:${process.ppid}:t1:s${otherBoot.space}`, Date.now());
    const closed = await t.closeAbandonedRuns([experimentId]);
    expect(closed.map((r) => r.runId).sort()).toEqual([earlier, earlierOld].sort());
    for (const runId of [started, runSince, oldSince]) {
      const run = await t.getRun(runId);
      expect(run?.status).toBe("RUNNING");
      expect(run?.tags["cairn.abandoned"]).toBeUndefined();
      await t.endRun(runId, "FINISHED");
    }
  });
});
