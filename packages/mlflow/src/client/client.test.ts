import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { getEventListeners } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { describe, expect, it, vi } from "vitest";
import { MlflowApiError, redactUri, resolveTracker, TrackerUnreachableError, TrackingConfigError, TrackingError, UnsupportedTrackingUriError } from "@cairn/core";
import { freePort } from "../../test/mlflow-server.ts";
import { chunkBatch, isTagAbsenceRefused, MlflowClient, normalizeArtifactPath, parseJson, quoteFilterValue, runFilter, toDouble, toInt } from "./client.ts";
import { inFlightLimit } from "./in-flight.ts";
import { mlflowOptionsFromEnv, parseTrackingUri } from "./mlflow-config.ts";
import { fitMlflowValue, MLFLOW_LIMITS, toMlflowKey } from "./mlflow-limits.ts";
import { MlflowTracker } from "../tracker/mlflow-tracker.ts";

describe("mlflowOptionsFromEnv", () => {
  it("reads MLflow's client variables", () => {
    const o = mlflowOptionsFromEnv({
      MLFLOW_TRACKING_URI: "https://mlflow.example.com/prefix/",
      MLFLOW_TRACKING_TOKEN: "tok",
      MLFLOW_TRACKING_INSECURE_TLS: "true",
      MLFLOW_HTTP_REQUEST_MAX_RETRIES: "3",
      MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0.5",
      MLFLOW_HTTP_REQUEST_TIMEOUT: "30",
    });
    expect(o).toMatchObject({ uri: "https://mlflow.example.com/prefix", token: "tok", insecureTls: true, maxRetries: 3, backoffFactor: 0.5, timeoutSeconds: 30 });
  });

  it("refuses a tracking URI with a query or a fragment, which were dropped without a word", () => {
    expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://host:5750?x=1" })).toThrow(
      'MLFLOW_TRACKING_URI is "http://host:5750?x=***", which has a query: requests go to its path, and a query or fragment is no part of them. Leave it out.',
    );
    expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://host:5750/#frag" })).toThrow(TrackingConfigError);
    // A query or fragment may carry a token: the message shows neither (it showed the query whole).
    for (const raw of ["https://u:pw@host/mlflow?token=S3cr3tTok", "https://host/mlflow?access_token=S3cr3tTok&x=1", "https://host/mlflow#access_token=S3cr3tTok"]) {
      let error: unknown;
      try {
        mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: raw });
      } catch (thrown) {
        error = thrown;
      }
      expect(error).toBeInstanceOf(TrackingConfigError);
      expect((error as Error).message, raw).not.toContain("S3cr3tTok");
    }
    expect(mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://host:5750/" }).uri).toBe("http://host:5750");
  });

  it("moves credentials out of the URI", () => {
    const o = mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://alice:s%3Acret@127.0.0.1:5000" });
    expect(o).toMatchObject({ uri: "http://127.0.0.1:5000", username: "alice", password: "s:cret" });
    expect(new MlflowTracker(o).uri).toBe("http://127.0.0.1:5000");
  });

  it("rejects bad values with the variable's name", () => {
    expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", MLFLOW_TRACKING_INSECURE_TLS: "yes" })).toThrow(/MLFLOW_TRACKING_INSECURE_TLS/);
    expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "11" })).toThrow(/from 0 to 10/);
    expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", MLFLOW_HTTP_REQUEST_TIMEOUT: "soon" })).toThrow(/MLFLOW_HTTP_REQUEST_TIMEOUT/);
    expect(() =>
      mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "https://x", MLFLOW_TRACKING_INSECURE_TLS: "1", MLFLOW_TRACKING_SERVER_CERT_PATH: "/ca.pem" }),
    ).toThrow(TrackingError);
  });

  // A variable left from an https setup, naming a file since gone, failed an http run with TrackingConfigError (exit 2).
  it("does not read the certificate variables for an http URI: a missing file fails https only", () => {
    const missing = join(tmpdir(), "cairn-no-such-dir", "gone.pem");
    const stale = { MLFLOW_TRACKING_SERVER_CERT_PATH: missing, MLFLOW_TRACKING_CLIENT_CERT_PATH: missing, MLFLOW_TRACKING_INSECURE_TLS: "1" };
    const plain = mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://127.0.0.1:1", ...stale });
    expect(plain).not.toHaveProperty("serverCertPath");
    expect(plain).not.toHaveProperty("clientCertPath");
    expect(new MlflowClient(plain).uri).toBe("http://127.0.0.1:1");
    // Given to the client directly, over http they are not read either.
    expect(new MlflowClient({ uri: "http://127.0.0.1:1", serverCertPath: missing, clientCertPath: missing, insecureTls: true }).uri).toBe("http://127.0.0.1:1");
    const { MLFLOW_TRACKING_INSECURE_TLS: _, ...certs } = stale;
    expect(() => new MlflowClient(mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "https://127.0.0.1:1", ...certs }))).toThrow(
      `MLFLOW_TRACKING_SERVER_CERT_PATH is ${missing}, which cannot be read (ENOENT)`,
    );
    expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "https://127.0.0.1:1", ...stale })).toThrow(TrackingConfigError);
  });

  // Blank was Number("") = 0 (no retries, no backoff, connections never recycled) without a word; 0x5 was 5.
  it.each(["MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "CAIRN_MLFLOW_CONNECTION_REQUESTS", "MLFLOW_HTTP_REQUEST_TIMEOUT", "CAIRN_MLFLOW_RECORDS_IN_FLIGHT"])(
    "%s: blank and hex are refused, quoting what was given",
    (name) => {
      expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", [name]: " " })).toThrow(
        new RegExp(`^Expected ${name} to be an? (integer, in digits|number, in decimal), got " " \\(blank\\)\\. Unset it for the default, or give a value\\.$`),
      );
      expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", [name]: "0x5" })).toThrow(new RegExp(`^Expected ${name} to be .*, got "0x5"\\. Write it (in digits|as a decimal number)`));
      expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", [name]: " " })).toThrow(TrackingConfigError);
    },
  );

  // Past Node's longest timer: a TimeoutOverflowWarning on the user's stderr, or ERR_OUT_OF_RANGE blamed on the server.
  it("MLFLOW_HTTP_REQUEST_TIMEOUT and _BACKOFF_JITTER are at most 2147483 s", () => {
    expect(mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", MLFLOW_HTTP_REQUEST_TIMEOUT: "2147483" }).timeoutSeconds).toBe(2147483);
    for (const raw of ["2147484", "3000000", "1e308"]) {
      expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", MLFLOW_HTTP_REQUEST_TIMEOUT: raw })).toThrow(
        `Expected MLFLOW_HTTP_REQUEST_TIMEOUT to be a number of seconds above 0, at most 2147483 (about 24.8 days, the longest a Node timer waits), got \`${Number(raw)}\`.`,
      );
      expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: raw })).toThrow(/^Expected MLFLOW_HTTP_REQUEST_BACKOFF_JITTER to be a number of seconds from 0 to 2147483 /);
    }
  });

  it("reads CAIRN_MLFLOW_CONNECTION_REQUESTS, and refuses what is not a count of requests", () => {
    expect(mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", CAIRN_MLFLOW_CONNECTION_REQUESTS: "0" }).connectionRequests).toBe(0);
    expect(mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", CAIRN_MLFLOW_CONNECTION_REQUESTS: "50" }).connectionRequests).toBe(50);
    expect(mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x" }).connectionRequests).toBeUndefined();
    for (const bad of ["-1", "10001"]) {
      expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", CAIRN_MLFLOW_CONNECTION_REQUESTS: bad })).toThrow(
        `Expected CAIRN_MLFLOW_CONNECTION_REQUESTS to be an integer from 0 to 10,000, got \`${bad}\`. Every N-th request to the server closes its connection`,
      );
    }
    for (const bad of ["2.5", "many"]) {
      expect(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://x", CAIRN_MLFLOW_CONNECTION_REQUESTS: bad })).toThrow(/CAIRN_MLFLOW_CONNECTION_REQUESTS.*an integer/);
    }
  });

  it("refuses non-HTTP URIs without showing credentials", () => {
    expect(() => parseTrackingUri("sqlite:///mlflow.db")).toThrow(UnsupportedTrackingUriError);
    try {
      parseTrackingUri("postgresql://bob:hunter2@db/mlflow");
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).not.toContain("hunter2");
    }
  });
});

