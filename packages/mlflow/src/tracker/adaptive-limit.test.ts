/**
 * How many cache hits' records go to MLflow at once. The rule on synthetic timings first; then
 * the tracker against a fake server, used only for what a real server on this machine will not
 * show on demand: a server with more room than the machine has, and 503s under load.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { TrackingError } from "@cairn/core";
import { mlflowOptionsFromEnv } from "../client/mlflow-config.ts";
import { AdaptiveLimit } from "./adaptive-limit.ts";
import { MlflowTracker } from "./mlflow-tracker.ts";

/** Feeds `rounds` rounds where a record takes `ms(limit)`, records waiting throughout. */
function drive(limit: AdaptiveLimit, rounds: number, ms: (inFlight: number) => number): number[] {
  const seen: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const n = limit.limit;
    for (let i = 0; i < n; i++) limit.sample(ms(n), true);
    seen.push(limit.limit);
  }
  return seen;
}

describe("AdaptiveLimit", () => {
  it("starts at 3 and grows while a record takes as long at any number in flight (a server with room)", () => {
    const limit = new AdaptiveLimit();
    expect(limit.limit).toBe(3);
    const seen = drive(limit, 40, () => 20);
    expect(seen.at(-1)).toBe(32);
    expect(seen).toEqual([...seen].sort((a, b) => a - b)); // never shrinks
  });

  it("settles where records start to queue: a server that writes one at a time stays at 2-3", () => {
    const limit = new AdaptiveLimit();
    // The run's first hits come one by one: a record alone takes 10 ms.
    for (let i = 0; i < 3; i++) limit.sample(10, false);
    // One worker: a record waits behind everything in flight before it.
    const seen = drive(limit, 60, (n) => 10 * n);
    for (const l of seen) expect(l).toBeGreaterThanOrEqual(1);
    for (const l of seen.slice(10)) expect(l).toBeLessThanOrEqual(3);
  });

  it("settles near a server's capacity: 8 workers, each record 20 ms", () => {
    const limit = new AdaptiveLimit();
    const seen = drive(limit, 80, (n) => 20 * Math.max(1, n / 8));
    for (const l of seen.slice(40)) {
      expect(l).toBeGreaterThanOrEqual(8);
      expect(l).toBeLessThanOrEqual(10);
    }
  });

  it("does not grow on records that never waited for a place (the limit was not what held them)", () => {
    const limit = new AdaptiveLimit();
    for (let i = 0; i < 100; i++) limit.sample(20, false);
    expect(limit.limit).toBe(3);
  });

  it("after a refusal, stays below the number refused, and tries above it again only after many quiet rounds", () => {
    const limit = new AdaptiveLimit({ initial: 6 });
    limit.overloaded(); // refused at 6: 3 now, at most 5
    const seen = drive(limit, 40, () => 20);
    expect(Math.max(...seen)).toBe(5);
    const later = drive(limit, 200, () => 20);
    expect(later.at(-1)).toBeGreaterThan(5);
  });

  it("halves on overload, once per burst of refusals, never below its minimum", () => {
    const limit = new AdaptiveLimit({ initial: 16 });
    expect(limit.overloaded()).toBe(8);
    expect(limit.overloaded()).toBe(8); // the same burst
    limit.sample(20, true);
    expect(limit.overloaded()).toBe(4);
    limit.sample(20, true);
    limit.overloaded();
    limit.sample(20, true);
    limit.overloaded();
    limit.sample(20, true);
    expect(limit.overloaded()).toBe(1);
  });

  it("keeps most of its limit when the server gets a little slower (a growing database), and shrinks when it gets much slower", () => {
    const limit = new AdaptiveLimit({ initial: 8 });
    drive(limit, 10, () => 10); // room at any number in flight: grows
    const before = limit.limit;
    expect(before).toBeGreaterThan(8);
    const slower = drive(limit, 30, () => 11.5); // 15 % slower: looks like 2 records queuing at 18
    expect(Math.min(...slower)).toBeGreaterThanOrEqual(Math.floor(before * 0.75));
    const muchSlower = drive(limit, 60, () => 40);
    expect(muchSlower.at(-1)).toBeLessThanOrEqual(3);
    expect(muchSlower.at(-1)).toBeGreaterThanOrEqual(1);
  });
});

describe("CAIRN_MLFLOW_RECORDS_IN_FLIGHT", () => {
  it("fixes the number of records in flight", () => {
    const tracker = new MlflowTracker(mlflowOptionsFromEnv({ CAIRN_MLFLOW_RECORDS_IN_FLIGHT: "5" }, "http://127.0.0.1:1"));
    expect(tracker.recordsInFlight).toBe(5);
  });

  it.each(["0", "65", "2.5", "many", "-1"])("refuses %j with what it expects and how to fix it", (value) => {
    expect(() => mlflowOptionsFromEnv({ CAIRN_MLFLOW_RECORDS_IN_FLIGHT: value }, "http://127.0.0.1:1")).toThrow(TrackingError);
    expect(() => mlflowOptionsFromEnv({ CAIRN_MLFLOW_RECORDS_IN_FLIGHT: value }, "http://127.0.0.1:1")).toThrow(
      /CAIRN_MLFLOW_RECORDS_IN_FLIGHT.*(integer from 1 to 64|an integer)/,
    );
  });
});

