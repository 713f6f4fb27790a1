import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { privateDigestAsync, redactUrl as redactUri } from "@cairn/cache";
import { flow } from "@cairn/dsl";
import { OptionError, type Flow, type RunEvent } from "cairn-dag";
import { http } from "../../packages/dsl/src/kinds/http/http.ts";
import { cairnBin, childEnv, repo, start } from "../cache/helpers.ts";
import { refusal, runOptions } from "./helpers.ts";

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
/** Per path: a handler of its own, for answers a plan cannot give (a body that trickles in, a redirect). */
const handlers = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const path = new URL(req.url!, "http://x").pathname;
      const own = handlers.get(path);
      if (own) {
        const list = seen.get(path) ?? [];
        list.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        seen.set(path, list);
        return own(req, res);
      }
      if (path.startsWith("/version")) {
        // Answers with the header that chose the API version.
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(JSON.stringify({ version: req.headers["x-api-version"] ?? null }));
      }
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
    // the code is method + URL; headers enter the key by digest only (below)
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

/**
 * Runs `f` with the embedded tracker in a fresh root and gives its result with every text it left:
 * its events (the CLI's lines, `--json`), and every file under the root (the tracker's runs with
 * their tags and error.txt, the cache, logs).
 */
async function runAndEverything(f: Flow<Record<string, unknown>, Record<string, unknown>>, extra: Record<string, unknown> = {}) {
  const options = await runOptions({ tracker: undefined, ...extra });
  const events: RunEvent[] = [];
  const run = await f.run(options);
  run.on((e) => events.push(e));
  const result = await run.wait();
  const texts = [JSON.stringify(events), JSON.stringify(result)];
  for (const entry of await readdir(options.root, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) texts.push(await readFile(join(entry.parentPath, entry.name), "latin1"));
  }
  return { result, events, everything: texts.join("\n") };
}

