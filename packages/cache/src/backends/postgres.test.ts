/**
 * The postgres store under faults, against a real postgres cluster: connections the server ends,
 * several stores in one process, roles with their own schema or without the right to create
 * tables, processes opening an empty database at once, and URLs the server refuses.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheBackendError, CacheReadOnlyError, CacheStore, CacheStoreUrlError } from "../index.ts";
import { fixture, lineFrom, startTs } from "../../test/_child.ts";
import { type PostgresServer, startPostgresServer, terminateClients } from "../../test/postgres-server.ts";
import { makeEntry } from "../../test/store-suite.ts";

let server: PostgresServer | undefined;
let skip: string | undefined;
/** The cluster's superuser (`cairn`), for setting up roles and looking at the tables. */
let admin: pg.Pool;

beforeAll(async () => {
  const started = await startPostgresServer();
  if ("skip" in started) {
    skip = started.skip;
    return;
  }
  server = started;
  admin = new pg.Pool({ connectionString: server.url });
  // The tables exist before the roles below get their rights on them.
  await (await CacheStore.fromUrl(server.url)).close();
}, 120_000);

afterAll(async () => {
  await admin?.end();
  await server?.stop();
});

/** The server's URL, or skips the test when there is no postgres here. */
function serverOf(context: { skip: (note?: string) => void }): PostgresServer {
  if (!server) context.skip(skip);
  return server!;
}

/** `url` logged in as `user` (with `password`), on database `database`. */
function urlAs(url: string, user: string, { password, database = "postgres" }: { password?: string; database?: string } = {}): string {
  const at = new URL(url);
  at.username = user;
  at.password = password ?? "";
  at.pathname = `/${database}`;
  return at.href;
}

describe("connections the server ends (a restart, pg_terminate_backend)", () => {
  it("an app holding an idle store lives on, and its next operation connects again", async (context) => {
    const { url } = serverOf(context);
    const app = startTs(fixture("idle-postgres-store.ts"), [url]);
    try {
      await lineFrom(app, (line) => line === "open");
      expect(await terminateClients(url)).toBeGreaterThan(0); // the app's idle connection among them
      await new Promise((resolve) => setTimeout(resolve, 300)); // the app hears of it meanwhile
      app.child.kill("SIGUSR2");
      const exit = await app.done;
      // It died before with "Unhandled 'error' event ... terminating connection due to administrator command".
      expect(exit.stderr).toBe("");
      expect(exit.code).toBe(0);
      expect(exit.stdout).toContain("alive true");
    } finally {
      app.child.kill("SIGKILL");
    }
  });
});

describe("several postgres stores in one process", () => {
  it("closing one leaves the others working: each has its own connections", async (context) => {
    const { url } = serverOf(context);
    const first = await CacheStore.fromUrl(url);
    const second = await CacheStore.fromUrl(url, { namespace: "second" });
    try {
      await first.close();
      // Before, closing `first` ended the one pool of the process: "Cannot use a pool after calling end on the pool".
      const entry = makeEntry();
      await second.set(entry);
      expect(await second.get(entry.key)).toMatchObject({ key: entry.key });
      const lease = await second.acquireLease("closed-neighbour", { ttlMs: 10_000, owner: "second" });
      expect(lease.acquired).toBe(true);
      if (lease.acquired) await lease.renew();
    } finally {
      await second.close();
    }
  });
});

