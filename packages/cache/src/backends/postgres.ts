import { Keyv } from "keyv";
import { CacheBackendError, CacheStoreUrlError } from "../errors.ts";
import type { LeaseBackend } from "../lease.ts";
import { uniqueId } from "./_files.ts";
import { type CacheBackend, entriesOf, redactUrl, sharedStoreSerialization } from "./_backend.ts";

type Query = (sql: string, values?: unknown[]) => Promise<Array<Record<string, unknown>>>;

/** Epoch ms on the database's clock, so every client judges expiry alike. */
const NOW_MS = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/**
 * An entry's expiry in its stored text, epoch ms on the database's clock: the last member of the
 * outer object (`{"value":{...},"expires":N}`), which is the only place a digit can stand just
 * before the final `}` (the value is an object). Entries written by keyv before hold the same
 * member, stamped by the writer's clock. A postgres (POSIX) regex.
 */
const EXPIRES_PATTERN = ',"expires":([0-9]{1,15})[}]$';
/** SQL: the row `value` has not expired by the database's clock (no expiry: it never does). */
const LIVE = `COALESCE(substring(value from '${EXPIRES_PATTERN}')::bigint > ${NOW_MS}, true)`;

/** A query postgres has not answered within this long fails (and `CacheStore` tries it again). */
const QUERY_TIMEOUT_MS = 5000;

/** Rows a listing reads per query: the adapter's default of 10 made `cairn cache ls` slow. */
const PAGE_ROWS = 500;

/**
 * The errors of connecting that are the URL's mistake, not an outage: refused as a
 * `CacheStoreUrlError` (as redis's database out of range), never gone on without.
 */
const URL_MISTAKES: Record<string, { expected: string; hint: string }> = {
  "3D000": {
    expected: "the path of a postgres URL to name a database the server has",
    hint: "Create the database (`createdb NAME`), or fix its name in the URL's path.",
  },
  "28P01": {
    expected: "the user name and password of a postgres URL to be accepted by the server",
    hint: "Fix the password (percent-encoded: `%40` for `@`), or the server's pg_hba.conf.",
  },
  "28000": {
    expected: "the user of a postgres URL to be one the server lets in",
    hint: "Fix the user name in the URL, or create the role and allow it in the server's pg_hba.conf.",
  },
};

/**
 * Codes of creating a table that another process created at the same moment: the unique index
 * of the catalog (23505), the table's row type (42710), the table itself (42P07).
 */
const CREATED_MEANWHILE = new Set(["23505", "42710", "42P07"]);

/** What a store is opened for: `read` changes nothing, so it needs only USAGE and SELECT. */
export type StoreAccess = "read" | "write";

/** undefined_table: a table a store opened for reading finds missing (never created) reads as empty. */
const NO_TABLE = "42P01";

/** The schema of both tables: @keyv/postgres's default, named in every statement so search_path never moves them. */
const SCHEMA = "public";
/** The adapter's table of entries (its default name). */
const ENTRIES = `${SCHEMA}.keyv`;
const LEASES = `${SCHEMA}.cairn_leases`;

/**
 * @internal Opens a postgres store (@keyv/postgres, table `public.keyv`) plus a
 * `public.cairn_leases` table, on a pg pool of its own. Connecting and every query are bounded
 * (pg waits forever by default), so a dead server fails an operation instead of hanging it;
 * `CacheStore` retries it for a moment. The pool is ours, not the adapter's: the adapter keeps
 * one pool per process, which closing any store ended under all the others, and which had no
 * `error` listener, so a connection the server closed while idle (a restart,
 * `pg_terminate_backend`) crashed the process. Ours drops such a connection and the next query
 * opens another; a server that stays down fails that query, as any outage.
 * `access: "read"`: only USAGE and SELECT are checked, no table is created, and a missing one
 * reads as empty (a fresh store), so a role that may only read opens it (`cairn plan`).
 */