describe("http() keeps secrets out of what it shows", () => {
  it("masks a secret that a 401's JSON body echoes, whatever its quotes, before quoting the body", async () => {
    // A `"` with a `'` and a space: JSON escapes the `"`, and quoting the JSON body again escaped it twice.
    const token = `sk-Q"u'ote 7777777777-zzzz`;
    handlers.set("/echo401", (req, res) => {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: `invalid token: ${req.headers.authorization}` }));
    });
    const t = http("echo", { url: `${base}/echo401`, headers: (ctx) => ({ Authorization: `Bearer ${ctx.secret("ECHO_TOKEN")}` }) });
    const { result, everything } = await runAndEverything(flow("echo").build(() => ({ x: t().$out })), { secrets: { ECHO_TOKEN: token } });
    expect(seen.get("/echo401")![0]!.headers.authorization).toBe(`Bearer ${token}`);
    expect(result.tasks.echo!.error).toMatchObject({ name: "HttpTaskError", message: expect.stringContaining("failed with HTTP 401") });
    expect(result.tasks.echo!.error!.message).toContain("invalid token: Bearer ***");
    expect(everything).not.toContain("7777777777");
  });

  it("masks a secret before cutting a long body, so that its start is not shown either", async () => {
    const token = "sk-plain-ABCDEFGHIJKLMNOP1234";
    handlers.set("/long401", (req, res) => {
      res.writeHead(401, { "content-type": "application/json" });
      // The 200-character cut falls 5 characters into the token.
      res.end(JSON.stringify({ e: `${"x".repeat(186)}${req.headers["x-token"]} and more after it` }));
    });
    const t = http("long", { url: `${base}/long401`, headers: (ctx) => ({ "x-token": ctx.secret("LONG_TOKEN") }) });
    const { result, everything } = await runAndEverything(flow("long").build(() => ({ x: t().$out })), { secrets: { LONG_TOKEN: token } });
    expect(result.tasks.long!.error!.message).toMatch(/x{186}\*\*\*/);
    expect(everything).not.toMatch(/sk-pl|ABCDEF/);
  });

  it("masks static header values, the URL's password and its Basic form, in errors, logs and records", async () => {
    handlers.set("/who", (req, res) => {
      // Echoes every credential it got: the static header, and the Basic header axios made of the URL's user info.
      res.writeHead(seen.get("/who")!.length > 1 ? 403 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify({ got: req.headers.authorization, key: req.headers["x-api-key"] }));
    });
    const url = `${base.replace("http://", "http://apiuser-9191:pw-secret-4242@")}/who`;
    const t = http("who", { url, retries: 1, retryDelayMs: 1, headers: { "x-api-key": "Key static-tok-5555555" } });
    const { result, everything } = await runAndEverything(flow("who").build(() => ({ x: t().$out })));
    expect(seen.get("/who")![0]!.headers["x-api-key"]).toBe("Key static-tok-5555555");
    const message = result.tasks.who!.error!.message;
    // As store and tracking URLs are shown: the user name, not the password.
    expect(message).toContain(`POST ${base.replace("http://", "http://apiuser-9191:***@")}/who failed with HTTP 403 after 2 attempts`);
    expect(message).toContain(JSON.stringify(`{"got":"Basic ***","key":"***"}`));
    expect(everything).toContain("retry 1/1"); // the warning of the retry was recorded too
    expect(everything).not.toMatch(/static-tok-5555555|pw-secret-4242/);
    expect(everything).not.toContain(Buffer.from("apiuser-9191:pw-secret-4242").toString("base64"));
  });

  it("shows and keys a URL with an `@` in its path as it is: no user info there (an npm URL showed as `http://***@types/node`)", async () => {
    plan.set("/@types/node", [{ status: 200, body: JSON.stringify({ name: "@types/node" }) }]);
    plan.set("/@types/gone", [{ status: 404, body: "not found" }]);
    const url = `${base}/@types/node`;
    const pkg = http("pkg", { url, method: "GET" });
    const gone = http("gone", { url: `${base}/@types/gone`, method: "GET", retries: 0 });
    const { result, everything } = await runAndEverything(flow("npm").build(() => ({ name: pkg().name, x: gone().$out })));
    expect(result.tasks.pkg!.status).toBe("succeeded");
    expect(result.tasks.gone!.error!.message).toContain(`GET ${base}/@types/gone failed with HTTP 404`);
    expect(everything).not.toContain("***@types");
    // The code the key holds is the whole URL, recorded by its sha256; no slow digest of a hidden part.
    expect(everything).toContain(createHash("sha256").update(`http\0GET ${url}`).digest("hex"));
    expect(everything).not.toContain(createHash("sha256").update(`http\0GET http://***@types/node`).digest("hex"));
    expect(everything).not.toContain(await privateDigestAsync(url, "http url"));
  });

  it("keys a URL whose password holds an `@` by the text shown before (only the password replaced); hides a user name token before a port and a path `@`", async () => {
    plan.set("/", [{ status: 200, body: JSON.stringify({ ok: true }) }]);
    plan.set("/@types/node", [{ status: 200, body: JSON.stringify({ name: "@types/node" }) }]);
    // Rebuilt by the URL parser, the first showed with a `/` added (`...:<port>/`): its key changed on upgrading.
    const withAt = base.replace("http://", "http://alice:p@ss-7373@");
    const withToken = `${base.replace("http://", "http://tok-6161@")}/@types/node`;
    const a = http("a", { url: withAt, method: "GET" });
    const b = http("b", { url: withToken, method: "GET" });
    const { result, everything } = await runAndEverything(flow("at").build(() => ({ a: a().ok, b: b().name })));
    expect([result.tasks.a!.status, result.tasks.b!.status]).toEqual(["succeeded", "succeeded"]);
    expect(seen.get("/")!.at(-1)!.headers.authorization).toBe(`Basic ${Buffer.from("alice:p@ss-7373").toString("base64")}`);
    const shownA = base.replace("http://", "http://alice:***@");
    expect(everything).toContain(createHash("sha256").update(`http\0GET ${shownA}`).digest("hex"));
    expect(everything).not.toContain(createHash("sha256").update(`http\0GET ${shownA}/`).digest("hex"));
    // The token was shown before the port: `http://tok-6161@127.0.0.1:***@types/node`.
    expect(everything).toContain(createHash("sha256").update("http\0GET http://***@types/node").digest("hex"));
    expect(everything).not.toMatch(/ss-7373|tok-6161/);
  });

  it("masks the query values the shown URL hides when the server echoes its request's URL, as sent or decoded", async () => {
    handlers.set("/echoq", (req, res) => {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: `bad request ${req.url}`, key: new URL(req.url!, "http://x").searchParams.get("api_key") }));
    });
    // `%2B` is sent as it is and decoded to `+` by the server.
    const t = http("q", { url: `${base}/echoq?api_key=SECRETKEY%2B12345&sig=sig-value-98765` });
    const { result, everything } = await runAndEverything(flow("q").build(() => ({ x: t().$out })));
    expect(seen.get("/echoq")![0]!.url).toBe("/echoq?api_key=SECRETKEY%2B12345&sig=sig-value-98765");
    const message = result.tasks.q!.error!.message;
    expect(message).toContain(`POST ${base}/echoq?api_key=*** failed with HTTP 400`);
    expect(message).toContain("bad request /echoq?api_key=***");
    expect(everything).not.toMatch(/SECRETKEY|sig-value/);
  });

  it("masks credential headers only: a content type or an API version stays readable in what the server answers", async () => {
    handlers.set("/diag", (req, res) => {
      res.writeHead(400, { "content-type": "application/json" });
      const h = req.headers;
      res.end(JSON.stringify({ type: h["content-type"], version: h["x-api-version"], key: h["x-api-key"], session: h["x-session-id"], cookie: h.cookie, up: h["x-upstream"] }));
    });
    const headers = {
      "Content-Type": "application/json",
      "X-Api-Version": "2024-06-01",
      "X-Api-Key": "key-value-31313131",
      "X-Session-Id": "sess-value-42424242",
      Cookie: "theme=dark; sid=cookie-value-5353535",
      // Not a credential's name, but a credential after its scheme.
      "X-Upstream": "Token upstream-value-6464646",
    };
    const t = http("diag", { url: `${base}/diag`, headers });
    const { result, everything } = await runAndEverything(flow("diag").build(() => ({ x: t().$out })));
    const message = result.tasks.diag!.error!.message;
    expect(message).toContain(JSON.stringify(`{"type":"application/json","version":"2024-06-01","key":"***","session":"***","cookie":"***","up":"Token ***"}`));
    expect(everything).not.toMatch(/key-value|sess-value|cookie-value|upstream-value/);

    // Cairn's own words about the answer are not masked either, its content type equal to a header's value or not.
    plan.set("/html", [{ status: 200, body: "<html>hi</html>", headers: { "content-type": "text/html" } }]);
    const html = http("html2", { url: `${base}/html`, headers: { Accept: "text/html" } });
    const r = await (await flow("html2").build(() => ({ x: html().$out })).run(await runOptions())).wait();
    expect(r.tasks.html2!.error!.message).toMatch(/expected a JSON response, got text\/html/);
  });

  it("follows a redirect to another origin without the task's own headers, and to the same origin with them", async () => {
    const other = createServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ key: req.headers["x-api-key"] ?? null, auth: req.headers.authorization ?? null }));
    });
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    try {
      const there = `http://127.0.0.1:${(other.address() as AddressInfo).port}/land`;
      handlers.set("/away", (_req, res) => {
        res.writeHead(302, { location: there });
        res.end();
      });
      handlers.set("/near", (_req, res) => {
        res.writeHead(302, { location: "/version" });
        res.end();
      });
      const headers = { "x-api-key": "tok-ABC123xyz", Authorization: "Bearer tok-other-987", "X-API-Version": "near-1" };
      const away = http("away", { url: `${base}/away`, method: "GET", headers });
      const near = http("near", { url: `${base}/near`, method: "GET", headers });
      const out = await (await flow("redirects").build(() => ({ away: away().$out, near: near().$out })).run(await runOptions())).outputs();
      expect(out).toEqual({ away: { key: null, auth: null }, near: { version: "near-1" } });
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  it("refuses a header value with a line break inside, naming the header and not its value, and sends nothing", async () => {
    const t = http("crlf", { url: `${base}/crlf`, headers: (ctx) => ({ "x-api-key": ctx.secret("CRLF_KEY") }) }).retries(2, { minDelayMs: 1 });
    const { result, everything } = await runAndEverything(flow("crlf").build(() => ({ x: t().$out })), { secrets: { CRLF_KEY: "first-half-1234\nsecond-half-5678" } });
    expect(result.tasks.crlf!.error).toMatchObject({ name: "HttpTaskError", message: expect.stringMatching(/request header `x-api-key` holds a line break.*not retried/) });
    expect(result.tasks.crlf!.attempts).toBe(1);
    expect(seen.get("/crlf")).toBeUndefined();
    expect(everything).not.toMatch(/first-half|second-half/);
  });
});

