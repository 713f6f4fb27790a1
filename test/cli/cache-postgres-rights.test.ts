/**
 * `cairn cache ls`, `clear` and `prune` against a postgres store whose URL's user may write the
 * entries' table but not read it: they fail, saying which right to grant, where `ls` said the
 * cache "is empty" and exited 0 (the adapter's listing ended quietly on its failed query). And
 * `cairn run` with a user that may not insert entries: refused at once, as a wrong password is.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheStore } from "@cairn/cache";
import { type PostgresServer, runSql, startPostgresServer } from "../../packages/cache/test/postgres-server.ts";
import { makeEntry } from "../../packages/cache/test/store-suite.ts";
import { cairn, repo, tmp } from "./helpers.ts";

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
    // erin may do all but add entries.
    `CREATE ROLE erin LOGIN PASSWORD '${password}'`,
    "GRANT SELECT, INSERT, UPDATE, DELETE ON public.keyv, public.cairn_leases TO erin",
    "REVOKE INSERT ON public.keyv FROM erin",
  ]);
}, 120_000);

afterAll(() => server?.stop());

/** The server's URL logged in as `user`. */
function urlAs(user: string): string {
  const url = new URL(server!.url);
  url.username = user;
  url.password = password;
  return url.href;
}

describe("a postgres cache store whose user may not read the entries' table", () => {
  it("cairn cache ls, clear and prune fail with what to grant, exit 2, remove nothing, and never show the password", async (context) => {
    if (!server) return context.skip(skip);
    const env = { CAIRN_CACHE_URL: urlAs("alice") };
    const cwd = await tmp("cairn-cli-pg-rights-");
    for (const args of [["cache", "ls"], ["cache", "clear"], ["cache", "prune", "--older-than", "1s"]]) {
      const r = await cairn(args, { cwd, env });
      const said = `cairn ${args.join(" ")}: ${r.stdout}${r.stderr}`;
      // Before, ls: `The cache at postgres://alice:***@127.0.0.1:PORT/postgres is empty.`, exit 0.
      // Then exit 3, as for a dead store, after ~1.5 s of retries; now 2, as for a wrong password.
      expect(r.code, said).toBe(2);
      expect(r.stdout, said).not.toContain("is empty");
      expect(r.stderr, said).toMatch(
        /^cairn: CacheStoreUrlError: Expected the user of a postgres URL to hold the rights the cache needs .*, got "postgres(ql)?:\/\/alice:\*\*\*@127\.0\.0\.1:\d+\/postgres" from CAIRN_CACHE_URL \(role alice lacks SELECT on public\.keyv\)\. .*`GRANT SELECT ON public\.keyv TO alice`/,
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

describe("a postgres cache store whose user may not insert entries", () => {
  it("cairn run is refused before any task runs, naming the missing right and the GRANT, exit 2 as for a wrong password", async (context) => {
    if (!server) return context.skip(skip);
    const cwd = await tmp("cairn-cli-pg-insert-");
    for (const strict of ["0", "1"]) {
      const r = await cairn(["run", join(repo, "test/fixtures/ok.flow.ts")], { cwd, env: { CAIRN_CACHE_URL: urlAs("erin"), CAIRN_CACHE_STRICT: strict } });
      const said = `strict=${strict}: ${r.stdout}${r.stderr}`;
      // Before: every task ran, and storing its entry was retried ~1.5 s and then taken for a dead
      // store ("The rest of the run goes on without the shared cache"), exit 0; strict: exit 3 or 1.
      expect(r.code, said).toBe(2);
      expect(r.stderr, said).toMatch(
        /^cairn: CacheStoreUrlError: Expected the user of a postgres URL to hold the rights the cache needs .*, got "postgres(ql)?:\/\/erin:\*\*\*@127\.0\.0\.1:\d+\/postgres" from CAIRN_CACHE_URL \(role erin lacks INSERT on public\.keyv\)\. .*`GRANT INSERT ON public\.keyv TO erin`/,
      );
      expect(said).not.toContain("doubling");
      expect(said).not.toContain("goes on without");
      expect(said).not.toContain(password);
    }
  }, 60_000);
});

describe("a postgres cache store whose user may only read it (USAGE and SELECT)", () => {
  it("cairn plan, explain and cache ls read its entries, exit 0; cairn run is refused, exit 2, saying those commands need SELECT alone", async (context) => {
    if (!server) return context.skip(skip);
    const cwd = await tmp("cairn-cli-pg-reader-");
    const flowFile = join(repo, "test/fixtures/ok.flow.ts");
    // The flow's entries, stored by a role that may write; then rita, who may only read.
    const wrote = await cairn(["run", flowFile], { cwd, env: { CAIRN_CACHE_URL: server.url } });
    expect(wrote.code, wrote.stderr).toBe(0);
    await runSql(server.url, [`CREATE ROLE rita LOGIN PASSWORD '${password}'`, "GRANT SELECT ON public.keyv, public.cairn_leases TO rita"]);
    const env = { CAIRN_CACHE_URL: urlAs("rita") };
    // Before: each exit 2, "role rita lacks INSERT, UPDATE, DELETE on public.keyv and public.cairn_leases".
    const plan = await cairn(["plan", flowFile], { cwd, env });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain("2 of 2 tasks would come from the cache");
    const json = JSON.parse((await cairn(["plan", flowFile, "--json"], { cwd, env })).stdout) as Array<{ task: string; key?: string }>;
    const explain = await cairn(["explain", flowFile, json[1]!.task], { cwd, env });
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout).toContain(`${json[1]!.task} would come from the cache`);
    const ls = await cairn(["cache", "ls"], { cwd, env });
    expect(ls.code, ls.stderr).toBe(0);
    for (const { key } of json) expect(ls.stdout).toContain(key!.slice(0, 16));
    const run = await cairn(["run", flowFile], { cwd, env });
    const said = `${run.stdout}${run.stderr}`;
    expect(run.code, said).toBe(2);
    expect(run.stderr).toMatch(/^cairn: CacheStoreUrlError: .*\(role rita lacks INSERT, UPDATE, DELETE on public\.keyv and public\.cairn_leases\)\. .*`GRANT INSERT, UPDATE, DELETE ON public\.keyv, public\.cairn_leases TO rita`\. Commands that only read \(`cairn plan`, `cairn explain`, `cairn cache ls`\) work with USAGE and SELECT alone\./);
    expect(said).not.toContain("doubling");
    for (const r of [plan, explain, ls, run]) expect(`${r.stdout}${r.stderr}`).not.toContain(password);
  }, 120_000);
});
