import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { flow } from "@cairn/dsl";
import { http } from "../../packages/dsl/src/kinds/http/http.ts";
import { runOptions } from "./helpers.ts";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

let server: Server;
let base: string;
const seen = new Map<string, Seen[]>();
/** Per path: the responses to give, in order (the last one repeats). */
const plan = new Map<string, Array<{ status: number; body: string; headers?: Record<string, string> }>>();

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const path = new URL(req.url!, "http://x").pathname;
      const list = seen.get(path) ?? [];
      list.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      seen.set(path, list);
      const steps = plan.get(path) ?? [{ status: 404, body: "not found" }];
      const step = steps.length > 1 ? steps.shift()! : steps[0]!;
      if (step.status === -1) return; // never answer
      res.writeHead(step.status, { "content-type": "application/json", ...step.headers });
      res.end(step.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("http()", () => {
  it("POSTs the inputs as JSON, retries after two 503s, and outputs the JSON response", async () => {
    plan.set("/score", [
      { status: 503, body: "busy" },
      { status: 503, body: "busy" },
      { status: 200, body: JSON.stringify({ label: "spam", confidence: 0.9 }) },
    ]);
    const score = http("score", {
      url: `${base}/score`,
      retryDelayMs: 10,
      headers: (ctx) => ({ Authorization: `Bearer ${ctx.secret("SCORE_TOKEN")}` }),
    })
      .input<{ text: string }>()
      .output(z.object({ label: z.string(), confidence: z.number() }));
    const f = flow("http").build(() => {
      const s = score({ text: "buy now" });
      return { label: s.label, confidence: s.confidence };
    });
    const out = await (await f.run(await runOptions({ secrets: { SCORE_TOKEN: "tok-123456" } }))).outputs();
    expect(out).toEqual({ label: "spam", confidence: 0.9 });
    const calls = seen.get("/score")!;
    expect(calls).toHaveLength(3);
    expect(calls[2]).toMatchObject({ method: "POST", body: JSON.stringify({ text: "buy now" }) });
    expect(calls[2]!.headers.authorization).toBe("Bearer tok-123456");
    expect(calls[2]!.headers["content-type"]).toBe("application/json");
    // the fingerprint is method + URL, never headers
    expect(score.definition).toMatchObject({ kind: "http", code: `POST ${base}/score` });
    expect(JSON.stringify(score.definition)).not.toContain("tok-123456");
  });

  it("waits as long as a 429's Retry-After says before the next request, beyond its own backoff", async () => {
    plan.set("/limited", [
      { status: 429, body: "slow down", headers: { "retry-after": "1" } },
      { status: 200, body: JSON.stringify({ ok: true }) },
    ]);
    const t = http("limited", { url: `${base}/limited`, retryDelayMs: 1 });
    const started = Date.now();
    const out = await (await flow("limited").build(() => ({ ok: t({}).ok })).run(await runOptions())).outputs();
    expect(out).toEqual({ ok: true });
    expect(seen.get("/limited")).toHaveLength(2);
    // A lower bound, not a speed goal: with a 1 ms backoff only Retry-After explains the wait.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it("fails with the schema's message when the response does not match .output(schema)", async () => {
    plan.set("/bad", [{ status: 200, body: JSON.stringify({ label: 5 }) }]);
    const t = http("bad", { url: `${base}/bad` }).output(z.object({ label: z.string() }));
    const result = await (await flow("bad").build(() => ({ x: t({ a: 1 }).label })).run(await runOptions())).wait();
    expect(result.tasks.bad!.error).toMatchObject({
      name: "OutputValidationError",
      message: expect.stringMatching(/Task "bad" returned outputs that do not match its output schema:\n {2}- label: .*string/),
    });
  });

  it("does not retry a 4xx, and gives up after its retries on 5xx", async () => {
    plan.set("/missing", [{ status: 404, body: JSON.stringify({ error: "no such model" }) }]);
    const t = http("missing", { url: `${base}/missing`, retryDelayMs: 1 });
    const r1 = await (await flow("missing").build(() => ({ x: t().$out })).run(await runOptions())).wait();
    expect(r1.tasks.missing!.error).toMatchObject({ name: "HttpTaskError", message: expect.stringMatching(/HTTP 404.*no such model.*not retried/) });
    expect(seen.get("/missing")).toHaveLength(1);

    plan.set("/down", [{ status: 500, body: "boom" }]);
    const d = http("down", { url: `${base}/down`, retries: 2, retryDelayMs: 1 });
    const r2 = await (await flow("down").build(() => ({ x: d().$out })).run(await runOptions())).wait();
    expect(r2.tasks.down!.error).toMatchObject({ name: "HttpTaskError", message: expect.stringMatching(/HTTP 500 after 3 attempts/) });
    expect(seen.get("/down")).toHaveLength(3);
  });

  it("times out a request that never answers, and sends GET inputs as query parameters", async () => {
    plan.set("/hang", [{ status: -1, body: "" }]);
    const t = http("hang", { url: `${base}/hang`, timeoutMs: 1000, retries: 1, retryDelayMs: 1, method: "GET" });
    const result = await (await flow("hang").build(() => ({ x: t({ q: "a b", n: 2 }).$out })).run(await runOptions())).wait();
    expect(result.tasks.hang!.error).toMatchObject({ name: "HttpTaskError", message: expect.stringContaining("no response within 1000 ms") });
    expect(seen.get("/hang")![0]!.url).toBe("/hang?q=a+b&n=2");
  });

  it("refuses a response that is not JSON", async () => {
    plan.set("/html", [{ status: 200, body: "<html>hi</html>", headers: { "content-type": "text/html" } }]);
    const t = http("html", { url: `${base}/html` });
    const result = await (await flow("html").build(() => ({ x: t().$out })).run(await runOptions())).wait();
    expect(result.tasks.html!.error!.message).toMatch(/expected a JSON response, got text\/html/);
  });
});