describe("tracking URIs with credentials that do not parse", () => {
  const secret = /S3cr3tPW|%zz|\/x@|at@/;
  /** The error `fn` throws, or undefined. */
  function thrown(fn: () => unknown): Error {
    try {
      fn();
    } catch (error) {
      return error as Error;
    }
    throw new Error("expected an error");
  }

  it("never shows the password: a `/` or `@` in it hides up to the last `@`", () => {
    // The last: a password of digits and `/` parses as a port and a path.
    for (const raw of ["http://alice:S3cr3tPW/x@127.0.0.1:5732", "sqlite://alice:S3cr3tPW@at@host/x", "postgresql://alice:S3cr3tPW/x@at@db/mlflow", "http://alice:5732/x@127.0.0.1:5732"]) {
      expect(redactUri(raw)).not.toMatch(secret);
      const error = thrown(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: raw }));
      expect(TrackingError.is(error)).toBe(true);
      expect(error.message).not.toMatch(secret);
      expect(error.message).toContain("alice:***@");
    }
    expect(redactUri("sqlite://alice:S3cr3tPW@at@host/x")).toBe("sqlite://alice:***@host/x");
    expect(redactUri("http://alice:S3cr3tPW/x@127.0.0.1:5732")).toBe("http://alice:***@127.0.0.1:5732");
    expect(redactUri("http://127.0.0.1:5000")).toBe("http://127.0.0.1:5000");
    // The URL standard reads no user info in the last (host `alice`, port 5732): hidden all the same.
    expect(redactUri("http://alice:5732/x@127.0.0.1:5732")).toBe("http://alice:***@127.0.0.1:5732");
  });

  it("refuses a URI whose password holds `@` then `#`: it parses, with part of the password as the host", () => {
    // It used to parse as host `secret` and fail as "Cannot reach the MLflow tracking server at http://secret".
    const error = thrown(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://alice:Hunter2@Secret#Tail@127.0.0.1:5777" }));
    expect(TrackingError.is(error)).toBe(true);
    expect(error.message).toBe(
      'MLFLOW_TRACKING_URI is "http://alice:***@127.0.0.1:5777", which has more than one `@`, or a `#`, `/` or `?` before its last `@`, ' +
        "so part of the password would be read as the host. If it holds a user name and password, percent-encode them " +
        "(`%25` for %, `%40` for @, `%23` for #, `%2F` for /, `%3A` for :), or leave them out of the URI and set " +
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead.",
    );
    expect(`${error.message}\n${error.stack}`).not.toMatch(/Hunter2|Secret|Tail/i);
  });

  it("an http URI that does not parse is not called a non-HTTP URI, and says to percent-encode the password", () => {
    const error = thrown(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://alice:S3cr3tPW/x@127.0.0.1:5732" }));
    expect(error.message).not.toContain("only over HTTP");
    expect(error.message).toContain("%40");
  });

  it("a password with a stray `%` is a TrackingError saying to write it %25, not a URIError", () => {
    const error = thrown(() => mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: "http://alice:S3cr3tPW%zz@127.0.0.1:5732" }));
    expect(error).not.toBeInstanceOf(URIError);
    expect(TrackingError.is(error)).toBe(true);
    expect(error.message).toContain("%25");
    expect(error.message).toContain("MLFLOW_TRACKING_PASSWORD");
    expect(`${error.message}\n${error.stack}`).not.toMatch(secret);
    expect(String(error.cause ?? "")).not.toMatch(secret);
  });

  it("resolveTracker shows a refused URI without its password", async () => {
    const error = await resolveTracker({ uri: "sqlite://alice:S3cr3tPW@at@host/x", env: {} }).then(
      () => new Error("resolved"),
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(UnsupportedTrackingUriError);
    expect(error.message).toContain("sqlite://alice:***@host/x");
    expect(error.message).not.toMatch(secret);
  });
});

describe("filter strings", () => {
  it("quotes tag keys with backticks and values with quotes", () => {
    expect(runFilter({ tags: { "cairn.cache_key": "abc" }, parentRunId: "r1", status: "FINISHED" })).toBe(
      "tags.`cairn.cache_key` = 'abc' AND tags.`mlflow.parentRunId` = 'r1' AND attributes.status = 'FINISHED'",
    );
    expect(runFilter({ topLevelOnly: true })).toBe("tags.`mlflow.parentRunId` IS NULL");
  });

  it("takes only the refusal of IS NULL as a server without tag-absence filters, not any 400", () => {
    const refused = new MlflowApiError("runs/search", 400, "INVALID_PARAMETER_VALUE", "Invalid clause(s) in filter string: 'tags.`mlflow.parentRunId`', 'IS', 'NULL'");
    const busy = new MlflowApiError("runs/search", 400, "INVALID_PARAMETER_VALUE", "(sqlite3.OperationalError) QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00");
    expect(isTagAbsenceRefused(refused)).toBe(true);
    expect(isTagAbsenceRefused(busy)).toBe(false);
    expect(isTagAbsenceRefused(new MlflowApiError("runs/search", 500, "INTERNAL_ERROR", "IS NULL"))).toBe(false);
  });

  it("uses the other quote, or a LIKE superset, for values MLflow cannot unescape", () => {
    expect(quoteFilterValue("it's")).toBe(`= "it's"`);
    expect(quoteFilterValue(`say "hi"`)).toBe(`= 'say "hi"'`);
    expect(quoteFilterValue(`it's "x"`)).toBe(`LIKE 'it_s _x_'`);
    expect(quoteFilterValue("a\\b")).toBe("LIKE 'a_b'");
  });
});

describe("chunkBatch", () => {
  it("keeps each request within MLflow's counts", () => {
    const metrics = Array.from({ length: 2500 }, (_, i) => ({ key: "m", value: i, step: i, timestamp: 1 }));
    const params = Array.from({ length: 250 }, (_, i) => ({ key: `p${i}`, value: "v" }));
    const tags = Array.from({ length: 120 }, (_, i) => ({ key: `t${i}`, value: "v" }));
    const chunks = chunkBatch({ metrics, params, tags });
    for (const c of chunks) {
      expect(c.metrics.length).toBeLessThanOrEqual(MLFLOW_LIMITS.metricsPerBatch);
      expect(c.params.length).toBeLessThanOrEqual(MLFLOW_LIMITS.paramsPerBatch);
      expect(c.tags.length).toBeLessThanOrEqual(MLFLOW_LIMITS.tagsPerBatch);
      expect(c.metrics.length + c.params.length + c.tags.length).toBeLessThanOrEqual(MLFLOW_LIMITS.entitiesPerBatch);
    }
    expect(chunks.flatMap((c) => c.metrics)).toEqual(metrics);
    expect(chunks.flatMap((c) => c.params)).toEqual(params);
    expect(chunks.flatMap((c) => c.tags)).toEqual(tags);
    expect(chunks.length).toBe(3);
  });

  it("keeps each request under 1 MB", () => {
    const params = Array.from({ length: 100 }, (_, i) => ({ key: `p${i}`, value: "x".repeat(6000) }));
    const tags = Array.from({ length: 100 }, (_, i) => ({ key: `t${i}`, value: "y".repeat(8000) }));
    const chunks = chunkBatch({ params, tags });
    for (const c of chunks) expect(Buffer.byteLength(JSON.stringify({ run_id: "x".repeat(32), ...c }))).toBeLessThan(MLFLOW_LIMITS.batchRequestBytes);
    expect(chunks.flatMap((c) => c.tags)).toHaveLength(100);
  });

  it("sends nothing for an empty batch", () => {
    expect(chunkBatch({})).toEqual([]);
  });
});

