import { describe, expect, it } from "vitest";
import { CacheBackendError, CacheError, CacheOptionError, CacheValueError, CairnError, LeaseLostError } from "./errors.ts";

describe("CairnError, the one error root", () => {
  it("gives each error its class's code and makes the cache's errors Cairn errors", () => {
    const e = new LeaseLostError("k", "me");
    expect(e.code).toBe("CAIRN_LEASE_LOST");
    expect(LeaseLostError.code).toBe("CAIRN_LEASE_LOST");
    expect(new CairnError("x").code).toBe("CAIRN_ERROR");
    expect(CairnError.is(e)).toBe(true);
    expect(CacheError.is(e)).toBe(true);
    expect(LeaseLostError.is(e)).toBe(true);
    expect(CacheBackendError.is(e)).toBe(false);
    expect(CacheError.is(new CairnError("x"))).toBe(false);
    expect(e.retryable).toBe(true);
  });

  it("says no to what is not a Cairn error", () => {
    for (const value of [new Error("x"), undefined, null, "CAIRN_ERROR", 1, { code: "CAIRN_ERROR" }]) {
      expect(CairnError.is(value)).toBe(false);
    }
  });

  it("knows errors made by another copy of the module (the bundle and the sources)", async () => {
    // A query string makes the loader evaluate the file again: other classes, same brands.
    const copy = "./errors.ts?another-copy"; // a variable: tsc does not resolve it, the loader does
    const other = (await import(copy)) as typeof import("./errors.ts");
    expect(other.CairnError).not.toBe(CairnError);
    const theirs = new other.CacheOptionError("ttlMs", "a number", "1");
    expect(theirs instanceof CacheOptionError).toBe(false);
    expect(CacheOptionError.is(theirs)).toBe(true);
    expect(CacheError.is(theirs)).toBe(true);
    expect(CairnError.is(theirs)).toBe(true);
    expect(CacheBackendError.is(theirs)).toBe(false);
    expect(other.CairnError.is(new CacheOptionError("ttlMs", "a number", "1"))).toBe(true);
  });

  it("checks a brand, which a plain object can carry", () => {
    const branded = { [Symbol.for("cairn.error.CAIRN_CACHE")]: true, [Symbol.for("cairn.error.CAIRN_ERROR")]: true };
    expect(CacheError.is(branded)).toBe(true);
    expect(CairnError.is(branded)).toBe(true);
    expect(CacheValueError.is(branded)).toBe(false);
  });

  it("falls back to instanceof for a subclass without a code of its own", () => {
    class MyError extends CairnError {
      override name = "MyError";
    }
    const mine = new MyError("x");
    expect(mine.code).toBe("CAIRN_ERROR");
    expect(CairnError.is(mine)).toBe(true);
    expect(MyError.is(mine)).toBe(true);
    expect(MyError.is(new CairnError("x"))).toBe(false);
  });
});

describe("CacheBackendError of the embedded store", () => {
  const failure = (operation: string, code: string, text: string) =>
    new CacheBackendError("embedded", "/p/.cairn/cache", operation, { cause: Object.assign(new Error(`${code}: ${text}, write`), { code }) }).message;

  it("says what to do by the file system's error: a full disk, a file another user keeps private, a read-only file system", () => {
    expect(failure("write an entry", "ENOSPC", "no space left on device")).toBe(
      "The embedded cache at /p/.cairn/cache failed to write an entry: ENOSPC: no space left on device, write. The disk (or your quota) is full: free space on it.",
    );
    expect(failure("read an entry", "EACCES", "permission denied")).toMatch(/failed to read an entry: EACCES: .* This user may not read it: a file written by another user under a private umask \(077\)/);
    expect(failure("write an entry", "EACCES", "permission denied")).toMatch(/This user may not write there: make the folder writable/);
    expect(failure("write an entry", "EROFS", "read-only file system")).toMatch(/Its file system is read-only: point the cache at a writable folder\.$/);
    for (const code of ["ENOSPC", "EACCES", "EROFS"]) expect(failure("read an entry", code, "x")).not.toContain("exists and is writable");
    expect(failure("write an entry", "EIO", "i/o error")).toMatch(/Check that the folder exists and is writable\.$/);
  });
});

describe("CacheBackendError of the postgres store", () => {
  const location = "postgres://alice:***@127.0.0.1:5652/teamdb";
  const failure = (operation: string, cause: Error) => new CacheBackendError("postgres", location, operation, { cause }).message;

  it("asks for the right to create tables only while one is missing: a role with rights on existing tables needs none", () => {
    const down = failure("connect", Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5652"), { code: "ECONNREFUSED" }));
    expect(down).toBe(
      `The postgres cache at ${location} failed to connect: connect ECONNREFUSED 127.0.0.1:5652. Check that postgres is running there and this machine reaches it, ` +
        "and that the URL's user may read and write public.keyv and public.cairn_leases (and, while one of them is missing, create it in schema public).",
    );
    // Before: "Check that postgres is running and that the URL's user may create tables."
    expect(down).not.toContain("may create tables");
  });
});
