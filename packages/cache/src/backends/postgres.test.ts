/**
 * The postgres store under faults, against a real postgres cluster: connections the server ends,
 * several stores in one process.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheStore } from "../index.ts";
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
