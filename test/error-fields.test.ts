/**
 * What a failed function task's record keeps of what it threw beyond a name and a message: an
 * AggregateError's inner errors, an Error's own fields (an HTTP error's status, a real axios
 * error's code and response), and never the credentials such a value carries, also when the
 * task read them from the environment itself and they were never declared as secrets. Read back
 * from the embedded store's `cairn/error.txt` and from the flow's result (what the terminal and
 * the tags show).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalStore } from "@cairn/core";
import { flow, task, type FlowResult } from "cairn-dag";

// axios is a dependency of the DSL (http tasks), not of the workspace root.
const axios = createRequire(join(import.meta.dirname, "../packages/dsl/package.json"))("axios") as {
  get(url: string, config?: object): Promise<unknown>;
};

const ENV_TOKEN = "ENV_TOKEN_xyz-never-declared";

const dirs: string[] = [];
const tmp = async () => {
  const dir = await mkdtemp(join(tmpdir(), "cairn-error-fields-"));
  dirs.push(dir);
  return dir;
};
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A local port nothing listens on: a request to it is refused at once. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

class HttpError extends Error {
  override name = "HttpError";
  constructor(
    message: string,
    readonly statusCode: number,
    readonly response: object,
  ) {
    super(message);
  }
}

/** Runs `f` in the embedded store and gives its result and each failed task's `cairn/error.txt`. */
async function runAndRead(
  f: { run(options: object): Promise<any> },
): Promise<{ result: FlowResult<unknown>; errorTxt: Record<string, string>; tags: Record<string, Record<string, string>> }> {
  const root = await tmp();
  const result = (await (await f.run({ root, cache: false, env: {}, failurePolicy: "continue" })).wait()) as FlowResult<unknown>;
  const store = new LocalStore({ root });
  const errorTxt: Record<string, string> = {};
  const tags: Record<string, Record<string, string>> = {};
  for (const [id, r] of Object.entries(result.tasks)) {
    if (r.status !== "failed" || !r.runId) continue;
    errorTxt[id] = await readFile(await store.downloadArtifact(r.runId, "cairn/error.txt", await tmp()), "utf8");
    tags[id] = (await store.getRun(r.runId))!.tags;
  }
  return { result, errorTxt, tags };
}

