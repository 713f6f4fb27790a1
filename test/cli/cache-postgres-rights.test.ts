/**
 * `cairn cache ls`, `clear` and `prune` against a postgres store whose URL's user may write the
 * entries' table but not read it: they fail, saying which right to grant, where `ls` said the
 * cache "is empty" and exited 0 (the adapter's listing ended quietly on its failed query).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheStore } from "@cairn/cache";
import { type PostgresServer, runSql, startPostgresServer } from "../../packages/cache/test/postgres-server.ts";
import { makeEntry } from "../../packages/cache/test/store-suite.ts";
import { cairn, tmp } from "./helpers.ts";

/** Distinctive (mixed case): no key, run id or port holds it. */
const password = "Qm7Vx2Kp";

let server: PostgresServer | undefined;
let skip: string | undefined;

beforeAll(async () => {
  const started = await startPostgresServer();
  if ("skip" in started) {
    skip = started.skip;
    return;
  }
  server = started;
  // The tables, with 3 entries, as the cluster's superuser; then alice, who may write them but not read the entries.
  const store = await CacheStore.fromUrl(server.url);
  try {
    for (const task of ["prep", "train", "eval"]) await store.set(makeEntry(task));
  } finally {
    await store.close();
  }
  await runSql(server.url, [
    `CREATE ROLE alice LOGIN PASSWORD '${password}'`,
    "GRANT SELECT, INSERT, UPDATE, DELETE ON public.keyv, public.cairn_leases TO alice",
    "REVOKE SELECT ON public.keyv FROM alice",
  ]);
}, 120_000);

afterAll(() => server?.stop());

describe("a postgres cache store whose user may not read the entries' table", () => {
  it("cairn cache ls, clear and prune fail with what to grant, exit non-zero, remove nothing, and never show the password", async (context) => {
    if (!server) return context.skip(skip);
    const url = new URL(server.url);
    url.username = "alice";
    url.password = password;
    const env = { CAIRN_CACHE_URL: url.href };
    const cwd = await tmp("cairn-cli-pg-rights-");
    for (const args of [["cache", "ls"], ["cache", "clear"], ["cache", "prune", "--older-than", "1s"]]) {
      const r = await cairn(args, { cwd, env });
      const said = `cairn ${args.join(" ")}: ${r.stdout}${r.stderr}`;
      // Before, ls: `The cache at postgres://alice:***@127.0.0.1:PORT/postgres is empty.`, exit 0.
      expect(r.code, said).not.toBe(0);
      expect(r.stdout, said).not.toContain("is empty");
      expect(r.stderr, said).toMatch(
        /^cairn: CacheBackendError: The postgres cache at postgres(ql)?:\/\/alice:\*\*\*@127\.0\.0\.1:\d+\/postgres failed to list entries: permission denied for table keyv\. .*`GRANT SELECT, INSERT, UPDATE, DELETE ON public\.keyv, public\.cairn_leases TO <user>`/,
      );
      expect(said).not.toContain(password);
    }
    const store = await CacheStore.fromUrl(server.url);
    try {
      expect(await store.list()).toHaveLength(3);
    } finally {
      await store.close();
    }
  }, 60_000);
});
