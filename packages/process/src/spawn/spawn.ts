/**
 * The process executor: runs one attempt of a task as a child process (scripts,
 * shell commands, notebooks) with Cairn's conventions:
 *
 * - `CAIRN_INPUTS`: a JSON file with the inputs (artifacts as Artifact objects with an absolute `path`);
 * - `CAIRN_OUTPUTS`: where the process may write its outputs as a JSON object; `{"$artifact": "name"}`
 *   anywhere in it becomes the Artifact of the file `name` in `CAIRN_ARTIFACTS`;
 * - `CAIRN_ARTIFACTS`: the task run's artifacts folder;
 * - `CAIRN_RUN_ID` (and `MLFLOW_RUN_ID`, `MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_ID` when the
 *   run is tracked by MLflow, so the process's own `mlflow.log_*` calls land in the task's run).
 *
 * stdout and stderr stream line by line to `ctx.logger` (info / warn) and, masked, into the
 * artifacts `logs/stdout.txt` and `logs/stderr.txt` (a lone `\r` ends a line there, as in the
 * stdout copy: a progress bar's updates, a file with `\r` line endings, are kept whole; the logger
 * and the stderr tail get such a line as a terminal shows it, its earlier states at most one a
 * second to the logger, and its final state); nothing of them is kept in memory but the
 * last lines of stderr (for the error), and a line longer than 8 KB reaches the logger and the
 * error cut short (see lines.ts). A shell task's stdout, its output when it writes no
 * `CAIRN_OUTPUTS`, is copied to a file and read back only then (see stdout-output.ts). They
 * are read until the process has exited, its group is gone, and either both pipes closed or {@link DRAIN_MS} passed (a process that left the group, such as
 * `setsid daemon &`, may hold them open for ever: a warning says so). When the attempt ends,
 * whatever its outcome, the two files are sent to the task's run (streamed from disk) if the tracker keeps artifacts elsewhere, such as
 * an MLflow server: a failed run's logs are where its error message points. They are sent once the attempt has settled, as held
 * work (holdWork), so that their upload is outside the attempt's timeout and duration. The process runs in its own process
 * group; cancel and timeout (`ctx.signal`) end the whole group: SIGTERM, then SIGKILL
 * after a grace period. Whatever the process left running in its group when it exits
 * is ended the same way, so no task leaves orphans behind. `runProcess` settles only once
 * the group is gone, so what waits for it (the task's single-flight lease) waits for the tree.
 *
 * The groups die with Node too, however Node ends: on a normal exit the exit hook kills
 * them; for kill -9, which runs no hook, a lifeline watches for Node's death (see
 * {@link Lifeline}). Every process tree Cairn starts is adopted by these two.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream, statSync, type WriteStream } from "node:fs";
import { mkdir, readdir, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { spawn } from "node:child_process";
import { join, relative, resolve, sep } from "node:path";
import type { Readable, Writable } from "node:stream";
import { artifactFile, artifactOnDisk, assertSerializable, attemptFolder, CancelledError, holdWork, isArtifact, isPlainObject, isWithin, RECORD_FOLDER, sendArtifact, setOwnProperty, taskFilePath, type Artifact, trackingEnv, type TaskContext, danglingWords, unfitFolderEntry } from "@cairn/core";
import { ProcessFailedError, ProcessOutputError, ProcessStartError } from "./errors.ts";
import { shellQuote } from "./template.ts";
import { pumpLines, withCutNote } from "./lines.ts";
import { StdoutOutput } from "./stdout-output.ts";
import { makeTaskFolder } from "./task-folder.ts";
import type { CommandOrigin } from "./options.ts";

/** What to run, and how. */
export interface ProcessSpec {
  /** The executable (a path, or a name looked up on PATH). */
  command: string;
  args?: readonly string[];
  /** Working directory. @default process.cwd() */
  cwd?: string;
  /** Where `cwd` came from, said when it is not a folder. @default "the task's `cwd` option" */
  cwdOrigin?: string;
  /** Environment variables on top of the parent's; `undefined` removes one. */
  env?: Readonly<Record<string, string | undefined>>;
  /** The inputs, written as JSON to the file in `CAIRN_INPUTS`. */
  inputs: Readonly<Record<string, unknown>>;
  /**
   * Return stdout as `stdout` (one trailing newline removed), at most STDOUT_OUTPUT_LIMIT bytes (64 MB):
   * a process printing more fails the task with a ProcessOutputError (see stdout-output.ts).
   * `"unless-outputs"` (the shell kind's): only when the process writes no CAIRN_OUTPUTS, so one that
   * writes it may print any amount. @default false
   */
  captureStdout?: boolean | "unless-outputs";
  /** Time between SIGTERM and SIGKILL when the process group is ended. @default 5000 */
  killGraceMs?: number;
  /** The command as shown in errors. @default command and args, shell-quoted */
  display?: string;
  /** Where `command` came from (CAIRN_PYTHON, a task's option, a .venv), said when it cannot start. */
  origin?: CommandOrigin;
  /** Lines of stderr kept for the error message. @default 20 */
  tailLines?: number;
  /**
   * On a non-zero exit, send what the process left in its artifacts folder, and the outputs it
   * set, to the task's run (see {@link keepFailedFiles}). Off for a kind that sends its own files
   * of a failed attempt (a notebook masks its executed notebook first). @default false
   */
  keepFilesOnFailure?: boolean;
  /** `command` is a shell running a command line: its exit code 128+N is worded as a command in it killed by signal N. @default false */
  shell?: boolean;
}

/** What a finished process produced. */
export interface ProcessResult {
  /** The JSON object written to `CAIRN_OUTPUTS` with artifact markers resolved; undefined when nothing was written. */
  outputs: Record<string, unknown> | undefined;
  /** stdout, when `captureStdout` was set (`"unless-outputs"`: and `outputs` is undefined), one trailing newline removed. */
  stdout?: string;
  exitCode: number;
  /** Wall time from spawn to exit, in ms. */
  durationMs: number;
  /** The absolute artifacts folder (`CAIRN_ARTIFACTS`). */
  artifactsDir: string;
}

