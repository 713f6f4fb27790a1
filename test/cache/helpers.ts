/**
 * Helpers of the end-to-end cache tests: temp roots, in-process runs that collect
 * events, and real child processes (the `cairn` CLI, fixture scripts).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll } from "vitest";
import type { FlowResult, FlowRun, RunEvent, TaskEvent } from "@cairn/dsl";

export const repo = resolve(import.meta.dirname, "../..");
export const cairnBin = join(repo, "packages/cli/bin/cairn.mjs");
export const fixture = (name: string) => join(repo, "test/cache/fixtures", name);

const made: string[] = [];
afterAll(async () => {
  // Temp folders of passing files go; keep them with CAIRN_KEEP_TMP=1 to look at a failure.
  if (process.env.CAIRN_KEEP_TMP === "1") return;
  await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A fresh temp folder, removed after the test file. */
export async function tmp(prefix = "cairn-cache-e2e-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Node id → final status. */
export const statuses = (r: FlowResult<unknown>) => Object.fromEntries(Object.entries(r.tasks).map(([id, t]) => [id, t.status]));

export interface Collected<O = unknown> {
  run: FlowRun<O>;
  result: FlowResult<O>;
  events: RunEvent[];
  /** Messages of `warn` log events. */
  warnings: string[];
}

type Runnable<O> = { run: (options?: any) => Promise<FlowRun<O>> };

/**
 * Runs a flow in this process with an empty environment (no MLflow, no CAIRN_CACHE_URL
 * from the caller) unless `env` is given, and collects every event.
 */
export async function runCollect<O>(f: Runnable<O>, options: Record<string, unknown>): Promise<Collected<O>> {
  const run = await f.run({ env: {}, ...options });
  const events: RunEvent[] = [];
  run.on((e) => events.push(e));
  const result = await run.wait();
  const warnings = events.filter((e) => e.type === "log" && e.level === "warn").map((e) => (e as { message: string }).message);
  return { run, result, events, warnings };
}

/** Task events of one node (or all). */
export const taskEvents = (events: readonly unknown[], task?: string) =>
  (events as Array<Partial<TaskEvent> & { type?: string }>).filter((e) => e.type === "task" && (task === undefined || e.task === task)) as TaskEvent[];

/** The final status a node reported in an event stream (succeeded, cached, failed, ...). */
export function finalStatus(events: readonly unknown[], task: string): string | undefined {
  const done = taskEvents(events, task).filter((e) => ["succeeded", "cached", "failed", "skipped", "cancelled"].includes(e.status));
  return done.at(-1)?.status;
}

/** Files in a folder (none when it does not exist). */
export async function filesIn(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => !n.startsWith("."));
  } catch {
    return [];
  }
}

/** Entry files of the embedded store under `root`. */
export const entryFiles = async (root: string) => (await filesIn(join(root, "cache", "entries"))).filter((n) => n.endsWith(".json")).map((n) => join(root, "cache", "entries", n));

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout lines that parse as JSON objects (the `--json` events, or a script's report). */
  json: Array<Record<string, unknown>>;
  ms: number;
}

/** The environment of child processes: the caller's, without MLflow or a cache URL, plus `extra`. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", CAIRN_NO_AUTORUN: "1" };
  for (const k of Object.keys(env)) if (k.startsWith("MLFLOW_") || k === "CAIRN_CACHE_URL") delete env[k];
  return { ...env, ...extra };
}

export interface Started {
  child: ChildProcess;
  done: Promise<Exit>;
}

/** The JSON lines of a `--json` stdout (so far: a line still being written is left out). */
export function jsonLines(out: string): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  for (const line of out.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not a JSON line, or one being written
    }
  }
  return lines;
}

/** Starts a real process in its own process group; `onStdout` sees the whole stdout so far. */
export function start(
  cmd: string,
  args: string[],
  /** `uid`/`gid`: run as another user (the tests run as root: `nobody`, who may not write what root made). */
  options: { env?: NodeJS.ProcessEnv; cwd?: string; onStdout?: (out: string, child: ChildProcess) => void; uid?: number; gid?: number } = {},
): Started {
  const t0 = performance.now();
  const as = options.uid === undefined ? {} : { uid: options.uid, gid: options.gid ?? options.uid };
  const child = spawn(cmd, args, { cwd: options.cwd ?? repo, env: options.env ?? childEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true, ...as });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d;
    options.onStdout?.(stdout, child);
  });
  child.stderr!.on("data", (d: Buffer) => (stderr += d));
  const done = new Promise<Exit>((resolveDone, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      resolveDone({ code, signal, stdout, stderr, json: jsonLines(stdout), ms: Math.round(performance.now() - t0) });
    });
  });
  return { child, done };
}

/** `cairn run FILE --json --root ROOT ...args` as a real process. */
export function cairnRun(file: string, root: string, args: string[] = [], env: NodeJS.ProcessEnv = {}, onStdout?: (out: string, child: ChildProcess) => void): Started {
  return start(process.execPath, [cairnBin, "run", file, "--json", "--root", root, ...args], { env: childEnv(env), ...(onStdout ? { onStdout } : {}) });
}

/** `node --import tsx SCRIPT ...args` as a real process. */
export function tsxScript(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Started {
  return start(process.execPath, ["--import", "tsx", script, ...args], { env: childEnv(env) });
}

/** Kills a child's whole process group with `signal`. */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // Already gone.
  }
}

/**
 * `cairn run` that is killed if it has not exited `graceMs` after printing its final flow
 * event; `exitedByItself` says whether it had to be.
 */
export async function cairnRunBounded(
  file: string,
  root: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  graceMs = 5000,
): Promise<Exit & { exitedByItself: boolean }> {
  let timer: NodeJS.Timeout | undefined;
  let killed = false;
  const started = cairnRun(file, root, args, env, (out, child) => {
    if (timer || !/"type":"flow","status":"(succeeded|failed|cancelled)"/.test(out)) return;
    timer = setTimeout(() => {
      killed = true;
      killGroup(child, "SIGKILL");
    }, graceMs);
  });
  const exit = await started.done;
  clearTimeout(timer);
  return { ...exit, exitedByItself: !killed };
}