describe("http() fails at once what no retry mends, and bounds each request", () => {
  it("does not retry a redirect loop", async () => {
    handlers.set("/loop", (_req, res) => {
      res.writeHead(302, { location: "/loop" });
      res.end();
    });
    const t = http("loop", { url: `${base}/loop`, retries: 2, retryDelayMs: 1 });
    const result = await (await flow("loop").build(() => ({ x: t().$out })).run(await runOptions())).wait();
    expect(result.tasks.loop!.error).toMatchObject({ name: "HttpTaskError", message: expect.stringMatching(/ERR_FR_TOO_MANY_REDIRECTS.*not retried/) });
    expect(seen.get("/loop")).toHaveLength(6); // the request and its 5 redirects, once
  });

  it("refuses a body over maxResponseMB, gzipped or not, without retrying", async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 0x61);
    handlers.set("/big", (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(big);
    });
    // 3 MB of zeros in a few KB: the limit counts what it decompresses to.
    const bomb = gzipSync(Buffer.alloc(3 * 1024 * 1024, 0x30));
    handlers.set("/bomb", (_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
      res.end(bomb);
    });
    for (const name of ["big", "bomb"]) {
      const t = http(name, { url: `${base}/${name}`, maxResponseMB: 1, retryDelayMs: 1 });
      const result = await (await flow(name).build(() => ({ x: t().$out })).run(await runOptions())).wait();
      expect(result.tasks[name]!.error).toMatchObject({ name: "HttpTaskError", message: expect.stringContaining("larger than 1 MB (`maxResponseMB`") });
    }
    expect(seen.get("/big")).toHaveLength(1);
    expect(seen.get("/bomb")).toHaveLength(1);
    expect(refusal(() => http("h", { url: base, maxResponseMB: 0 }))).toMatch(/maxResponseMB.*an integer number of MB from 1 to 500/);
  });

  it("times out a body that trickles in, within timeoutMs of the request's start", async () => {
    handlers.set("/trickle", (req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write("[");
      // One byte every 100 ms: axios's own timeout, reset by each, never fires.
      const every = setInterval(() => res.write("1,"), 100);
      req.socket.on("close", () => clearInterval(every));
    });
    const t = http("trickle", { url: `${base}/trickle`, timeoutMs: 800, retries: 0 });
    const started = Date.now();
    const result = await (await flow("trickle").build(() => ({ x: t().$out })).run(await runOptions())).wait();
    expect(result.tasks.trickle!.error).toMatchObject({ name: "HttpTaskError", message: expect.stringContaining("no response within 800 ms") });
    expect(Date.now() - started).toBeLessThan(5000);
  }, 10_000);
});