/** The marker a process writes in its outputs for a file in `CAIRN_ARTIFACTS`. */
export const ARTIFACT_MARKER = "$artifact";

const DEFAULT_GRACE_MS = 5000;

/**
 * How long stdout and stderr are still read once the process has exited and its group is gone.
 * Whatever still holds them then is outside the group (`setsid`, a daemon): waiting for it to
 * close them could take for ever.
 */
export const DRAIN_MS = 1500;

/** A process's stdout and stderr lines (every state of a `\r`-updated one) are whole in logs/stdout.txt and logs/stderr.txt: the CLI may leave them out for a slow reader. */
const IN_LOG_FILE = { inLogFile: true } as const;

/**
 * The watcher that kills Cairn's process groups when this Node process dies, by any means: one
 * `sh` per Node process, started with the first group, reading a pipe whose other end only Node
 * holds. Node writes `+PGID` / `-PGID` lines as groups start and end; when Node dies (kill -9
 * included) the kernel closes Node's end, `read` sees end of file, and the watcher SIGKILLs every
 * group still listed. That is the OS's own signal of a process's death (the same one a child's
 * pipe gives), with no native code: PR_SET_PDEATHSIG would reach the direct child only, never
 * its subprocesses, and exists on Linux alone. The watcher does not keep Node alive, and is in
 * a session of its own, so Ctrl-C does not reach it.
 *
 * A group's pid is known only once the spawn returns, and its process runs from before that
 * moment: Node dying in between would leave it unlisted. So Node announces each spawn first
 * (`?TOKEN`), gives the group's leader `CAIRN_LIFELINE=TOKEN` in its environment, and lists it
 * with its token (`+PGID TOKEN`) right after. A token still announced when Node dies is looked
 * for in the environments of the live processes (`/proc`, where there is one), four times over
 * 1.4 s, for a leader that was forked but had not exec'd yet when Node died (its environment is
 * still Node's until then), and that group is killed too. A token is this process's pid, a
 * random part and a count, so no process of an earlier Node with the same pid carries it.
 */
const LIFELINE_SCRIPT = [
  'groups=" " pending=" "',
  // drop WORD: removes the word from the space-separated list in $v.
  'drop() { case $v in *" $1 "*) v="${v%% "$1" *} ${v#* "$1" }" ;; esac; }',
  "while IFS= read -r line; do",
  '  case $line in',
  '    "?"*) pending="$pending${line#?} " ;;',
  '    +*) g=${line#+}; t=${g#* }; g=${g%% *}; groups="$groups$g "; v=$pending; drop "$t"; pending=$v ;;',
  '    -*) v=$groups; drop "${line#-}"; groups=$v ;;',
  '    "!"*) v=$pending; drop "${line#!}"; pending=$v ;;',
  "  esac",
  "done",
  'for g in $groups; do kill -KILL "-$g" 2>/dev/null; done',
  '[ "$pending" = " " ] && exit 0',
  "for pause in 0.1 0.3 1 0; do",
  "  for t in $pending; do",
  '    for f in $(grep -lzxF "CAIRN_LIFELINE=$t" /proc/[0-9]*/environ 2>/dev/null); do',
  '      p=${f#/proc/}; p=${p%/environ}; kill -KILL "-$p" "$p" 2>/dev/null',
  "    done",
  "  done",
  '  sleep $pause',
  "done",
].join("\n");

class Lifeline {
  private stdin: Writable | undefined;
  private tokens = 0;
  private readonly id = randomBytes(6).toString("hex");

  /**
   * Starts the watcher unless it runs, and announces a group about to be spawned: its token, for
   * the leader's `CAIRN_LIFELINE`. Starting the watcher takes milliseconds, and a group spawned
   * first would be unguarded for that long.
   */
  announce(): string {
    const token = `${process.pid}.${this.id}.${++this.tokens}`;
    if (process.platform === "win32") return token;
    if (!this.stdin) this.start();
    this.stdin?.write(`?${token}\n`);
    return token;
  }

  /** Lists group `pgid`, spawned with `token`, with the watcher (one small write); POSIX only. */
  add(pgid: number, token: string): void {
    if (process.platform === "win32") return;
    if (this.stdin) this.stdin.write(`+${pgid} ${token}\n`);
    else this.start(); // lists every live group, this one included
  }

  /** The spawn that `token` announced failed: the watcher forgets the token. */
  withdraw(token: string): void {
    this.stdin?.write(`!${token}\n`);
  }

  /** The group is gone: the watcher forgets it (its id may be reused later). */
  remove(pgid: number): void {
    this.stdin?.write(`-${pgid}\n`);
  }

  private start(): void {
    try {
      const watcher = spawn("/bin/sh", ["-c", LIFELINE_SCRIPT, "cairn-lifeline"], { stdio: ["pipe", "ignore", "ignore"], detached: true });
      const stdin = watcher.stdin;
      stdin.on("error", () => {}); // the watcher was killed from outside; a new one starts with the next group
      watcher.once("exit", () => {
        if (this.stdin === stdin) this.stdin = undefined;
      });
      watcher.once("error", () => {
        if (this.stdin === stdin) this.stdin = undefined;
      });
      watcher.unref();
      (stdin as unknown as { unref?: () => void }).unref?.();
      this.stdin = stdin;
      // Groups started before a watcher died are listed again with the new one.
      for (const g of liveGroups) stdin.write(`+${g}\n`);
    } catch {
      this.stdin = undefined; // no /bin/sh: the exit hook still ends the groups on a normal exit
    }
  }
}

const lifeline = new Lifeline();

