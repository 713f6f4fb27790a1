/**
 * Helpers of the reliability tests: a `cairn run` killed with -9 at a chosen moment, and
 * the other commands as real processes. Builds on test/cache/helpers.ts.
 */
import type { ChildProcess } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { MlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { type Exit, type Started, cairnBin, childEnv, jsonLines, start } from "../cache/helpers.ts";

export { jsonLines } from "../cache/helpers.ts";

export const reliabilityFixture = (name: string) => join(import.meta.dirname, "fixtures", name);

/**
 * `cairn run FILE --json --root ROOT` killed with SIGKILL (only the cairn process itself, as
 * `kill -9 PID` does) `delayMs` after `when` holds for its events so far; with `poll`, `when`
 * is also asked every 20 ms (for conditions outside its output, such as files).
 */
export async function cairnRunKilled(
  file: string,
  root: string,
  when: (events: Array<Record<string, unknown>>) => boolean,
  options: { delayMs?: number; env?: NodeJS.ProcessEnv; args?: string[]; poll?: boolean } = {},
): Promise<Exit & { pid: number }> {
  let armed = false;
  let out = "";
  const check = (child: ChildProcess) => {
    if (armed || !when(jsonLines(out))) return;
    armed = true;
    setTimeout(() => child.kill("SIGKILL"), options.delayMs ?? 0);
  };
  const started: Started = start(process.execPath, [cairnBin, "run", file, "--json", "--root", root, ...(options.args ?? [])], {
    env: childEnv(options.env ?? {}),
    onStdout: (so_far: string, child: ChildProcess) => {
      out = so_far;
      check(child);
    },
  });
  const timer = options.poll ? setInterval(() => check(started.child), 20) : undefined;
  const exit = await started.done.finally(() => clearInterval(timer));
  if (!armed) throw new Error(`cairn run was never killed: it exited with ${exit.code ?? exit.signal}\n${exit.stderr}\n${exit.stdout}`);
  return { ...exit, pid: started.child.pid! };
}

/** `cairn ARGS...` as a real process, to its end. */
export function cairn(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Exit> {
  return start(process.execPath, [cairnBin, ...args], { env: childEnv(env) }).done;
}

/** True once `events` has a `running` event of task `task`. */
export const taskRunning = (task: string) => (events: Array<Record<string, unknown>>) =>
  events.some((e) => e.type === "task" && e.task === task && e.status === "running");

/** A loopback proxy in front of the real server at `uri`; `intercept` returns true when it answered (or holds) the request itself. */
export async function startProxy(
  uri: string,
  intercept: (req: http.IncomingMessage, res: http.ServerResponse) => boolean,
): Promise<{ uri: string; close(): Promise<void> }> {
  const target = new URL(uri);
  const proxy = http.createServer((req, res) => {
    if (intercept(req, res)) return;
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  const { port } = proxy.address() as AddressInfo;
  return {
    uri: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        proxy.closeAllConnections();
        proxy.close(() => r());
      }),
  };
}

/** Kills the server's process group with SIGKILL and resolves once its port refuses connections. */
export async function killServer(s: MlflowServer): Promise<void> {
  process.kill(-s.pgid, "SIGKILL");
  for (;;) {
    const refused = await fetch(`${s.uri}/health`, { signal: AbortSignal.timeout(1000) }).then(() => false, () => true);
    if (refused) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