describe("http() headers in the cache key", () => {
  let dir: string;
  beforeAll(async () => {
    // Inside the workspace, so that `cairn-dag` resolves as it does for the examples.
    dir = await mkdtemp(join(repo, "test", ".http-headers-"));
    await writeFile(
      join(dir, "flow.ts"),
      [
        `import { flow, http } from "cairn-dag";`,
        `const api = http("api", { url: "${base}/version", headers: { "X-API-Version": "v-one", Authorization: "Bearer tok-first-41" } });`,
        `const fn = http("fn", { url: "${base}/version", headers: () => ({ "X-API-Version": "f-one" }) });`,
        `export default flow("headers").build(() => ({ api: api({}).version, fn: fn({}).version }));`,
      ].join("\n"),
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const root = () => join(dir, ".cairn");
  const cairn = (...args: string[]) => start(process.execPath, [cairnBin, ...args, "--root", root()], { cwd: dir, env: childEnv({ CAIRN_NO_AUTORUN: "0" }) }).done;
  const statuses = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(api|fn)\s+(succeeded|cached)\s/gm)].map((m) => [m[1], m[2]]));
  async function edit(from: string, to: string): Promise<void> {
    const text = await readFile(join(dir, "flow.ts"), "utf8");
    expect(text).toContain(from);
    await writeFile(join(dir, "flow.ts"), text.replace(from, to));
  }
  /** The text of every file under the run's root: the cache entries, the local tracker's runs, logs. */
  async function everythingStored(): Promise<string> {
    const texts: string[] = [];
    for (const entry of await readdir(root(), { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) texts.push(await readFile(join(entry.parentPath, entry.name), "latin1"));
    }
    return texts.join("\n");
  }

  it("a changed header value or header function is a miss, which explain names without the value", async () => {
    let r = await cairn("run", "flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`{"api":"v-one","fn":"f-one"}`);
    expect(statuses((await cairn("run", "flow.ts")).stdout)).toEqual({ api: "cached", fn: "cached" });

    await edit(`"X-API-Version": "v-one"`, `"X-API-Version": "v-two"`);
    const why = await cairn("explain", "flow.ts", "api");
    expect(why.stdout).toContain("request header `x-api-version` changed");
    const whyJson = await cairn("explain", "flow.ts", "api", "--json");
    expect(`${why.stdout}${why.stderr}${whyJson.stdout}`).not.toMatch(/v-one|v-two|tok-first/);
    r = await cairn("run", "flow.ts");
    expect(statuses(r.stdout)).toEqual({ api: "succeeded", fn: "cached" });
    expect(r.stdout).toContain(`{"api":"v-two","fn":"f-one"}`);

    // A credential: its change counts too, and it is written nowhere, in clear or as a plain sha256.
    await edit("tok-first-41", "tok-second-42");
    expect((await cairn("explain", "flow.ts", "api")).stdout).toContain("request header `authorization` changed");
    r = await cairn("run", "flow.ts");
    expect(statuses(r.stdout)).toEqual({ api: "succeeded", fn: "cached" });
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/tok-first|tok-second/);
    const stored = await everythingStored();
    expect(stored).toContain("x-api-version"); // the names are there, as explain shows them
    expect(stored).not.toMatch(/tok-first|tok-second/); // (the versions are the tasks' outputs)
    expect(stored).not.toContain(createHash("sha256").update("Bearer tok-second-42").digest("hex"));
    // The value enters by its slow digest (scrypt, salted with the header's name) and by nothing faster to guess.
    expect(stored).toContain(await privateDigestAsync("Bearer tok-second-42", "http header\0authorization"));

    // A header function counts by its text.
    await edit(`"X-API-Version": "f-one"`, `"X-API-Version": "f-two"`);
    expect((await cairn("explain", "flow.ts", "fn")).stdout).toContain("the function that makes the request headers changed");
    r = await cairn("run", "flow.ts");
    expect(statuses(r.stdout)).toEqual({ api: "cached", fn: "succeeded" });
    expect(r.stdout).toContain(`{"api":"v-two","fn":"f-two"}`);

    // The method and the URL are one `code` in the key, as ever; explain tells them apart.
    await edit(`url: "${base}/version", headers: {`, `url: "${base}/version/2", headers: {`);
    expect((await cairn("explain", "flow.ts", "api")).stdout).toContain("option `url` changed");
  });

  it("a change of only what the shown URL hides (a query value, a password) is still said as option `url` changed, without it", async () => {
    const url = `${base.replace("http://", "http://apiuser:pw-one-7171@")}/version/3?page=2`;
    await edit(/url: "[^"]*", headers: \{ "X-API/.exec(await readFile(join(dir, "flow.ts"), "utf8"))![0], `url: "${url}", headers: { "X-API`);
    expect(statuses((await cairn("run", "flow.ts")).stdout)).toMatchObject({ api: "succeeded" });

    await edit("?page=2", "?page=3");
    let why = await cairn("explain", "flow.ts", "api");
    expect(why.stdout).toContain("option `url` changed");
    expect(statuses((await cairn("run", "flow.ts")).stdout)).toMatchObject({ api: "succeeded" });

    await edit("pw-one-7171", "pw-two-7272");
    why = await cairn("explain", "flow.ts", "api");
    expect(why.stdout).toContain("option `url` changed");
    const whyJson = await cairn("explain", "flow.ts", "api", "--json");
    expect(`${why.stdout}${why.stderr}${whyJson.stdout}`).not.toMatch(/pw-one|pw-two|page=[23]/);
    expect(statuses((await cairn("run", "flow.ts")).stdout)).toMatchObject({ api: "succeeded" });
    const stored = await everythingStored();
    expect(stored).not.toMatch(/pw-one|pw-two/);
    // Nor by a fast digest a guess can be checked against: the task's own code (kind, method, URL)
    // is recorded by its sha256, so it holds the URL as shown; what that hides enters by its slow digest.
    const now = url.replace("pw-one-7171", "pw-two-7272").replace("page=2", "page=3");
    for (const code of [`http\0POST ${now}`, `POST ${now}`, now]) expect(stored).not.toContain(createHash("sha256").update(code).digest("hex"));
    expect(stored).toContain(createHash("sha256").update(`http\0POST ${redactUri(now)}`).digest("hex"));
    expect(stored).toContain(await privateDigestAsync(now, "http url"));
  });
});