/** Process groups still alive, killed if the Node process exits first (e.g. a second Ctrl-C). */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

/** A process group about to be spawned, guarded from its first instant: see {@link prepareProcessGroup}. */
export interface ProcessGroupGuard {
  /** Give this to the group's leader, on top of its environment. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * Adopts the spawned group (its leader's pid; undefined when the spawn failed): it is killed if
   * this Node process exits or dies before the group ends. {@link endProcessGroup} ends it and
   * lets it go.
   */
  adopt(pgid: number | undefined): void;
}

/**
 * Call right before spawning a group (a child spawned `detached`), and adopt it right after, in
 * the same tick: the group dies with this Node process however Node ends, even when Node dies
 * between the spawn and the adoption.
 */
export function prepareProcessGroup(): ProcessGroupGuard {
  const token = lifeline.announce();
  return {
    env: { CAIRN_LIFELINE: token },
    adopt(pgid) {
      if (pgid === undefined) return lifeline.withdraw(token);
      if (!exitHookInstalled) {
        exitHookInstalled = true;
        process.once("exit", () => {
          for (const g of liveGroups) signalGroup(g, "SIGKILL");
        });
      }
      liveGroups.add(pgid);
      lifeline.add(pgid, token);
    },
  };
}

function forgetGroup(pgid: number): void {
  if (liveGroups.delete(pgid)) lifeline.remove(pgid);
}

/** Sends `signal` to process group `pgid`; false when the group no longer exists. */
function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    if ((error as NodeJS.ErrnoException).code === "EPERM") return true; // a member changed user; it still exists
    throw error;
  }
}

/**
 * The process groups that have a member which is not a zombie, read from /proc (Linux); undefined
 * where there is no /proc to read, or where it does not show this process itself (a sandbox that
 * hides other processes' stat files would make every group look dead). One reading serves every
 * group polled within {@link PROC_READING_MS} whose end began before the reading did (`since`):
 * a cancelled map ends its items' groups all at once; a group started after a reading is not in it.
 */
let procReading: { at: number; groups: Promise<Set<number> | undefined> } | undefined;
const PROC_READING_MS = 40;

function groupsWithLiveMembers(since: number): Promise<Set<number> | undefined> {
  if (procReading && procReading.at >= since && performance.now() - procReading.at < PROC_READING_MS) return procReading.groups;
  const at = performance.now();
  const groups = (async () => {
    let pids: string[];
    try {
      pids = (await readdir("/proc")).filter((name) => /^\d+$/.test(name));
    } catch {
      return undefined;
    }
    const live = new Set<number>();
    const self = String(process.pid);
    let sawSelf = false;
    await Promise.all(
      pids.map(async (pid) => {
        // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses, so read after its last `)`.
        const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
        const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (state !== undefined && state !== "Z" && state !== "X" && pgrp !== undefined) {
          live.add(Number(pgrp));
          if (pid === self) sawSelf = true;
        }
      }),
    );
    return sawSelf ? live : undefined;
  })();
  procReading = { at, groups };
  return groups;
}

/**
 * Whether group `pgid` still has a member that runs. kill(-pgid, 0) also finds a member that has
 * died but is not yet reaped (a zombie): a task's `sleep`, orphaned when its shell died at
 * SIGTERM, waits for PID 1 to reap it, which a container's or a VM's init does seconds later, and
 * Cairn said the task "did not exit on SIGTERM" of a group with nothing left running. Where
 * /proc cannot be read (macOS), a zombie counts as a member, as before. `since`: when the group's
 * end began (performance.now()); only a /proc reading begun after it is used.
 */
async function groupState(pgid: number, since: number): Promise<"gone" | "zombies" | "running"> {
  if (!signalGroup(pgid, 0)) return "gone";
  return ((await groupsWithLiveMembers(since))?.has(pgid) ?? true) ? "running" : "zombies";
}

/**
 * Ends process group `pgid`: SIGTERM now, SIGKILL after `graceMs` if anything is left.
 * Resolves once the group is gone or SIGKILL was sent. A group whose members all died but are
 * not yet reaped (zombies, under a PID 1 that reaps slowly) is gone (see `groupState`); it
 * gets a SIGKILL all the same, for a member forked while /proc was read. Its polls keep Node alive (for `graceMs` at most): what awaits the group's
 * end (the attempt, its logs' upload, a stopped flow that waits for them) must not be cut short
 * by Node running out of work once the group's leader, and its pipes, are gone. Node exiting
 * on purpose meanwhile (`process.exit`) still kills the group, through the exit hook.
 */
export function endProcessGroup(pgid: number, graceMs = DEFAULT_GRACE_MS): Promise<void> {
  const since = performance.now();
  if (!signalGroup(pgid, "SIGTERM")) {
    forgetGroup(pgid);
    return Promise.resolve();
  }
  signalGroup(pgid, "SIGCONT"); // stopped members can only act on SIGTERM once continued
  const deadline = Date.now() + graceMs;
  return new Promise((resolve) => {
    const poll = async () => {
      const state = await groupState(pgid, since);
      if (state !== "running") {
        // The zombies hold the group's id, so no other group can have it yet.
        if (state === "zombies") signalGroup(pgid, "SIGKILL");
        forgetGroup(pgid);
        return resolve();
      }
      if (Date.now() >= deadline) {
        signalGroup(pgid, "SIGKILL");
        forgetGroup(pgid);
        return resolve();
      }
      setTimeout(() => void poll(), 50);
    };
    setTimeout(() => void poll(), 20);
  });
}

/** What an attempt leaves to be done once it is over (see {@link runProcess}). */
interface AttemptClosing {
  /** Called once the process group is gone. */
  readonly groupGone: () => void;
  /** Files to send to the task's run once the attempt has settled, in order; each catches its own failures. */
  readonly sends: Array<() => Promise<void>>;
}