describe("wire values", () => {
  it("accepts int64s sent as strings and non-finite doubles", () => {
    expect(toInt("1700000000000")).toBe(1_700_000_000_000);
    expect(toInt(5)).toBe(5);
    expect(toDouble("NaN")).toBeNaN();
    expect(toDouble("-Infinity")).toBe(-Infinity);
    expect(toDouble(Number.MAX_VALUE)).toBe(Infinity);
    expect(toDouble("0.5")).toBe(0.5);
    expect(parseJson('{"a": NaN, "b": [Infinity, -Infinity]}')).toEqual({ a: "NaN", b: ["Infinity", "-Infinity"] });
  });

  it("rejects artifact paths that leave the run", () => {
    expect(normalizeArtifactPath("/a//b/./c/")).toBe("a/b/c");
    expect(() => normalizeArtifactPath("a/../../etc")).toThrow(TrackingError);
  });
});

describe("keys and long values", () => {
  it("makes keys acceptable to MLflow", () => {
    expect(toMlflowKey("loss/val acc-1.0_x")).toBe("loss/val acc-1.0_x");
    expect(toMlflowKey("a:b@c")).toMatch(/^a:b_c-[0-9a-f]{8}$/);
    // MLflow takes `:` (its own clients log `val:loss` as it is): kept, so both spell the key alike.
    expect(toMlflowKey("val:loss")).toBe("val:loss");
    expect(toMlflowKey("eval/acc:top1")).toBe("eval/acc:top1");
    expect(toMlflowKey("/a//b/./c/")).toMatch(/^a\/b\/_\/c-[0-9a-f]{8}$/);
    expect(toMlflowKey("..x")).toMatch(/^_\.x-[0-9a-f]{8}$/);
    expect(toMlflowKey("")).toMatch(/^_-[0-9a-f]{8}$/);
    expect(toMlflowKey("k".repeat(300))).toHaveLength(250);
    expect(toMlflowKey("époque")).toBe("époque");
  });

  it("keeps keys that differ only in characters MLflow refuses, or past its 250 characters, distinct", () => {
    const keys = ["lr@val", "lr#val", "lr_val", "lr:val", "a/./b", "a/_/b", "k".repeat(300), `${"k".repeat(300)}x`, "k".repeat(250), `${"x".repeat(249)}@`, `${"x".repeat(245)}@`];
    const fitted = keys.map(toMlflowKey);
    expect(new Set(fitted).size).toBe(keys.length);
    for (const k of fitted) {
      expect(k).toMatch(/^[\p{L}\p{N}_\-. /:]+$/u);
      expect(k.length).toBeLessThanOrEqual(MLFLOW_LIMITS.keyLength);
      // A fitted key is valid: fitting it again leaves it.
      expect(toMlflowKey(k)).toBe(k);
    }
    // The same key always fits to the same name (searches and later batches find it).
    expect(toMlflowKey("lr@val")).toBe(fitted[0]);
    expect(toMlflowKey("lr_val")).toBe("lr_val");
    expect(toMlflowKey("k".repeat(250))).toBe("k".repeat(250));
  });

  it("never cuts a long value silently", () => {
    const long = "z".repeat(7000);
    const fit = fitMlflowValue("params", "config", long);
    expect(fit.overflow).toBe(true);
    expect(fit.value.length).toBeLessThanOrEqual(MLFLOW_LIMITS.paramValueLength);
    expect(fit.value).toContain("cairn/long-values/params/config.txt");
    expect(fitMlflowValue("params", "k", "short")).toEqual({ value: "short", overflow: false });
  });

  it("keeps two long values that begin alike apart (two sweep trials' keys cut at the same place were one tag value)", () => {
    const head = "lr=0.1,blob=" + "x".repeat(9000);
    const [a, b] = [`${head},k=1`, `${head},k=2`].map((v) => fitMlflowValue("tags", "cairn.item_key", v).value);
    expect(a).not.toBe(b);
    expect(a!.length).toBeLessThanOrEqual(MLFLOW_LIMITS.tagValueLength);
    expect(fitMlflowValue("tags", "cairn.item_key", `${head},k=1`).value).toBe(a);
  });
});

describe("unreachable server", () => {
  it("ping fails fast with TrackerUnreachableError and no credentials in the message", async () => {
    const port = await freePort();
    const tracker = MlflowTracker.fromEnv({
      MLFLOW_TRACKING_URI: `http://127.0.0.1:${port}`,
      MLFLOW_TRACKING_USERNAME: "alice",
      MLFLOW_TRACKING_PASSWORD: "hunter2",
    });
    const started = Date.now();
    const error = await tracker.ping().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TrackerUnreachableError);
    expect((error as Error).message).toContain(`http://127.0.0.1:${port}`);
    expect((error as Error).message).toContain("connection refused");
    expect(Date.now() - started).toBeLessThan(4000);
    expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toContain("hunter2");
    expect(String((error as Error).cause)).not.toContain("hunter2");
  });

  it("openExperiment fails as fast as ping: the lookup by name is the probe", async () => {
    const port = await freePort();
    const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: `http://127.0.0.1:${port}` });
    const started = Date.now();
    const error = await tracker.openExperiment("any").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TrackerUnreachableError);
    expect((error as Error).message).toContain("connection refused");
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it("openExperiment on a server that is not MLflow (HTTP 404) says so", async () => {
    const notMlflow = http.createServer((_req, res) => {
      res.writeHead(404, { "content-type": "text/html" });
      res.end("<h1>Not Found</h1>");
    });
    await new Promise<void>((r) => notMlflow.listen(0, "127.0.0.1", r));
    try {
      const { port } = notMlflow.address() as AddressInfo;
      const error = await MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: `http://127.0.0.1:${port}` })
        .openExperiment("any")
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(TrackerUnreachableError);
      expect((error as Error).message).toMatch(/is this an MLflow tracking server/);
      expect((error as Error).message).toContain("If it is one behind a path prefix (`mlflow server --static-prefix /mlflow`, or a reverse proxy's path), put that prefix in MLFLOW_TRACKING_URI: `http://host:port/mlflow`.");
    } finally {
      notMlflow.close();
    }
  });

  // It was an MlflowApiError after 3 tries (exit 1), where the README promises exit 3 for a server Cairn cannot use.
  it("an artifacts-only server (`mlflow server --artifacts-only`) is a TrackerUnreachableError at once that says to point at the tracking server", async () => {
    const seen: string[] = [];
    // Only the answer is injected: the body MLflow's artifacts-only server gives every tracking request.
    const artifactsOnly = http.createServer((req, res) => {
      seen.push(req.url ?? "");
      const path = req.url?.split("?")[0];
      res.writeHead(503, { "content-type": "text/html; charset=utf-8" });
      res.end(`Endpoint: ${path} disabled due to the mlflow server running in \`--artifacts-only\` mode. To enable tracking server functionality, run \`mlflow server\` without \`--artifacts-only\``);
    });
    await new Promise<void>((r) => artifactsOnly.listen(0, "127.0.0.1", r));
    try {
      const { port } = artifactsOnly.address() as AddressInfo;
      const t = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: `http://127.0.0.1:${port}`, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0.01" });
      const error = await t.openExperiment("any").then(() => undefined, (e: unknown) => e as Error);
      expect(error).toBeInstanceOf(TrackerUnreachableError);
      expect(error?.message).toContain(
        `Cannot reach the MLflow tracking server at http://127.0.0.1:${port}: it is an MLflow artifacts-only server (\`mlflow server --artifacts-only\`), which serves no tracking requests (HTTP 503 on experiments/get-by-name): point MLFLOW_TRACKING_URI at the MLflow tracking server, one started without --artifacts-only.`,
      );
      expect(seen).toHaveLength(1);
      await expect(t.searchRuns({ experimentIds: ["1"] })).rejects.toBeInstanceOf(TrackerUnreachableError);
    } finally {
      artifactsOnly.close();
    }
  });

  it("other calls retry with MLflow's backoff, then fail with TrackerUnreachableError", async () => {
    const port = await freePort();
    const client = new MlflowClient({ uri: `http://127.0.0.1:${port}`, maxRetries: 2, backoffFactor: 0.05, backoffJitter: 0 });
    let requests = 0;
    client.http.observe((e) => {
      if (e.phase === "request") requests++;
    });
    await expect(client.getRun("0123456789abcdef")).rejects.toBeInstanceOf(TrackerUnreachableError);
    expect(requests).toBe(3);
  });
});