describe("roles", () => {
  it("a role whose search_path starts with its own schema shares the leases and entries of the others", async (context) => {
    const { url } = serverOf(context);
    await admin.query("CREATE ROLE alice LOGIN");
    await admin.query("CREATE SCHEMA alice AUTHORIZATION alice");
    // So that only the schema, not a missing right, is what differs (see the next test).
    await admin.query("GRANT CREATE ON SCHEMA public TO alice");
    await admin.query("GRANT SELECT, INSERT, UPDATE, DELETE ON public.keyv, public.cairn_leases TO alice");
    const ours = await CacheStore.fromUrl(url);
    const alices = await CacheStore.fromUrl(urlAs(url, "alice"));
    try {
      const held = await ours.acquireLease("train-shared", { ttlMs: 30_000, owner: "cairn's run" });
      expect(held.acquired).toBe(true);
      // Before, alice's leases went to alice.cairn_leases: she took the same lease and ran the task twice.
      expect(await alices.acquireLease("train-shared", { ttlMs: 30_000, owner: "alice's run" })).toMatchObject({ acquired: false, holder: "cairn's run" });
      const entry = makeEntry();
      await ours.set(entry);
      expect(await alices.get(entry.key)).toMatchObject({ key: entry.key });
      const { rows } = await admin.query("SELECT to_regclass('alice.cairn_leases') AS own");
      expect(rows[0].own).toBeNull();
    } finally {
      await ours.close();
      await alices.close();
    }
  });

  it("a role that may read and write the tables but not create any in the schema uses the store", async (context) => {
    const { url } = serverOf(context);
    await admin.query("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    await admin.query("CREATE ROLE bob LOGIN");
    await admin.query("GRANT SELECT, INSERT, UPDATE, DELETE ON public.keyv, public.cairn_leases TO bob");
    // Before: CacheBackendError "failed to connect: permission denied for schema public".
    const bobs = await CacheStore.fromUrl(urlAs(url, "bob"));
    try {
      const entry = makeEntry();
      await bobs.set(entry);
      expect(await bobs.get(entry.key)).toMatchObject({ key: entry.key });
      const lease = await bobs.acquireLease("bob-task", { ttlMs: 10_000, owner: "bob's run" });
      expect(lease.acquired).toBe(true);
      if (lease.acquired) await lease.release();
    } finally {
      await bobs.close();
    }
  });
});

describe("a role that lacks a right the store needs", () => {
  /** A URL mistake refused at once: retries would not give the right, and the store is up. */
  const refused = (error: unknown) => {
    expect(error).toBeInstanceOf(CacheStoreUrlError);
    expect(error).not.toBeInstanceOf(CacheBackendError);
    return (error as Error).message;
  };

  it("is refused when opening, naming the right, the table and the GRANT; nothing is listed, cleared or pruned", async (context) => {
    const { url } = serverOf(context);
    await admin.query("CREATE ROLE dana LOGIN");
    await admin.query("GRANT SELECT, INSERT, UPDATE, DELETE ON public.keyv, public.cairn_leases TO dana");
    await admin.query("REVOKE SELECT ON public.keyv FROM dana");
    await admin.query("REVOKE DELETE ON public.cairn_leases FROM dana");
    const namespace = "unreadable";
    const ours = await CacheStore.fromUrl(url, { namespace });
    try {
      for (const task of ["a", "b", "c"]) await ours.set(makeEntry(task));
      // Before: it opened, and its listing failed with CacheBackendError after the retries ("permission
      // denied for table keyv", a GRANT of every right TO <user>); earlier still it listed none.
      const message = refused(await CacheStore.fromUrl(urlAs(url, "dana"), { namespace }).catch((e: unknown) => e));
      expect(message).toMatch(
        /^Expected the user of a postgres URL to hold the rights the cache needs \(USAGE on schema public; SELECT, INSERT, UPDATE, DELETE on public\.keyv and public\.cairn_leases; .*\), got "postgres(ql)?:\/\/[^"]*@127\.0\.0\.1:\d+\/postgres" \(role dana lacks SELECT on public\.keyv, and DELETE on public\.cairn_leases\)\. A superuser or the owner of the schema and tables runs `GRANT SELECT ON public\.keyv TO dana` and `GRANT DELETE ON public\.cairn_leases TO dana`\.$/,
      );
      expect((await ours.list()).length).toBe(3);
    } finally {
      await ours.close();
    }
  });

  it("that it lost after opening fails a read, a write or a lease at once, not retried, naming what it lacks", async (context) => {
    const { url } = serverOf(context);
    await admin.query("CREATE ROLE frank LOGIN");
    await admin.query("GRANT SELECT, INSERT, UPDATE, DELETE ON public.keyv, public.cairn_leases TO frank");
    const entry = makeEntry("revoked");
    const franks = await CacheStore.fromUrl(urlAs(url, "frank"), { namespace: "revoked", retryMs: 20_000 });
    try {
      await franks.set(entry);
      const cases: Array<[string, string, () => Promise<unknown>, RegExp]> = [
        ["SELECT ON public.keyv", "read an entry", () => franks.get(entry.key), /role frank lacks SELECT on public\.keyv; the server answered "permission denied for table keyv" when asked to read an entry\)\. .*`GRANT SELECT ON public\.keyv TO frank`/],
        ["INSERT ON public.keyv", "write an entry", () => franks.set(entry), /role frank lacks INSERT on public\.keyv; .* when asked to write an entry\)\. .*`GRANT INSERT ON public\.keyv TO frank`/],
        ["INSERT ON public.cairn_leases", "acquire a lease", () => franks.acquireLease("revoked-lease", { ttlMs: 10_000, owner: "frank's run" }), /role frank lacks INSERT on public\.cairn_leases; .* when asked to acquire a lease\)\. .*`GRANT INSERT ON public\.cairn_leases TO frank`/],
      ];
      for (const [right, operation, act, said] of cases) {
        await admin.query(`REVOKE ${right} FROM frank`);
        const began = performance.now();
        // Before: CacheBackendError after the whole retryMs, taken by a run for a dead store.
        const message = refused(await act().catch((e: unknown) => e));
        expect(performance.now() - began, operation).toBeLessThan(5000);
        expect(message, operation).toMatch(said);
        await admin.query(`GRANT ${right} TO frank`);
      }
    } finally {
      await franks.close();
    }
  });

  it("without USAGE on the schema, or CREATE while the tables are missing, is refused when opening with the GRANT", async (context) => {
    const { url } = serverOf(context);
    await admin.query("CREATE DATABASE no_usage");
    await admin.query("CREATE DATABASE no_tables");
    await admin.query("CREATE ROLE gina LOGIN");
    await (await CacheStore.fromUrl(urlAs(url, "cairn", { database: "no_usage" }))).close();
    const noUsage = new pg.Pool({ connectionString: urlAs(url, "cairn", { database: "no_usage" }) });
    try {
      await noUsage.query("GRANT SELECT, INSERT, UPDATE, DELETE ON public.keyv, public.cairn_leases TO gina");
      await noUsage.query("REVOKE USAGE ON SCHEMA public FROM PUBLIC");
    } finally {
      await noUsage.end();
    }
    // Before: CacheBackendError "failed to connect: permission denied for schema public", an outage to the CLI (exit 3).
    expect(refused(await CacheStore.fromUrl(urlAs(url, "gina", { database: "no_usage" })).catch((e: unknown) => e))).toMatch(
      /\(role gina lacks USAGE on schema public\)\. A superuser or the owner of the schema and tables runs `GRANT USAGE ON SCHEMA public TO gina`\.$/,
    );
    // Postgres 15 on: no one but the owner may create in schema public.
    await admin.query("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    expect(refused(await CacheStore.fromUrl(urlAs(url, "gina", { database: "no_tables" })).catch((e: unknown) => e))).toMatch(
      /\(role gina lacks CREATE on schema public \(to create public\.keyv and public\.cairn_leases, which are missing\)\)\. .*`GRANT CREATE ON SCHEMA public TO gina`, or opens the store once as a role that may create the tables\.$/,
    );
  });
});

