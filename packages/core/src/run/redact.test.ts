import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { errorFields, isCredentialKey, redactCredentials } from "./redact.ts";

const show = (value: unknown) => inspect(redactCredentials(value), { depth: 10, breakLength: Infinity, compact: true });

describe("redactCredentials", () => {
  it("replaces the value of every key that names a credential, in any case and spelling, at any depth", () => {
    for (const key of ["Authorization", "proxy-authorization", "Cookie", "set-cookie", "password", "DB_PASSWD", "client_secret", "token", "refreshToken", "apiKey", "x-api-key", "API_KEY", "accessKey", "aws_access_key_id", "private-key", "privateKey"]) {
      expect([key, isCredentialKey(key)]).toEqual([key, true]);
    }
    for (const key of ["status", "detail", "headers", "user", "username", "url", "accept"]) expect([key, isCredentialKey(key)]).toEqual([key, false]);
    const value = { a: { b: { headers: { Authorization: "Bearer abc", accept: "json" } } }, list: [{ password: "p" }], map: new Map([["token", "t"]]) };
    expect(show(value)).toBe("{ a: { b: { headers: { Authorization: '***', accept: 'json' } } }, list: [ { password: '***' } ], map: Map(1) { 'token' => '***' } }");
    // The value itself is left as it was.
    expect(value.a.b.headers.Authorization).toBe("Bearer abc");
  });

  it("leaves out an HTTP client's request settings and request (axios's, its response's, a look-alike's), not a `config` of anything else", () => {
    const request = { _header: "GET / HTTP/1.1\r\nAuthorization: Basic dTpw\r\n" };
    expect(show({ isAxiosError: true, code: "E", config: { url: "/x" }, request })).toBe(
      "{ isAxiosError: true, code: 'E', config: [left out: the request's settings may hold credentials], request: [left out: the request's settings may hold credentials] }",
    );
    expect(show({ status: 500, config: { url: "/x" }, response: { status: 500, config: {}, request } })).not.toContain("Basic");
    expect(show({ config: { retries: 2 } })).toBe("{ config: { retries: 2 } }");
  });

  it("is bounded (depth, keys, items, string length), cuts cycles, keeps class names, and never throws", () => {
    const deep = { l1: { l2: { l3: { l4: { l5: "deep" } } } } };
    expect(show(deep)).toBe("{ l1: { l2: { l3: { l4: [Object] } } } }");
    expect(show(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i])))).toContain("k29: 29, '...': [10 more fields] }");
    expect(show(Array.from({ length: 25 }, (_, i) => i))).toContain("19, [... 5 more items] ]");
    expect(show("x".repeat(5000))).toBe(`'${"x".repeat(1000)}... [5000 characters]'`);
    const cycle: Record<string, unknown> = { name: "c" };
    cycle.self = cycle;
    expect(show(cycle)).toBe("{ name: 'c', self: [Circular] }");
    class Headers {
      constructor(readonly cookie: string) {}
    }
    expect(show({ h: new Headers("sid=1") })).toBe("{ h: Headers { cookie: '***' } }");
    const getter = Object.defineProperty({}, "boom", {
      enumerable: true,
      get() {
        throw new Error("getter");
      },
    });
    expect(show(getter)).toBe("{ boom: [unreadable] }");
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    expect(show({ p: revoked.proxy })).toBe("{ p: [unreadable] }");
    expect(show({ when: new Date(0), err: new TypeError("inner") })).toBe("{ when: 1970-01-01T00:00:00.000Z, err: [TypeError: inner] }");
  });
});

describe("errorFields", () => {
  it("an Error's own fields beyond its name, message, stack, cause and inner errors, redacted", () => {
    const error = Object.assign(new Error("m", { cause: new Error("c") }), { statusCode: 503, token: "t" });
    expect(errorFields(error).map(([key, value]) => `${key}: ${inspect(value)}`)).toEqual(["statusCode: 503", "token: '***'"]);
    expect(errorFields(new AggregateError([new Error("x")], "agg"))).toEqual([]);
  });
});

describe("a Node HTTP request and response on an error, as got and needle build it", () => {
  it("leaves out the ClientRequest, the IncomingMessage and their sockets whole, and raw headers and header pairs", async () => {
    const { createServer, request } = await import("node:http");
    const server = createServer((_req, res) => {
      res.setHeader("set-cookie", "sid=SERVERSEKRET");
      res.statusCode = 500;
      res.end("no");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as { port: number };
      const error = await new Promise<Error>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, path: "/", headers: { Authorization: "Bearer CLIENTSEKRET" } }, (res) => {
          res.resume();
          res.on("end", () => resolve(Object.assign(new Error("Response code 500"), { request: req, response: res, socket: res.socket, options: { headers: ["Authorization", "Bearer PAIRSEKRET", "accept", "json"] } })));
        });
        req.on("error", reject);
        req.end();
      });
      const text = errorFields(error).map(([key, value]) => `${key}: ${inspect(value, { depth: 10 })}`).join("\n");
      expect(text).not.toMatch(/SEKRET/);
      expect(text).toContain("request: [left out: ClientRequest, which may hold the headers it sent or received]");
      expect(text).toContain("response: [left out: IncomingMessage");
      expect(text).toContain("accept");
      expect(show({ wrapped: { req: (error as Error & { request: unknown }).request, raw: { _header: "GET / HTTP/1.1\r\nAuthorization: Bearer X", rawHeaders: ["Cookie", "c"] } } })).not.toMatch(/Bearer|'c'/);
    } finally {
      server.close();
    }
  });
});