describe("an overwhelmed server", () => {
  it("a 400 that says its database pool timed out is sent again; any other 400 is not", async () => {
    let calls = 0;
    // A fault the real server shows only under load it cannot be made to reach on cue.
    const busy = http.createServer((req, res) => {
      calls++;
      const pool = req.url?.includes("pool") && calls === 1;
      res.writeHead(pool || req.url?.includes("bad") ? 400 : 200, { "content-type": "application/json" });
      res.end(
        pool
          ? JSON.stringify({ error_code: "BAD_REQUEST", message: "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00" })
          : req.url?.includes("bad")
            ? JSON.stringify({ error_code: "INVALID_PARAMETER_VALUE", message: "bad value" })
            : JSON.stringify({ experiment: { experiment_id: "1", name: "x", lifecycle_stage: "active" } }),
      );
    });
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    try {
      const { port } = busy.address() as AddressInfo;
      const client = new MlflowClient({ uri: `http://127.0.0.1:${port}`, maxRetries: 2, backoffFactor: 0.01, backoffJitter: 0 });
      await expect(client.getExperimentByName("pool")).resolves.toMatchObject({ experimentId: "1" });
      expect(calls).toBe(2);
      calls = 0;
      await expect(client.getExperimentByName("bad")).rejects.toThrow(/bad value/);
      expect(calls).toBe(1);
    } finally {
      busy.close();
    }
  });
});

describe("a server whose database is locked", () => {
  const LOCKED = JSON.stringify({ error_code: "BAD_REQUEST", message: "(sqlite3.OperationalError) database is locked" });
  const FOUND = JSON.stringify({ experiment: { experiment_id: "1", name: "x", lifecycle_stage: "active" } });

  /** A fake that only adds the fault: each experiment name's first `refusals` requests are refused as locked; `held` ms per answer. */
  async function lockedServer(refusals: (name: string) => number, held = 0) {
    const seen = new Map<string, number>();
    const arrivals: number[] = [];
    let inFlight = 0;
    let most = 0;
    const server = http.createServer((req, res) => {
      arrivals.push(performance.now());
      most = Math.max(most, ++inFlight);
      const name = new URL(req.url!, "http://x").searchParams.get("experiment_name") ?? "";
      const n = (seen.get(name) ?? 0) + 1;
      seen.set(name, n);
      setTimeout(() => {
        inFlight--;
        res.writeHead(n <= refusals(name) ? 400 : 200, { "content-type": "application/json" });
        res.end(n <= refusals(name) ? LOCKED : FOUND);
      }, held);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { uri, seen, arrivals, most: () => most, close: () => server.close() };
  }

  // Two flows at once on a one-worker SQLite server took 10 minutes instead of seconds: each locked
  // answer waited MLflow's backoff (2 s, 4 s, 8 s ... to 120 s), the same for every request met together, and the server sat idle.
  it("sends a request refused as locked again within a second, under MLflow's default retry policy", async () => {
    const fake = await lockedServer(() => 3);
    try {
      const client = new MlflowClient({ uri: fake.uri });
      const started = performance.now();
      const names = Array.from({ length: 8 }, (_, i) => `e${i}`);
      await expect(Promise.all(names.map((n) => client.getExperimentByName(n)))).resolves.toHaveLength(8);
      expect([...fake.seen.values()]).toEqual(names.map(() => 4));
      // Three waits each of at most 50, 100 and 200 ms; the old backoff waited at least 2 + 4 + 8 s.
      const gaps = fake.arrivals.slice(1).map((t, i) => t - fake.arrivals[i]!);
      expect(Math.max(...gaps)).toBeLessThan(1500);
      expect(performance.now() - started).toBeLessThan(6000);
    } finally {
      fake.close();
    }
  }, 30_000);

  it("is tried again past MLFLOW_HTTP_REQUEST_MAX_RETRIES while the retries' backoff would last, then fails with the server's answer", async () => {
    const fake = await lockedServer(() => Number.POSITIVE_INFINITY);
    try {
      // One retry of 0.5 s: locked answers are tried for 0.5 s, however many tries that takes.
      const client = new MlflowClient({ uri: fake.uri, maxRetries: 1, backoffFactor: 0.5, backoffJitter: 0 });
      const started = performance.now();
      await expect(client.getExperimentByName("x")).rejects.toThrow(/database is locked/);
      expect(fake.seen.get("x")).toBeGreaterThan(2);
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      fake.close();
    }
  }, 30_000);

  // 128 requests at once (two flows of 64 tasks) queued at a one-worker server for its 15 database connections, 30 s at a time.
  it("sends at most 16 tracking requests at once to one server from the whole process, and fewer once it answers locked", async () => {
    const fake = await lockedServer((name) => (name === "first" ? 1 : 0), 20);
    try {
      const a = new MlflowClient({ uri: fake.uri });
      const b = new MlflowClient({ uri: fake.uri });
      const names = Array.from({ length: 40 }, (_, i) => `n${i}`);
      await Promise.all(names.map((n, i) => (i % 2 ? a : b).getExperimentByName(n)));
      expect(fake.most()).toBe(16);
      await a.getExperimentByName("first");
      const before = fake.arrivals.length;
      await Promise.all(names.map((n, i) => (i % 2 ? a : b).getExperimentByName(`${n}-again`)));
      expect(fake.arrivals.length - before).toBe(40);
      expect(inFlightLimit(fake.uri).limit).toBeLessThan(16);
    } finally {
      fake.close();
    }
  }, 30_000);
});

describe("an answer that is not MLflow's", () => {
  it("a 200 with an HTML body (a proxy's login page) is an MlflowApiError naming the endpoint, the status and the body's start, without credentials", async () => {
    // A fault a real server does not show: something in front of it answers 200 with a page.
    const login = http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<html><head><title>Sign in</title></head><body>auth was ${req.headers.authorization} for hunter2</body></html>`);
    });
    await new Promise<void>((r) => login.listen(0, "127.0.0.1", r));
    try {
      const { port } = login.address() as AddressInfo;
      const client = new MlflowClient(
        mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: `http://127.0.0.1:${port}`, MLFLOW_TRACKING_USERNAME: "bob", MLFLOW_TRACKING_PASSWORD: "hunter2", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0" }),
      );
      const error = await client.getExperimentByName("x").then(
        () => new Error("resolved"),
        (e: unknown) => e as Error,
      );
      expect(error).not.toBeInstanceOf(SyntaxError);
      expect(error).toBeInstanceOf(MlflowApiError);
      expect(error.message).toContain("experiments/get-by-name");
      expect(error.message).toContain("HTTP 200");
      expect(error.message).toContain(`http://127.0.0.1:${port}`);
      expect(error.message).toContain("<html><head><title>Sign in</title>");
      expect(error.message).toMatch(/proxy or login page/);
      expect(error.message).toContain("MLFLOW_TRACKING_URI");
      const basic = Buffer.from("bob:hunter2").toString("base64");
      const everything = `${error.message}\n${error.stack}\n${JSON.stringify(error, Object.getOwnPropertyNames(error))}\n${String(error.cause ?? "")}`;
      expect(everything).not.toContain("hunter2");
      expect(everything).not.toContain(basic);
    } finally {
      login.close();
    }
  });
});

