/**
 * Test fixture: a real redis-server on a free port for one test file.
 *
 * @example
 * let redis: RedisServer;
 * beforeAll(async () => { redis = await startRedisServer(); });
 * afterAll(() => redis?.stop());
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { findBinary, freePort } from "./_free-port.ts";

export interface RedisServer {
  port: number;
  url: string;
  /**
   * Sends `signal` to the server: `SIGSTOP` makes a redis that still accepts connections (the
   * kernel takes them) but answers nothing, `SIGCONT` wakes it.
   */
  signal(signal: NodeJS.Signals): void;
  /** Kills the server, stopped or not, and waits for it to exit. */
  stop(): Promise<void>;
}

const START_REDIS = fileURLToPath(new URL("../../../scripts/start-redis.sh", import.meta.url));

/**
 * Starts `redis-server --port N --save '' --appendonly no` as a child process.
 * Installs redis-server first (scripts/start-redis.sh --install, apt-get) when
 * it is missing, so a fresh machine works; fails with a clear message if that
 * is impossible. `args` go to redis-server after those, e.g. `["--requirepass", pw]`.
 */
export async function startRedisServer(options: { args?: string[] } = {}): Promise<RedisServer> {
  let binary = await findBinary("redis-server", ["/usr/bin", "/usr/local/bin", "/usr/sbin"]);
  if (!binary) {
    try {
      await promisify(execFile)("bash", [START_REDIS, "--install"], { timeout: 600_000 });
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? "";
      throw new Error(
        `redis-server is not installed and installing it failed (bash scripts/start-redis.sh --install):\n${stderr}\n` +
          `Install it by hand (apt-get install -y redis-server) and run the tests again.`,
        { cause: error },
      );
    }
    binary = await findBinary("redis-server", ["/usr/bin", "/usr/local/bin", "/usr/sbin"]);
    if (!binary) throw new Error("scripts/start-redis.sh --install finished but redis-server is still not on PATH");
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    try {
      return await launch(binary, port, options.args ?? []);
    } catch (error) {
      lastError = error; // Most likely another process took the port first.
    }
  }
  throw lastError;
}

/**
 * Makes the server at `url`, started with `--maxmemory-policy noeviction`, full: its maxmemory
 * becomes half the memory it uses, so it refuses every write with `OOM command not allowed when
 * used memory > 'maxmemory'` and answers reads. (Filling it with data instead left it a few
 * writes short or not, as clients' buffers came and went.)
 */
export async function makeRedisFull(url: string): Promise<void> {
  const { createClient } = await import("@keyv/redis");
  const client = createClient({ url });
  await client.connect();
  try {
    const used = Number(/used_memory:(\d+)/.exec(await client.info("memory"))?.[1]);
    if (!(used > 0)) throw new Error(`redis at ${url} did not report its used_memory`);
    await client.configSet("maxmemory", String(Math.floor(used / 2)));
  } finally {
    client.destroy();
  }
}

function launch(binary: string, port: number, args: string[]): Promise<RedisServer> {
  const child: ChildProcess = spawn(
    binary,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      // A stopped server takes SIGTERM only once it runs again.
      child.kill("SIGCONT");
    }
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`redis-server did not become ready on port ${port} within 10 s:\n${output}`));
    }, 10_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer);
        const signal = (name: NodeJS.Signals) => void (child.exitCode === null && child.signalCode === null && child.kill(name));
        resolve({ port, url: `redis://127.0.0.1:${port}`, signal, stop });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with code ${code} before it was ready on port ${port}:\n${output}`));
    });
  });
}