describe("a failed task's error.txt keeps what its error holds", () => {
  it("an AggregateError's inner errors: each with its name, message, stack and cause; the first 10 and a count", async () => {
    const aggregate = task("aggregate").run(() => {
      throw new AggregateError([new Error("first inner"), new TypeError("second inner", { cause: new Error("why the second") })], "two things failed");
    });
    const anyOf = task("any-of").run(async () => {
      await Promise.any(Array.from({ length: 12 }, (_, i) => Promise.reject(new Error(`mirror ${i + 1} down`))));
    });
    // An inner error that is the aggregate itself is written once, not forever.
    const loop = task("loop").run(() => {
      const error = new AggregateError([new Error("looped inner")], "loop");
      error.errors.push(error);
      throw error;
    });
    const { result, errorTxt } = await runAndRead(flow("aggregate-errors").build(() => (aggregate(), anyOf(), loop(), {})));
    expect(errorTxt.loop).toMatch(/^AggregateError: loop\n[^]*Inner error 1 of 2:\n {2}Error: looped inner\n[^]*Inner error 2 of 2:\n {2}\(an error written above\)\n$/);
    expect(result.tasks.aggregate!.error).toMatchObject({ name: "AggregateError", message: "two things failed" });
    const text = errorTxt.aggregate!;
    expect(text).toMatch(/^AggregateError: two things failed\n {4}at .*error-fields\.test\.ts/);
    expect(text).toContain("\n  Inner error 1 of 2:\n  Error: first inner\n      at ");
    expect(text).toContain("\n  Inner error 2 of 2:\n  TypeError: second inner\n      at ");
    expect(text).toMatch(/ {2}TypeError: second inner\n[^]*\n {2}Caused by:\n {2}Error: why the second\n {6}at /);
    const any = errorTxt["any-of"]!;
    expect(any).toMatch(/^AggregateError: All promises were rejected/);
    expect(any).toContain("Inner error 10 of 12:\n  Error: mirror 10 down");
    expect(any).not.toContain("mirror 11 down");
    expect(any).toContain("... and 2 more inner errors");
  });

  it("an Error subclass's own fields, credentials by key name redacted", async () => {
    const http = task("http").run(() => {
      throw new HttpError("upstream failed", 503, {
        data: { detail: "upstream down" },
        headers: { "set-cookie": ["sid=cookie-value-123"], "x-request-id": "req-7" },
        auth: { user: "me", password: "hunter2-password" },
      });
    });
    const { errorTxt } = await runAndRead(flow("http-fields").build(() => (http(), {})));
    const text = errorTxt.http!;
    expect(text).toMatch(/^HttpError: upstream failed\n/);
    expect(text).toContain("\n  statusCode: 503\n");
    expect(text).toContain("detail: 'upstream down'");
    expect(text).toContain("'x-request-id': 'req-7'");
    expect(text).toContain("'set-cookie': '***'");
    expect(text).toContain("password: '***'");
    expect(text).not.toMatch(/cookie-value-123|hunter2/);
  });

  it("a real axios error: its code, its cause's fields, never its request settings nor the headers it sent", async () => {
    const port = await closedPort();
    const call = task("call").run(async () => {
      await axios.get(`http://127.0.0.1:${port}/items`, { headers: { Authorization: `Bearer ${ENV_TOKEN}`, "X-Api-Key": ENV_TOKEN }, auth: { username: "u", password: ENV_TOKEN } });
    });
    const { result, errorTxt } = await runAndRead(flow("axios-fields").build(() => (call(), {})));
    expect(result.tasks.call!.error?.message).toContain("ECONNREFUSED");
    const text = errorTxt.call!;
    expect(text).toContain("\n  isAxiosError: true\n");
    expect(text).toContain("\n  code: 'ECONNREFUSED'\n");
    expect(text).toContain("  config: [left out: the request's settings may hold credentials]");
    expect(text).toContain("  request: [left out: the request's settings may hold credentials]");
    // The cause, Node's own error, with its fields.
    expect(text).toMatch(/Caused by:\nError: connect ECONNREFUSED[^]*\n {2}syscall: 'connect'/);
    expect(text).not.toContain(ENV_TOKEN);
    expect(JSON.stringify(result)).not.toContain(ENV_TOKEN);
  });

  it("a real axios error with a response: its status and body, the response's headers with set-cookie redacted, never the request", async () => {
    const server = createHttpServer((_, res) => {
      res.writeHead(503, { "content-type": "application/json", "set-cookie": "sid=cookie-value-123", "x-request-id": "req-7" });
      res.end(JSON.stringify({ detail: "upstream down" }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    try {
      const call = task("call").run(async () => {
        await axios.get(`http://127.0.0.1:${port}/items`, { headers: { Authorization: `Bearer ${ENV_TOKEN}` } });
      });
      const { result, errorTxt } = await runAndRead(flow("axios-response").build(() => (call(), {})));
      expect(result.tasks.call!.error?.message).toBe("Request failed with status code 503");
      const text = errorTxt.call!;
      expect(text).toContain("\n  status: 503\n");
      expect(text).toMatch(/\n {2}response: .*status: 503, statusText: 'Service Unavailable'/);
      expect(text).toContain("data: { detail: 'upstream down' }");
      expect(text).toContain("'x-request-id': 'req-7'");
      expect(text).toContain("'set-cookie': '***'");
      expect(text).toMatch(/response: .*config: \[left out: the request's settings may hold credentials\]/);
      expect(text).not.toMatch(/cookie-value-123|127\.0\.0\.1:\d+\r\n|_header/);
      expect(text).not.toContain(ENV_TOKEN);
    } finally {
      server.close();
    }
  });
});

describe("a thrown plain object", () => {
  it("shows its credentials by key name as *** in its message (terminal, tags, MLflow), also a token read from the environment", async () => {
    const thrower = task("thrower").run(() => {
      throw { status: 401, config: { headers: { Authorization: `Bearer ${ENV_TOKEN}`, Accept: "application/json" } } };
    });
    const { result, errorTxt, tags } = await runAndRead(flow("thrown-object").build(() => (thrower(), {})));
    const message = result.tasks.thrower!.error!.message;
    expect(message).toContain("{ status: 401, config: { headers: { Authorization: '***', Accept: 'application/json' } } }");
    expect(tags.thrower!["cairn.error.message"]).toBe(message);
    expect(JSON.stringify(result)).not.toContain(ENV_TOKEN);
    expect(JSON.stringify(tags)).not.toContain(ENV_TOKEN);
    expect(errorTxt.thrower).not.toContain(ENV_TOKEN);
  });
});