describe("credentials and timeouts", () => {
  it("printing a tracker shows no credentials", () => {
    const t = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: "http://bob:pw-in-uri@127.0.0.1:1", MLFLOW_TRACKING_TOKEN: "tok-123" });
    const printed = inspect(t, { depth: 8, showHidden: true });
    expect(printed).not.toContain("tok-123");
    expect(printed).not.toContain("pw-in-uri");
  });

  it("a server that accepts connections and never answers costs one timeout, not one per request: the others wait for it, then are not sent", async () => {
    let received = 0;
    const silent = http.createServer(() => {
      received++;
    });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
      const { port } = silent.address() as AddressInfo;
      const client = new MlflowClient(
        mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: `http://127.0.0.1:${port}`, MLFLOW_HTTP_REQUEST_TIMEOUT: "0.3", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "1", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0" }),
      );
      // Its retries used up without an answer: the server counts as down.
      await expect(client.getRun("0123456789abcdef")).rejects.toThrow(/no answer within the timeout/);
      expect(received).toBe(2);
      // Eight at once (a flow's tasks): one is sent to see whether it is back; the rest wait for it and are not sent.
      const errors = await Promise.all(Array.from({ length: 8 }, () => client.getRun("0123456789abcdef").then(() => undefined, (e: unknown) => e as Error)));
      expect(received).toBe(3);
      expect(errors.every((e) => e instanceof TrackerUnreachableError)).toBe(true);
      expect(errors.filter((e) => /no answer within the timeout/.test(e!.message))).toHaveLength(1);
      expect(errors.filter((e) => /runs\/get not sent: an earlier request got no answer after its retries, and the one sent since to see whether the server is back got none either/.test(e!.message))).toHaveLength(7);
      // Nor is one sent just after.
      await expect(client.getRun("0123456789abcdef")).rejects.toThrow(/not sent/);
      expect(received).toBe(3);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it("once the server answers again, requests go out as before", async () => {
    let answer = false;
    let received = 0;
    const server = http.createServer((_req, res) => {
      received++;
      if (!answer) return;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ experiment: { experiment_id: "1", name: "x", lifecycle_stage: "active" } }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const { port } = server.address() as AddressInfo;
      const client = new MlflowClient(
        mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: `http://127.0.0.1:${port}`, MLFLOW_HTTP_REQUEST_TIMEOUT: "0.3", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "1", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0" }),
      );
      await expect(client.getExperimentByName("x")).rejects.toThrow(/no answer/);
      answer = true;
      // The one sent to see whether it is back gets its answer; those that waited for it are then sent too.
      const found = await Promise.all(Array.from({ length: 4 }, () => client.getExperimentByName("x")));
      expect(found.map((e) => e?.experimentId)).toEqual(["1", "1", "1", "1"]);
      expect(received).toBe(2 + 4);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  describe("while it counts as down, the request that finds out whether it is back", () => {
    /** A lookup with a signal of its own, as a model kind's requests carry their task's. */
    const withSignal = (client: MlflowClient, signal: AbortSignal) =>
      (client as unknown as { api: (m: string, e: string, o: object) => Promise<unknown> }).api("GET", "experiments/get-by-name", { query: { experiment_name: "x" }, signal });
    /** A server that resets connections ("down"), never answers ("hang"), or answers, its artifact downloads held until `finish` is called. */
    async function moody() {
      const state = { mode: "down" as "down" | "hang" | "ok", finish: () => {} };
      const server = http.createServer((req, res) => {
        if (state.mode === "down") return void req.socket.destroy();
        if (state.mode === "hang") return;
        if (req.url!.includes("mlflow-artifacts")) {
          // Its answer comes after the other request was made (which then waits for it), its body later still.
          state.finish = () => res.end(Buffer.alloc(1024));
          setTimeout(() => {
            res.writeHead(200, { "content-type": "application/octet-stream" });
            res.write(Buffer.alloc(1024));
          }, 300);
          return;
        }
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ experiment: { experiment_id: "1", name: "x", lifecycle_stage: "active" } }));
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const { port } = server.address() as AddressInfo;
      const client = new MlflowClient({ uri: `http://127.0.0.1:${port}`, maxRetries: 1, backoffFactor: 0, backoffJitter: 0, timeoutSeconds: 30 });
      await expect(client.getExperimentByName("x")).rejects.toBeInstanceOf(TrackerUnreachableError);
      const close = () => {
        server.closeAllConnections();
        server.close();
      };
      return { state, client, close };
    }

    it("a create reset on the way searches for its run without waiting on itself", async () => {
      const { client, close } = await moody();
      try {
        // Its retry searches first (the run may have been made): it is that search's own request, no deadlock.
        await expect(client.createRun({ experimentId: "0" })).rejects.toBeInstanceOf(TrackerUnreachableError);
      } finally {
        close();
      }
    });

    it("lets the others go once it has its answer, not once its body is read", async () => {
      const { state, client, close } = await moody();
      try {
        state.mode = "ok";
        const dir = await mkdtemp(join(tmpdir(), "cairn-probe-"));
        let downloaded = false;
        const download = client.downloadArtifactFile("mlflow-artifacts:/1/abc/artifacts", "model.bin", join(dir, "model.bin")).then(() => (downloaded = true));
        await new Promise((r) => setTimeout(r, 100));
        await expect(client.getExperimentByName("x")).resolves.toMatchObject({ experimentId: "1" });
        expect(downloaded).toBe(false);
        state.finish();
        await download;
        await rm(dir, { recursive: true, force: true });
      } finally {
        close();
      }
    });

    it("the requests that waited for its answer leave no listener on what they waited on: a long-lived client waits there again and again", async () => {
      const { state, client, close } = await moody();
      // Without a signal of their own, the only signals these requests combine are the ones they wait on.
      const waitedOn: AbortSignal[] = [];
      const any = AbortSignal.any.bind(AbortSignal);
      const spy = vi.spyOn(AbortSignal, "any").mockImplementation((signals) => {
        const signal = any(signals);
        waitedOn.push(signal);
        return signal;
      });
      try {
        state.mode = "ok";
        const found = await Promise.all(Array.from({ length: 4 }, () => client.getExperimentByName("x")));
        expect(found.map((e) => e?.experimentId)).toEqual(["1", "1", "1", "1"]);
        expect(waitedOn.length).toBeGreaterThan(0);
        expect(waitedOn.map((signal) => getEventListeners(signal, "abort").length)).toEqual(waitedOn.map(() => 0));
      } finally {
        spy.mockRestore();
        close();
      }
    });

    it("a request waiting for it ends at its own signal; one ended by its own signal keeps no other from being sent", async () => {
      const { state, client, close } = await moody();
      try {
        state.mode = "hang";
        let settled = false;
        const probe = client.getExperimentByName("x").then(
          () => (settled = true),
          () => (settled = true),
        );
        await new Promise((r) => setTimeout(r, 50));
        const waiting = withSignal(client, AbortSignal.timeout(100));
        await expect(waiting).rejects.toThrow();
        expect(settled).toBe(false);
        close();
        await probe;
      } finally {
        close();
      }
      const again = await moody();
      try {
        again.state.mode = "hang";
        await expect(withSignal(again.client, AbortSignal.timeout(100))).rejects.toThrow();
        again.state.mode = "ok";
        await expect(again.client.getExperimentByName("x")).resolves.toMatchObject({ experimentId: "1" });
      } finally {
        again.close();
      }
    });
  });

  it("MLFLOW_HTTP_REQUEST_TIMEOUT bounds a request to a server that never answers", async () => {
    const silent = http.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
      const { port } = silent.address() as AddressInfo;
      const client = new MlflowClient(
        mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: `http://127.0.0.1:${port}`, MLFLOW_HTTP_REQUEST_TIMEOUT: "0.3", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "1", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0" }),
      );
      const started = Date.now();
      await expect(client.getExperimentByName("x")).rejects.toThrow(/no answer within the timeout \(MLFLOW_HTTP_REQUEST_TIMEOUT\) on experiments\/get-by-name/);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });
});

describe("connections", () => {
  /** A server that answers every request with an experiment and counts the connections it accepted. */
  async function countingServer() {
    let connections = 0;
    const server = http.createServer((_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ experiment: { experiment_id: "1", name: "x", lifecycle_stage: "active" } }));
    });
    server.on("connection", () => connections++);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    return { uri: `http://127.0.0.1:${port}`, connections: () => connections, close: () => (server.closeAllConnections(), server.close()) };
  }

  it.each([
    ["every 5 requests", "5", 4],
    ["never, with 0", "0", 1],
  ])("opens a connection anew %s (CAIRN_MLFLOW_CONNECTION_REQUESTS), every request still answered", async (_, every, opened) => {
    const server = await countingServer();
    try {
      const client = new MlflowClient(mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: server.uri, CAIRN_MLFLOW_CONNECTION_REQUESTS: every }));
      for (let i = 0; i < 20; i++) expect((await client.getExperimentByName("x"))?.experimentId).toBe("1");
      expect(server.connections()).toBe(opened);
      client.http.close();
    } finally {
      server.close();
    }
  });

  it("drops the connection itself when the server closes it without saying so: no request meets a reset", async () => {
    // A server that answers a request asking to close with "keep-alive", then closes the socket.
    let connections = 0;
    const server = http.createServer((req, res) => {
      const close = req.headers.connection === "close";
      res.setHeader("content-type", "application/json");
      if (close) res.setHeader("connection", "keep-alive");
      res.end(JSON.stringify({ experiment: { experiment_id: "1", name: "x", lifecycle_stage: "active" } }), () => close && req.socket.end());
    });
    server.on("connection", () => connections++);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const { port } = server.address() as AddressInfo;
      const client = new MlflowClient(
        mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: `http://127.0.0.1:${port}`, CAIRN_MLFLOW_CONNECTION_REQUESTS: "5", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0" }),
      );
      for (let i = 0; i < 20; i++) expect((await client.getExperimentByName("x"))?.experimentId).toBe("1");
      expect(connections).toBe(4);
      client.http.close();
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("opens one anew every 20 requests unless told", async () => {
    const server = await countingServer();
    try {
      const client = new MlflowClient(mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: server.uri }));
      for (let i = 0; i < 40; i++) await client.getExperimentByName("x");
      expect(server.connections()).toBe(2);
      client.http.close();
    } finally {
      server.close();
    }
  });
});