export async function openPostgresBackend(url: string, namespace: string, connectTimeoutMs: number, access: StoreAccess = "write"): Promise<CacheBackend> {
  const location = redactUrl(url);
  const [{ default: KeyvPostgres }, { default: pg }] = await Promise.all([import("@keyv/postgres"), import("pg")]);
  const pool = new pg.Pool({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs, query_timeout: QUERY_TIMEOUT_MS });
  // pg drops the connection itself; without a listener the event would end the process.
  pool.on("error", () => {});
  const query: Query = async (sql, values) => {
    try {
      return (await pool.query(sql, values)).rows as Array<Record<string, unknown>>;
    } catch (error) {
      // Read only, nothing creates the tables: one not there yet holds no entry and no lease.
      if (access === "read" && (error as { code?: unknown }).code === NO_TABLE && /^\s*SELECT\b/i.test(sql)) return [];
      throw error;
    }
  };
  class NamespacedKeyvPostgres extends KeyvPostgres {
    /**
     * This store's own pool. The adapter's constructor sends its `CREATE TABLE IF NOT EXISTS`
     * here first: skipped, as it needs the right to create in the schema even when the table
     * exists; `createTables` creates it only when it is missing.
     */
    override async connect(): Promise<Query> {
      return async (sql, values) => (/^\s*CREATE\b/i.test(sql) ? [] : query(sql, values));
    }

    /** Ends this store's pool alone. */
    override async disconnect(): Promise<void> {
      await pool.end();
    }

    /**
     * Removes the rows of this namespace only. The adapter's own clear() does not escape the
     * namespace in its LIKE pattern, so `_` matched any character: clearing `team_a` also
     * removed the entries of `team-a`, another project sharing the database. With the pattern
     * of the iterator below, this removes the rows `CacheStore.list` sees, no more.
     */
    override async clear(): Promise<void> {
      await this.query(`DELETE FROM ${this.table} WHERE key LIKE $1`, [this.pattern]);
    }

    /*
     * Expiry by the database's clock, as the leases': keyv judged it by each client's clock and
     * deleted the entry on a read whose clock said it had passed (see sharedStoreSerialization).
     * `set` stamps the expiry in SQL; `get` and `iterator` skip an expired entry, never deleting
     * it (a reader decides nothing for the others); prune's sweep removes it, by the same clock.
     */
    override async set(key: string, value: string, ttl?: number): Promise<void> {
      const stamped = `CASE WHEN $3::bigint IS NULL THEN $2 ELSE left($2, -1) || ',"expires":' || (${NOW_MS} + $3::bigint) || '}' END`;
      await this.query(
        `INSERT INTO ${this.table} (key, value) VALUES ($1, ${stamped}) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [key, value, typeof ttl === "number" ? ttl : null],
      );
    }

    override async get(key: string): Promise<string | undefined> {
      const rows = await this.query(`SELECT value FROM ${this.table} WHERE key = $1 AND ${LIVE}`, [key]);
      return rows[0]?.value as string | undefined;
    }

    /**
     * The live entries of this namespace, a page at a time in key order. Our own, not the adapter's:
     * its iterator reported a failed query only as an `error` event and then ended as if the
     * table held no more rows, so a role that may not read the table (`permission denied for
     * table keyv`) listed an empty cache, and clear and prune acted on a cut-short listing. A
     * failed page throws here, and `CacheStore` reports it as a `CacheBackendError`.
     */
    override async *iterator(): AsyncGenerator<[string, string]> {
      for (let after: string | undefined; ; ) {
        const rows = await this.query(
          `SELECT key, value FROM ${this.table} WHERE key LIKE $1 AND ${LIVE}${after === undefined ? "" : " AND key > $3"} ORDER BY key LIMIT $2`,
          after === undefined ? [this.pattern, PAGE_ROWS] : [this.pattern, PAGE_ROWS, after],
        );
        for (const row of rows) yield [String(row.key), String(row.value)];
        if (rows.length < PAGE_ROWS) return;
        after = String(rows.at(-1)!.key);
      }
    }

    /** Removes the entries of this namespace that have expired by the database's clock. */
    async sweepExpired(): Promise<void> {
      await this.query(`DELETE FROM ${this.table} WHERE key LIKE $1 AND NOT ${LIVE}`, [this.pattern]);
    }

    private get table(): string {
      return `${this.opts.schema}.${this.opts.table}`;
    }

    /** LIKE pattern of this namespace's keys. */
    private get pattern(): string {
      return this.namespace === undefined ? "%" : `${escapeLike(this.namespace)}:%`;
    }
  }
  const store = new NamespacedKeyvPostgres({ schema: SCHEMA });
  // The adapter's constructor reports a failure of its CREATE TABLE as an event, which ends the
  // process when no one listens; `connect` above skips that statement, and every operation of
  // ours throws its failure, so this listener hides none.
  store.on("error", () => {});
  try {
    // Refused here, as a wrong password is, not at a task's end: what the user lacks, and the GRANT.
    const denied = deniedBy(access === "read" ? await rightsOf(query) : await createTables(query), access);
    if (denied) throw new CacheStoreUrlError(location, denied);
  } catch (error) {
    const denial = CacheStoreUrlError.is(error) ? undefined : await denialOf(query, error, "open the store", access);
    await pool.end().catch(() => {});
    if (CacheStoreUrlError.is(error)) throw error;
    if (denial) throw new CacheStoreUrlError(location, { cause: error, ...denial });
    const mistake = URL_MISTAKES[(error as { code?: string }).code ?? ""];
    if (mistake) {
      // pg's message names the user or database, never the password.
      throw new CacheStoreUrlError(location, { cause: error, ...mistake, reason: `the server answered "${(error as Error).message}"` });
    }
    throw new CacheBackendError("postgres", location, "connect", { cause: error });
  }
  const keyv = new Keyv({ store, namespace, throwOnErrors: true, ...sharedStoreSerialization });
  keyv.on("error", () => {});
  return {
    kind: "postgres",
    location,
    keyv,
    leases: new PostgresLeases(query, `${namespace}:`),
    entries: entriesOf(keyv, store),
    denied: (error, operation) => denialOf(query, error, operation, access),
    async sweep() {
      await store.sweepExpired();
      await query(`DELETE FROM ${LEASES} WHERE expires_at < ${NOW_MS} - 3600000`);
    },
    async close() {
      await store.disconnect().catch(() => {});
    },
  };
}

/** `text` matched literally by LIKE, whose default escape character is the backslash. */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, "\\$&");
}

/** The store's tables, with their columns. */
const TABLES = [
  [ENTRIES, "key VARCHAR(255) PRIMARY KEY, value TEXT"],
  [LEASES, "key VARCHAR(255) PRIMARY KEY, owner TEXT NOT NULL, token TEXT NOT NULL, expires_at BIGINT NOT NULL"],
] as const;

/** The rights on each table that the store uses: reads, writes, leases, prune and clear. */
const TABLE_RIGHTS = ["SELECT", "INSERT", "UPDATE", "DELETE"] as const;

/** The rights on each table that each access needs: reading, SELECT alone. */
const RIGHTS_OF: Record<StoreAccess, readonly string[]> = { read: ["SELECT"], write: TABLE_RIGHTS };

/** What the URL's user may do with the store's schema and tables, from the server. */
interface Rights {
  /** The user, as `GRANT ... TO` takes it. */
  role: string;
  usage: boolean;
  create: boolean;
  tables: Array<{ table: string; exists: boolean; missing: string[] }>;
}

/**
 * What the URL's user may do with the schema and each table, in one query. From the catalogs,
 * which a user without USAGE on the schema still reads (`to_regclass` and `has_table_privilege`
 * by name fail for it). SELECT, INSERT and UPDATE granted on columns alone count: statements on
 * those columns work. Undefined when the schema is missing.
 */
async function rightsOf(query: Query): Promise<Rights | undefined> {
  const check = (right: string) => (right === "DELETE" ? `has_table_privilege(c.oid, '${right}')` : `has_any_column_privilege(c.oid, '${right}')`);
  const rows = await query(
    `SELECT quote_ident(current_user) AS role, has_schema_privilege(s.oid, 'USAGE') AS usage, has_schema_privilege(s.oid, 'CREATE') AS create,
       t.name, c.oid IS NOT NULL AS exists, ${TABLE_RIGHTS.map((right) => `${check(right)} AS "${right}"`).join(", ")}
     FROM unnest($2::text[]) WITH ORDINALITY AS t(name, position) JOIN pg_namespace s ON s.nspname = $1
     LEFT JOIN pg_class c ON c.relnamespace = s.oid AND c.relname = t.name ORDER BY t.position`,
    [SCHEMA, TABLES.map(([table]) => table.slice(SCHEMA.length + 1))],
  );
  const first = rows[0];
  if (!first) return undefined;
  return {
    role: String(first.role),
    usage: first.usage === true,
    create: first.create === true,
    tables: rows.map((row) => ({
      table: `${SCHEMA}.${String(row.name)}`,
      exists: row.exists === true,
      missing: row.exists === true ? TABLE_RIGHTS.filter((right) => row[right] !== true) : [],
    })),
  };
}

/** The rights the store needs for each access, for messages. */
const NEEDED: Record<StoreAccess, string> = {
  read: `USAGE on schema ${SCHEMA}; SELECT on ${ENTRIES} and ${LEASES}, for reading only`,
  write: `USAGE on schema ${SCHEMA}; ${TABLE_RIGHTS.join(", ")} on ${ENTRIES} and ${LEASES}; CREATE on schema ${SCHEMA} while one of them is missing`,
};

/** Said to a role that may read the store but not write it: what it can do as it is. */
const READING_IS_ENOUGH = " Commands that only read (`cairn plan`, `cairn explain`, `cairn cache ls`) work with USAGE and SELECT alone.";

/**
 * What `CacheStoreUrlError` says of a user that lacks a right the store needs: which rights, on
 * what, and the `GRANT`s that give them; undefined when it lacks none.
 */
function deniedBy(rights: Rights | undefined, access: StoreAccess): { expected: string; reason: string; hint: string } | undefined {
  if (!rights) return undefined;
  const needed = RIGHTS_OF[access];
  const lacks: string[] = [];
  const grants: string[] = [];
  if (!rights.usage) {
    lacks.push(`USAGE on schema ${SCHEMA}`);
    grants.push(`GRANT USAGE ON SCHEMA ${SCHEMA} TO ${rights.role}`);
  }
  const absent = rights.tables.filter((t) => !t.exists).map((t) => t.table);
  // Reading creates nothing: a missing table reads as empty.
  if (access === "write" && absent.length > 0 && !rights.create) {
    lacks.push(`CREATE on schema ${SCHEMA} (to create ${absent.join(" and ")}, which ${absent.length > 1 ? "are" : "is"} missing)`);
    grants.push(`GRANT CREATE ON SCHEMA ${SCHEMA} TO ${rights.role}`);
  }
  // Tables that lack the same rights share one GRANT.
  const byMissing = new Map<string, string[]>();
  for (const table of rights.tables) {
    const missing = table.missing.filter((right) => needed.includes(right)).join(", ");
    if (missing) byMissing.set(missing, [...(byMissing.get(missing) ?? []), table.table]);
  }
  for (const [missing, tables] of byMissing) {
    lacks.push(`${missing} on ${tables.join(" and ")}`);
    grants.push(`GRANT ${missing} ON ${tables.join(", ")} TO ${rights.role}`);
  }
  if (lacks.length === 0) return undefined;
  return {
    expected: `the user of a postgres URL to hold the rights the cache needs (${NEEDED[access]})`,
    reason: `role ${rights.role} lacks ${lacks.join(", and ")}`,
    hint:
      `A superuser or the owner of the schema and tables runs ${grants.map((g) => `\`${g}\``).join(" and ")}` +
      (grants.some((g) => g.startsWith("GRANT CREATE")) ? ", or opens the store once as a role that may create the tables." : ".") +
      // A role granted SELECT alone (a dashboard's, a CI check's) may not run, but it may plan.
      (access === "write" && rights.tables.some((t) => t.missing.length > 0) && !deniedBy(rights, "read") ? READING_IS_ENOUGH : ""),
  };
}

/**
 * What `CacheStoreUrlError` says of `error` when postgres refused an operation for a right the
 * URL's user lacks (42501, insufficient_privilege): a mistake in the user's rights, as a wrong
 * password is, so neither tried again nor taken for a dead store. The server is asked which
 * rights it lacks; when it lacks none the store checks (a right on some columns only, revoked
 * meanwhile), the message gives every right the store needs. Undefined for any other error.
 */
async function denialOf(query: Query, error: unknown, operation: string, access: StoreAccess): Promise<{ expected: string; reason: string; hint: string } | undefined> {
  if ((error as { code?: unknown } | undefined)?.code !== "42501") return undefined;
  const answered = `the server answered "${(error as Error).message}" when asked to ${operation}`;
  const rights = await rightsOf(query).catch(() => undefined);
  const denied = deniedBy(rights, access);
  if (denied) return { ...denied, reason: `${denied.reason}; ${answered}` };
  const role = rights?.role ?? "<user>";
  return {
    expected: `the user of a postgres URL to hold the rights the cache needs (${NEEDED[access]})`,
    reason: answered,
    hint: `A superuser or the owner of the schema and tables runs \`GRANT USAGE ON SCHEMA ${SCHEMA} TO ${role}\` and \`GRANT ${RIGHTS_OF[access].join(", ")} ON ${ENTRIES}, ${LEASES} TO ${role}\`${role === "<user>" ? " (<user>: the URL's user)" : ""}.`,
  };
}

/**
 * Creates the tables that are missing, when the user may (else `deniedBy` says what it lacks),
 * and says what the user may do with them. Looked up first: `CREATE TABLE IF NOT EXISTS` needs
 * the right to create in the schema even when the table exists, which a role that may only read
 * and write the tables lacks. Several processes opening an empty database at once race to create
 * them: the losers' errors are fine when the table is there afterwards.
 */
async function createTables(query: Query): Promise<Rights | undefined> {
  const rights = await rightsOf(query);
  if (rights && (rights.tables.every((t) => t.exists) || !rights.usage || !rights.create)) return rights;
  // (Without the schema, creating fails with postgres's own words.)
  const exists = async (table: string) => (await query("SELECT to_regclass($1) IS NOT NULL AS found", [table]))[0]?.found === true;
  for (const [table, columns] of TABLES) {
    if (rights?.tables.some((t) => t.table === table && t.exists)) continue;
    try {
      await query(`CREATE TABLE IF NOT EXISTS ${table} (${columns})`);
    } catch (error) {
      if (!CREATED_MEANWHILE.has((error as { code?: string }).code ?? "") || !(await exists(table))) throw error;
    }
  }
  return rightsOf(query);
}

/**
 * Leases as rows: insert, or take over a row whose expiry has passed, in one
 * INSERT ... ON CONFLICT DO UPDATE ... WHERE, which postgres runs atomically per row.
 * A row's key is `<namespace>:<key>`, so projects sharing the database never wait on each
 * other's leases (redis's lease keys carry the namespace too). Neither part holds a `:`.
 */
class PostgresLeases implements LeaseBackend {
  constructor(
    private readonly query: Query,
    /** Prepended to every key: the namespace and a `:`. */
    private readonly prefix: string,
  ) {}

  async tryAcquire(key: string, owner: string, ttlMs: number) {
    const token = uniqueId();
    for (let attempt = 0; attempt < 10; attempt++) {
      const taken = await this.query(
        `INSERT INTO ${LEASES} AS lease (key, owner, token, expires_at) VALUES ($1, $2, $3, ${NOW_MS} + $4)
         ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, token = excluded.token, expires_at = excluded.expires_at
         WHERE lease.expires_at <= ${NOW_MS}
         RETURNING expires_at`,
        [this.prefix + key, owner, token, ttlMs],
      );
      if (taken[0]) return { ok: true as const, token, expiresAt: Number(taken[0].expires_at) };
      const current = await this.peek(key);
      if (current) return { ok: false as const, ...current };
    }
    throw new CacheBackendError("postgres", "postgres", `acquire the lease on ${key}`, { hint: "It changed hands 10 times while we tried." });
  }

  async renew(key: string, token: string, ttlMs: number): Promise<number | undefined> {
    const rows = await this.query(
      `UPDATE ${LEASES} SET expires_at = ${NOW_MS} + $3 WHERE key = $1 AND token = $2 RETURNING expires_at`,
      [this.prefix + key, token, ttlMs],
    );
    return rows[0] ? Number(rows[0].expires_at) : undefined;
  }

  async release(key: string, token: string): Promise<void> {
    await this.query(`DELETE FROM ${LEASES} WHERE key = $1 AND token = $2`, [this.prefix + key, token]);
  }

  async endIfHeldBy(key: string, holder: string): Promise<boolean> {
    const rows = await this.query(`DELETE FROM ${LEASES} WHERE key = $1 AND owner = $2 RETURNING key`, [this.prefix + key, holder]);
    return rows.length > 0;
  }

  async peek(key: string) {
    const rows = await this.query(
      `SELECT owner, expires_at FROM ${LEASES} WHERE key = $1 AND expires_at > ${NOW_MS}`,
      [this.prefix + key],
    );
    const row = rows[0];
    return row ? { holder: String(row.owner), expiresAt: Number(row.expires_at) } : undefined;
  }
}