/**
 * The sends of each task context's latest process, by context: a kind that starts two processes in
 * one attempt starts the second once the first's logs are sent, so that it never writes a log file
 * anew while the file is still being uploaded (the older upload could land last, and the run keep
 * the first process's log where the disk has the second's).
 */
const lastSends = new WeakMap<TaskContext, Promise<void>>();

/** Runs one attempt of a task as a child process; see the module comment for the conventions. */
export async function runProcess(spec: ProcessSpec, ctx: TaskContext): Promise<ProcessResult> {
  throwIfAborted(ctx.signal);
  // Held from the first step, before anything is awaited: an attempt given up on while it is still
  // setting up (a timeout on a loaded machine) keeps its task's slot until its logs are sent too.
  let attemptDone!: (closed: Promise<void>) => void;
  let groupGone!: () => void;
  const gone = new Promise<void>((resolve) => (groupGone = resolve));
  holdWork(ctx, new Promise<void>((resolve) => (attemptDone = resolve)), { killGraceMs: spec.killGraceMs ?? DEFAULT_GRACE_MS, groupGone: gone });
  const closing: AttemptClosing = { groupGone, sends: [] };
  const before = lastSends.get(ctx);
  const attempt = before ? before.then(() => runHeldProcess(spec, ctx, closing)) : runHeldProcess(spec, ctx, closing);
  // The files are sent once the attempt has settled, not within it: a stalled upload (a server
  // briefly down, its requests retried for minutes) is not the process's work, so it neither runs
  // out the task's timeout nor counts in its duration, as a function task's outputs sent at its
  // run's closing do not. The work stays held until they are sent: the next attempt (which appends
  // to the same logs), the task's run's closing and the task's slot wait for that (run-task.ts).
  // Held work that fails is said as the task's warning (holdWork), never an unhandled rejection.
  const sent = attempt.then(
    () => sendAll(closing),
    () => sendAll(closing),
  );
  lastSends.set(ctx, sent);
  attemptDone(sent);
  return attempt;
}

/** Once the attempt has settled: its files sent, in order (each send catches its own failures). */
async function sendAll(closing: AttemptClosing): Promise<void> {
  closing.groupGone();
  for (const send of closing.sends) await send();
}

