/**
 * Test fixture: a throwaway postgres cluster on a free port for one test file.
 * Uses the machine's initdb/postgres (PATH or /usr/lib/postgresql/N/bin) and
 * installs Debian's `postgresql` with apt-get when missing and we are root.
 * Answers `{ skip: reason }` when neither works, so the test can say why.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chown, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { findBinary, freePort } from "./_free-port.ts";

const run = promisify(execFile);

export interface PostgresServer {
  port: number;
  /** postgresql://cairn@127.0.0.1:PORT/postgres (trust auth). */
  url: string;
  stop(): Promise<void>;
}

async function serverBinDirs(): Promise<string[]> {
  try {
    const versions = (await readdir("/usr/lib/postgresql")).sort((a, b) => Number(b) - Number(a));
    return versions.map((v) => `/usr/lib/postgresql/${v}/bin`);
  } catch {
    return [];
  }
}

async function findServer(): Promise<{ initdb: string; postgres: string } | undefined> {
  const dirs = await serverBinDirs();
  const initdb = await findBinary("initdb", dirs);
  const postgres = await findBinary("postgres", dirs);
  return initdb && postgres ? { initdb, postgres } : undefined;
}

/** The uid/gid postgres runs as: ourselves, or the `postgres` (else `nobody`) user when we are root, which postgres refuses. */
async function runAs(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  for (const user of ["postgres", "nobody"]) {
    try {
      const uid = Number((await run("id", ["-u", user])).stdout.trim());
      const gid = Number((await run("id", ["-g", user])).stdout.trim());
      return { uid, gid };
    } catch {
      // No such user.
    }
  }
  throw new Error("running as root, and neither a `postgres` nor a `nobody` user exists to run postgres as");
}

export async function startPostgresServer(): Promise<PostgresServer | { skip: string }> {
  let binaries = await findServer();
  if (!binaries && process.getuid?.() === 0 && (await findBinary("apt-get"))) {
    try {
      await run("bash", ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 postgresql"], {
        timeout: 600_000,
      });
    } catch (error) {
      return { skip: `postgres server binaries are missing and apt-get install postgresql failed: ${(error as Error).message}` };
    }
    binaries = await findServer();
  }
  if (!binaries) return { skip: "postgres server binaries (initdb, postgres) are not installed and could not be installed" };

  const ids = await runAs();
  const dir = await mkdtemp(join(tmpdir(), "cairn-pg-"));
  if (ids) await chown(dir, ids.uid, ids.gid);
  const as = ids ? { uid: ids.uid, gid: ids.gid } : {};
  const env = { ...process.env, LC_ALL: "C", HOME: dir, USER: ids ? "postgres" : userInfo().username };
  await run(binaries.initdb, ["-D", join(dir, "data"), "-U", "cairn", "--auth=trust", "-E", "UTF8", "--no-sync"], { ...as, cwd: dir, env });

  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    try {
      return await launch(binaries.postgres, dir, port, as, env);
    } catch (error) {
      lastError = error;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

function launch(binary: string, dir: string, port: number, as: object, env: NodeJS.ProcessEnv): Promise<PostgresServer> {
  const child: ChildProcess = spawn(
    binary,
    ["-D", join(dir, "data"), "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1",
      "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
    { ...as, cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    // SIGINT is postgres's "fast" shutdown: it does not wait for clients.
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGINT");
      reject(new Error(`postgres did not become ready on port ${port} within 30 s:\n${output}`));
    }, 30_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("ready to accept connections")) {
        clearTimeout(timer);
        resolve({ port, url: `postgresql://cairn@127.0.0.1:${port}/postgres`, stop });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`postgres exited with code ${code} before it was ready on port ${port}:\n${output}`));
    });
  });
}

/**
 * Ends every client connection to the server at `url` but its own (`pg_terminate_backend`), as
 * an administrator or a restart does; answers how many it ended.
 */
export async function terminateClients(url: string): Promise<number> {
  const { default: pg } = await import("pg");
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    );
    return rows.length;
  } finally {
    await client.end();
  }
}

/** Runs `statements` in order on the server at `url`, as the user it names (the cluster's superuser: roles, grants). */
export async function runSql(url: string, statements: string[]): Promise<void> {
  const { default: pg } = await import("pg");
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}