describe("a download into a full disk", () => {
  /** A small tmpfs at a new folder, or undefined where this process may not mount one. */
  function smallDisk(): string | undefined {
    const dir = mkdtempSync(join(tmpdir(), "cairn-full-"));
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir], { stdio: "ignore" });
      return dir;
    } catch {
      rmSync(dir, { recursive: true, force: true });
      return undefined;
    }
  }

  // It was taken for a server that did not answer: retried for minutes, the whole file fetched each time, the breaker tripped.
  it("fails at once, naming the folder and to free space there: not retried, and the server is not taken for down", async (ctx) => {
    const disk = smallDisk();
    if (!disk) return ctx.skip();
    let gets = 0;
    const server = http.createServer((req, res) => {
      if (req.url!.includes("mlflow-artifacts")) gets++;
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(Buffer.alloc(256 * 1024));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    const elsewhere = await mkdtemp(join(tmpdir(), "cairn-roomy-"));
    try {
      const client = new MlflowClient({ uri: `http://127.0.0.1:${port}`, maxRetries: 3, backoffFactor: 0, backoffJitter: 0, timeoutSeconds: 30 });
      const folder = join(disk, "downloads", "run1");
      const error = await client.downloadArtifactFile("mlflow-artifacts:/1/abc/artifacts", "b.bin", join(folder, "b.bin")).catch((e: unknown) => e);
      expect(TrackingError.is(error)).toBe(true);
      expect(TrackerUnreachableError.is(error)).toBe(false);
      expect((error as Error).message).toBe(
        `Cannot write the file of mlflow-artifacts GET b.bin into ${folder}: ENOSPC: no space left on device, write. ` +
          "This is a problem of this machine's disk, not of the MLflow server: the disk that holds that folder (or your quota) is full: free space there, then run again.",
      );
      expect(gets).toBe(1);
      // Nothing is left of it, and the server is asked as before: the same download elsewhere has its retries and succeeds.
      expect(readdirSync(folder)).toEqual([]);
      await client.downloadArtifactFile("mlflow-artifacts:/1/abc/artifacts", "b.bin", join(elsewhere, "b.bin"));
      expect(statSync(join(elsewhere, "b.bin")).size).toBe(256 * 1024);
      client.http.close();
    } finally {
      server.closeAllConnections();
      server.close();
      execFileSync("umount", [disk]);
      rmSync(disk, { recursive: true, force: true });
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});

/** A fake that answers each request with the next of `answers` (status, headers, body), then 200 with an experiment. */
async function scriptedServer(answers: { status: number; headers?: Record<string, string>; body: string }[]) {
  const arrivals: { at: number; method: string; url: string; authorization: string | undefined; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      arrivals.push({ at: performance.now(), method: req.method ?? "", url: req.url ?? "", authorization: req.headers.authorization, body });
      const next = answers.shift() ?? { status: 200, body: JSON.stringify({ experiment: { experiment_id: "1", name: "x", lifecycle_stage: "active" } }) };
      res.writeHead(next.status, { "content-type": "application/json", ...next.headers });
      res.end(next.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { uri, arrivals, close: () => server.close() };
}

describe("Retry-After", () => {
  // MLflow's client waits for a 503's Retry-After (urllib3 honours it on 413, 429 and 503); Cairn waited only on a 429.
  it("a 503 that says when to come back is sent again no sooner", async () => {
    const fake = await scriptedServer([{ status: 503, headers: { "retry-after": "1" }, body: "busy" }]);
    try {
      const client = new MlflowClient({ uri: fake.uri, maxRetries: 2, backoffFactor: 0.01, backoffJitter: 0 });
      await expect(client.getExperimentByName("x")).resolves.toMatchObject({ experimentId: "1" });
      expect(fake.arrivals).toHaveLength(2);
      expect(fake.arrivals[1]!.at - fake.arrivals[0]!.at).toBeGreaterThan(900);
    } finally {
      fake.close();
    }
  });
});

describe("credentials refused", () => {
  // MLflow's clients send basic auth when a user name and password are set, whatever the token; Cairn sent the token.
  it("sends basic auth when a user name, a password and a token are all set, as MLflow's own clients do", async () => {
    const fake = await scriptedServer([]);
    try {
      const client = new MlflowClient(
        mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: fake.uri, MLFLOW_TRACKING_USERNAME: "alice", MLFLOW_TRACKING_PASSWORD: "pw-1234", MLFLOW_TRACKING_TOKEN: "tok-5678" }),
      );
      await client.getExperimentByName("x");
      expect(fake.arrivals[0]!.authorization).toBe(`Basic ${Buffer.from("alice:pw-1234").toString("base64")}`);
      const tokenOnly = new MlflowClient(mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: fake.uri, MLFLOW_TRACKING_TOKEN: "tok-5678" }));
      await tokenOnly.getExperimentByName("x");
      expect(fake.arrivals[1]!.authorization).toBe("Bearer tok-5678");
    } finally {
      fake.close();
    }
  });

  // "set X or Y" was said when X was set; the message now names what was sent, by variable, never its value.
  it("a 401 names the credential that was sent by its variables, never its value", async () => {
    const fake = await scriptedServer([
      { status: 401, body: "You are not authenticated." },
      { status: 401, body: "You are not authenticated." },
    ]);
    try {
      const both = new MlflowClient(
        mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: fake.uri, MLFLOW_TRACKING_USERNAME: "alice", MLFLOW_TRACKING_PASSWORD: "pw-1234", MLFLOW_TRACKING_TOKEN: "tok-5678" }),
      );
      const error = await both.getExperimentByName("x").then(() => new Error("resolved"), (e: unknown) => e as Error);
      expect(error).toBeInstanceOf(TrackerUnreachableError);
      expect(error!.message).toContain("it was sent basic auth from MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD");
      expect(error!.message).toContain("MLFLOW_TRACKING_TOKEN is set too, and is not sent");
      expect(error!.message).not.toMatch(/pw-1234|tok-5678/);
      const token = new MlflowClient(mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: fake.uri, MLFLOW_TRACKING_TOKEN: "tok-5678" }));
      const refused = await token.getExperimentByName("x").then(() => new Error("resolved"), (e: unknown) => e as Error);
      expect(refused!.message).toContain("it was sent the bearer token of MLFLOW_TRACKING_TOKEN); check their values");
      expect(refused!.message).not.toContain("set MLFLOW_TRACKING_USERNAME");
    } finally {
      fake.close();
    }
  });

  // A 403 was "Cannot reach the MLflow tracking server ... credentials not accepted", its body dropped.
  it("a 403 says the credentials lack permission, quoting the server's first line masked, and does not call the server unreachable", async () => {
    const fake = await scriptedServer([{ status: 403, headers: { "content-type": "text/plain" }, body: "Permission denied for pw-1234\nmore" }]);
    try {
      const client = new MlflowClient(mlflowOptionsFromEnv({ MLFLOW_TRACKING_URI: fake.uri, MLFLOW_TRACKING_USERNAME: "alice", MLFLOW_TRACKING_PASSWORD: "pw-1234" }));
      const error = await client.getExperimentByName("x").then(() => new Error("resolved"), (e: unknown) => e as Error);
      expect(error).toBeInstanceOf(MlflowApiError);
      expect(error).not.toBeInstanceOf(TrackerUnreachableError);
      expect(error!.message).not.toContain("Cannot reach");
      expect(error!.message).toContain('refused permission to the user of basic auth from MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD');
      expect(error!.message).toContain('saying "Permission denied for ***"');
      expect(error!.message).toContain("lack permission on this experiment or run");
      expect(error!.message).not.toContain("more");
      expect(fake.arrivals).toHaveLength(1);
    } finally {
      fake.close();
    }
  });
});