async function runHeldProcess(spec: ProcessSpec, ctx: TaskContext, closing: AttemptClosing): Promise<ProcessResult> {
  const args = spec.args ?? [];
  const display = spec.display ?? [spec.command, ...args].map((word) => shellQuote(word)).join(" ");
  const graceMs = spec.killGraceMs ?? DEFAULT_GRACE_MS;
  const tailMax = spec.tailLines ?? 20;
  if (spec.cwd !== undefined) await checkWorkingFolder(ctx.nodeId, display, spec.cwd, spec.cwdOrigin);

  const artifactsDir = await ctx.artifacts.path("");
  await mkdir(artifactsDir, { recursive: true });
  const notWritten = (what: string, error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code;
    const fix =
      code === "ENOSPC" || code === "EDQUOT"
        ? `Free space there, or point TMPDIR at a folder with room.`
        : code === "EMFILE" || code === "ENFILE"
          ? "The process ran out of file descriptors: raise the limit (ulimit -n)."
          : "Point TMPDIR at a folder you can write to.";
    return new ProcessStartError(ctx.nodeId, display, code, `Cairn could not write ${what} (TMPDIR is ${tmpdir()}): ${(error as Error).message}. ${fix}`, { cause: error });
  };
  // Named after this process, so that a later one removes it if this one is killed (task-folder.ts).
  const work = await makeTaskFolder().catch((error: unknown) => {
    throw notWritten("the task's temp folder", error);
  });
  // Until the process is started, a failed step removes the temp folder (which holds the
  // inputs) and closes the logs here: the finally that does it once it runs is not reached yet.
  const opened: WriteStream[] = [];
  const setUpFailed = async (error: unknown): Promise<never> => {
    await Promise.all([...opened.map(closeStream), rm(work, { recursive: true, force: true }).catch(() => {})]);
    throw error;
  };
  const inputsFile = join(work, "inputs.json");
  const outputsFile = join(work, "outputs.json");
  await writeFile(inputsFile, JSON.stringify(spec.inputs)).catch((error: unknown) => setUpFailed(notWritten(`the task's inputs to ${inputsFile}`, error)));

  const tracked = ctx.tracking.capabilities.mlflowClients;
  const env: Record<string, string | undefined> = {
    PYTHONUNBUFFERED: "1",
    ...spec.env,
    CAIRN_INPUTS: inputsFile,
    CAIRN_OUTPUTS: outputsFile,
    CAIRN_ARTIFACTS: artifactsDir,
    CAIRN_RUN_ID: ctx.runId,
    CAIRN_FLOW_RUN_ID: ctx.flowRunId,
    CAIRN_TASK: ctx.nodeId,
    CAIRN_ATTEMPT: String(ctx.attempt),
    // Outside MLflow, a stale MLFLOW_RUN_ID from the parent's environment must not leak into the child.
    MLFLOW_RUN_ID: tracked ? ctx.runId : undefined,
    // With the tracker's credentials: a password given in the tracking URI is not in `uri`.
    ...(tracked ? { MLFLOW_TRACKING_URI: ctx.tracking.uri, MLFLOW_EXPERIMENT_ID: ctx.tracking.experimentId, ...trackingEnv(ctx) } : {}),
  };

  const stdoutLog = await openLog(ctx, "logs/stdout.txt").catch(setUpFailed);
  opened.push(stdoutLog);
  const stderrLog = await openLog(ctx, "logs/stderr.txt").catch(setUpFailed);
  opened.push(stderrLog);
  /** The last lines of stderr, masked, each at most LINE_LIMIT characters and a note of what was cut. */
  const tail: string[] = [];

  if (ctx.signal.aborted) await setUpFailed(ctx.signal.reason ?? new CancelledError());
  const started = performance.now();
  // Loaded on first use: execa's heap is a cost flows without processes never need to pay.
  const { execa } = await import("execa").catch(setUpFailed);
  const stdoutOutput = spec.captureStdout
    ? await StdoutOutput.open(work, spec.captureStdout === "unless-outputs" ? "shell output" : "runProcess").catch((error: unknown) => setUpFailed(notWritten("the copy of its stdout", error)))
    : undefined;
  // execa reports a process that cannot start in its result, not by throwing.
  const guard = prepareProcessGroup();
  const child = execa(spec.command, args, {
    cwd: spec.cwd ?? process.cwd(),
    env: { ...env, ...guard.env } as Record<string, string>,
    extendEnv: true,
    detached: true, // its own process group, so the whole tree can be ended
    cleanup: false, // groups are ended by the exit hook above instead
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    buffer: false,
    reject: false,
    windowsHide: true,
  });
  const pid = child.pid;
  guard.adopt(pid);

  let aborted = false;
  let ending: Promise<void> | undefined;
  const end = () => (ending ??= pid !== undefined ? endProcessGroup(pid, graceMs) : Promise.resolve());
  const onAbort = () => {
    aborted = true;
    void end();
  };
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  if (ctx.signal.aborted) onAbort();
  // The tree is gone once the process has exited and its group ended; the engine holds the task's
  // lease until then, also when it stopped waiting for this attempt (cancel, timeout).
  // How the process ended: execa's result, which waits for its pipes to close too; or, once the
  // pipes are let go (below), its exit code and signal as the exit gave them.
  let letGo = () => {};
  const released = new Promise<void>((resolve) => (letGo = resolve));
  const settled = Promise.race([
    child,
    released.then(() => ({ failed: child.exitCode !== 0, exitCode: child.exitCode ?? undefined, signal: child.signalCode ?? undefined, code: undefined, cause: undefined })),
  ]);
  const tree = settled.then(end, end);

  // Masked for every secret the run knows (the task's own and any other), by the run's one masking function (ctx's).
  // The log files and the stdout copy are data: a lone `\r` ends a line there, nothing dropped. What is
  // shown is as on a terminal: a `\r`-updated line's earlier states (a progress bar's) at most one a
  // second, and the stderr tail its final state alone, so the traceback after 3,000 updates fits (see lines.ts).
  const pumped = Promise.all([
    child.stdout &&
      pumpLines(
        child.stdout,
        stdoutLog,
        ctx,
        (line) => {
          if (!line.shown) ctx.logger.info(withCutNote(line.text, line.more, ", in logs/stdout.txt"), IN_LOG_FILE);
        },
        { copy: stdoutOutput, onUpdate: (line) => ctx.logger.info(withCutNote(line.text, line.more, ", in logs/stdout.txt"), IN_LOG_FILE) },
      ),
    child.stderr &&
      pumpLines(
        child.stderr,
        stderrLog,
        ctx,
        (line) => {
          tail.push(withCutNote(line.masked, line.more));
          if (tail.length > tailMax) tail.shift();
          if (!line.shown) ctx.logger.warn(withCutNote(line.text, line.more, ", in logs/stderr.txt"), IN_LOG_FILE);
        },
        { onUpdate: (line) => ctx.logger.warn(withCutNote(line.text, line.more, ", in logs/stderr.txt"), IN_LOG_FILE) },
      ),
  ]).catch((error: unknown) => {
    // Cairn's own failure, not the process's: it is ended rather than left writing to a pipe nobody reads.
    void end();
    throw new ProcessOutputError(
      ctx.nodeId,
      `Cairn failed reading what its process printed (${ctx.mask(String(error))}), so it ended the process. What it printed until then is in the task run's logs/stdout.txt and logs/stderr.txt; please report this as a bug of Cairn.`,
    );
  });
  // When the main process exits, whatever it left running in its group (holding our pipes open) goes
  // too. Once the group is gone the pipes close, unless a process outside the group (`setsid cmd &`,
  // a daemon) inherited them: what it writes is not the task's, and waiting for it would keep the
  // task running for as long as it lives. So they are read for DRAIN_MS more, then let go: still
  // read and dropped (closing them would kill that process with SIGPIPE at its next write), but
  // no longer waited for, nor keeping Node alive.
  let heldOpen = false;
  child.once("exit", () => {
    void end().then(() => {
      closing.groupGone();
      const pipes = [child.stdout, child.stderr].filter((p): p is Readable => p !== null && p !== undefined);
      const check = () => {
        // A pipe paused for its log file (a slow disk) holds the task's own output: not let go yet.
        if (pipes.some((p) => !p.readableEnded && p.isPaused())) {
          timer = setTimeout(check, DRAIN_MS);
          return;
        }
        heldOpen = true;
        for (const p of pipes) {
          if (p.readableEnded) continue;
          p.removeAllListeners("data");
          p.on("data", () => {});
          p.resume();
          (p as Readable & { unref?: () => void }).unref?.();
        }
        letGo();
      };
      let timer = setTimeout(check, DRAIN_MS);
      const stop = () => clearTimeout(timer);
      void pumped.then(stop, stop);
    });
  });

  try {
    const [result] = await Promise.all([settled, Promise.race([pumped, released])]);
    if (heldOpen) {
      ctx.logger.warn(
        `task "${ctx.nodeId}": its process exited, but a process outside its process group (started with setsid, or a daemon) ` +
          `still held its stdout/stderr open; ${DRAIN_MS / 1000} s after the exit Cairn stopped waiting for them (what it writes there is dropped) and left that process running. ` +
          `Redirect that process's output so it does not inherit the task's, e.g. \`setsid mydaemon > /dev/null 2>&1 &\` (or to a log file of its own).`,
      );
    }
    const durationMs = Math.round(performance.now() - started);

    if (aborted || ctx.signal.aborted) throw ctx.signal.reason ?? new CancelledError();
    if (result.failed && result.exitCode === undefined && !result.signal) {
      throw new ProcessStartError(ctx.nodeId, display, result.code, startHint(result.code, spec.command, spec.origin), {
        cause: result.cause,
      });
    }
    if (result.exitCode !== 0) {
      const failed = new ProcessFailedError(ctx.nodeId, display, result.exitCode, result.signal, tail, spec.shell);
      if (spec.keepFilesOnFailure) closing.sends.push(await keepFailedFiles(outputsFile, artifactsDir, ctx));
      throw failed;
    }
    const outputs = await readOutputs(outputsFile, artifactsDir, ctx);
    await stdoutOutput?.close();
    return {
      outputs,
      ...(stdoutOutput && (outputs === undefined || spec.captureStdout === true) ? { stdout: await stdoutOutput.read(ctx.nodeId) } : {}),
      exitCode: 0,
      durationMs,
      artifactsDir,
    };
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    await tree;
    closing.groupGone();
    await stdoutOutput?.release();
    await Promise.all([closeStream(stdoutLog), closeStream(stderrLog), rm(work, { recursive: true, force: true }).catch(() => {})]);
    closing.sends.push(() => sendLogs(ctx));
  }
}

