/**
 * Test helper: a real `mlflow server` on a free loopback port, with a SQLite
 * backend and proxied artifacts in a temporary folder. One per test file.
 *
 * @example
 * let server: MlflowServer;
 * beforeAll(async () => { server = await startMlflowServer(); });
 * afterAll(() => server?.stop());
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { copyFile, mkdtemp, readdir, readFile, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort } from "../src/model/run-model.ts";

export { freePort };

/** The workspace root (`/work/main`). */
export const workspaceRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
/** The project's Python venv, made by scripts/setup-python.sh. */
export const venvDir = process.env.CAIRN_VENV ?? join(workspaceRoot, ".venv");
/** The venv's python, for helper scripts. */
export const venvPython = join(venvDir, "bin", "python");

/** A running server. */
export interface MlflowServer {
  /** `http://127.0.0.1:<port>`. */
  uri: string;
  /** The temporary folder holding `mlflow.db` and `artifacts/`. */
  dir: string;
  /** The server's process group (uvicorn and its workers), for benchmarks that read its CPU time. */
  pgid: number;
  /** Kills the server's whole process group and removes its folder. */
  stop(): Promise<void>;
}

/** CPU time (ms) the server's processes (its process group) have used so far, from /proc (Linux). */
export async function serverCpuMs(server: Pick<MlflowServer, "pgid">): Promise<number> {
  let ticks = 0;
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === server.pgid) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

/** Creates .venv with scripts/setup-python.sh unless it is already there. */
export function ensurePythonVenv(): void {
  if (existsSync(join(venvDir, ".cairn-requirements")) && existsSync(join(venvDir, "bin", "mlflow"))) return;
  execFileSync("bash", [join(workspaceRoot, "scripts", "setup-python.sh")], { stdio: "inherit" });
}

/** Starts `mlflow server` and resolves once `/health` answers. */
export async function startMlflowServer(
  options: {
    timeoutMs?: number;
    /** uvicorn workers; 1 unless told (benchmarks try more). */
    workers?: number;
    /** Start again on a killed server's folder and port: its runs are still there. */
    again?: Pick<MlflowServer, "dir" | "uri">;
  } = {},
): Promise<MlflowServer> {
  ensurePythonVenv();
  if (options.again) return launch(options.again.dir, Number(new URL(options.again.uri).port), options.timeoutMs ?? 120_000, options.workers ?? 1);
  const dir = await mkdtemp(join(tmpdir(), "cairn-mlflow-"));
  // The server finds its tables made and at the newest schema, as after a restart, instead of
  // making and migrating them again at each start (a second or more of its start-up).
  await copyFile(await migratedDatabase(), join(dir, "mlflow.db"));
  let lastError: unknown;
  // A free port can be taken between the check and the bind; try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await launch(dir, port, options.timeoutMs ?? 120_000, options.workers ?? 1);
    } catch (error) {
      lastError = error;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

/**
 * A database MLflow's own code made as `mlflow server` makes its store's (its tables at the
 * newest schema, its Default experiment storing artifacts at mlflow-artifacts:/), made once per
 * temp folder (the test run's: test/global-setup.ts) and venv, and copied into each new server's
 * folder.
 */
async function migratedDatabase(): Promise<string> {
  const requirements = join(venvDir, ".cairn-requirements");
  const venvKey = createHash("sha256")
    .update(`${venvDir}\n${existsSync(requirements) ? readFileSync(requirements, "utf8") : ""}`)
    .digest("hex")
    .slice(0, 16);
  const file = join(tmpdir(), `cairn-mlflow-db-${venvKey}.db`);
  if (existsSync(file)) return file;
  const made = `${file}.${process.pid}.${Date.now()}`;
  const script = [
    "import sys",
    "from mlflow.server.handlers import initialize_backend_stores",
    // As `mlflow server --backend-store-uri sqlite:///... --artifacts-destination ...` does (serving artifacts, no --default-artifact-root).
    "initialize_backend_stores('sqlite:///' + sys.argv[1], None, 'mlflow-artifacts:/')",
  ].join("\n");
  await promisify(execFile)(venvPython, ["-c", script, made], { env: { ...process.env, MLFLOW_DISABLE_TELEMETRY: "true", DO_NOT_TRACK: "true" } });
  // Whole or not at all, also when two test processes make it at once.
  await rename(made, file);
  return file;
}

async function launch(dir: string, port: number, timeoutMs: number, workers: number): Promise<MlflowServer> {
  const uri = `http://127.0.0.1:${port}`;
  const child = spawn(
    join(venvDir, "bin", "mlflow"),
    [
      "server",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--workers",
      String(workers),
      "--backend-store-uri",
      `sqlite:///${join(dir, "mlflow.db")}`,
      "--artifacts-destination",
      join(dir, "artifacts"),
    ],
    {
      cwd: dir,
      // Its own process group, so stop() reaches uvicorn and its workers too.
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        // The job runner starts three huey consumers nobody here needs; that halves start-up time.
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION: "false",
        MLFLOW_DISABLE_TELEMETRY: "true",
        DO_NOT_TRACK: "true",
        PYTHONUNBUFFERED: "1",
      },
    },
  );
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const killOnExit = () => killGroup(child, "SIGKILL");
  process.once("exit", killOnExit);

  const stop = async () => {
    process.removeListener("exit", killOnExit);
    // Its folder, database and all, goes next: nothing needs uvicorn's graceful shutdown, which
    // took seconds (the mlflow command forwards SIGTERM and waits for it) at each file's end.
    await killGroupAndWait(child);
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      process.removeListener("exit", killOnExit);
      throw new Error(`mlflow server exited with ${child.exitCode ?? child.signalCode} before answering on ${uri}:\n${output}`);
    }
    try {
      const res = await fetch(`${uri}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return { uri, dir, pgid: child.pid!, stop };
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await stopGroup(child);
  process.removeListener("exit", killOnExit);
  throw new Error(`mlflow server did not answer on ${uri}/health within ${timeoutMs} ms:\n${output}`);
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** SIGKILL to the group (the mlflow command, uvicorn), resolved once the mlflow command has exited. */
async function killGroupAndWait(child: ChildProcess): Promise<void> {
  const exited = child.exitCode !== null || child.signalCode !== null ? undefined : new Promise<void>((r) => child.once("exit", () => r()));
  killGroup(child, "SIGKILL");
  await exited;
}

async function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    killGroup(child, "SIGKILL");
    return;
  }
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  killGroup(child, "SIGTERM");
  const timer = setTimeout(() => killGroup(child, "SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
  // uvicorn's worker may outlive the parent for a moment.
  killGroup(child, "SIGKILL");
}

