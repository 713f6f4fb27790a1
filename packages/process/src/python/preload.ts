/**
 * Warm Python for `script()` tasks with `preload`: one Python process per flow process and
 * module list imports the modules once (`cairn_preload.py serve`), and each task's process is a
 * small launcher (`cairn_preload.py run`) that the server forks a child for, so a task starts
 * with pandas, scikit-learn or mlflow already imported instead of paying seconds of imports.
 * To the process executor the launcher is the task's process: same pipes, exit code,
 * signals and process-group handling (see cairn_preload.py for how it forwards them).
 *
 * The server starts on the first task that needs it (a flow whose tasks are all cached never
 * starts it), does not keep Node alive, and ends with the Node process, however that ends: its
 * stdin is a pipe only Node holds, and when Node dies (kill -9 included) the server sees end of
 * file and kills its children's process groups before it exits. POSIX only.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { OptionError } from "@cairn/core";
import { PYTHON_HELPER_DIR, pythonPath } from "../spawn/options.ts";

/** The server and launcher script. */
export const PRELOAD_SCRIPT = join(PYTHON_HELPER_DIR, "cairn_preload.py");

/** A running warm Python. */
export interface PreloadServer {
  /** The Unix socket the launchers connect to. */
  socket: string;
  /** Modules that failed to import, with the error: tasks import them themselves. */
  failed: Readonly<Record<string, string>>;
  /** True once a task has warned about `failed`. */
  warned: boolean;
}

const MODULE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Checks a task's `preload` option at declaration. */
export function checkPreload(task: string, preload: unknown, file: string, interpreter: unknown): readonly string[] {
  const where = `task "${task}" option \`preload\``;
  if (!Array.isArray(preload) || preload.some((m) => typeof m !== "string" || !MODULE.test(m))) {
    throw new OptionError(where, 'an array of Python module names, e.g. ["pandas", "sklearn.ensemble"]', preload);
  }
  if (!file.toLowerCase().endsWith(".py")) throw new OptionError(where, "a Python script (.py): preload imports Python modules", file);
  if (interpreter !== undefined && typeof interpreter !== "string") {
    throw new OptionError(`task "${task}" option \`interpreter\` with \`preload\``, "a single Python program (preload forks that Python)", interpreter);
  }
  return preload as string[];
}

/** Preloading needs fork and file-descriptor passing: Linux, macOS and the other POSIX systems. */
export const preloadSupported = process.platform !== "win32";

const servers = new Map<string, Promise<PreloadServer>>();

/** The warm Python for this interpreter and module list, started on first use; a failed start is remembered. */
export function preloadServer(python: string, modules: readonly string[]): Promise<PreloadServer> {
  const unique = [...new Set(modules)]; // imported in the order given
  const key = JSON.stringify([python, [...unique].sort()]);
  let server = servers.get(key);
  if (!server) {
    server = startServer(python, unique, () => servers.delete(key));
    servers.set(key, server);
  }
  return server;
}

/** The command line of a task's process when it runs through `server`. */
export function launchArgs(server: PreloadServer, file: string, args: readonly string[]): string[] {
  return ["-I", "-S", PRELOAD_SCRIPT, "run", server.socket, file, ...args];
}

function startServer(python: string, modules: string[], onExit: () => void): Promise<PreloadServer> {
  // A Unix socket path must stay under ~104 bytes: fall back to /tmp when TMPDIR is deep.
  const base = tmpdir().length > 60 ? "/tmp" : tmpdir();
  const dir = mkdtempSync(join(base, "cairn-py-"));
  const socket = join(dir, "s");
  const child = spawn(python, [PRELOAD_SCRIPT, "serve", socket, ...modules], {
    env: { ...process.env, PYTHONPATH: pythonPath(), PYTHONUNBUFFERED: "1" },
    stdio: ["pipe", "pipe", "pipe"], // stdin: the lifeline, never written to
    detached: true, // Ctrl-C in the terminal goes to the tasks' launchers, not to the server
  });
  const cleanup = () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, "SIGTERM"); // the server ends its children and removes its socket
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", cleanup);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));

  return new Promise((resolve, reject) => {
    let ready = false;
    const fail = (why: string) => {
      if (ready) return;
      ready = true;
      reject(new Error(`${why}${stderr.trim() ? `: ${stderr.trim().split("\n").slice(-5).join(" | ")}` : ""}`));
    };
    child.once("error", (error) => fail(`${python} could not start (${error.message})`));
    child.once("exit", (code, signal) => {
      process.removeListener("exit", cleanup);
      rmSync(dir, { recursive: true, force: true });
      onExit();
      fail(`${python} ${PRELOAD_SCRIPT} exited (${signal ?? `code ${code}`}) before it was ready`);
    });
    createInterface({ input: child.stdout }).once("line", (line) => {
      let message: { ready?: boolean; failed?: Record<string, string> };
      try {
        message = JSON.parse(line) as typeof message;
      } catch {
        return fail(`unexpected first line from the preload server: ${line.slice(0, 200)}`);
      }
      if (!message.ready) return fail(`unexpected first line from the preload server: ${line.slice(0, 200)}`);
      ready = true;
      // From here on the server must not keep Node alive; its output is drained and dropped.
      child.unref();
      for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
      child.stdout.resume();
      resolve({ socket, failed: message.failed ?? {}, warned: false });
    });
  });
}