describe("a request that fails every retry", () => {
  // "MLflow runs/log-batch (run 9afa…) failed with HTTP 500 HTTP_500: <html>…" named neither the server nor the tries.
  it("names the server, the tries and the time spent, and the server's own message out of its error page", async () => {
    const page = `<!doctype html>\n<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1>\n<pre>Traceback\nOSError: [Errno 28] No space left on device</pre></body></html>`;
    const fake = await scriptedServer([1, 2, 3].map(() => ({ status: 500, headers: { "content-type": "text/html" }, body: page })));
    try {
      const client = new MlflowClient({ uri: fake.uri, maxRetries: 2, backoffFactor: 0.05, backoffJitter: 0 });
      const error = await client.logBatch("9afa0123", { tags: [{ key: "a", value: "b" }] }).catch((e: unknown) => e as MlflowApiError);
      expect(error).toBeInstanceOf(MlflowApiError);
      expect(error!.message).toMatch(new RegExp(`^MLflow runs/log-batch \\(run 9afa0123\\) failed with HTTP 500 HTTP_500 at ${fake.uri}, 3 tries over \\d+ s: OSError: \\[Errno 28\\] No space left on device$`));
      expect(error!.tries).toMatchObject({ uri: fake.uri, count: 3 });
      expect(fake.arrivals).toHaveLength(3);
    } finally {
      fake.close();
    }
  });

  it("an error page without an exception is quoted without its markup; a request answered at once says no tries", async () => {
    const fake = await scriptedServer([
      { status: 502, headers: { "content-type": "text/html" }, body: "<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>" },
      { status: 400, body: JSON.stringify({ error_code: "INVALID_PARAMETER_VALUE", message: "bad" }) },
    ]);
    try {
      const client = new MlflowClient({ uri: fake.uri, maxRetries: 0 });
      await expect(client.getExperimentByName("x")).rejects.toThrow(/HTTP 502 HTTP_502: 502 Bad Gateway nginx$/);
      await expect(client.getExperimentByName("x")).rejects.toThrow(/^MLflow experiments\/get-by-name failed with HTTP 400 INVALID_PARAMETER_VALUE: bad$/);
    } finally {
      fake.close();
    }
  });
});

