import { describe, expect, it } from "vitest";
import { hasUnencodedUserInfo, hiddenQueryTexts, redactUrl } from "./_backend.ts";

describe("redactUrl", () => {
  it("hides the password of a URL that parses, keeping the user", () => {
    expect(redactUrl("redis://:s3cret@127.0.0.1:6379")).toBe("redis://:***@127.0.0.1:6379");
    expect(redactUrl("postgres://me:s3cret@db.example:5432/cairn")).toBe("postgres://me:***@db.example:5432/cairn");
    expect(redactUrl("redis://127.0.0.1:6379")).toBe("redis://127.0.0.1:6379");
  });

  it("hides the whole password of a URL that does not parse, up to the last `@`", () => {
    // The password holds `@`: a redaction that stopped at the first one printed `t%zz`.
    expect(redactUrl('redis//:Se"cr@t%zz@host')).toBe("redis//:***@host");
    expect(redactUrl('redis://:Se"cr@t%zz@[::1:16392')).toBe("redis://:***@[::1:16392");
    expect(redactUrl("postgres://me:pa/ss@wo:rd@[db:5432/cairn")).toBe("postgres://me:***@[db:5432/cairn");
    for (const url of ['redis//:Se"cr@t%zz@host', 'redis://:Se"cr@t%zz@[::1:16392', "postgres://me:pa/ss@wo:rd@[db:5432/cairn"]) {
      expect(redactUrl(url)).not.toMatch(/Se"cr|t%zz|pa\/ss|wo:rd/);
    }
  });

  it("leaves a URL with no password as it is", () => {
    expect(redactUrl("not a url")).toBe("not a url");
    expect(redactUrl("redis://[::1:6379")).toBe("redis://[::1:6379");
  });

  it("hides a user name given without a password: often a token (https://ghp_xxx@host)", () => {
    expect(redactUrl("https://ghp_SECRETTOKEN1234@host/x")).toBe("https://***@host/x");
    expect(redactUrl("redis://user@[::1:6379")).toBe("redis://***@[::1:6379");
  });

  it("hides the whole password of a URL that parses only by cutting it short (`@` then `#`, `/` or `?`)", () => {
    // WHATWG reads `user:p@ss` as the authority and `#word@host` as a fragment: password `p`.
    expect(redactUrl("redis://user:p@ss#word@127.0.0.1:6379")).toBe("redis://user:***@127.0.0.1:6379");
    expect(redactUrl(`postgres://cairn:p"q@r#s't@127.0.0.1:5432/cairn`)).toBe("postgres://cairn:***@127.0.0.1:5432/cairn");
    expect(redactUrl("http://alice:Hunter2@Secret#Tail@127.0.0.1:5000")).toBe("http://alice:***@127.0.0.1:5000");
    expect(redactUrl("redis://:p@ss/wo#rd@127.0.0.1:6379")).toBe("redis://:***@127.0.0.1:6379");
    expect(redactUrl("redis://tok@en?x@host")).toBe("redis://***@host");
    for (const url of ["redis://user:p@ss#word@h", `postgres://cairn:p"q@r#s't@h/db`, "http://alice:Hunter2@Secret#Tail@h", "redis://:p@ss/wo#rd@h"]) {
      expect(redactUrl(url)).not.toMatch(/ss#word|r#s't|Secret|Tail|ss\/wo|rd@h.*rd/);
    }
  });

  it("hides the value of every query parameter not known to be safe, and all after it: node-postgres reads `?password=`", () => {
    // The password a reviewer saw printed: `?password=` connects as the user info's password does.
    expect(redactUrl("postgres://cairnadm@127.0.0.1:5642/cairn?password=T0pS3cret%40x")).toBe("postgres://***@127.0.0.1:5642/cairn?password=***");
    expect(redactUrl("postgres://me@db/cairn?sslmode=require&sslpassword=k3y&application_name=x")).toBe("postgres://***@db/cairn?sslmode=require&sslpassword=***");
    expect(redactUrl("redis://127.0.0.1:6379/1?password=s3cret")).toBe("redis://127.0.0.1:6379/1?password=***");
    expect(redactUrl("postgres://db/cairn?sslmode=require&connect_timeout=5")).toBe("postgres://db/cairn?sslmode=require&connect_timeout=5");
    // A name alone may be a token; so may a fragment.
    expect(redactUrl("https://host/x?ghp_SECRETTOKEN1234")).toBe("https://host/x?***");
    expect(redactUrl("redis://127.0.0.1:6379#S3cret")).toBe("redis://127.0.0.1:6379#***");
    // Quotes kept by a .env file stay, so the message can say so.
    expect(redactUrl("'postgres://db/cairn?password=s3cret'")).toBe("'postgres://db/cairn?password=***'");
    for (const secret of [`Q"u'ote`, "at@sign", "pct%40x", "amp&rest=1", "hash#tail", "both&sslmode=require"]) {
      for (const url of [
        `postgres://cairnadm@127.0.0.1:5642/cairn?password=${secret}`,
        `postgres://cairnadm@127.0.0.1:5642/cairn?sslmode=disable&password=${secret}&application_name=cairn`,
        `postgres://cairnadm:pw@127.0.0.1:5642/cairn?password=${secret}`,
        `redis://127.0.0.1:6379?token=${secret}`,
        `"postgres://127.0.0.1:5642/cairn?password=${secret}"`,
      ]) {
        const shown = redactUrl(url);
        // Neither part of the secret on either side of its `&`, `@` or `#` is shown.
        for (const part of secret.split(/[&@#]/)) expect(shown, url).not.toContain(part);
      }
    }
  });

  it("shows as it is a URL whose every `@` starts a path segment (an npm scope), on a plain host, with no user info", () => {
    // An npm URL showed as `https://***@types/node`, and an http task's code (so its key) held that.
    for (const url of [
      "https://registry.npmjs.org/@types/node",
      "http://127.0.0.1:4873/@x",
      "http://localhost:4873/@scope/pkg",
      "http://LOCALHOST:4873/@scope%2fpkg",
      "https://mastodon.social/@Gargron",
      "https://[::1]:8080/@x/y",
      "https://registry.npmjs.org/@types/node/-/node-20.1.0.tgz",
      "https://registry.npmjs.org/@types/node?sslmode=require",
    ]) {
      expect(redactUrl(url), url).toBe(url);
    }
    // A query's value is hidden as ever, the part before it shown.
    expect(redactUrl("https://registry.npmjs.org/@types/node?token=abc")).toBe("https://registry.npmjs.org/@types/node?token=***");
  });

  it("hides all up to the last `@` of any other URL with an `@`: a token or password may hold an unencoded `/`, `?` or `@`", () => {
    // The URL standard reads no user info in these (host `ab`, `u`, `AbC`, path `/cd@host`...),
    // and showed them whole: the `@` ends a password holding `/`, `?` or `@`.
    for (const [url, shown] of [
      ["https://ab/cd@host/x", "https://***@host/x"],
      ["redis://u:12/34@host", "redis://u:***@host"],
      ["http://u:9/x@y@host", "http://u:***@host"],
      ["https://u:1234?ab@host", "https://u:***@host"],
      ["mydb://AbC/dEf+gh==@db:5000", "mydb://***@db:5000"],
      ["http://alice:5732/x@127.0.0.1:5732", "http://alice:***@127.0.0.1:5732"],
      ["'https://tok/en@host'", "'https://***@host'"],
      // An `@` that starts no path segment, or a host that is no plain one: hidden as before.
      ["https://cdn.jsdelivr.net/npm/lodash@4.17.21/lodash.min.js", "https://***@4.17.21/lodash.min.js"],
      ["https://api.example/users/alice@example.com/keys", "https://***@example.com/keys"],
      ["https://api.example/v1/users?email=a@b.example", "https://***"],
      ["https://h/@x", "https://***@x"],
      ["https://registry.example/@a@b", "https://***@b"],
      ["https://registry.example/x#a@b", "https://***@b"],
    ] as const) {
      expect(redactUrl(url), url).toBe(shown);
    }
    // A dotted user name and a password of digits, `/` and more, before an `@` that starts a path
    // segment: the URL standard reads host `john.doe`, port `2024`, and these were shown whole.
    for (const [url, secret] of [
      ["redis://john.doe:2024/s3cret/@cache.example:6379", "s3cret"],
      ["postgres://app.user:1234/x9/@db.internal/cairn", "x9"],
      ["https://john.doe:2024/secret/@db.example", "secret"],
      ["https://john.doe:2024/secret/@db.example/x", "secret"],
      ["http://app.user:99/Zq/@registry.example/@types/node", "Zq"],
    ] as const) {
      expect(redactUrl(url), url).not.toContain(secret);
      expect(redactUrl(url), url).not.toContain("john.doe:2024");
    }
    const tokens = ["AbC/dEf+gh==", "Qx/Wz", "Zm9v/YmFyYmF6/cXV4", "u:Pw12/Zq34", "u:Pw9/Xq@Yq", "u:Pw1234?Abq", "Tok3n/Wq#Rz9"];
    for (const token of tokens) {
      for (const host of ["host", "db:5000", "127.0.0.1:4873", "[::1]:4873", "registry.example"]) {
        for (const path of ["", "/x", "/@types/node", "?sslmode=require"]) {
          for (const scheme of ["https", "redis", "mydb"]) {
            const url = `${scheme}://${token}@${host}${path}`;
            const shown = redactUrl(url);
            for (const part of token.replace(/^u:/, "").split(/[/?@#]/)) expect(shown, url).not.toContain(part);
          }
        }
      }
    }
  });

  it("replaces only the hidden part of a URL with more than one `@`, the rest as written: an http task's key holds the URL as shown", () => {
    // Rebuilt by the URL parser, these showed as `...5691/` and `...@localhost:5691/x`: a new key.
    expect(redactUrl("http://alice:p@ss@127.0.0.1:5691")).toBe("http://alice:***@127.0.0.1:5691");
    expect(redactUrl("http://alice:p@ss@LOCALHOST:5691/x")).toBe("http://alice:***@LOCALHOST:5691/x");
    // A URL with one `@` shows as the parser writes it, as it always did.
    expect(redactUrl("http://alice:pw@LOCALHOST:5691")).toBe("http://alice:***@localhost:5691/");
    // Its user name token was shown before the port (`http://tok123@127.0.0.1:***@types/node`).
    expect(redactUrl("http://tok123@127.0.0.1:5691/@types/node")).toBe("http://***@types/node");
  });

  it("still hides real user info, with or without a password, percent-encoded, before an IPv6 host", () => {
    expect(redactUrl("https://alice:S3cret@registry.example/npm")).toBe("https://alice:***@registry.example/npm");
    expect(redactUrl("https://ghp_tok123@registry.example")).toBe("https://***@registry.example/");
    expect(redactUrl("https://alice:p%40s%2Fs%3Fw%23d@registry.example/x")).toBe("https://alice:***@registry.example/x");
    expect(redactUrl("https://alice:p!$&'()*+,;=w@registry.example/x")).toBe("https://alice:***@registry.example/x");
    expect(redactUrl("redis://user:pa@ss@[::1]:6379/0")).toBe("redis://user:***@[::1]:6379/0");
    expect(redactUrl("https://alice:pw@[2001:db8::1]:8443/x")).toBe("https://alice:***@[2001:db8::1]:8443/x");
    expect(redactUrl("redis://tok@[::1]:6379")).toBe("redis://***@[::1]:6379");
    // User info and an `@` past the host: the password may hold `@` then `/`, so all up to the last `@` is hidden.
    expect(redactUrl("https://alice:pw@registry.example/@types/node")).toBe("https://alice:***@types/node");
    // A `:` past the first `@` is a port's: the user name before it was shown (`https://tok@host:***@x`).
    expect(redactUrl("https://ghp_tok123@registry.example:8443/@types/node")).toBe("https://***@types/node");
    const passwords = ["S3cretPW", "Pq%40ss%2Fw", "Sx9@Qz7@Wk5", "Pq!$&'()*+,;=wd", "t0k%25en"];
    const hosts = ["registry.example", "127.0.0.1:4873", "[::1]:4873", "[2001:db8::1]"];
    for (const password of passwords) {
      for (const host of hosts) {
        for (const path of ["", "/x", "/@types/node", "/npm/lodash@4.17.21", "?email=a@b", "#a@b"]) {
          for (const url of [`https://alice:${password}@${host}${path}`, `https://${password}@${host}${path}`, `redis://:${password}@${host}${path}`]) {
            const shown = redactUrl(url);
            for (const part of password.split("@")) expect(shown, url).not.toContain(part);
          }
        }
      }
    }
  });

  it("tells a URL whose user info holds an unencoded `@`, `#`, `/` or `?` from a plain one", () => {
    for (const url of ["redis://user:p@ss#word@host", "redis://:abc#def@host", "redis://:a/b@host", "redis://:a?b@host", "redis://a@b@host"]) {
      expect(hasUnencodedUserInfo(url)).toBe(true);
    }
    for (const url of ["redis://:p%40ss%23word@host:6379/1", "redis://host:6379", "postgres://me:pw@db/cairn?sslmode=require", "not a url"]) {
      expect(hasUnencodedUserInfo(url)).toBe(false);
    }
  });
});

describe("hiddenQueryTexts", () => {
  it("gives what redactUrl hides of the query and fragment, by the same rule", () => {
    expect(hiddenQueryTexts("postgres://db/cairn?sslmode=require&password=pw&x=1")).toEqual(["pw&x=1", "pw", "1"]);
    expect(hiddenQueryTexts("https://api.example/q?api_key=k%2B1&page=2")).toEqual(["k%2B1&page=2", "k%2B1", "2"]);
    expect(hiddenQueryTexts("https://api.example/q?ghp_tok1234")).toEqual(["ghp_tok1234"]);
    expect(hiddenQueryTexts("https://api.example/q#frag-tok")).toEqual(["frag-tok"]);
    expect(hiddenQueryTexts("postgres://db/cairn?sslmode=require")).toEqual([]);
    expect(hiddenQueryTexts("https://api.example/q")).toEqual([]);
    for (const url of ["https://h/q?sslmode=require&api_key=abc123&b=c", "https://h/q?a=1#x", "https://h/q?t0k3n&x=1"]) {
      const shown = redactUrl(url);
      for (const text of hiddenQueryTexts(url)) if (text.length > 2) expect(shown).not.toContain(text);
    }
  });
});