/**
 * Opens one of the attempt's log files. A retry appends to what the attempts before it wrote,
 * after a line `=== attempt N ===`: a failed attempt's traceback is what its retry's reader
 * needs, and the run keeps one file per stream (uploaded whole at each attempt's end).
 */
async function openLog(ctx: TaskContext, name: string): Promise<WriteStream> {
  const log = createWriteStream(await ctx.artifacts.path(name), { flags: ctx.attempt > 1 ? "a" : "w" }).on("error", () => {}); // logs are best effort
  if (ctx.attempt > 1) log.write(`=== attempt ${ctx.attempt} ===\n`);
  return log;
}

/** Sends the attempt's log files to the task's run; a failure to send is a warning, never the task's outcome. */
async function sendLogs(ctx: TaskContext): Promise<void> {
  await Promise.all(
    ["logs/stdout.txt", "logs/stderr.txt"].map((name) =>
      sendArtifact(ctx, name).catch((error: unknown) => ctx.logger.warn(`could not send ${name} to the task's run: ${(error as Error).message}`)),
    ),
  );
}

/** Where a failed attempt's outputs are recorded in the task's artifacts folder: outside the folder's top level, which a retry moves aside. */
function failedOutputsName(attempt: number): string {
  return `${RECORD_FOLDER}/attempt-${attempt}-outputs.json`;
}

/**
 * Keeps a failed attempt's files on its run, as `mlflow run` keeps what a script logged before it
 * crashed: with an MLflow server, the files it left in its artifacts folder (but `logs/`, sent
 * with every attempt, and `cairn/`, Cairn's record) are sent to the run under
 * `cairn/attempts/<n>/`, where a retry moves them locally: at their own paths they would stay
 * beside a successful retry's outputs (a file the retry does not write again would then sit in its
 * output folder on the server, and every download of that cache entry fail its digest), each name checked as a
 * successful step's are (a name an MLflow server would store elsewhere, or that holds a known
 * secret, is not sent; nor is a link, whose target may lie outside the folder). The outputs it
 * set, when they read as a successful step's would, are written to {@link failedOutputsName}: a
 * record only, never a cache entry (the attempt failed). With the embedded store the folder is
 * the run's own, so the files are there already and only the record is written. Every failure
 * here is a warning: the step's own error is what the attempt ends with. The record is written
 * and the folder listed now; the files are sent by the function returned, once the attempt has
 * settled (see {@link runProcess}), so their upload is outside its timeout.
 */
async function keepFailedFiles(outputsFile: string, artifactsDir: string, ctx: TaskContext): Promise<() => Promise<void>> {
  const none = () => Promise.resolve();
  const { records, localArtifacts } = ctx.tracking.capabilities;
  if (!records) return none;
  const warn = (what: string, why: string) => ctx.logger.warn(`the failed attempt's ${what} was not sent to the task's run: ${why}`);
  // The record at its own name; the step's files under the attempt's folder.
  const names: { name: string; under?: string }[] = [];
  try {
    const record = await failedOutputsRecord(outputsFile, artifactsDir, ctx);
    if (record !== undefined) {
      const name = failedOutputsName(ctx.attempt);
      await mkdir(join(artifactsDir, RECORD_FOLDER), { recursive: true });
      await writeFile(join(artifactsDir, ...name.split("/")), record);
      names.push({ name });
    }
  } catch (error) {
    ctx.logger.warn(`the outputs the failed attempt set are not recorded: ${(error as Error).message}`);
  }
  if (localArtifacts) return none;
  try {
    for (const { name, link } of await filesLeft(artifactsDir)) {
      const problem = link ? "it is a link, whose target may lie outside CAIRN_ARTIFACTS; copy the file into the folder instead." : unsendableName(name, ctx);
      if (problem) warn(`file ${ctx.mask(name)}`, problem);
      else names.push({ name, under: attemptFolder(ctx.attempt) });
    }
  } catch (error) {
    warn("artifacts folder", `it could not be read (${(error as Error).message})`);
  }
  return async () => {
    // A few at a time: a folder of many small files is not a burst of requests at once.
    for (let i = 0; i < names.length; i += 4) {
      await Promise.all(names.slice(i, i + 4).map(({ name, under }) => sendArtifact(ctx, name, under).catch((error: unknown) => warn(`file ${name}`, (error as Error).message))));
    }
  };
}

