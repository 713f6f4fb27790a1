/**
 * The postgres store under faults, against a real postgres cluster: connections the server ends,
 * several stores in one process, roles with their own schema or without the right to create
 * tables, processes opening an empty database at once, and URLs the server refuses.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheBackendError, CacheStore, CacheStoreUrlError } from "../index.ts";
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

describe("a role that may not read the entries' table", () => {
  it("lists no entries but fails, saying which right to grant; clear and prune remove nothing", async (context) => {
    const { url } = serverOf(context);
    await admin.query("CREATE ROLE dana LOGIN");
    await admin.query("GRANT SELECT, INSERT, UPDATE, DELETE ON public.keyv, public.cairn_leases TO dana");
    await admin.query("REVOKE SELECT ON public.keyv FROM dana");
    const namespace = "unreadable";
    const ours = await CacheStore.fromUrl(url, { namespace });
    const danas = await CacheStore.fromUrl(urlAs(url, "dana"), { namespace, retryMs: 0 });
    try {
      for (const task of ["a", "b", "c"]) await ours.set(makeEntry(task));
      // Before: [] (the adapter's iterator told its failure only as an event), so `cairn cache ls` said "is empty".
      const error = await danas.list().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CacheBackendError);
      expect((error as Error).message).toMatch(
        /^The postgres cache at postgres(ql)?:\/\/\*\*\*@127\.0\.0\.1:\d+\/postgres failed to list entries: permission denied for table keyv\. The URL's user lacks a right on the cache's tables: .*`GRANT SELECT, INSERT, UPDATE, DELETE ON public\.keyv, public\.cairn_leases TO <user>`/,
      );
      for (const acting of [() => danas.listSummaries(), () => danas.clear(), () => danas.prune({ olderThanMs: 0 })]) {
        await expect(acting()).rejects.toThrow(/failed to list entries: permission denied for table keyv/);
      }
      expect((await ours.list()).length).toBe(3);
    } finally {
      await ours.close();
      await danas.close();
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