describe("a store opened for reading only (access: \"read\")", () => {
  it("needs USAGE and SELECT alone, and refuses every change as CacheReadOnlyError, writing nothing", async (context) => {
    const { url } = serverOf(context);
    await admin.query("CREATE ROLE rita LOGIN");
    await admin.query("GRANT SELECT ON public.keyv, public.cairn_leases TO rita");
    const namespace = "read-only";
    const ours = await CacheStore.fromUrl(url, { namespace });
    const entry = makeEntry("read");
    const rita = await CacheStore.fromUrl(urlAs(url, "rita"), { namespace, access: "read" }).catch((e: unknown) => e);
    try {
      await ours.set(entry);
      const lease = await ours.acquireLease(entry.key, { ttlMs: 60_000, owner: "ours" });
      // Before: refused, "role rita lacks INSERT, UPDATE, DELETE on public.keyv and public.cairn_leases".
      expect(rita).toBeInstanceOf(CacheStore);
      const reader = rita as CacheStore;
      expect((await reader.list({ keep: true })).map((e) => e.key)).toEqual([entry.key]);
      expect((await reader.lookup(entry.key, { keep: true })).entry?.key).toBe(entry.key);
      expect(await reader.peek(entry.key)).toBeDefined();
      expect((await reader.leaseHolder(entry.key))?.holder).toBe("ours");
      if (lease.acquired) await lease.release();
      const changes: Array<[string, () => Promise<unknown>]> = [
        ["write an entry", () => reader.set(makeEntry("other"))],
        ["delete an entry", () => reader.delete(entry.key)],
        ["clear", () => reader.clear()],
        ["prune", () => reader.prune({ olderThanMs: 0 })],
        ["acquire a lease", () => reader.acquireLease(entry.key, { ttlMs: 1000, owner: "rita" })],
        ["look up an entry, evicting", () => reader.lookup(entry.key)],
        ["list entries, evicting", () => reader.list()],
      ];
      for (const [operation, change] of changes) {
        const error = await change().catch((e: unknown) => e);
        expect(error, operation).toBeInstanceOf(CacheReadOnlyError);
        expect((error as Error).message, operation).toMatch(/^Expected a cache store opened for writing to .*, got the store at postgres(ql)?:\/\/\S*@127\.0\.0\.1:\d+\/postgres opened with `access: "read"`, which changes nothing\. Open it with `access: "write"`/);
        expect((error as Error).message, operation).toContain(operation);
      }
      expect((await ours.list()).map((e) => e.key)).toEqual([entry.key]);
    } finally {
      await ours.close();
      if (rita instanceof CacheStore) await rita.close();
    }
  });

  it("without SELECT is refused when opening, naming the SELECT to grant and no other right", async (context) => {
    const { url } = serverOf(context);
    await admin.query("CREATE ROLE ruth LOGIN");
    await admin.query("GRANT SELECT ON public.cairn_leases TO ruth");
    const error = await CacheStore.fromUrl(urlAs(url, "ruth"), { access: "read" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheStoreUrlError);
    expect((error as Error).message).toMatch(
      /^Expected the user of a postgres URL to hold the rights the cache needs \(USAGE on schema public; SELECT on public\.keyv and public\.cairn_leases, for reading only\), got ".*" \(role ruth lacks SELECT on public\.keyv\)\. A superuser or the owner of the schema and tables runs `GRANT SELECT ON public\.keyv TO ruth`\.$/,
    );
  });

  it("of a fresh database creates no table, and reads as empty", async (context) => {
    const { url } = serverOf(context);
    await admin.query("CREATE DATABASE read_fresh");
    await admin.query("CREATE ROLE rose LOGIN");
    const fresh = new pg.Pool({ connectionString: urlAs(url, "cairn", { database: "read_fresh" }) });
    try {
      // Postgres 15 on: no one but the owner may create in schema public; said for older ones.
      await fresh.query("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
      // Before: refused, "role rose lacks CREATE on schema public (to create public.keyv and public.cairn_leases, which are missing)".
      const store = await CacheStore.fromUrl(urlAs(url, "rose", { database: "read_fresh" }), { access: "read" });
      try {
        expect(await store.list({ keep: true })).toEqual([]);
        expect(await store.lookup("a".repeat(64), { keep: true })).toEqual({});
        expect(await store.leaseHolder("a".repeat(64))).toBeUndefined();
      } finally {
        await store.close();
      }
      const tables = await fresh.query("SELECT to_regclass('public.keyv') AS keyv, to_regclass('public.cairn_leases') AS leases");
      expect(tables.rows[0]).toEqual({ keyv: null, leases: null });
    } finally {
      await fresh.end();
    }
  });
});

describe("a listing longer than one page", () => {
  it("reads every live entry of its namespace across pages, and no expired one", async (context) => {
    const { url } = serverOf(context);
    const store = await CacheStore.fromUrl(url, { namespace: "paged" });
    try {
      const live = Array.from({ length: 1100 }, (_, i) => makeEntry(`live-${i}`));
      for (const entry of live) await store.set(entry);
      const expired = Array.from({ length: 30 }, (_, i) => makeEntry(`gone-${i}`));
      for (const entry of expired) await store.set(entry, { ttlMs: 1 });
      await new Promise((resolve) => setTimeout(resolve, 20));
      const listed = (await store.listSummaries()).map((entry) => entry.key).sort();
      expect(listed).toEqual(live.map((entry) => entry.key).sort());
    } finally {
      await store.close();
    }
  });
});

describe("an empty database opened by several processes at once", () => {
  it("every one of them opens it, whichever creates the tables", async (context) => {
    const { url } = serverOf(context);
    // It failed in about one round of 15 with `type "keyv" already exists` (42710).
    for (let round = 0; round < 20; round++) {
      const database = `race_${round}`;
      await admin.query(`CREATE DATABASE ${database}`);
      const at = urlAs(url, "cairn", { database });
      const opened = await Promise.allSettled(Array.from({ length: 8 }, () => CacheStore.fromUrl(at)));
      await Promise.all(opened.map((o) => (o.status === "fulfilled" ? o.value.close() : undefined)));
      const failed = opened.flatMap((o) => (o.status === "rejected" ? [String(o.reason)] : []));
      expect(failed, `round ${round}`).toEqual([]);
    }
  }, 120_000);
});

describe("URLs the server refuses are the URL's mistake, not an outage", () => {
  it("a database or user the server does not have is a CacheStoreUrlError naming it", async (context) => {
    const { url } = serverOf(context);
    const error = await CacheStore.fromUrl(urlAs(url, "cairn", { database: "no_such_db" })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheStoreUrlError);
    expect(error).not.toBeInstanceOf(CacheBackendError);
    expect((error as Error).message).toMatch(/Expected the path of a postgres URL to name a database the server has, got ".*\/no_such_db".*database "no_such_db" does not exist.*createdb/);
    const stranger = await CacheStore.fromUrl(urlAs(url, "no_such_role")).catch((e: unknown) => e);
    expect(stranger).toBeInstanceOf(CacheStoreUrlError);
    expect((stranger as Error).message).toMatch(/Expected the user of a postgres URL to be one the server lets in, .*role "no_such_role" does not exist/);
  });

  it("a wrong password is a CacheStoreUrlError that never shows the password", async (context) => {
    const { url } = serverOf(context);
    await admin.query("CREATE ROLE carol LOGIN PASSWORD 'right-secret'");
    await admin.query("GRANT SELECT, INSERT, UPDATE, DELETE ON public.keyv, public.cairn_leases TO carol");
    const { rows } = await admin.query("SHOW hba_file");
    // carol by password, everyone else as before (trust).
    await admin.query(
      `COPY (VALUES ('local all all trust'), ('host all carol 127.0.0.1/32 scram-sha-256'), ('host all all 127.0.0.1/32 trust')) TO '${rows[0].hba_file}'`,
    );
    await admin.query("SELECT pg_reload_conf()");
    const wrong = urlAs(url, "carol", { password: "wrong-secret" });
    // The postmaster reads the file again soon after the signal.
    for (let tries = 0; ; tries++) {
      const probe = new pg.Client({ connectionString: wrong });
      const refused = await probe.connect().then(() => false, (e: { code?: string }) => e.code === "28P01");
      await probe.end().catch(() => {});
      if (refused) break;
      if (tries > 50) throw new Error("postgres did not ask carol for a password after pg_reload_conf()");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const error = await CacheStore.fromUrl(wrong).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheStoreUrlError);
    const said = `${(error as Error).message} ${String((error as Error).cause)}`;
    expect(said).toMatch(/Expected the user name and password of a postgres URL to be accepted by the server, got "postgres(ql)?:\/\/carol:\*\*\*@127\.0\.0\.1:\d+\/postgres".*password authentication failed for user "carol"/);
    expect(said).not.toContain("wrong-secret");
    const right = await CacheStore.fromUrl(urlAs(url, "carol", { password: "right-secret" }));
    await right.close();
  });
});