/** The outputs a failed attempt set, as JSON text, when they read as a successful attempt's would and hold no known secret; else undefined (a warning says why). */
async function failedOutputsRecord(outputsFile: string, artifactsDir: string, ctx: TaskContext): Promise<string | undefined> {
  const outputs = await readOutputs(outputsFile, artifactsDir, ctx).catch((error: unknown) => {
    ctx.logger.warn(`the outputs the failed attempt set are not recorded: ${(error as Error).message}`);
    return undefined;
  });
  if (outputs === undefined) return undefined;
  // As set, with artifact markers as written: a resolved Artifact's path is this machine's.
  const text = `${JSON.stringify(JSON.parse(await readFile(outputsFile, "utf8")), null, 2)}\n`;
  if (ctx.mask(text) !== text) {
    ctx.logger.warn("the outputs the failed attempt set are not recorded: they hold a known secret, which Cairn never writes to a run.");
    return undefined;
  }
  return text;
}

/** The files and links in the artifacts folder but under `logs/` and `cairn/`, as relative paths with "/", sorted; special files (a FIFO) left out. */
async function filesLeft(artifactsDir: string): Promise<{ name: string; link: boolean }[]> {
  const entries = await readdir(artifactsDir, { recursive: true, withFileTypes: true });
  const files: { name: string; link: boolean }[] = [];
  for (const entry of entries) {
    if (!entry.isFile() && !entry.isSymbolicLink()) continue;
    const name = relative(artifactsDir, join(entry.parentPath, entry.name)).split(sep).join("/");
    const top = name.split("/", 1)[0]!;
    // In any case, as the retry's move: on a case-insensitive file system `Cairn/` is `cairn/`.
    if (top.toLowerCase() === RECORD_FOLDER || top === "logs") continue;
    files.push({ name, link: entry.isSymbolicLink() });
  }
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Why file `name` of the artifacts folder is not sent, by the checks a task's artifact names meet; undefined when it is sent. */
function unsendableName(name: string, ctx: TaskContext): string | undefined {
  if (ctx.mask(name) !== name) return "its name holds a known secret, which Cairn never writes to a run; name the file without it.";
  try {
    taskFilePath(name, "", { taskName: ctx.nodeId, source: "a file in CAIRN_ARTIFACTS" });
  } catch (error) {
    return ctx.mask((error as Error).message);
  }
  return undefined;
}

/**
 * Throws ProcessStartError unless `cwd` is a folder. A spawn in a missing folder fails with the
 * same ENOENT as a missing program, which would blame the interpreter (and advise recreating a venv).
 */
export async function checkWorkingFolder(nodeId: string, command: string, cwd: string, origin = "the task's `cwd` option"): Promise<void> {
  const folder = resolve(cwd);
  let code: string;
  try {
    if ((await stat(folder)).isDirectory()) return;
    code = "ENOTDIR";
  } catch (error) {
    code = (error as NodeJS.ErrnoException).code ?? "ENOENT";
  }
  const what = code === "ENOTDIR" ? "is not a folder" : code === "ENOENT" ? "does not exist" : `cannot be used (${code})`;
  const given = folder === cwd ? "" : `, "${cwd}" from ${process.cwd()}`;
  throw new ProcessStartError(nodeId, command, code, `Its working folder ${folder} (${origin}${given}) ${what}: create it, or fix ${origin}.`);
}

function startHint(code: string | undefined, command: string, origin?: CommandOrigin): string {
  // A folder cannot be run either (EACCES), and `chmod +x` would not help: it is the folder of the program.
  if (code === "EACCES" && isFolder(command)) {
    return `"${command}" is a folder, not a program${origin ? `; ${origin.what}` : ""}. To fix: give the program in it (${join(command, "python3")}, say)${origin ? `, ${origin.fix}` : "."}`;
  }
  if (origin) {
    if (code === "ENOENT") return `"${command}" was not found; ${origin.what}. To fix: ${origin.fix}`;
    if (code === "EACCES") return `"${command}" is not executable; ${origin.what}. To fix: make it executable (\`chmod +x\`), ${origin.fix}`;
    return `${origin.what}. Check it and its permissions.`;
  }
  if (code === "ENOENT") return `"${command}" was not found: install it, put it on PATH, or give its full path.`;
  if (code === "EACCES") return `"${command}" is not executable: \`chmod +x\` it, or give an interpreter.`;
  return "Check the command and its permissions.";
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason ?? new CancelledError();
}

function closeStream(s: WriteStream): Promise<void> {
  return new Promise((resolve) => s.end(() => resolve()));
}

async function readOutputs(file: string, artifactsDir: string, ctx: TaskContext): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ProcessOutputError(
      ctx.nodeId,
      `the CAIRN_OUTPUTS file is not valid JSON (${(error as Error).message}); it starts with ${JSON.stringify(text.slice(0, 80))}. ` +
        `Write it with cairn_task.set_outputs({...}) (Python) or currentTask().setOutputs({...}) (TypeScript).`,
    );
  }
  if (!isPlainObject(value)) {
    throw new ProcessOutputError(ctx.nodeId, `CAIRN_OUTPUTS must hold a JSON object of named outputs, got ${Array.isArray(value) ? "an array" : typeof value}.`);
  }
  // Parsed JSON is JSON data; only its depth can fail, and resolveMarkers recurses once per level:
  // a value nested past the limit is refused here, named as any task output is, not by a stack overflow.
  assertSerializable(value, `Task "${ctx.nodeId}" output`);
  return (await resolveMarkers(value, "", artifactsDir, ctx)) as Record<string, unknown>;
}

/**
 * Replaces `{"$artifact": "name"}` markers by the Artifacts of files in the artifacts folder, in a
 * copy of `value`. The walk is synchronous and only the markers wait (for their files, all at
 * once): an output of 100,000 values is not 100,000 promises. When several markers are wrong, the
 * first in the output's order is the error.
 */