describe("a create whose answer cannot be read", () => {
  /** A fake MLflow of runs/create and runs/search: the first `garbled` creates are carried out and answered 200 with a cut body. */
  async function createServer(garbled: number) {
    const runs: { run_id: string; createId: string }[] = [];
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      let text = "";
      req.on("data", (c: Buffer) => (text += c.toString()));
      req.on("end", () => {
        seen.push(req.url!);
        const body = JSON.parse(text || "{}") as { tags?: { key: string; value: string }[]; filter?: string };
        const wire = (r: { run_id: string; createId: string }) => ({
          info: { run_id: r.run_id, experiment_id: "1", status: "RUNNING", start_time: 1, artifact_uri: "mlflow-artifacts:/1/x/artifacts", lifecycle_stage: "active" },
          data: { tags: [{ key: "cairn.create_id", value: r.createId }] },
        });
        res.writeHead(200, { "content-type": "application/json" });
        if (req.url!.endsWith("/runs/create")) {
          const run = { run_id: `run${runs.length + 1}`, createId: body.tags!.find((t) => t.key === "cairn.create_id")!.value };
          runs.push(run);
          res.end(runs.length <= garbled ? JSON.stringify({ run: wire(run) }).slice(0, 20) : JSON.stringify({ run: wire(run) }));
        } else {
          res.end(JSON.stringify({ runs: runs.filter((r) => body.filter?.includes(r.createId)).map(wire) }));
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return { uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, runs, seen, close: () => server.close() };
  }

  // A 200 with a cut body failed the task at once and left its run RUNNING: not retried, so its create_id was never searched.
  it("searches for its run by its create id and uses it: one run, no second create", async () => {
    const fake = await createServer(1);
    try {
      const client = new MlflowClient({ uri: fake.uri, maxRetries: 2, backoffFactor: 0.01, backoffJitter: 0 });
      const info = await client.createRun({ experimentId: "1", runName: "t" });
      expect(info.runId).toBe("run1");
      expect(fake.runs).toHaveLength(1);
      expect(fake.seen.map((u) => u.replace(/.*\/mlflow\//, ""))).toEqual(["runs/create", "runs/search"]);
    } finally {
      fake.close();
    }
  });

  it("a create whose every answer is cut yields the one run its first try made", async () => {
    const fake = await createServer(Number.POSITIVE_INFINITY);
    try {
      const client = new MlflowClient({ uri: fake.uri, maxRetries: 1, backoffFactor: 0.01, backoffJitter: 0 });
      // The search finds the run of the first try: the answer the server could not give is had from it.
      await expect(client.createRun({ experimentId: "1" })).resolves.toMatchObject({ runId: "run1" });
      expect(fake.runs).toHaveLength(1);
    } finally {
      fake.close();
    }
  });
});

describe("retries said as they happen", () => {
  // A full server disk: 8 PUTs over about 4 minutes, with nothing on screen.
  it("a retry whose wait ends 5 s or more after the request began is said, once; the quick ones before are not", async () => {
    const fake = await scriptedServer([
      { status: 500, body: "full" },
      { status: 503, headers: { "retry-after": "5" }, body: "busy" },
      { status: 200, body: "" },
    ]);
    try {
      const client = new MlflowClient({ uri: fake.uri, maxRetries: 3, backoffFactor: 0.05, backoffJitter: 0 });
      const said: string[] = [];
      const off = client.onRetry((m) => said.push(m));
      await client.writeArtifactText("mlflow-artifacts:/1/abc/artifacts", "a.txt", "x", "abc");
      off();
      expect(said).toEqual([`MLflow mlflow-artifacts PUT a.txt (run abc) at ${fake.uri} answered HTTP 503; retry 2 of 3 in 5 s`]);
    } finally {
      fake.close();
    }
  }, 30_000);
});

describe("a password in the URI given to the client", () => {
  // `new MlflowClient({ uri: "http://alice:PW@host" })` printed PW in its retry lines, its "at URI, N tries" errors and its 401/403 messages.
  it("is masked in every message the client says: a retry line, an error after its tries, a 401 and a 403", async () => {
    const fake = await scriptedServer([
      { status: 500, body: "full" },
      { status: 503, headers: { "retry-after": "5" }, body: "busy" },
      { status: 500, body: "full" },
      { status: 401, body: "You are not authenticated." },
      { status: 403, headers: { "content-type": "text/plain" }, body: "Permission denied" },
    ]);
    try {
      const uri = fake.uri.replace("http://", "http://alice:uri-pw-5678@");
      const shown = fake.uri.replace("http://", "http://alice:***@");
      const client = new MlflowClient({ uri, maxRetries: 2, backoffFactor: 0.05, backoffJitter: 0 });
      const said: string[] = [];
      client.onRetry((m) => said.push(m));
      const afterTries = await client.logBatch("9afa0123", { tags: [{ key: "a", value: "b" }] }).catch((e: unknown) => e as Error);
      const noRetries = new MlflowClient({ uri, maxRetries: 0 });
      const unauthorized = await noRetries.getExperimentByName("x").then(() => new Error("resolved"), (e: unknown) => e as Error);
      const forbidden = await noRetries.getExperimentByName("x").then(() => new Error("resolved"), (e: unknown) => e as Error);
      const messages = [...said, afterTries!.message, unauthorized!.message, forbidden!.message];
      expect(said).toEqual([`MLflow POST runs/log-batch (run 9afa0123) at ${shown} answered HTTP 503; retry 2 of 2 in 5 s`]);
      expect(afterTries!.message).toContain(`at ${shown}, 3 tries over`);
      expect(unauthorized).toBeInstanceOf(TrackerUnreachableError);
      expect(forbidden!.message).toContain(`the MLflow server at ${shown} refused permission`);
      expect(unauthorized!.message).toContain(`Cannot reach the MLflow tracking server at ${shown}:`);
      for (const message of messages) expect(message).not.toContain("uri-pw-5678");
    } finally {
      fake.close();
    }
  }, 30_000);
});

describe("an artifact DELETE the server fails", () => {
  /** Flask's page for an unhandled exception: what MLflow 2.9.2's proxy answers to deleting one file from a local folder (NotADirectoryError in its log). */
  const FLASK_500 =
    '<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.</p>\n';

  /** A fake that only injects the old server's answers: every DELETE a 500 page, `/version` the given text (404 when undefined). */
  async function failingDeletes(version: string | undefined) {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url?.split("?")[0]}`);
      if (req.method === "DELETE") return void res.writeHead(500, { "content-type": "text/html; charset=utf-8" }).end(FLASK_500);
      if (req.url === "/version" && version !== undefined) return void res.writeHead(200, { "content-type": "text/plain" }).end(version);
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not Found</h1>");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { uri, seen, close: () => server.close() };
  }

  // MLflow before 2.17 failed every such delete, and each was tried 8 times over about 4 minutes: `cairn cache clear` hung.
  it("MLflow 2.9.2: one try, then an error that says the server cannot delete single files and to upgrade it to 2.17", async () => {
    const fake = await failingDeletes("2.9.2");
    try {
      const client = new MlflowClient({ uri: fake.uri, maxRetries: 3, backoffFactor: 0.2, backoffJitter: 0 });
      const deletes = [1, 2].map((n) => client.deleteArtifact("mlflow-artifacts:/1", `cairn-index/k${n}.json`).then(() => undefined, (e: unknown) => e as MlflowApiError));
      for (const error of await Promise.all(deletes)) {
        expect(error).toBeInstanceOf(MlflowApiError);
        expect(error?.message).toMatch(/HTTP 500.*the server \(MLflow 2\.9\.2\).*cannot delete single artifact files.*--artifacts-destination.*Upgrade the server to MLflow 2\.17 or later/);
      }
      expect(fake.seen.filter((s) => s.startsWith("DELETE"))).toHaveLength(2);
      expect(fake.seen.filter((s) => s === "GET /version")).toHaveLength(1); // asked once per client
    } finally {
      fake.close();
    }
  });

  it("a server that does not say its version: one try, the same advice if it is older than 2.17, and what it said", async () => {
    const fake = await failingDeletes(undefined);
    try {
      const client = new MlflowClient({ uri: fake.uri, maxRetries: 3, backoffFactor: 0.2, backoffJitter: 0 });
      const error = await client.deleteArtifact("mlflow-artifacts:/1", "cairn-index/k.json").then(() => undefined, (e: unknown) => e as Error);
      expect(error?.message).toMatch(/does not say its MLflow version.*before 2\.17.*Upgrade the server to MLflow 2\.17 or later if it is older, else see its log \(it said: .*Internal Server Error/);
      expect(fake.seen.filter((s) => s.startsWith("DELETE"))).toHaveLength(1);
    } finally {
      fake.close();
    }
  });

  it("a newer server's 500 is said as it came, tried once; a 503 is still tried again", async () => {
    const fake = await failingDeletes("2.17.2");
    try {
      const client = new MlflowClient({ uri: fake.uri, maxRetries: 2, backoffFactor: 0.01, backoffJitter: 0 });
      const error = await client.deleteArtifact("mlflow-artifacts:/1", "cairn-index/k.json").then(() => undefined, (e: unknown) => e as Error);
      expect(error?.message).toMatch(/HTTP 500 HTTP_500: 500 Internal Server Error/);
      expect(error?.message).not.toMatch(/Upgrade/);
      expect(fake.seen.filter((s) => s.startsWith("DELETE"))).toHaveLength(1);
    } finally {
      fake.close();
    }
    const busy = await scriptedServer([{ status: 503, body: "busy" }, { status: 200, body: "{}" }]);
    try {
      await new MlflowClient({ uri: busy.uri, maxRetries: 2, backoffFactor: 0.01, backoffJitter: 0 }).deleteArtifact("mlflow-artifacts:/1", "cairn-index/k.json");
      expect(busy.arrivals.map((a) => a.method)).toEqual(["DELETE", "DELETE"]);
    } finally {
      busy.close();
    }
  });
});