/**
 * A fake MLflow that knows runs/create and runs/update only: `workers` requests are served at
 * once, each in `ms`, the rest wait; with `refuseAbove`, a request beyond that many in flight is
 * answered 503 at once.
 */
async function fakeServer(options: { workers: number; ms: number; refuseAbove?: number }) {
  let inFlight = 0;
  let busy = 0;
  let refused = 0;
  let maxInFlight = 0;
  const waiting: Array<() => void> = [];
  const finished = new Set<string>();
  let next = 0;
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        res.setHeader("content-type", "application/json");
        if (options.refuseAbove !== undefined && inFlight > options.refuseAbove) {
          refused++;
          res.writeHead(503).end(JSON.stringify({ error_code: "TEMPORARILY_UNAVAILABLE", message: "busy" }));
          return;
        }
        if (busy >= options.workers) await new Promise<void>((r) => waiting.push(r));
        busy++;
        await sleep(options.ms);
        busy--;
        waiting.shift()?.();
        const data = JSON.parse(body || "{}") as { run_id?: string; status?: string };
        if (req.url?.endsWith("/runs/create")) {
          const runId = `r${next++}`;
          res.writeHead(200).end(JSON.stringify({ run: { info: { run_id: runId, experiment_id: "1", status: "RUNNING", artifact_uri: `mlflow-artifacts:/1/${runId}/artifacts` }, data: {} } }));
        } else if (req.url?.endsWith("/runs/update")) {
          if (data.status === "FINISHED" && data.run_id) finished.add(data.run_id);
          res.writeHead(200).end(JSON.stringify({ run_info: { run_id: data.run_id, status: data.status } }));
        } else {
          res.writeHead(404).end(JSON.stringify({ error_code: "RESOURCE_DOES_NOT_EXIST", message: "not faked" }));
        }
      } finally {
        inFlight--;
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    finished,
    stats: () => ({ refused, maxInFlight }),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const noBackoff = { MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0" };
/** Retries 10 ms apart, doubling, with up to 10 ms of jitter: a refused request comes back soon, not in a storm. */
const smallBackoff = { MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0.01", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0.01", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "10" };
let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function recordHits(tracker: MlflowTracker, n: number): Promise<string[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => tracker.recordRun({ experimentId: "1", name: `hit-${i}`, status: "FINISHED" })));
}

describe("the tracker's cache-hit records", () => {
  it("send more at once to a server with room: 16 workers, records 15 ms", async () => {
    const fake = await fakeServer({ workers: 16, ms: 15 });
    close = fake.close;
    const tracker = MlflowTracker.fromEnv(noBackoff, fake.uri);
    const ids = await recordHits(tracker, 400);
    expect(new Set(ids).size).toBe(400);
    expect(fake.finished.size).toBe(400);
    expect(tracker.recordsInFlight).toBeGreaterThan(3);
    expect(fake.stats().maxInFlight).toBeGreaterThan(3);
  });

  it("back off when the server refuses (503 beyond 4 in flight): far fewer refusals than a number fixed too high, and every record lands", async () => {
    const refusals: Record<string, number> = {};
    for (const [name, extra] of [["fixed", { CAIRN_MLFLOW_RECORDS_IN_FLIGHT: "8" }], ["adaptive", {}]] as const) {
      const fake = await fakeServer({ workers: 16, ms: 5, refuseAbove: 4 });
      close = fake.close;
      const tracker = MlflowTracker.fromEnv({ ...smallBackoff, ...extra }, fake.uri);
      const ids = await recordHits(tracker, 150);
      expect(new Set(ids).size).toBe(150);
      expect(fake.finished.size).toBe(150);
      refusals[name] = fake.stats().refused;
      await fake.close();
      close = undefined;
    }
    expect(refusals.fixed).toBeGreaterThan(10);
    expect(refusals.adaptive).toBeGreaterThan(0);
    expect(refusals.adaptive).toBeLessThan(refusals.fixed! / 2);
  });

  it("keep to the fixed number when CAIRN_MLFLOW_RECORDS_IN_FLIGHT is set, whatever the server's room", async () => {
    const fake = await fakeServer({ workers: 16, ms: 10 });
    close = fake.close;
    const tracker = MlflowTracker.fromEnv({ ...noBackoff, CAIRN_MLFLOW_RECORDS_IN_FLIGHT: "2" }, fake.uri);
    await recordHits(tracker, 60);
    expect(tracker.recordsInFlight).toBe(2);
    expect(fake.stats().maxInFlight).toBeLessThanOrEqual(2);
    expect(fake.finished.size).toBe(60);
  });
});