export async function resolveMarkers(value: unknown, path: string, artifactsDir: string, ctx: TaskContext): Promise<unknown> {
  const holder: Record<string, unknown> = {};
  const walk: MarkerWalk = { path, at: [], markers: [] };
  copyFindingMarkers(value, holder, "value", walk);
  const { markers } = walk;
  const settled = await Promise.allSettled(markers.map((m) => resolveMarker(m.name, m.where, artifactsDir, ctx)));
  for (let i = 0; i < markers.length; i++) {
    const done = settled[i]!;
    if (done.status === "rejected") throw done.reason;
    put(markers[i]!.into, markers[i]!.key, done.value);
  }
  return holder.value;
}

/** The walk of one output: the keys down to the value at hand (its place is spelt only for a marker), the markers found. */
interface MarkerWalk {
  /** Where the walked value is in the output (`""`: it is the output). */
  readonly path: string;
  readonly at: (string | number)[];
  readonly markers: FoundMarker[];
}

/** A marker found in an output, and the place in the copy its Artifact goes. */
interface FoundMarker {
  readonly name: unknown;
  /** Its place in the output, for messages: `metrics.files[2]`. */
  readonly where: string;
  readonly into: Record<string | number, unknown>;
  readonly key: string | number;
}

/** Puts a copy of `value` at `into[key]`, its markers left for resolveMarkers to put in. */
function copyFindingMarkers(value: unknown, into: Record<string | number, unknown>, key: string | number, walk: MarkerWalk): void {
  if (Array.isArray(value)) {
    const out: unknown[] = new Array(value.length);
    put(into, key, out);
    for (let i = 0; i < value.length; i++) {
      walk.at.push(i);
      copyFindingMarkers(value[i], out as unknown as Record<number, unknown>, i, walk);
      walk.at.pop();
    }
    return;
  }
  if (!isPlainObject(value) || isArtifact(value)) {
    put(into, key, value);
    return;
  }
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === ARTIFACT_MARKER) {
    let where = walk.path;
    for (const k of walk.at) where = typeof k === "number" ? `${where}[${k}]` : where ? `${where}.${k}` : k;
    walk.markers.push({ name: value[ARTIFACT_MARKER], where: where || "(the whole output)", into, key });
    return;
  }
  const out: Record<string, unknown> = {};
  put(into, key, out);
  for (const k of keys) {
    walk.at.push(k);
    copyFindingMarkers(value[k], out, k, walk);
    walk.at.pop();
  }
}

/**
 * `into[key] = value`, but a key `__proto__` (JSON.parse makes it an own key of the output) stays
 * an own key of the copy: assigned, it would set the copy's prototype, losing `{"d":{"__proto__":1}}`'s
 * key and making `{"__proto__":{"x":1}}` "not plain data", where a function task keeps both.
 */
function put(into: Record<string | number, unknown>, key: string | number, value: unknown): void {
  if (typeof key === "number") into[key] = value;
  else setOwnProperty(into, key, value);
}

/** The Artifact a marker names, checked: a file or a folder of them, inside the artifacts folder. */
async function resolveMarker(name: unknown, where: string, artifactsDir: string, ctx: TaskContext): Promise<Artifact> {
  if (typeof name !== "string" || !name) {
    throw new ProcessOutputError(ctx.nodeId, `output "${where}" is an artifact marker whose name is not a non-empty string.`);
  }
  const artifact = artifactFile(ctx, name, `script output "${where}" (CAIRN_OUTPUTS)`);
  // Taken as it is first, then followed (as for a function task's): a dangling link is named as one, not as a missing file.
  const onDisk = await artifactOnDisk(artifact.path).catch(() => undefined);
  const home = onDisk && (await realpath(artifactsDir).catch(() => undefined));
  if (!onDisk || home === undefined) {
    throw new ProcessOutputError(
      ctx.nodeId,
      `output "${where}" names artifact "${name}", but there is no such file in CAIRN_ARTIFACTS (${artifactsDir}). ` +
        `Write the file at artifact_path("${name}") (Python) or artifactPath("${name}") (TypeScript) before naming it.`,
    );
  }
  if (onDisk.kind === "dangling") {
    throw new ProcessOutputError(
      ctx.nodeId,
      `output "${where}" names artifact "${name}", ${danglingWords(onDisk)}. Remove the link, or write the file at artifact_path("${name}") (Python) or artifactPath("${name}") (TypeScript) instead.`,
    );
  }
  const found = { ...(onDisk.kind === "file" ? { size: onDisk.size } : {}), folder: onDisk.kind === "folder", other: onDisk.kind === "other", real: onDisk.real, home };
  // A link out of the folder would be recorded, hashed and uploaded as whatever it points to (`/etc`).
  if (!isWithin(found.real, found.home)) {
    throw new ProcessOutputError(
      ctx.nodeId,
      `output "${where}" names artifact "${name}", a link to ${found.real}, outside CAIRN_ARTIFACTS (${artifactsDir}). ` +
        `Copy what it points to into the artifacts folder instead: an artifact is recorded, hashed and uploaded by its content.`,
    );
  }
  if (found.other) {
    throw new ProcessOutputError(ctx.nodeId, `output "${where}" names artifact "${name}", which is neither a file nor a folder (a FIFO, socket or device). Write a file instead.`);
  }
  // What is inside a folder is uploaded too: the same holds for each entry.
  const bad = found.folder ? await unfitFolderEntry(artifact.path, found.real, found.home, "CAIRN_ARTIFACTS") : undefined;
  if (bad) {
    throw new ProcessOutputError(
      ctx.nodeId,
      `output "${where}" names artifact "${name}", a folder holding ${bad} (CAIRN_ARTIFACTS is ${artifactsDir}). ` +
        `An artifact is recorded, hashed and uploaded by its content, so a folder may hold only files, folders and links to them inside CAIRN_ARTIFACTS.`,
    );
  }
  return { ...artifact, ...(found.size !== undefined ? { size: found.size } : {}) };
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
