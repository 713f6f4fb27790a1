import { spawn } from "node:child_process";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { chmod, rename, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { Writable } from "node:stream";
import { CacheBackendError, CacheOptionError, CacheStore, CacheStoreUrlError } from "@cairn/cache";
import type Bytes from "bytes";
import {
  ABANDONED_TAG,
  cairnBuild,
  CACHED_FROM_TAG,
  SWEEP_COUNTED_TAG,
  CANCEL_REASON_TAG,
  CairnError,
  describeTracker,
  explainTask,
  type NearestEntry,
  type PlannedTask,
  openFlowCache,
  planFlow,
  FlowValidationError,
  OptionError,
  EXPERIMENT_NAME_MAX_LENGTH,
  experimentNameTooLong,
  ParamError,
  SecretRegistry,
  TrackingConfigError,
  TrackerUnreachableError,
  UnsupportedTrackingUriError,
  ArtifactLocationError,
  buildFlowGraph,
  type LocalStore,
  type PruneRunsResult,
  pruneLocalCopies,
  redactUri,
  closeAbandonedRuns,
  booleanFromEnv,
  closestName,
  unknownNameExpected,
  type FlowDefinition,
  closestNames,
  describeAbandonedRuns,
  describeRunPlace,
  flowRunOf,
  DURATION_TAG,
  KIND_TAG,
  startedNoAttempt,
  removeIndexEntries,
  type IndexCleanup,
  type CancelledRun,
  CancelledError,
  type FailedRun,
  resolveTracker,
  SKIPPED_BECAUSE_TAG,
  SKIPPED_REASON_TAG,
  skippedWhy,
  sourceRunsOfHits,
  trackingUriOf,
  toDot,
  unsaidMisspeltVariables,
  toGraphJson,
  toMermaid,
  type EndingFlowRun,
  attemptErrors,
  type RunOptions,
  ROOT_CHECKED,
  leaveCrashExitToCommand,
  LONGEST_TIMER,
  LONGEST_TIMER_MS,
  type RunFilter,
  type RunRecord,
  type Tracker,
} from "@cairn/core";
import "@cairn/mlflow/register";
import { createColors } from "./picocolors.ts";
import { checkRoot, checkRootToRead, checkRunRootFlag, rootFlagError } from "./check-root.ts";
import { ERROR_ARTIFACT, errorFileAt, localRunFiles, readErrorFile, shownErrorText } from "./error-file.ts";
import { findRun, MIN_PREFIX } from "./find-run.ts";
import { failedTaskFiles, failureSummary, runFilesLine, sameDestination } from "./failure-summary.ts";
import { FlowFileError, type FlowImporter, loadFlow } from "./load-flow.ts";
import { IMPORT_FLAG, importsFromEnv, loadImports, takeImports } from "./import-modules.ts";
import { importOnce } from "./fresh-import.ts";
import { holdStdoutForJson, printsJson, undivertedWrite } from "./json-stdout.ts";
import { NeedsTsxError } from "./compile-flow.ts";
import { type FlagOptions, parseFlags } from "./parse-flags.ts";
import { parseParams, type ParamsFile } from "./parse-params.ts";
import { readParamsFile } from "./params-file.ts";
import { cutLongLines, printable, printableLine } from "./printable.ts";
import { parseDuration, parseSize } from "./prune-limits.ts";
import { createReporter, flowSize, formatDuration, formatUtc, type ReporterMode } from "./reporter.ts";
import { UsageError } from "./usage-error.ts";
import { parseSecretsFile } from "./secrets-file.ts";

/** Where the CLI reads and writes; tests pass their own. */
export interface CliIo {
  stdout?: Writable;
  stderr?: Writable;
  env?: NodeJS.ProcessEnv;
  /** An already imported flow module (used when `tsx flow.ts` runs itself). */
  module?: Record<string, unknown>;
  /** How flow files are imported; default `import()` (TypeScript needs tsx registered). */
  importFlow?: FlowImporter;
  /**
   * Acts as the process's own command: SIGINT/SIGTERM/SIGHUP handlers cancel the run (a second
   * one, or a run cancelled by one, ends the process), and a run that leaves abandoned work
   * running ends the process with its exit code. Only the `cairn` bin and `tsx flow.ts` turn it
   * on; `cli()` in an app leaves the app's signals and its process alone.
   * @default false
   */
  handleSignals?: boolean;
  /**
   * @internal The `cairn` bin's handler of SIGINT, SIGTERM and SIGHUP while the command starts (it
   * says a run was cancelled before it started, and exits): `run` removes it once its own cancel
   * handlers are in place, before the run is started. Only with `handleSignals`.
   */
  startingSignalHandler?: (signal: NodeJS.Signals) => void;
  /**
   * Stops a `worker` command when aborted, as SIGTERM stops the `cairn worker` process: it
   * finishes the tasks it runs, takes no more, and resolves to 0. Cancels a `run` command as
   * Ctrl-C cancels `cairn run`: its runs are closed as `KILLED`, its reason is the flow run's
   * `cairn.cancel_reason`, and it resolves to 130. Without `handleSignals` an app has no other
   * way to stop either: the app's signals are left to the app.
   */
  signal?: AbortSignal;
}

import { EXIT } from "./exit.ts";

export { EXIT };
export { importCompiledFlow, NeedsTsxError } from "./compile-flow.ts";

/** The options `cairn` takes without a command. */
const MAIN_OPTIONS = ["-h", "--help", "-v", "--version"] as const;

/**
 * ` (did you mean "x"?)` when `given` is near enough to one of `known` to be a typo, else "": the
 * one way every value the CLI checks against a list (a command, a format, a template, a policy,
 * an experiment) suggests what was meant, with the same closestName as --rerun's and the flags'.
 * `shown` words the suggestion (`cairn cache ls`).
 */
function meantOf(given: string, known: Iterable<string>, shown: (meant: string) => string = (meant) => `"${meant}"`): string {
  const meant = closestName(given, known, { prefixes: given.length >= 3 });
  return meant === undefined ? "" : ` (did you mean ${shown(meant)}?)`;
}

/**
 * ` (did you mean "café"? ...)` when one of `known` differs from `given` only in how its letters
 * are written in Unicode (`é` as one code point, NFC, or as `e` and an accent, NFD, as macOS file
 * names and some keyboards give it), else "". Such names print alike, so the hint spells both
 * out; they stay two names, as the store keeps them.
 */
function otherNormalisationOf(given: string, known: Iterable<string>): string {
  const nfc = given.normalize("NFC");
  for (const name of known) {
    if (name === given || name.normalize("NFC") !== nfc) continue;
    return (
      ` (did you mean "${name}"? It looks the same but is written with other Unicode code points: the experiment's name is ` +
      `${codePoints(name)} (${normalisationForm(name)}), the one given is ${codePoints(given)} (${normalisationForm(given)}); ` +
      `pass the name as the experiment has it, e.g. copied from \`cairn runs\`)`
    );
  }
  return "";
}

/** `"caf\u00e9"`: the name with every character beyond ASCII as its code point, to tell apart names that print alike. */
function codePoints(name: string): string {
  return `"${[...name].map((ch) => (ch.codePointAt(0)! < 0x80 ? ch : `\\u${ch.codePointAt(0)!.toString(16).padStart(4, "0")}`)).join("")}"`;
}

/** Which Unicode normalisation form `name` is in, in words. */
function normalisationForm(name: string): string {
  if (name === name.normalize("NFC")) return "composed, NFC";
  if (name === name.normalize("NFD")) return "decomposed, NFD";
  return "neither NFC nor NFD";
}

/** The commands, in the order the help lists them. */
const COMMANDS = ["init", "run", "graph", "plan", "explain", "cache", "runs", "show", "report", "worker", "workers"] as const;

const HELP: Record<string, string> = {
  main: `cairn: run and inspect Cairn flows

Usage: cairn <command> [options]

Commands:
  init [DIR]    Scaffold a project: flow.ts, tsconfig.json, package.json scripts (--template ts|python)
  run FILE      Run the flow a file default-exports
  graph FILE    Print the flow's graph (mermaid, dot or json)
  plan FILE     Show which tasks would hit the cache and which would run
  explain FILE TASK   Say why TASK misses: what changed since its nearest cache entry
  cache ls|clear|prune   Inspect and trim the cache
  runs          List recent flow runs (runs prune --older-than 30d: remove old runs and their files)
  show RUN_ID   Show one flow run and its tasks, or one task run (a unique prefix of the id will do)
  report [RUN_ID|latest]   Write a flow run's HTML report: graph, timeline, why each task ran
  worker FILE --queue URL   Take the flow's tasks from a Redis queue and run them (cairn run --queue)
  workers --queue URL       List the live workers of a queue

Options:
  -h, --help     Show help (also of a command: cairn help run, or cairn run --help)
  -v, --version  Show the version
  --import FILE  (every command) Load this module first, as a flow file is loaded; repeatable.
                 For a plug-in's registerTrackerScheme(), which runs, show, report and cache
                 load no flow to find. Also CAIRN_IMPORT=FILE[,FILE...], loaded before these.

Exit codes: 0 done (the flow succeeded), 1 the flow failed or was cancelled by other than a signal (another command: it failed at its work),
  2 usage, validation or setting error (a flag, a variable, an experiment that is missing or deleted, a queue password Redis refuses),
  3 a service Cairn needs (tracking server, shared cache, queue) could not be used before the flow started: retry once it is back,
  130 interrupted (Ctrl-C, SIGTERM, SIGHUP) before the run's work was done.`,
  run: `Usage: cairn run FILE [options]      (same flags: tsx FILE [options])

Runs the flow that FILE default-exports.

Options:
  -p, --param NAME=VALUE     Set a flow param; repeat for more. Values are read as JSON when they parse.
      --params-file FILE     Flow params from a file: JSON, or YAML named .yaml/.yml, an object of values
                             by name. A -p of the same name wins.
  -c, --concurrency N        Tasks running at once (integer >= 1). Default: 4, or the CPU count if larger.
      --pool NAME=N          Limit of a named pool; repeat for more. Default 1 per pool.
      --failure-policy P     fail-fast (default): stop at the first failure; continue: finish independent branches.
      --experiment NAME      Experiment to record into. Default: MLFLOW_EXPERIMENT_NAME, else the flow's name.
      --secrets FILE         KEY=VALUE file of secrets for ctx.secret(); never logged. Repeat for more
                             files: all are read, in order; a key in a later file wins.
      --no-tracking          Record no runs (no embedded store runs, no MLflow); the cache is still used.
      --no-cache             Neither look up nor store results: every task runs. Not with --rerun,
                             --refresh or --cache-strict, which it would make do nothing.
      --no-report            Do not write the run's HTML report (cairn/report.html; see cairn report).
      --rerun TASK           Run TASK (a task name or node id) and its dependants even if cached; repeatable.
      --refresh              Run every task even if cached, and store the results again.
      --cache-strict         Fail when the shared cache (CAIRN_CACHE_URL) does not answer, instead of
                             going on without it with a warning (also CAIRN_CACHE_STRICT=1).
      --json                 Print one JSON event per line on stdout (see README, "Events").
  -q, --quiet                Print only failed tasks, warnings and the flow's closing line (for cron and CI).
      --root DIR             Folder of Cairn's local state. Default: .cairn in the working directory
                             (not the flow file's folder).
      --queue URL            Run the tasks on \`cairn worker\` processes that take them from this Redis
                             queue (redis://host:6379); needs MLFLOW_TRACKING_URI set to an MLflow server.
                             Also CAIRN_QUEUE=URL, better for a URL with a password (ps shows a command line).
  -h, --help                 Show this help`,
  worker: `Usage: cairn worker FILE --queue URL [--pool NAME]... [--concurrency N] [--healthcheck]

Takes the tasks of the flow FILE default-exports from the Redis queue at URL, as \`cairn run FILE
--queue URL\` sends them, and runs them; run it in a checkout of the same project (a task whose
code differs from the coordinator's is refused). Records to the flow run's MLflow server.
SIGTERM, SIGHUP or Ctrl-C: finishes the tasks it runs, takes no more, and exits.

Options:
      --queue URL        The queue's Redis (redis://host:6379); else CAIRN_QUEUE, better for a URL with a
                         password (ps shows a command line)
      --pool NAME        Take only this pool's tasks; repeatable. Default: the tasks that name no pool
                         (--pool default names those too).
  -c, --concurrency N    Tasks it runs at once, per pool. Default: 1
      --healthcheck      Check that a worker of this flow (and of these pools) runs on this host: its
                         heartbeat in Redis is at most 6 s old (a stopped or stuck one fails). Exit 0
                         and print ok; 1 when no such worker beats; 3 when Redis does not answer; 2 when
                         the flow does not load, URL is not redis://, or Redis refuses its password.
                         A liveness probe, run beside the worker; \`cairn workers\` lists every live
                         worker.
      --secrets FILE     KEY=VALUE file of secrets for ctx.secret(); never logged. Repeatable: a key in
                         a later file wins.
      --root DIR         Folder of Cairn's local state. Default: .cairn in the working directory`,
  workers: `Usage: cairn workers --queue URL [--json]

Lists the live workers of the queue at URL (else CAIRN_QUEUE): host, pid, flow, pools, the Cairn each runs (as \`cairn --version\` prints it), running tasks, last heartbeat.`,
  init: `Usage: cairn init [DIR] [--template ts|python] [--no-install]

Scaffolds a Cairn project in DIR (default: the working directory, created when missing):
flow.ts (and steps/ for the python template), a strict tsconfig.json, .gitignore lines, and
package.json scripts (flow, plan, typecheck), "type": "module" and dependencies (cairn-dag,
zod; dev: typescript, @types/node, tsx), then installs them with the package manager that ran it.
Never overwrites a file: if one it would write exists, it writes nothing and says which.

Options:
      --template NAME    ts (default): TypeScript function tasks; python: Python script steps
      --no-install       Do not run the package manager's install (what to run next then starts with it)
  -h, --help             Show this help`,
  graph: `Usage: cairn graph FILE [--format mermaid|dot|json] [--json]

Validates the flow FILE default-exports and prints its graph. Default format: mermaid.

Options:
  -f, --format F      mermaid (default), dot or json
      --json          The same as --format json`,
  runs: `Usage: cairn runs [--experiment NAME] [-n N] [--json] [--root DIR]
       cairn runs prune --older-than DURATION [--dry-run] [--json] [--root DIR]

Lists recent flow runs, newest first, from the tracker MLFLOW_TRACKING_URI names (the .cairn store when unset).
On an MLflow server, runs other programs made in the same experiments are left out, and counted.

Options:
      --experiment NAME   Only this experiment's runs. Default: every experiment's
  -n, --limit N           At most N runs. Default: 20
      --json              Print JSON
      --root DIR          Folder of Cairn's local state, which must exist. Default: .cairn in the working directory

cairn runs prune removes, from the .cairn store, the flow runs that ended more than DURATION ago
(30m, 12h, 30d, 2w), each with its task runs: their records, logs, artifacts and report pages. It
keeps whole a flow run with a run still RUNNING, or with a run a cache entry names as its source:
cairn cache prune removes entries, and their runs go at the next runs prune. It also removes the copies
in downloads/ (and, with MLFLOW_TRACKING_URI, in artifacts/) of runs no cache entry names, written
before DURATION, and the artifact stamps of runs with no files left. On an MLflow server it removes
no run: those are MLflow's (delete them there, then \`mlflow gc\`).
      --older-than DURATION   Required: how long ago a run must have ended to go
      --dry-run               Say what would go and how much it frees; remove nothing
      --json                  Print it as one JSON document`,
  plan: `Usage: cairn plan FILE [-p NAME=VALUE]... [--params-file FILE] [--rerun TASK]... [--refresh] [--json] [--root DIR]
                  [--experiment NAME] [--secrets FILE] [--no-tracking]

Shows, without running anything, which tasks would come from the cache and which would run, and why.
A task below one that runs is shown as running: only running can tell whether its inputs come out unchanged.
Nothing is changed: an entry it judges unusable stays in the store. --no-tracking judges for a run
given --no-tracking (whose entries a run that records does not use).

Options (pass those the run is given, to look where it would):
  -p, --param NAME=VALUE   A flow param, as cairn run takes it; repeat for more
      --params-file FILE   Flow params from a JSON or YAML file, as cairn run takes it (a -p of the same name wins)
      --rerun TASK         Show TASK (a task name or node id, or a map's item) and its dependants as running; repeatable
      --refresh            Show every task as running, as cairn run --refresh runs them
      --json               Print the plan as a JSON array, one object per task
      --root DIR           Folder of Cairn's local state. Default: .cairn in the working directory
      --experiment NAME    The experiment the run would record into. Default: MLFLOW_EXPERIMENT_NAME, else the flow's name
      --secrets FILE       KEY=VALUE file of secrets (an input that holds one enters the key by it); repeatable
      --no-tracking        Judge for a run given --no-tracking
  -h, --help               Show this help`,
  explain: `Usage: cairn explain FILE TASK [-p NAME=VALUE]... [--params-file FILE] [--json] [--root DIR] [--experiment NAME] [--secrets FILE]
                  [--no-tracking]

Says whether TASK would hit the cache; for a miss, which ingredients (code, version, inputs, env)
changed since the nearest earlier cache entry of the same task. Pass the --experiment, --secrets and
--no-tracking the run is given: a task whose input holds a secret has a key that depends on it, and
an entry a --no-tracking run stored is used only by such runs. Nothing is changed.`,
  cache: `Usage: cairn cache ls [--task NAME] [--json] [--root DIR]
       cairn cache clear [--task NAME] [--root DIR]
       cairn cache prune [--older-than 7d] [--max-size 5GB] [--root DIR]

The store is the embedded one under --root (default .cairn), or CAIRN_CACHE_URL (redis://, postgres://).
With MLFLOW_TRACKING_URI, entries are also kept in each experiment's index on the server, where a run
finds a key the store lacks: clear and prune remove the index entries of the keys they remove (clear
--task: every entry of that task, also of keys the store never had); ls lists the store only.
--task NAME takes a task's name as ls lists it (a map's items are under their task's name); clear of a
NAME the store has no entry of but one close to it (a typo) warns on stderr; exit 0.
Durations: a number and ms, s, m, h, d or w (500ms, 30m, 12h, 7d). Sizes: a number and B, KB, MB, GB
or TB, powers of 1024 (500MB, 5GB). Anything else is refused and nothing is removed.`,
  show: `Usage: cairn show RUN_ID [--json] [--experiment NAME] [--root DIR]

Shows one flow run (status, params, metrics, why it failed or was cancelled, and its task runs) or
one task run. RUN_ID is a run id, or its first ${MIN_PREFIX} or more hex digits when no other run's id
starts with them (as git takes a short commit id); a prefix is looked for in every experiment, or
in --experiment's.

Options:
      --json              Print JSON (whole run ids)
      --experiment NAME   Look for a run id prefix in this experiment only
      --root DIR          Folder of Cairn's local state, which must exist. Default: .cairn in the working directory`,
  report: `Usage: cairn report [RUN_ID|latest] [--out FILE] [--open] [--experiment NAME] [--root DIR]

Writes the HTML report of a flow run (default: the latest): its graph coloured by status with the
critical path, its timeline (queue wait, run time, retries), and per task its duration, attempts,
cache key, why it ran, its error and log tail, its metrics. One file, no scripts, no network. It is
built from what the run recorded (the tracker MLFLOW_TRACKING_URI names, else .cairn, and the cache
entries), so it works for any past run. Every \`cairn run\` also logs it as the flow run's artifact
cairn/report.html. RUN_ID may be a unique prefix of the id, as for \`cairn show\`.

Options:
  -o, --out FILE          Where to write it. Default: cairn-report-<first 8 digits of the run id>.html
      --open              Open it in the default browser afterwards
      --experiment NAME   Look for the run (or the latest) in this experiment only
      --root DIR          Folder of Cairn's local state, which must exist. Default: .cairn in the working directory`,
};

/** The process's output streams whose writes failed, with the first error: what is left to print to them is dropped. */
const lostOutput = new WeakMap<Writable, NodeJS.ErrnoException>();
const guarded = new WeakSet<Writable>();

/** The reader of a pipe went away (`| head -1`), or the stream was already given up: not news to the user. */
const readerGone = (error: NodeJS.ErrnoException) => error.code === "EPIPE" || error.code === "ERR_STREAM_DESTROYED";

/**
 * A write error on the process's stdout or stderr (the reader of `cairn run ... | head -1` gone:
 * EPIPE; a full disk: ENOSPC; a dead terminal: EIO) drops what is left to print there, and the
 * command goes on to its end, so that a run still ends and is recorded as it would be, instead of
 * dying of an uncaught write error with its runs left RUNNING. A failure other than EPIPE is said
 * once on stderr, when stderr still takes it; main() then fails a command whose output it was.
 */
function guardOutput(stream: Writable, name: "stdout" | "stderr"): void {
  if (guarded.has(stream)) return;
  guarded.add(stream);
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (lostOutput.has(stream)) return;
    lostOutput.set(stream, error);
    if (name === "stdout" && !readerGone(error) && !lostOutput.has(process.stderr)) {
      process.stderr.write(`cairn: cannot write to stdout (${error.message}); the rest of the output is dropped (a run goes on to its end and is recorded as usual).\n`);
    }
  });
}

/**
 * Runs the CLI with `argv` (without `node cairn`); resolves to the exit code. Only with
 * `handleSignals` (the `cairn` bin, `tsx flow.ts`) does it call process.exit: for a second
 * Ctrl-C, and after a run that left abandoned work running (see exitDespiteAbandoned).
 */
export async function main(argv: string[], io: CliIo = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  if (stdout === process.stdout || stderr === process.stdout) guardOutput(process.stdout, "stdout");
  if (stdout === process.stderr || stderr === process.stderr) guardOutput(process.stderr, "stderr");
  // Off unless asked for: an app's cli() must neither take its signals nor end its process.
  // The command ends its process itself after an error no task raised: its summary first, then exit 1.
  if (io.handleSignals === true) leaveCrashExitToCommand();
  // The `cairn` command imports its flow once and ends: nothing to record for a later import (see importOnce).
  const importFlow = io.importFlow ?? (io.handleSignals === true ? importOnce : undefined);
  const code = await dispatch(argv, { ...io, stdout, stderr, handleSignals: io.handleSignals === true, importFlow });
  if (stdout !== process.stdout) return code;
  // Node reports a failed write a tick after it: wait for that before judging the output.
  await new Promise<void>((resolveTick) => setImmediate(resolveTick));
  const lost = lostOutput.get(stdout);
  // A run's code is its flow's, whose records are whole; another command's output was its work.
  const ranFlow = argv[0] === "run" && !asksHelp(argv.slice(1));
  return lost && !readerGone(lost) && !ranFlow ? EXIT.flowFailed : code;
}

/** `cairn COMMAND ... --help`: the command's help, whatever else is given. */
const asksHelp = (args: readonly string[]) => args.includes("-h") || args.includes("--help");

async function dispatch(argv: string[], io: CliIo & Required<Pick<CliIo, "stdout" | "stderr">>): Promise<number> {
  const { stdout, stderr } = io;
  const env = io.env ?? process.env;
  const [command, ...rest] = argv;
  // Taken before process.stdout is diverted to stderr (see json-stdout.ts).
  // `--json=yes` is refused (a switch takes no value), but its user reads stdout for the events:
  // the refusal is an `error` event there too.
  const errorEvent = command === "run" && jsonAsked(rest) ? errorEventWriter(stdout) : undefined;
  try {
    if (command === "help" && rest[0] !== undefined) {
      const help = helpOf(rest[0]);
      if (help === undefined) throw unknownCommand(rest[0]);
      if (rest.length > 1) throw extraArguments(`help ${rest[0]}`, rest.slice(1), `Run \`cairn help ${rest[0]}\`.`);
      stdout.write(`${help}\n`);
      return EXIT.ok;
    }
    if (!command || command === "-h" || command === "--help" || command === "help") {
      stdout.write(`${HELP.main}\n`);
      return command ? EXIT.ok : EXIT.usage;
    }
    if (command === "-v" || command === "--version") {
      if (rest.length) throw extraArguments(command, rest, `Run \`cairn ${command}\` alone.`);
      stdout.write(`${cairnBuild(env).id}\n`);
      return EXIT.ok;
    }
    // Cairn's switches, refused before anything runs when they hold a value that is no switch
    // (`CAIRN_CACHE_STRICT=on` was read as off): the run reads CAIRN_CACHE_STRICT and CAIRN_PYTHON_ENV_KEY from `env`.
    booleanFromEnv(env, "CAIRN_CACHE_STRICT");
    booleanFromEnv(env, "CAIRN_PYTHON_ENV_KEY");
    booleanFromEnv(process.env, "CAIRN_MLFLOW_TRACE");
    booleanFromEnv(process.env, "CAIRN_NO_AUTORUN");
    checkLoader(process.env);
    await checkMlflowVariables(env);
    // Marked as said: the run this command may start does not say them again.
    for (const line of unsaidMisspeltVariables(env)) stderr.write(`cairn: warning: ${line}\n`);
    if (asksHelp(rest)) {
      const help = helpOf(command);
      if (help === undefined) throw unknownCommand(command);
      stdout.write(`${help}\n`);
      return EXIT.ok;
    }
    // From before the user's code loads (--import modules, the flow file): what it prints is not the JSON.
    const held = printsJson(command, rest) ? holdStdoutForJson(stdout, stderr) : undefined;
    try {
      // A tracker's plug-in is loaded by the flow that imports it; runs, show, report and cache load no flow.
      const { args, files } = takeImports(rest);
      await loadImports(importsFromEnv(env), files, io.importFlow);
      return await runNamedCommand(command, args, held ? { ...io, stdout: held.stdout } : io, env, errorEvent);
    } finally {
      held?.restore();
    }
  } catch (error) {
    // The launcher starts over through tsx (packages/cli/bin/cairn.mjs); nothing has run yet.
    if (NeedsTsxError.is(error)) throw error;
    return reportError(error, stderr, errorEvent);
  }
}

/** Runs `command` with its arguments (`--import`'s taken out). */
async function runNamedCommand(command: string, rest: string[], io: CliIo & Required<Pick<CliIo, "stdout" | "stderr">>, env: NodeJS.ProcessEnv, errorEvent?: ErrorEventWriter): Promise<number> {
  const { stdout, stderr } = io;
  switch (command) {
    case "init":
      return await initCommand(rest, stdout, stderr, env);
    case "run":
      return await runCommand(rest, { ...io, stdout, stderr, env }, errorEvent);
    case "graph":
      return await graphCommand(rest, stdout, io.importFlow);
    case "plan":
      return await planCommand(rest, stdout, stderr, env, io.importFlow);
    case "explain":
      return await explainCommand(rest, stdout, stderr, env, io.importFlow);
    case "cache":
      return await cacheCommand(rest, stdout, stderr, env);
    case "runs":
      return rest[0] === "prune" ? await runsPruneCommand(rest.slice(1), stdout, stderr, env) : await runsCommand(rest, stdout, stderr, env);
    case "show":
      return await showCommand(rest, stdout, stderr, env);
    case "worker":
      return await workerCommand(rest, { ...io, stdout, stderr, env });
    case "workers":
      return await workersCommand(rest, stdout, env);
    case "report":
      return await reportCommand(rest, stdout, stderr, env);
    default:
      throw unknownCommand(command);
  }
}

/**
 * Whether `--json` is among `args`, before a `--` that ends the flags, alone or given a value
 * (`--json=yes`, which the flags' parse refuses): either way the caller reads stdout for events.
 */
function jsonAsked(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((arg) => arg === "--json" || arg.startsWith("--json="));
}

/**
 * Under `cairn run --json`, an error that ends the command before its run emits an event (a bad
 * flag or `-p`, a flow file that does not load, a server that does not answer) is one event on
 * stdout too, `{"type":"error","exitCode":2,"error":{"name","message"},"time"}`, so that a reader
 * of the events is not left with an empty stream; the plain text stays on stderr.
 */
type ErrorEventWriter = (exitCode: number, error: unknown, fix?: string) => void;

function errorEventWriter(stdout: Writable): ErrorEventWriter {
  // Another cli() call in this app may hold process.stdout diverted (see json-stdout.ts): the event goes to stdout itself.
  const write = undivertedWrite(stdout);
  return (exitCode, error, fix = "") => {
    const name = error instanceof Error ? error.name : "Error";
    const message = `${error instanceof Error ? error.message : String(error)}${fix}`;
    write(`${JSON.stringify({ type: "error", exitCode, error: { name, message }, time: Date.now() })}\n`);
  };
}

/**
 * `CAIRN_LOADER`, read by the launcher (bin/cairn.mjs) before this runs: `tsx` is its one value,
 * and any other (`tsc`, a typo) was the bundle without a word, as if unset.
 */
function checkLoader(env: NodeJS.ProcessEnv): void {
  const raw = env.CAIRN_LOADER;
  // Exactly `tsx`, as the launcher compares it: " tsx" would be the bundle there.
  if (raw === undefined || raw === "" || raw === "tsx") return;
  throw new UsageError(
    `Expected CAIRN_LOADER to be tsx (run cairn from its TypeScript sources through tsx) or unset (its bundle), got ${JSON.stringify(raw)}. ` +
      "Set CAIRN_LOADER=tsx, or unset it.",
  );
}

/**
 * MLflow's request variables and Cairn's `CAIRN_MLFLOW_*`, checked whether or not
 * MLFLOW_TRACKING_URI is set: unchecked without it, `MLFLOW_HTTP_REQUEST_TIMEOUT=10s` passed every
 * command on the embedded store and failed them all the day a server was set. The client is
 * loaded only when one of them is set.
 */
async function checkMlflowVariables(env: NodeJS.ProcessEnv): Promise<void> {
  const set = Object.keys(env).some((name) => name.startsWith("MLFLOW_HTTP_") || name.startsWith("CAIRN_MLFLOW_") || name === "MLFLOW_TRACKING_INSECURE_TLS");
  if (!set) return;
  const { checkMlflowEnv } = await import("@cairn/mlflow/tracker");
  checkMlflowEnv(env);
}

/** `cairn --version extra`, `cairn help run extra`: what was given past a command that takes nothing more was dropped without a word. */
function extraArguments(command: string, extra: readonly string[], fix: string): UsageError {
  return new UsageError(`Expected nothing after \`cairn ${command}\`, got ${extra.map((a) => `"${printableLine(a)}"`).join(" ")}. ${fix}`);
}

/** What `cairn WORD` and `cairn help WORD` say of a WORD that is no command, with the nearest one. */
function unknownCommand(given: string): UsageError {
  // `cairn --verison`, `cairn -V`: an option of cairn's own, mistyped, is no command. A one-letter
  // option is only ever taken for one in the other case: `-x` is no typo of `-h`.
  if (given.startsWith("-")) {
    const options = /^-[^-]$/.test(given) ? MAIN_OPTIONS.filter((o) => o.toLowerCase() === given.toLowerCase()) : MAIN_OPTIONS;
    const near = closestName(given, options, { prefixes: true });
    return new UsageError(
      `Unknown option '${printableLine(given)}' for cairn${near ? `; did you mean ${near}?` : "."} cairn takes a command first (${COMMANDS.join(", ")}), or ${MAIN_OPTIONS.join(", ")}. Run \`cairn --help\`.`,
    );
  }
  const near = closestName(given, COMMANDS);
  return new UsageError(`Unknown command "${printableLine(given)}"${near ? `; did you mean ${near}?` : "."} Expected one of: ${COMMANDS.join(", ")}. Run \`cairn --help\`.`);
}

/**
 * Codes of errors a flow raises while it is built, before anything runs, that the CLI knows by
 * their code alone (their classes belong to the task kinds): a script, notebook or model file
 * that does not exist, an MLproject that is missing or invalid or lacks a required parameter,
 * a command template that is malformed or names no input. The flow is invalid: exit 2.
 */
const VALIDATION_CODES: ReadonlySet<string> = new Set([
  "CAIRN_TASK_FILE",
  "CAIRN_MLFLOW_PROJECT",
  "CAIRN_MLFLOW_PROJECT_PARAMETER",
  "CAIRN_COMMAND_TEMPLATE",
  "CAIRN_UNKNOWN_PLACEHOLDER",
  // Out of a command only before anything runs (a task's output that is not JSON data fails that task):
  // a param (`-p`) that is not JSON data or is nested past the limit, a bad param as a wrong type is.
  "CAIRN_NOT_SERIALIZABLE",
  // The queue's (@cairn/worker, loaded only with --queue): a bad URL or option, a run its workers could not share.
  "CAIRN_QUEUE_URL",
  // Redis refused the URL's password or user: the same password again would be refused again.
  "CAIRN_QUEUE_AUTH",
  "CAIRN_QUEUE_NEEDS_SHARED_TRACKER",
  "CAIRN_WORKER_OPTION",
]);

/** The engine's options a `cairn` user gives on the command line, as they give them. */
const ENGINE_OPTIONS: ReadonlyMap<string, string> = new Map([
  ["rerun", "--rerun TASK"],
  ["TASK", "TASK (cairn explain FILE TASK)"],
]);

/**
 * A refused task name (`--rerun`, explain's TASK) in the words of the command the user typed, with
 * `file` as they gave it. Where the refusal names only the closest few of a large flow's tasks, it
 * says how to list them all; where it lists every one (or a map's items), that would send the user
 * to a list they just read.
 */
function taskNameRefusal(thrown: unknown, file: string): unknown {
  const given = OptionError.is(thrown) ? ENGINE_OPTIONS.get(thrown.option) : undefined;
  if (!OptionError.is(thrown) || given === undefined) return thrown;
  const listAll = thrown.closestOnly ? ` Run \`cairn plan ${shellWord(file)}\` to list the flow's tasks.` : "";
  return new UsageError(`Expected \`${given}\` to be ${thrown.expected}, got ${JSON.stringify(thrown.got)}.${listAll}`);
}

/** `word` as a shell reads it back (quoted where it holds a space or a character the shell takes), to copy into a command. */
function shellWord(word: string): string {
  const shown = printableLine(word);
  return /^[\w@%+=:,./-]+$/.test(shown) ? shown : `'${shown.replaceAll("'", "'\\''")}'`;
}

/**
 * Says `error` on stderr (and as an event, under `run --json`), and returns the exit code it
 * stands for; `exitCode` overrides it (130: the command was interrupted meanwhile).
 */
function reportError(error: unknown, stderr: Writable, errorEvent?: ErrorEventWriter, exitCode?: number): number {
  const code = exitCode ?? exitCodeOf(error);
  // The event says what stderr says, the CLI's own advice included (`--import` for a tracker scheme).
  errorEvent?.(code, error, CairnError.is(error) ? cliFix(error) : "");
  // Errors Cairn expects (a dead cache store among them) are their message; a stack is for bugs.
  if (CairnError.is(error)) {
    stderr.write(`cairn: ${error.name}: ${printable(error.message)}${cliFix(error)}\n`);
  } else if (error instanceof Error) {
    stderr.write(`cairn: ${printable(error.stack ?? error.message)}\n`);
  } else {
    stderr.write(`cairn: ${printable(String(error))}\n`);
  }
  return code;
}

/** The exit code an error that ends a command stands for: 2 for one the command's user can fix, 3 for a service down, else 1. */
function exitCodeOf(error: unknown): number {
  const usage =
    (CairnError.is(error) && VALIDATION_CODES.has(error.code)) ||
    UsageError.is(error) ||
    FlowFileError.is(error) ||
    FlowValidationError.is(error) ||
    ParamError.is(error) ||
    OptionError.is(error) ||
    UnsupportedTrackingUriError.is(error) ||
    ArtifactLocationError.is(error) ||
    TrackingConfigError.is(error) ||
    CacheStoreUrlError.is(error) ||
    CacheOptionError.is(error);
  return usage ? EXIT.usage : serviceDown(error) ? EXIT.serviceDown : EXIT.flowFailed;
}

/** What the CLI adds to an engine error's fix: its own words (core's messages name no flag). */
function cliFix(error: CairnError): string {
  if (UnsupportedTrackingUriError.is(error) && error.unknownScheme !== undefined) {
    return ` For a cairn command, load the module that registers it with ${IMPORT_FLAG} FILE, or CAIRN_IMPORT=FILE (commands that load no flow, as runs, show, report and cache, need it): \`cairn runs ${IMPORT_FLAG} ./tracker.ts\`.`;
  }
  return "";
}

/**
 * A service Cairn needs could not be used, so nothing was run (exit 3, not 1: the flow did not
 * fail, and a retry may pass): the tracking server down or not MLflow, a shared cache store
 * (redis, postgres) that did not answer, the queue's Redis. A failure of the embedded store is
 * the disk's, not a service's; a shared store that answered with a refusal is up.
 */
function serviceDown(error: unknown): boolean {
  if (TrackerUnreachableError.is(error)) return true;
  if (CairnError.is(error) && error.code === "CAIRN_QUEUE_UNREACHABLE") return true;
  return CacheBackendError.is(error) && error.backend !== "embedded" && error.reply === undefined;
}

function parse<const O extends FlagOptions>(args: string[], options: O, command: string) {
  const help = helpOf(command);
  const parsed = parseFlags(args, options, { command, ...(help ? { help } : {}) });
  checkExperimentFlag((parsed.values as { experiment?: unknown }).experiment);
  return parsed;
}

/** `--experiment` within MLflow's limit, whatever the command and store: a longer name failed only at the run's create, after work started. */
function checkExperimentFlag(name: unknown): void {
  const tooLong = typeof name === "string" ? experimentNameTooLong(name) : undefined;
  if (tooLong) throw new UsageError(`Expected \`--experiment\` to be an experiment name of at most ${EXPERIMENT_NAME_MAX_LENGTH} characters, got one ${tooLong}. Use a shorter name.`);
}

/** The help of a command; undefined for a name that is not one (`main`, `constructor` included). */
function helpOf(command: string): string | undefined {
  return command !== "main" && Object.hasOwn(HELP, command) ? HELP[command] : undefined;
}

/**
 * Signals that cancel a run (its runs end KILLED, exit 130) instead of ending the process as
 * Node would with its runs left RUNNING: Ctrl-C, a supervisor's SIGTERM, and the terminal's
 * hang-up (SIGHUP) when it is closed or an SSH session drops. bin/cairn.mjs listens for the same
 * ones while Cairn loads (STARTING_SIGNALS; test/architecture.test.ts keeps the two equal).
 */
const CANCEL_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

async function runCommand(args: string[], io: Required<Pick<CliIo, "stdout" | "stderr" | "env">> & CliIo, errorEvent?: ErrorEventWriter): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      param: { type: "string", short: "p", multiple: true },
      "params-file": { type: "string" },
      concurrency: { type: "string", short: "c" },
      pool: { type: "string", multiple: true },
      "failure-policy": { type: "string" },
      experiment: { type: "string" },
      secrets: { type: "string", multiple: true },
      "no-tracking": { type: "boolean" },
      "no-cache": { type: "boolean" },
      "no-report": { type: "boolean" },
      "cache-strict": { type: "boolean" },
      rerun: { type: "string", multiple: true },
      refresh: { type: "boolean" },
      queue: { type: "string" },
      quiet: { type: "boolean", short: "q" },
      json: { type: "boolean" },
      root: { type: "string" },
    },
    "run",
  );
  if (positionals.length > 1) throw new UsageError(`Expected one flow file, got ${positionals.length}: ${positionals.join(" ")}.`);
  noteOtherRoot(positionals[0], values.root, io.stderr);
  // The cache's options would be dropped unread under --no-cache: a mistyped --rerun would pass unseen.
  const cacheFlags = [values.rerun ? "--rerun" : "", values.refresh ? "--refresh" : "", values["cache-strict"] ? "--cache-strict" : ""].filter(Boolean);
  if (values["no-cache"] && cacheFlags.length) {
    throw new UsageError(
      `Expected either --no-cache or ${cacheFlags.join(", ")}, got both: --no-cache neither looks up nor stores results, so ${cacheFlags.join(" and ")} would change nothing. ` +
        `Drop ${cacheFlags.join(" and ")} to run every task without the cache, or --no-cache to use it.`,
    );
  }
  if (values.quiet && values.json) {
    throw new UsageError(
      "Expected either --quiet or --json, got both: --json prints every event for a program to read, --quiet leaves out of the human view what went well. " +
        "Drop --quiet to read the events (filter them by their `status`), or --json for the short human view.",
    );
  }
  const concurrency = values.concurrency === undefined ? undefined : integerOption("--concurrency", values.concurrency, 1, "Give how many tasks run at once in digits (-c 8), or leave it out for the default: 4, or the CPU count if larger.");
  // No prototype: `--pool __proto__=2` is a pool's limit (the pool-name rule allows the name), not a prototype to set.
  const pools: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const pair of values.pool ?? []) {
    // Split at the first "=" only: `gpu=2=3` is a limit of `2=3`, refused, not a pool of 2.
    const at = pair.indexOf("=");
    const name = at < 0 ? "" : pair.slice(0, at);
    if (!name) throw new UsageError(`Expected --pool NAME=N, got "--pool ${pair}".`);
    if (Object.hasOwn(pools, name)) {
      throw new UsageError(`Expected one --pool ${name}=N, got two (\`--pool ${name}=${pools[name]}\`, \`--pool ${pair}\`): which limit was meant cannot be told. Give --pool ${name} once.`);
    }
    pools[name] = integerOption(`--pool ${name}`, pair.slice(at + 1), 1, `Give the pool's limit in digits (--pool ${name}=2), or leave it out for 1.`);
  }
  const policy = values["failure-policy"];
  if (policy !== undefined && policy !== "fail-fast" && policy !== "continue") {
    throw new UsageError(`Expected --failure-policy to be fail-fast or continue, got "${policy}"${meantOf(policy, ["fail-fast", "continue"])}.`);
  }
  const secrets = values.secrets ? readSecrets(values.secrets) : undefined;
  // Read for the plain lines only: under --json no such line is printed, so nothing of it can be wrong.
  const stillRunningMs = values.json ? 0 : stillRunningFromEnv(io.env);
  const paramsFile = values["params-file"] === undefined ? undefined : readParamsFile(values["params-file"]);
  // Before the flow loads: a bad --root is cheaper to fix than a broken flow file, and none of the flow's code runs for it.
  const root = values.root;
  const checked =
    root === undefined ? undefined : await checkRunRootFlag(root, { ...(values["no-tracking"] ? { tracker: false } : {}), ...(values["no-cache"] ? { cache: false } : {}) });
  const checkedRoot = checked?.root;

  // A flow that does not load, or params it refuses, start no run: the check's folders go again.
  const { flow, params } = await (async () => {
    const flow = await loadFlow(positionals[0], { ...io, usage: "cairn run flow.ts" });
    const params = await flowParams(flow.definition, values.param, paramsFile, secrets);
    return { flow, params };
  })().catch(async (e: unknown) => {
    await checked?.unmake();
    throw e;
  });
  const json = values.json === true;
  const quiet = values.quiet === true;
  // Quiet lines on a terminal too: the live view is all progress, which --quiet leaves out.
  const mode: ReporterMode = json ? "json" : !quiet && (io.stdout as NodeJS.WriteStream).isTTY && io.env.TERM !== "dumb" ? "live" : "plain";
  const useColor = !json && colorsOn(io.env, io.stdout);
  // Off a terminal (a file, cron's mail, a CI log), the day too: a log appended to daily could not tell days apart.
  const datedLines = (io.stdout as NodeJS.WriteStream).isTTY !== true;
  const reporter = await createReporter(mode, io.stdout, io.stderr, useColor, flowSize(flow.definition), { datedLines, quiet, recorded: values["no-tracking"] !== true, stillRunningMs });

  // Loaded only for a queue: BullMQ and its Redis client are not what a run on one machine needs.
  const queue = queueUrlOf(values.queue, io.env);
  const dispatcher = queue !== undefined ? (await import("@cairn/worker")).queueDispatcher(queue, { flowFile: positionals[0] }) : undefined;
  // The run's report is logged on the flow run before it ends (see README, "Reports").
  let report: { localPath?: string; artifactPath: string; url?: string } | undefined;
  /** Whether the report hook ran to its end (written, or its failure said): a cancel stops the run's wait for it. */
  let reportSettled = false;
  // Listened for from before the run starts: starting it creates the flow run, and a signal
  // meanwhile must cancel it (its runs end KILLED, exit 130), not end the process as Node would.
  let run: Awaited<ReturnType<typeof flow.run>> | undefined;
  /** What cancelled the run: a signal's name, or the reason `io.signal` was aborted with. */
  let interrupted: { reason: unknown } | undefined;
  let exitAfterClose: number | undefined;
  /** The code the command ends with, once known: what a signal after the run exits with. */
  let ended: number | undefined;
  // Given to the run: a signal while it starts stops it before its flow run is created, and
  // hurries the tracker's requests (one short try each) from then on.
  const stop = new AbortController();
  const cancel = (reason: unknown, notice: string) => {
    interrupted = { reason };
    reporter.notice(notice);
    stop.abort(reason);
    if (run) void run.cancel(reason);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    // A hang-up is the terminal going away (closed, SSH dropped), not the user insisting: it
    // cancels like SIGTERM, and while a cancel is under way it changes nothing.
    if (interrupted && signal === "SIGHUP") return;
    if (interrupted) {
      reporter.notice(`${signal} again: exiting now; open runs may stay RUNNING (the next cairn command closes them as KILLED).`);
      process.exit(EXIT.interrupted); // the user asked twice; this is the CLI, not the library
    }
    cancel(signal, `${signal}: cancelling the run (press Ctrl-C again to force)...`);
  };
  // An app's Ctrl-C: without handleSignals, the only way it has to stop the run it started with cli().
  const onAbort = () => {
    if (!interrupted) cancel(io.signal!.reason, "io.signal aborted: cancelling the run...");
  };
  if (io.signal?.aborted) onAbort();
  else io.signal?.addEventListener("abort", onAbort, { once: true });
  if (io.handleSignals !== false) {
    for (const signal of CANCEL_SIGNALS) process.on(signal, onSignal);
    // Until now a signal ended the process at once (the flow loading: nothing to cancel yet); from now on it cancels the run.
    const starting = io.startingSignalHandler;
    if (starting) for (const signal of CANCEL_SIGNALS) process.off(signal, starting);
  }
  try {
    run = await flow.run({
      ...(values["no-report"]
        ? {}
        : {
            beforeEnd: async (ending: EndingFlowRun) => {
              const { logReport, REPORT_ARTIFACT } = await import("@cairn/report");
              try {
                // Nothing is written to the flow run before the report: it takes the run's read of it.
                report = await logReport(ending, { flowRunAsRead: true });
              } catch (error) {
                // Said here in the CLI's words: the engine would name its hook (`beforeEnd`), which a `cairn run` user never set.
                reporter.notice(`[flow] could not write the run's report (${REPORT_ARTIFACT}): ${(error as Error).message}`);
              }
              reportSettled = true;
            },
          }),
      params,
      signal: stop.signal,
      ...(dispatcher ? { dispatcher } : {}),
      ...(concurrency ? { concurrency } : {}),
      pools,
      ...(policy ? { failurePolicy: policy } : {}),
      ...(values.experiment ? { experiment: values.experiment } : {}),
      ...(secrets ? { secrets } : {}),
      ...(values["no-tracking"] ? { tracker: false as const } : {}),
      cache: values["no-cache"]
        ? false
        : { refresh: values.refresh === true, rerun: values.rerun ?? [], ...(values["cache-strict"] ? { strict: true } : {}) },
      ...(root ? { root, [ROOT_CHECKED]: checkedRoot } : {}),
      env: io.env,
      // The flow's file (under tsx too: the autorun runs this command with it), for MLflow's source tags.
      source: resolve(positionals[0]!),
    });
    if (run.runId === "") {
      // Cancelled while it started, before its flow run was created: nothing was recorded. Said as
      // the error it is (exit 130), not as a run's summary: there is no run to show.
      const { error } = await run.wait();
      run = undefined;
      throw Object.assign(new CancelledError(interrupted?.reason), { message: error!.message });
    }
    run.on((e) => reporter.event(e));
    if (interrupted) void run.cancel(interrupted.reason);
    const result = await run.wait();
    reporter.finish(result);
    if (report && !json && !quiet) io.stdout.write(`${reportLine(report, result.runId)}\n`);
    // Where each failed task's whole error and logs are on this machine (a CI step uploads them by path).
    const files = (taskRunId: string) => localRunFiles(run!.tracker, taskRunId);
    if (!json && !quiet) io.stdout.write(failedTaskFiles(result, files));
    // Also on stderr, for cron and CI, which send stdout away and look at stderr; not twice on one screen or file.
    if (result.status !== "succeeded" && (json || !sameDestination(io.stdout, io.stderr))) {
      io.stderr.write(failureSummary(result, flow.definition.name, whereToSeeMore(result.runId, report, values), process.cwd(), values["no-tracking"] !== true, files));
    }
    // A signal that came once the work was all done and recorded (while the report was written, or
    // the flow run closed) does not undo it: the run succeeded and is recorded FINISHED, so the
    // exit says so too (130 with "Flow succeeded" told a script the run had been stopped).
    if (interrupted && result.status === "succeeded") reporter.notice(lateSignalNotice(interrupted.reason, !values["no-report"] && !reportSettled, result.runId));
    const code = result.status === "succeeded" ? EXIT.ok : interrupted ? EXIT.interrupted : EXIT.flowFailed;
    exitDespiteAbandoned(run, code, reporter, io);
    // Cancelled: the run ended without waiting for its report (said above), whose upload to a server
    // that hangs would keep the process alive past the signal. Nothing else is left to wait for.
    if (interrupted && io.handleSignals !== false) exitAfterClose = code;
    return (ended = code);
  } catch (error) {
    // Interrupted while the run was starting, and the start then failed: said, and exit 130 as
    // for any interrupted run (the signal, not the failure it may have caused, ends the command).
    // A root run() refused (a flow built on a @cairn/core that checks it again) is said for the flag too.
    const said = taskNameRefusal(root === undefined ? error : rootFlagError(error, root), positionals[0]!);
    if (interrupted && run === undefined) return (ended = reportError(said, io.stderr, errorEvent, EXIT.interrupted));
    ended = exitCodeOf(said);
    throw said;
  } finally {
    // Taken over before the cancel's handler goes, so that no signal finds none (Node's default would end the process by it).
    if (io.handleSignals !== false) exitOnLateSignal(ended ?? EXIT.flowFailed);
    for (const signal of CANCEL_SIGNALS) process.off(signal, onSignal);
    io.signal?.removeEventListener("abort", onAbort);
    await dispatcher?.close();
    // Not at once: what is still queued for a pipe would be lost. The process ends by itself once
    // its output is written; the timer (which does not hold it) ends one kept alive by a hung upload.
    const code = exitAfterClose;
    if (code !== undefined) setTimeout(() => process.exit(code), 2000).unref();
  }
}

/** The last lines of `cairn run`'s failure summary on stderr: where each task's whole error is. */
function whereToSeeMore(runId: string, report: { localPath?: string; artifactPath: string; url?: string } | undefined, flags: { root?: string; "no-tracking"?: boolean }): string[] {
  if (flags["no-tracking"]) return ["the run was not recorded (--no-tracking): its output on stdout has each task's error (a line over 1000 characters cut in its middle; --json prints it whole)."];
  const root = flags.root === undefined ? "" : ` --root ${/^[\w./-]+$/.test(flags.root) ? flags.root : JSON.stringify(flags.root)}`;
  // The flow run's page lists its tasks, each with the first line of its error, and the flow's
  // error with the first and last lines of each; a task run's page has its whole error.
  return [
    `\`cairn show ${runId}${printableLine(root)}\` lists each task and what it failed with; \`cairn show TASK_RUN_ID${printableLine(root)}\`, with a task's run id from that list, prints its whole error.`,
    ...(report ? [reportLine(report, runId)] : []),
  ];
}

/**
 * A signal once `cairn run`'s run has ended, while its process still ends (its output draining to
 * a slow reader, a timer or socket a task left holding it): nothing is left to cancel, and Node's
 * default would end the process by the signal (killed, not the `0` that "Flow succeeded" told).
 * The process ends with the run's `code`: by itself once its output is written, 2 s later at the
 * latest (exiting at once would drop what is still queued for a pipe); a second signal exits at
 * once. Kept until the process exits; only the `cairn` command's (`handleSignals`).
 *
 * Once nothing is left to do (`beforeExit`: the output written, no timer or socket left), the
 * process exits from there: ended by itself, Node tears its environment down first, closing
 * these handlers before the heap is freed, which after a large run takes long enough (several ms)
 * for a signal then to find none and kill it.
 */
function exitOnLateSignal(code: number): void {
  let signalled = false;
  const onLateSignal = () => {
    if (signalled) process.exit(code);
    signalled = true;
    process.exitCode = code;
    setTimeout(() => process.exit(code), 2000).unref();
  };
  for (const signal of CANCEL_SIGNALS) process.on(signal, onLateSignal);
  // Without a code: the one the command set by then (the bin's `process.exitCode = await main()`).
  // Not over a listener of the flow's own (a client's last flush), which may start more work.
  process.once("beforeExit", () => process.listenerCount("beforeExit") === 0 && process.exit());
}

/** What `cairn run` says of a signal (or `io.signal`'s abort) that came after every task had finished and was recorded. */
function lateSignalNotice(reason: unknown, reportCut: boolean, runId: string): string {
  const what = (CANCEL_SIGNALS as readonly unknown[]).includes(reason) ? String(reason) : "io.signal's abort";
  const report = reportCut ? `; its report was not waited for and may be missing or unfinished (\`cairn report ${runId}\` writes it)` : "";
  return `[flow] ${what} came after every task had finished and was recorded: the run succeeded, recorded FINISHED${report}.`;
}

async function workerCommand(args: string[], io: Required<Pick<CliIo, "stdout" | "stderr" | "env">> & CliIo): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      queue: { type: "string" },
      pool: { type: "string", multiple: true },
      concurrency: { type: "string", short: "c" },
      healthcheck: { type: "boolean" },
      secrets: { type: "string", multiple: true },
      root: { type: "string" },
    },
    "worker",
  );
  if (positionals.length > 1) throw new UsageError(`Expected one flow file, got ${positionals.length}: ${positionals.join(" ")}.`);
  const queue = queueUrlOf(values.queue, io.env);
  if (queue === undefined) throw new UsageError(`Expected the queue's Redis URL (the Redis that \`cairn run\` sends tasks to) in CAIRN_QUEUE, or as --queue URL, got neither.`);
  const concurrency = values.concurrency === undefined ? 1 : integerOption("--concurrency", values.concurrency, 1, "Give how many tasks this worker runs at once per pool in digits (-c 2), or leave it out for 1.");
  const secrets = values.secrets ? readSecrets(values.secrets) : undefined;
  const root = values.root === undefined ? undefined : await checkRoot(values.root, "make");
  const worker = await import("@cairn/worker");
  const flow = await loadFlow(positionals[0], { ...io, usage: "cairn worker flow.ts --queue URL" });
  if (values.healthcheck) {
    await worker.checkQueue(queue);
    // The worker this check is run beside (a liveness probe runs in its container): one of this
    // flow and pools on this host whose heartbeat record has not expired. A worker stopped or
    // stuck (its event loop blocked) writes none, and fails it.
    const name = flow.definition.name;
    const pools = values.pool?.length ? values.pool : [worker.DEFAULT_POOL];
    const here = hostname();
    const live = (await worker.listWorkers(queue)).filter((w) => w.host === here && w.flow === name && pools.every((p) => w.pools.includes(p)));
    if (!live.length) {
      io.stderr.write(
        `No live worker of flow "${name}" for pool ${pools.map((p) => `"${p}"`).join(", ")} on this host (${here}): none has written its heartbeat to the queue in the last 6 s. ` +
          `A worker that is stopped, stuck (its event loop blocked) or not started yet fails this check; \`cairn workers --queue URL\` lists the live ones.\n`,
      );
      return EXIT.flowFailed;
    }
    const beats = live.map((w) => `${w.id} (${heartbeatAge(w.beatAt)})`).join(", ");
    io.stdout.write(`ok: flow "${name}" loads, the queue answers, and its worker here beats: ${beats}\n`);
    return EXIT.ok;
  }
  const file = positionals[0]!;
  const say = (line: string) => io.stderr.write(`${new Date().toISOString()} ${line}\n`);
  // A task's message or log line is the run's text (see printable.ts): printable, and each line
  // after its first under the task's prefix, so that none passes for a line of the worker's own.
  const runText = (task: string, text: string) => printable(text).split("\n").join(`\n[${task}] `);
  const running = await worker.startWorker({
    flow: flow.definition,
    file,
    queue,
    ...(values.pool ? { pools: values.pool } : {}),
    concurrency,
    ...(root ? { root } : {}),
    env: io.env,
    ...(secrets ? { secrets } : {}),
    onEvent: (e) => {
      if (e.type === "ready") say(`worker ${e.id} ready: flow "${flow.definition.name}" (${file}), pools ${e.pools.join(", ")}`);
      else if (e.type === "left-without-queue") say(e.message);
      else if (e.type === "bad-job") say(`job ${printable(e.jobId)} of ${e.queue} refused: ${printable(e.message)}`);
      else if (e.type === "task") say(`task ${e.task} ${e.status}${"message" in e && e.message ? `: ${runText(e.task, e.message)}` : ""}`);
      else if (e.event.type === "log" && e.event.level !== "info") say(`${e.event.task ? `${e.event.task}: ` : ""}${runText(e.event.task ?? "flow", e.event.message)}`);
    },
  });
  // An error no task's code raised (see RunningWorker.crashed): the failed tasks' lines say it, masked.
  let crashed = false;
  const crash = running.crashed.then(() => {
    crashed = true;
    return "an error that no task's code raised escaped while tasks ran (the tasks above say it), and this process's state cannot be trusted after one";
  });
  say(`${await stopAsked(io, crash)}: finishing the tasks running, taking no more`);
  await running.close();
  if (crashed) {
    say("worker stopped: the tasks it ran went back to the queue for another worker (a task whose own code raised it failed with it); start the worker again");
    return EXIT.flowFailed;
  }
  say("worker stopped");
  return EXIT.ok;
}

/**
 * The queue's URL: `--queue`, else CAIRN_QUEUE (empty is unset). The variable keeps a password out
 * of the command line, which `ps` shows to every user and a task reads from its parent's. Read, it
 * leaves `process.env` (when it is the command's env), so that task processes do not inherit it.
 */
function queueUrlOf(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  let fromEnv = env.CAIRN_QUEUE?.trim() || undefined;
  if (env === process.env) {
    // Kept for the process's later commands (an app that calls cli() again), as its environment was.
    if (fromEnv !== undefined) queueFromProcessEnv = fromEnv;
    else fromEnv = queueFromProcessEnv;
    delete process.env.CAIRN_QUEUE;
  }
  return flag ?? fromEnv;
}

/** CAIRN_QUEUE as this process's environment held it, once read and taken out of it (see queueUrlOf). */
let queueFromProcessEnv: string | undefined;

/**
 * Resolves, with what asked, once the worker is to stop: `io.signal` aborted, `also` resolved (the
 * worker stopped itself), or, as the `cairn` command (`handleSignals`), SIGINT, SIGTERM or SIGHUP.
 * A worker in an app takes none of the app's signals: a Ctrl-C meant for the app would have
 * stopped it unseen, and the app's own handlers would have run beside its.
 */
function stopAsked(io: CliIo, also: Promise<string>): Promise<string> {
  return new Promise((resolveStop) => {
    const signals = io.handleSignals ? CANCEL_SIGNALS : [];
    const stop = (why: string) => {
      for (const name of signals) process.off(name, stop);
      io.signal?.removeEventListener("abort", aborted);
      resolveStop(why);
    };
    const aborted = () => stop("io.signal aborted");
    for (const name of signals) process.on(name, stop);
    if (io.signal?.aborted) aborted();
    else io.signal?.addEventListener("abort", aborted, { once: true });
    void also.then(stop);
  });
}

async function workersCommand(args: string[], stdout: Writable, env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parse(args, { queue: { type: "string" }, json: { type: "boolean" } }, "workers");
  if (positionals.length) throw new UsageError(`Expected no arguments, got ${positionals.join(" ")}.`);
  const queue = queueUrlOf(values.queue, env);
  if (queue === undefined) throw new UsageError(`Expected the queue's Redis URL (the Redis the workers take tasks from) in CAIRN_QUEUE, or as --queue URL, got neither.`);
  const { listWorkers } = await import("@cairn/worker");
  const workers = await listWorkers(queue);
  if (values.json) {
    stdout.write(`${JSON.stringify(workers, null, 2)}\n`);
    return EXIT.ok;
  }
  if (!workers.length) {
    stdout.write("No live workers.\n");
    return EXIT.ok;
  }
  const c = createColors(false);
  const now = Date.now();
  const rows = workers.map((w) => [
    w.host,
    String(w.pid),
    w.flow,
    w.pools.join(","),
    // A worker older than the field runs a Cairn that names no build.
    w.cairn ?? "-",
    w.running.length ? w.running.map((r) => r.task).join(",") : "-",
    heartbeatAge(w.beatAt, now),
  ]);
  stdout.write(`${table(["host", "pid", "flow", "pools", "cairn", "running", "heartbeat"], rows, c)}`);
  return EXIT.ok;
}

/**
 * Says when the default state folder (`.cairn` in the working directory) is not there but one sits
 * beside the flow file: `cd sub && cairn run ../flow.ts` would start an empty store and run every
 * task again, where `--root ../.cairn` holds this flow's entries.
 */
function noteOtherRoot(file: string | undefined, root: string | undefined, stderr: Writable): void {
  if (root !== undefined || file === undefined) return;
  const here = resolve(".cairn");
  const beside = join(dirname(resolve(file)), ".cairn");
  if (beside === here || existsSync(here) || !existsSync(beside)) return;
  stderr.write(`cairn: ${printableLine(`note: using ${here} (.cairn in the working directory, new); ${beside}, beside ${file}, has runs and cache entries of its own: pass --root ${beside} to use them.`)}\n`);
}

/** Where the run's report is: its local file, or its page in MLflow's UI. */
function reportLine(report: { localPath?: string; artifactPath: string; url?: string }, runId: string): string {
  // The path comes from the project's folder name (a cloned repository's): its control characters and newlines are shown, not obeyed.
  if (report.localPath) return `Report: ${printableLine(report.localPath)}`;
  return `Report: ${printableLine(report.url ?? `artifact ${report.artifactPath} of run ${runId}`)} (\`cairn report ${runId}\` writes it to a file here)`;
}

/**
 * Work of abandoned attempts (tasks that ignore `ctx.signal`) would keep the process alive
 * after the run, its timers and sockets beyond Cairn's reach: the CLI exits without waiting
 * for it, and process groups still being ended after a timeout are killed on exit (a stopped
 * flow waits for its process groups, up to their killGraceMs, so none is left then). Only for
 * the real CLI (`handleSignals`), never where the CLI runs inside another program.
 */
function exitDespiteAbandoned(
  run: { abandoned(): Array<{ task: string; attempt: number; killGraceMs?: number }> },
  code: number,
  reporter: { notice(message: string): void },
  io: CliIo,
): void {
  const stray = run.abandoned();
  if (!stray.length || io.handleSignals === false) return;
  const which = stray.map((s) => `"${s.task}" attempt ${s.attempt}${s.killGraceMs !== undefined ? " (its process group is killed now)" : ""}`).join(", ");
  reporter.notice(`Exiting without waiting for abandoned work still running: ${which}.`);
  // After main() returns and the exit code is set; the exit hook kills process groups still alive.
  setImmediate(() => process.exit(code));
}

async function graphCommand(args: string[], stdout: Writable, importFlow?: FlowImporter): Promise<number> {
  const { values, positionals } = parse(args, { format: { type: "string", short: "f" }, json: { type: "boolean" } }, "graph");
  if (values.json && values.format !== undefined && values.format !== "json") {
    throw new UsageError(`Expected one format, got --json and --format ${values.format}. Pass one of them (--json is --format json).`);
  }
  const format = values.json ? "json" : (values.format ?? "mermaid");
  if (!["mermaid", "dot", "json"].includes(format)) throw new UsageError(`Expected --format mermaid, dot or json, got "${format}"${meantOf(format, ["mermaid", "dot", "json"])}.`);
  const flow = await loadFlow(positionals[0], { importFlow, usage: "cairn graph flow.ts" });
  const graph = buildFlowGraph(flow.definition);
  const text = format === "dot" ? toDot(graph) : format === "json" ? JSON.stringify(toGraphJson(graph), null, 2) : toMermaid(graph);
  stdout.write(`${text}\n`);
  return EXIT.ok;
}

async function planCommand(args: string[], stdout: Writable, stderr: Writable, env: NodeJS.ProcessEnv, importFlow?: FlowImporter): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      param: { type: "string", short: "p", multiple: true },
      "params-file": { type: "string" },
      rerun: { type: "string", multiple: true },
      refresh: { type: "boolean" },
      json: { type: "boolean" },
      root: { type: "string" },
      experiment: { type: "string" },
      secrets: { type: "string", multiple: true },
      "no-tracking": { type: "boolean" },
    },
    "plan",
  );
  noteOtherRoot(positionals[0], values.root, stderr);
  if (values.root !== undefined) await checkRoot(values.root, "read");
  const secrets = values.secrets ? readSecrets(values.secrets) : undefined;
  const paramsFile = values["params-file"] === undefined ? undefined : readParamsFile(values["params-file"]);
  const flow = await loadFlow(positionals[0], { importFlow, usage: "cairn plan flow.ts" });
  const given = await flowParams(flow.definition, values.param, paramsFile, secrets);
  // The params as the run would see them (the schema's defaults and transforms applied once).
  const { tasks, abandoned, params } = await openFlowCache(flow.definition, { params: given, env, ...readingOptions(values, secrets) });
  sayAbandoned(abandoned, stderr);
  const plan = await planFlow(flow.definition, { params, cache: tasks, rerun: values.rerun ?? [], refresh: values.refresh === true })
    .catch((e: unknown) => {
      throw taskNameRefusal(e, positionals[0]!);
    })
    .finally(() => tasks.store.close());
  if (values.json) {
    stdout.write(`${JSON.stringify(plan.map(({ key, ...p }) => ({ ...p, ...(key ? { key: key.key } : {}) })), null, 2)}\n`);
    return EXIT.ok;
  }
  const c = createColors(colorsOn(env, stdout));
  // A map or sweep none of whose items runs has no cache entry of its own: the run reports it
  // `succeeded`, so it is not said or counted as cached here either.
  const rows = plan.map((p) => [
    p.task,
    p.action === "hit" ? (p.items === undefined ? "cached" : p.items === 0 ? "no items" : "items cached") : p.action === "skip" ? "skipped" : p.items === "unknown" ? "runs (items unknown)" : "runs",
    p.action === "hit" && p.cachedFrom ? `from run ${p.cachedFrom}` : (p.reason ?? ""),
  ]);
  stdout.write(table(["task", "plan", "why"], rows, c));
  // A map's or sweep's own row is no task that could come from the cache (its items are): not counted.
  const counted = plan.filter((p) => p.items === undefined);
  const hits = counted.filter((p) => p.action === "hit").length;
  stdout.write(`\n${hits} of ${counted.length} tasks would come from the cache${uncountedRows(plan)}.\n`);
  const foreign = plan.filter((p) => p.foreign);
  if (foreign.length) stdout.write(`${foreignWords(foreign, plan)}\n`);
  return EXIT.ok;
}

/**
 * `cairn plan`'s line on the tasks whose entry is recorded in another tracker. A task below one of
 * them (or below any task that runs) has no key until that task runs, so whether its entry is
 * there too is not known: then the count is said as a least one, and those tasks are counted apart.
 */
function foreignWords(foreign: readonly PlannedTask[], plan: readonly PlannedTask[]): string {
  const where = [...new Set(foreign.map((p) => describeTracker(p.foreign!.tracker)))].join(" and ");
  const many = foreign.length > 1;
  const said = `${foreign.length} task${many ? "s have cache entries" : " has a cache entry"} recorded in another tracker (${where}), which this command cannot use`;
  const unknown = plan.filter((p) => p.key === undefined && p.upstream !== undefined).length;
  if (!unknown) return `${said}.`;
  const shown = foreign.slice(0, 3).map((p) => `\`${p.task}\``).join(", ") + (foreign.length > 3 ? ` and ${foreign.length - 3} more` : "");
  return (
    `At least ${said}: ${shown}. ${unknown} more task${unknown > 1 ? "s" : ""} may have ${unknown > 1 ? "entries" : "one"} there too: ` +
    `${unknown > 1 ? "their keys are" : "its key is"} known only once an upstream task runs.`
  );
}

/**
 * The rows of `cairn plan`'s table its count leaves out, said after the count so that the two
 * agree ("0 of 2 tasks" under three rows): a map's or sweep's own row (its items are counted,
 * each its own row), and a map whose items are known only once the run makes its list.
 */
function uncountedRows(plan: ReadonlyArray<{ task: string; items?: number | "unknown" | undefined }>): string {
  const maps = plan.filter((p) => p.items !== undefined);
  const unknown = maps.filter((p) => p.items === "unknown").map((p) => p.task);
  const known = maps.filter((p) => p.items !== "unknown").map((p) => p.task);
  const parts = [
    ...(known.length ? [`the row of ${known.join(", ")} (a map's items are counted, each on its own row)`] : []),
    ...(unknown.length ? [`${unknown.join(", ")}, whose items are known only once the run makes ${unknown.length === 1 ? "its" : "their"} list`] : []),
  ];
  return parts.length ? `; not counted: ${parts.join("; ")}` : "";
}

/**
 * What plan and explain take of `cairn run`'s flags to look where the run would: its store, its
 * experiment, its secrets (an input that holds one enters the key by its slow digest), and whether
 * it records (an entry a `--no-tracking` run stored serves only such runs).
 */
function readingOptions(values: { root?: string; experiment?: string; "no-tracking"?: boolean }, secrets: Record<string, string> | undefined): RunOptions {
  return {
    ...(values.root ? { root: values.root } : {}),
    ...(values["no-tracking"] ? { tracker: false as const } : {}),
    ...(values.experiment ? { experiment: values.experiment } : {}),
    ...(secrets ? { secrets } : {}),
  };
}

/**
 * The params of `-p` and `--params-file` (its values under the -p ones), checked against the flow.
 * A refused value is quoted back in its error: one that carries a secret of `--secrets` is masked
 * there, and no rewriting of it is suggested.
 */
async function flowParams(definition: FlowDefinition, pairs: string[] | undefined, file: ParamsFile | undefined, secrets: Record<string, string> | undefined): Promise<Record<string, unknown>> {
  const registry = secrets ? new SecretRegistry(secrets) : undefined;
  return parseParams(definition, pairs ?? [], { ...(file ? { file } : {}), carriesSecret: registry && ((value) => registry.find(value) !== undefined) }).catch((e: unknown) => {
    throw registry ? registry.maskThrown(e) : e;
  });
}

async function explainCommand(args: string[], stdout: Writable, stderr: Writable, env: NodeJS.ProcessEnv, importFlow?: FlowImporter): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      param: { type: "string", short: "p", multiple: true },
      "params-file": { type: "string" },
      json: { type: "boolean" },
      root: { type: "string" },
      experiment: { type: "string" },
      secrets: { type: "string", multiple: true },
      "no-tracking": { type: "boolean" },
    },
    "explain",
  );
  const [file, taskName] = positionals;
  if (!taskName) throw new UsageError("Expected a flow file and a task: cairn explain FILE TASK.");
  if (positionals.length > 2) throw new UsageError(`Expected one task: cairn explain FILE TASK; got ${positionals.length - 1} (${positionals.slice(1).map((p) => `"${p}"`).join(", ")}). Explain them one at a time.`);
  // A --root that is not there (a typo) would explain every task as never run; the cache may be elsewhere (CAIRN_CACHE_URL).
  if (values.root !== undefined) await (env.CAIRN_CACHE_URL || trackingUriOf({ env }) ? checkRoot(values.root, "read") : checkRootToRead(values.root, "cache entries or runs"));
  const secrets = values.secrets ? readSecrets(values.secrets) : undefined;
  const paramsFile = values["params-file"] === undefined ? undefined : readParamsFile(values["params-file"]);
  const flow = await loadFlow(file, { importFlow, usage: "cairn explain flow.ts TASK" });
  const given = await flowParams(flow.definition, values.param, paramsFile, secrets);
  const { tasks, abandoned, params } = await openFlowCache(flow.definition, { params: given, env, ...readingOptions(values, secrets) });
  sayAbandoned(abandoned, stderr);
  const explanation = await explainTask(flow.definition, taskName, { params, cache: tasks })
    .catch((e: unknown) => {
      throw taskNameRefusal(e, file!);
    })
    .finally(() => tasks.store.close());
  if (values.json) {
    const { key, ...planned } = explanation.planned;
    stdout.write(`${JSON.stringify({ ...explanation, planned: { ...planned, ...(key ? { key: key.key } : {}) } }, null, 2)}\n`);
    return EXIT.ok;
  }
  const p = explanation.planned;
  const lines: string[] = [];
  const items = typeof p.items === "number" && p.items > 0 ? ` See \`cairn plan\` for each item, or \`cairn explain FILE ${p.task}[0]\` for one.` : "";
  if (p.action === "hit" && p.items !== undefined) {
    // A map or sweep: its items are what hit, each from its own run; the map has no entry of its own.
    lines.push(`${p.task} would run no item: ${p.reason}. A run reports it succeeded: it has no cache entry of its own, its items have.${items}`);
  } else if (p.action === "skip") {
    lines.push(`${p.task} would not run: ${p.reason}.`);
  } else if (p.action === "hit") {
    lines.push(`${p.task} would come from the cache: run ${p.cachedFrom} (key ${p.key?.key.slice(0, 16)}...).`);
  } else {
    lines.push(`${p.task} would run: ${p.reason}.${items}`);
    if (p.items !== undefined) {
      // A map or sweep has no key: each item has its own, which `cairn explain FILE map[k]` explains.
    } else if (!p.key && explanation.nearest) {
      // Below a task that runs, with its own code (or params, env) changed: the changes known now.
      const n = explanation.nearest;
      lines.push(`Nearest earlier entry: run ${n.sourceRunId}, from ${new Date(n.createdAt).toISOString()}. Since then, whatever its inputs turn out to be:`);
      for (const change of n.changes) lines.push(`  - ${change.message}`);
      lines.push(...otherBuild(n, env));
      lines.push("Its inputs are known only once the upstream tasks have run.");
    } else if (!p.key && explanation.searched) {
      lines.push(`No earlier cache entry of task "${p.task}" in ${explanation.searched}, whatever its inputs turn out to be (they are known only once the upstream tasks have run).`);
    } else if (!p.key) {
      // Else the reason says it all: caching off, inputs its schema refuses, a key that cannot be made.
      if (p.upstream !== undefined) lines.push("Its inputs are known only once the upstream tasks have run, so its key cannot be computed yet.");
    } else if (p.expired) {
      lines.push("Nothing else changed: its inputs and code are that entry's. A run deletes it and computes them again (`.cache({ ttl })` sets how long entries last).");
    } else if ((p.failed || p.cancelled) && (explanation.newItem || !explanation.nearest)) {
      // Not "new": these inputs and code ran, and failed or were cancelled; the reason above names the run.
      lines.push(endedRunLine(p));
    } else if (explanation.newItem) {
      lines.push(`It is ${explanation.newItem}.`);
    } else if (!explanation.nearest) {
      // Said of where it looked, not "never succeeded": another store, or one whose entries expired, may hold it.
      lines.push(`No earlier cache entry of task "${p.task}" in ${explanation.searched ?? "the cache store"}.`);
    } else {
      if (p.failed || p.cancelled) lines.push(endedRunLine(p));
      const n = explanation.nearest;
      lines.push(`Nearest earlier entry: run ${n.sourceRunId}, from ${new Date(n.createdAt).toISOString()}. Since then:`);
      for (const change of n.changes) lines.push(`  - ${change.message}`);
      if (!n.changes.length) {
        lines.push(
          p.foreign
            ? `  - nothing: the entry exists, but its source run is recorded in ${describeTracker(p.foreign.tracker)}, not in ${describeTracker(p.foreign.here)}.`
            : "  - nothing: the entry exists but was unusable (see the reason above).",
        );
      }
      lines.push(...otherBuild(n, env));
    }
    if (explanation.notFoundAmong) lines.push(notFoundAmongLine(explanation.notFoundAmong));
  }
  stdout.write(`${printable(lines.join("\n"))}\n`);
  return EXIT.ok;
}

/** Explain's line for a key with no failed or cancelled run found, when the search for them stopped at its bound. */
function notFoundAmongLine(bound: { runs: number; endedOnly: boolean }): string {
  const among = bound.endedOnly ? `${bound.runs.toLocaleString("en-US")} newest failed or cancelled runs` : `${bound.runs.toLocaleString("en-US")} newest runs`;
  return `No failed or cancelled run with these inputs and code among the experiment's ${among}, where the search stops: an older one may have failed or been cancelled.`;
}

/** Explain's line for a key with no entry that a run failed for or was cancelled in (the plan has one of the two). */
function endedRunLine(p: { failed?: FailedRun; cancelled?: CancelledRun }): string {
  return p.failed ? failedRunLine(p.failed) : cancelledRunLine(p.cancelled!);
}

/**
 * Explain's line for a key with no entry that a run failed for: when, its error, and where the
 * rest is. Not "its last run": a later run may have succeeded and its entry been pruned since.
 */
function failedRunLine(failed: FailedRun): string {
  const error = failed.error !== undefined ? `: ${failed.error}` : "";
  return `A run with these inputs and code failed: run ${failed.runId}, started ${new Date(failed.startedAt).toISOString()}${error}; no entry is stored for them. \`cairn show ${failed.runId}\` shows its error; a run computes it again.`;
}

/**
 * Explain's line for a key with no entry whose run was cancelled (while running, or waiting for a
 * slot), or interrupted (its process died and a later command closed it): when, and what stopped it.
 */
function cancelledRunLine(cancelled: CancelledRun): string {
  const why = cancelled.why !== undefined ? ` (${cancelled.why})` : "";
  const at = new Date(cancelled.startedAt).toISOString();
  if (cancelled.interrupted) {
    // A queue worker's run says its worker stopped (its why); it was closed by the coordinator or another worker.
    const how = cancelled.why !== undefined ? `${cancelled.why}, and the coordinator or another worker closed it` : "its process ended without closing it (killed, or it crashed), and a later command closed it KILLED";
    return `A run with these inputs and code was interrupted: run ${cancelled.runId}, started ${at}; ${how}; no entry is stored for them. A run computes it again.`;
  }
  const how = cancelled.waiting ? `cancelled before it started: run ${cancelled.runId}, recorded ${at}` : `cancelled: run ${cancelled.runId}, started ${at}`;
  return `A run with these inputs and code was ${how}${why}; no entry is stored for them. A run computes it again.`;
}

/**
 * The line explain adds when the nearest earlier entry was written by another Cairn: a key's
 * ingredients are Cairn's to choose, so after an upgrade a task may miss with nothing of the
 * user's changed. None for an entry that names no build (written before entries did).
 */
function otherBuild(nearest: NearestEntry, env: NodeJS.ProcessEnv): string[] {
  const here = cairnBuild(env).id;
  if (nearest.cairn === undefined || nearest.cairn === here) return [];
  return [`The earlier entry was made by Cairn ${nearest.cairn}, this is ${here}: an upgrade can change how keys are made.`];
}

async function cacheCommand(args: string[], stdout: Writable, stderr: Writable, env: NodeJS.ProcessEnv): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "ls" && sub !== "clear" && sub !== "prune") {
    throw new UsageError(`Expected cairn cache ls, clear or prune, got "cairn cache ${sub ?? ""}"${sub === undefined ? "" : meantOf(sub, Object.keys(CACHE_FLAGS), (meant) => `cairn cache ${meant}`)}.`);
  }
  // Each subcommand takes its own flags only: `clear --older-than 7d` cleared everything before.
  const { values, positionals } = parseFlags(rest, CACHE_FLAGS[sub], { command: `cache ${sub}`, help: HELP.cache, helpCommand: "cache" }) as {
    values: { task?: string; json?: boolean; root?: string; "older-than"?: string; "max-size"?: string };
    positionals: string[];
  };
  if (positionals.length) {
    throw new UsageError(`Expected no arguments after \`cairn cache ${sub}\` but its flags, got ${positionals.map((p) => `"${printableLine(p)}"`).join(" ")}. Run \`cairn help cache\` for what each subcommand takes.`);
  }
  // Prune's limits are read before the store opens: a value it cannot read stops it with nothing touched.
  const olderThan = values["older-than"];
  const maxSize = values["max-size"];
  if (sub === "prune" && olderThan === undefined && maxSize === undefined) {
    throw new UsageError("Expected --older-than DURATION and/or --max-size SIZE, e.g. cairn cache prune --older-than 7d --max-size 5GB.");
  }
  const olderThanMs = sub !== "prune" || olderThan === undefined ? undefined : parseDuration("--older-than", olderThan);
  const maxSizeBytes = sub !== "prune" || maxSize === undefined ? undefined : parseSize("--max-size", maxSize);
  // `ls` of a --root that is not there (a typo) is refused, not listed empty; the cache may be elsewhere (CAIRN_CACHE_URL).
  const root = sub === "ls" && !env.CAIRN_CACHE_URL ? await checkRootToRead(values.root, "cache entries") : await checkRoot(values.root, sub === "ls" ? "read" : "write");
  // With a server, entries are also in each experiment's index, where a run finds a key the store lacks.
  const server = trackingUriOf({ env });
  // Clear and prune reach it before they remove anything: a tracking setting it cannot use, or a
  // server that is down, removed the store's entries and then left the index's, so a run hit them again.
  const tracker = server && sub !== "ls" ? await reachableTracker({ root, env }) : undefined;
  // ls only reads: a postgres role with USAGE and SELECT alone may list (see CacheStoreOptions.access).
  const store = await CacheStore.fromUrl(env.CAIRN_CACHE_URL || undefined, { root, source: "CAIRN_CACHE_URL", access: sub === "ls" ? "read" : "write" });
  let code: number = EXIT.ok;
  try {
    // An item or a node's id is no task name: nothing could match it, so `clear` would remove
    // nothing and say "Removed 0" as if the task had no entries.
    if (values.task !== undefined && isItemOrNodeForm(values.task)) {
      throw new UsageError(`Expected --task to be a task name, got "${printableLine(values.task)}". ${await taskNamesOf(store, values.task)} Nothing was ${sub === "clear" ? "removed" : "listed"}.`);
    }
    if (sub === "ls") {
      const unreadable: string[] = [];
      // One task's entries through the store's index by task, where it has one: no other task's entry is read.
      const listing = { ...(values.task !== undefined ? { taskName: values.task, indexed: true } : {}), keep: true, onUnreadable: (key: string) => unreadable.push(key) };
      // The table needs no entry's outputs: a store of thousands of large ones is not held in memory for it.
      const entries = values.json ? await store.list(listing) : await store.listSummaries(listing);
      // Left in the store (ls only reads), for a run or prune to evict: said, not left out without a word.
      const evicted = unreadable.length
        ? `${unreadable.length} stored value${unreadable.length === 1 ? "" : "s"} in the cache at ${store.location} could not be read as ${unreadable.length === 1 ? "a cache entry" : "cache entries"} ` +
          `(not JSON, not a Cairn cache entry, or outputs edited since ${unreadable.length === 1 ? "it was" : "they were"} written), left out: ` +
          `${unreadable.slice(0, 3).map((k) => printableLine(k).slice(0, 16)).join(", ")}${unreadable.length > 3 ? ` and ${unreadable.length - 3} more` : ""}. ` +
          `\`cairn cache ls\` only reads, so ${unreadable.length === 1 ? "it stays" : "they stay"} in the store until a run that meets ${unreadable.length === 1 ? "it" : "them"} or \`cairn cache prune\` evicts ${unreadable.length === 1 ? "it" : "them"}. Their tasks run again when next needed.`
        : undefined;
      const unlisted = server
        ? `Entries kept in the experiments' indexes on ${describeTracker({ kind: "mlflow", uri: server })} (cairn-index/) are not listed here; a run hits those too (\`cairn plan\` shows what it would hit).`
        : undefined;
      if (values.json) {
        stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
        if (!entries.length && values.task !== undefined) stderr.write(`No cache entries of task "${printable(values.task)}". ${await taskNamesOf(store, values.task)}\n`);
        if (evicted) stderr.write(`${evicted}\n`);
        if (unlisted) stderr.write(`${unlisted}\n`);
        return EXIT.ok;
      }
      const c = createColors(colorsOn(env, stdout));
      const rows = entries.map((e) => [e.taskName, e.key.slice(0, 16), e.sourceRunId, formatUtc(e.createdAt), formatBytes(e.sizeBytes)]);
      const none =
        values.task !== undefined
          ? `No cache entries of task "${printable(values.task)}" in the cache at ${store.location}. ${await taskNamesOf(store, values.task)}`
          : `The cache at ${store.location} is empty.`;
      stdout.write(rows.length ? table(["task", "key", "source run", "created", "size"], rows, c) : `${none}\n`);
      if (evicted) stdout.write(`${evicted}\n`);
      if (unlisted) stdout.write(`${unlisted}\n`);
    } else if (sub === "clear") {
      const filter = values.task !== undefined ? { taskName: values.task } : {};
      const keys = tracker ? new Set((await store.list(filter)).map((e) => e.key)) : undefined;
      const removed = await store.clear(filter);
      const task = values.task;
      // The store's count is said once the index's is known: nothing removed from either, for a name
      // close to one the store holds, is a likely typo, warned of with the names rather than a bare "Removed 0".
      let held = "";
      const out = task === undefined || removed > 0 ? stdout : new Writable({ write: (chunk, _encoding, done) => done(void (held += String(chunk))) });
      const said = `Removed ${removed} cache entr${removed === 1 ? "y" : "ies"}${task !== undefined ? ` of task "${task}"` : ""} from ${store.location}.`;
      if (out === stdout) stdout.write(`${said}\n`);
      const index = tracker ? await clearIndexes(tracker, keys!, { stdout: out, stderr, othersToo: task === undefined, ...(task !== undefined ? { taskName: task } : {}) }) : { code: EXIT.ok, removed: 0 };
      code = index.code;
      if (out !== stdout) {
        const names = await storedTaskNames(store);
        // Close to a name it holds (a typo, or a node's id): a warning, not a refusal, as a cleanup script
        // may clear a new task (`train2`, `load-2`) that has no entry yet. Nothing to do is exit 0.
        if (index.removed === 0 && closestNames(task!, names).length) {
          stderr.write(`cairn: warning: removed nothing: no cache entries of task "${printableLine(task!)}" in the cache at ${store.location}${tracker ? " nor in the experiments' indexes" : ""}. ${taskNamesWords(task!, names)}\n`);
        }
        stdout.write(`${said}${index.removed === 0 ? ` ${taskNamesWords(task!, names)}` : ""}\n${held}`);
      }
    } else {
      const before = tracker ? (await store.list()).map((e) => e.key) : [];
      const r = await store.prune({ ...(olderThanMs !== undefined ? { olderThanMs } : {}), ...(maxSizeBytes !== undefined ? { maxSizeBytes } : {}) });
      const entries = (n: number) => `${n} entr${n === 1 ? "y" : "ies"}`;
      const one = r.removed === 1;
      stdout.write(
        `Removed ${entries(r.removed)} (${one ? "its record" : "their records"}, ${formatBytes(r.removedRecordBytes)}); ` +
          `kept ${entries(r.kept)} (${formatBytes(r.keptBytes)} with ${r.kept === 1 ? "its" : "their"} artifacts).\n`,
      );
      if (r.removedArtifactBytes > 0) {
        // Prune deletes cache entries, never a run's record: the artifacts are the runs' outputs.
        // Where they are is where the tracker is: the same test of MLFLOW_TRACKING_URI as resolveTracker's.
        // With a server, the tasks' files also stay here, as local copies: runs prune is what removes those.
        const where = trackingUriOf({ env }) ? `on the MLflow server, and their local copies in ${join(root, "artifacts")}` : `in ${join(root, "artifacts")}`;
        stdout.write(
          `The ${formatBytes(r.removedArtifactBytes)} of artifacts of the removed ${one ? "entry stay with its run" : "entries stay with their runs"} ` +
            `(${where}): prune frees the cache's records, not the runs' outputs. \`cairn runs prune --older-than DURATION\` removes old runs with their files ` +
            `(with a server, the local copies only).\n`,
        );
      }
      if (tracker) {
        const left = new Set((await store.list()).map((e) => e.key));
        code = (await clearIndexes(tracker, new Set(before.filter((k) => !left.has(k))), { stdout, stderr, othersToo: false })).code;
      }
    }
  } finally {
    await store.close();
  }
  return code;
}

/**
 * After `cache clear` or `prune` with MLFLOW_TRACKING_URI: removes the index entries of the keys
 * the store no longer has from every experiment's index on the server (else the next run finds
 * them there, and the command is undone), and says what stays there and how to recompute it.
 * `othersToo`: also say how many entries of other keys stay (a whole clear). `taskName` (`clear
 * --task`): also every entry of that task's keys, the store's or not. `tracker` is the server's,
 * reached before the store was touched. Exit 1 when entries of removed keys stay.
 */
async function clearIndexes(
  tracker: Tracker,
  keys: ReadonlySet<string>,
  o: { stdout: Writable; stderr: Writable; othersToo: boolean; taskName?: string },
): Promise<{ code: number; removed: number }> {
  const where = `on ${describeTracker(tracker)}`;
  const recompute = "a run hits them (shown as cached); to recompute, run with --refresh, or --rerun TASK";
  const entries = (n: number) => `${n} entr${n === 1 ? "y" : "ies"}`;
  let cleanups: IndexCleanup[];
  try {
    cleanups =
      keys.size || o.othersToo || o.taskName !== undefined
        ? await removeIndexEntries(tracker, keys, o.taskName !== undefined ? { taskName: o.taskName } : {})
        : [];
  } catch (error) {
    o.stderr.write(
      `cairn: could not update the experiments' indexes ${where} for ${o.taskName !== undefined ? `the entries of task "${printableLine(o.taskName)}"` : `the ${entries(keys.size)} just removed from the store`}: ${(error as Error).message.replace(/\.$/, "")}. ` +
        `Those that are there stay, and ${recompute}.\n`,
    );
    // Not known to be none: not taken for a typo's "nothing removed".
    return { code: EXIT.flowFailed, removed: Number.NaN };
  }
  let code: number = EXIT.ok;
  let removed = 0;
  for (const c of cleanups) {
    removed += c.removed;
    const experiment = `experiment "${printableLine(c.experiment)}" (${c.experimentId})`;
    if (c.removed) o.stdout.write(`Removed ${entries(c.removed)} from the index of ${experiment} ${where}.\n`);
    if (c.kept) {
      o.stderr.write(`cairn: ${entries(c.kept)} of the removed keys remain in the index of ${experiment} ${where} (${c.keptBecause}): ${recompute}.\n`);
      code = EXIT.flowFailed;
    }
    if (o.othersToo && c.others) {
      o.stdout.write(
        `${c.others} other ${c.others === 1 ? "entry remains" : "entries remain"} in the index of ${experiment} ${where}, not in this store (recorded through another cache store: another machine's, another --root): ${recompute}.\n`,
      );
    }
  }
  return { code, removed };
}

/** The names of the tasks `store` holds entries of, sorted; read only (a damaged entry is left for a run or prune to evict). */
async function storedTaskNames(store: CacheStore): Promise<string[]> {
  return [...new Set((await store.listSummaries({ keep: true })).map((e) => e.taskName))].sort();
}

/**
 * Whether `--task`'s value is a map's item (`extract[0]`) or a node's id (`load-2`, the second
 * use of task `load` in a flow): entries are kept by task name, so neither is one. A node's id
 * can be a task's name too; `load-2` is taken for one only when the store holds entries of
 * `load` and none of `load-2`, which the caller checks.
 */
function isItemOrNodeForm(name: string): boolean {
  return /\[\d*\]$/.test(name);
}

/** What `cairn cache ls|clear --task NAME` says when nothing matched: the task names the store holds, with those NAME may have meant. */
async function taskNamesOf(store: CacheStore, given: string): Promise<string> {
  return taskNamesWords(given, await storedTaskNames(store));
}

function taskNamesWords(given: string, names: readonly string[]): string {
  const item = /^(.*)\[\d*\]$/.exec(given);
  const node = /^(.+)-\d+$/.exec(given);
  const kind = item
    ? `"${printableLine(given)}" is an item of a map, whose entries are kept under its task's name (--task with that name takes every item's). `
    : node && names.includes(node[1]!)
      ? `"${printableLine(given)}" looks like the id of a node of task "${printableLine(node[1]!)}" in a flow, whose entries are kept under the task's name. `
      : "";
  if (!names.length) return `${kind}The cache holds no entries.`;
  // As --rerun words an unknown task: the names it may have meant, then all of them when they are few.
  return `${kind}--task takes ${unknownNameExpected("a task name the cache holds", item ? item[1]! : given, [...names], { counted: "task names" })}.`;
}

/** The flags of each `cairn cache` subcommand. */
const CACHE_FLAGS = {
  ls: { task: { type: "string" }, json: { type: "boolean" }, root: { type: "string" } },
  clear: { task: { type: "string" }, root: { type: "string" } },
  prune: { root: { type: "string" }, "older-than": { type: "string" }, "max-size": { type: "string" } },
} as const satisfies Record<string, FlagOptions>;

/** bytes, required on first use: only `cairn cache` and `cairn runs prune` show sizes (imported as an ES module, its CommonJS file cost every installed command ~4 ms; BENCHMARKS.md, twenty-ninth session). */
let bytesModule: typeof Bytes | undefined;

function formatBytes(n: number): string {
  bytesModule ??= createRequire(import.meta.url)("bytes") as typeof Bytes;
  return bytesModule.format(n, { unitSeparator: " " }) ?? `${n} B`;
}

async function initCommand(args: string[], stdout: Writable, stderr: Writable, env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parse(args, { template: { type: "string" }, "no-install": { type: "boolean" } }, "init");
  if (positionals.length > 1) throw new UsageError(`Expected at most one folder, got ${positionals.length}: ${positionals.join(" ")}.`);
  if (positionals[0] !== undefined) refuseFileNamedDir(positionals[0]);
  const { initProject, TEMPLATES } = await import("./init.ts");
  const template = values.template ?? "ts";
  if (!Object.hasOwn(TEMPLATES, template)) {
    throw new UsageError(`Expected --template to be one of ${Object.keys(TEMPLATES).join(", ")}, got "${template}"${meantOf(template, Object.keys(TEMPLATES))}.`);
  }
  const code = await initProject({
    dir: positionals[0] ?? ".",
    template: template as keyof typeof TEMPLATES,
    install: values["no-install"] !== true,
    cairnVersion: cairnBuild().version,
    stdout,
    stderr,
    env,
  });
  return code === 0 ? EXIT.ok : EXIT.flowFailed;
}

/** Names of flow and step files: `cairn init flow.ts` made a folder `flow.ts/` holding a `flow.ts`. */
const FILE_NAME = /\.(?:[cm]?ts|tsx|[cm]?js|py)$/i;

/**
 * Refuses an init DIR named like a file (`flow.ts`, `train.py`) that is not a folder already:
 * init takes the folder to scaffold in and names the files itself, so the user most likely
 * meant the file, and would have found it one folder down.
 */
function refuseFileNamedDir(dir: string): void {
  if (!FILE_NAME.test(dir) || existsSync(dir)) return;
  throw new UsageError(
    `Expected a folder to scaffold in (cairn init [DIR]), got "${printableLine(dir)}", which is named like a file: init writes flow.ts itself, in DIR. ` +
      `Nothing was written. Run \`cairn init\` for the working directory, or pass a folder name: cairn init my-flow.`,
  );
}

async function runsCommand(args: string[], stdout: Writable, stderr: Writable, env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parse(
    args,
    { experiment: { type: "string" }, limit: { type: "string", short: "n" }, json: { type: "boolean" }, root: { type: "string" } },
    "runs",
  );
  if (positionals.length) throw new UsageError(runsArgumentMessage(positionals));
  const limit = values.limit === undefined ? 20 : integerOption("--limit", values.limit, 1, "Give how many runs to list in digits (-n 50), or leave it out for 20.");
  const tracker = await reachableTracker({ root: await rootToRead(values.root, env), env });
  const leftOut: string[] = [];
  const experimentIds = await experimentsOf(tracker, values.experiment, "runs", stderr, leftOut);
  // A run whose file cannot be read is said and left out, not a failure of the whole listing.
  const unread: string[] = [];
  const say = warnOn(stderr);
  const warn = (message: string, run: { runId: string }) => {
    say(message);
    unread.push(run.runId);
  };
  const others = countOtherRuns(tracker, experimentIds);
  others.catch(() => {}); // awaited below, once the listing is out
  const runs = await listClosingAbandoned(tracker, experimentIds, () => tracker.searchRuns({ experimentIds, ...flowRunsOnly(tracker), maxResults: limit, warn }), stderr);
  const otherLine = describeOtherRuns(await others);
  if (values.json) {
    stdout.write(`${JSON.stringify(runs, nonFinite, 2)}\n`);
    if (otherLine) stderr.write(`cairn: ${otherLine}\n`);
    return EXIT.ok;
  }
  if (!runs.length) {
    // Runs may well exist in the experiments left out: "yet" would say there are none.
    const n = leftOut.length;
    stdout.write(
      n
        ? `No flow runs could be listed in ${tracker.uri}: the runs of ${n === 1 ? "experiment" : `${n} experiments`} ${leftOut.join(", ")} ` +
            `were left out, as the warning${n === 1 ? "" : "s"} above say${n === 1 ? "s" : ""}.\n`
        : unread.length
          ? `No flow runs could be listed in ${tracker.uri}: ${unread.length === 1 ? "1 run" : `${unread.length} runs`} could not be read, as the warning${unread.length === 1 ? "" : "s"} above say${unread.length === 1 ? "s" : ""}.\n`
          : `No flow runs yet in ${tracker.uri}.\n`,
    );
    if (otherLine) stdout.write(`${otherLine}\n`);
    return EXIT.ok;
  }
  const c = createColors(colorsOn(env, stdout));
  const rows = runs.map((r) => [r.runId, r.name, r.status, formatUtc(r.startTime), duration(r)]);
  stdout.write(table(["run id", "flow", "status", "started", "duration"], rows, c));
  if (otherLine) stdout.write(`${otherLine}\n`);
  return EXIT.ok;
}

/**
 * `cairn runs prune`: removes old runs of the embedded store with their files, and the local
 * copies nothing refers to (see its help); with an MLflow server, the local copies only.
 */
async function runsPruneCommand(args: string[], stdout: Writable, stderr: Writable, env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseFlags(args, RUNS_PRUNE_FLAGS, { command: "runs prune", help: HELP.runs, helpCommand: "runs" }) as {
    values: { "older-than"?: string; "dry-run"?: boolean; json?: boolean; root?: string };
    positionals: string[];
  };
  if (positionals.length) {
    throw new UsageError(`Expected no arguments after \`cairn runs prune\` but its flags, got ${positionals.map((p) => `"${printableLine(p)}"`).join(" ")}. Run \`cairn help runs\` for what it takes.`);
  }
  const olderThan = values["older-than"];
  if (olderThan === undefined) throw new UsageError("Expected --older-than DURATION, e.g. cairn runs prune --older-than 30d (add --dry-run to see what would go first).");
  // Read before the store opens: a value it cannot read stops it with nothing touched.
  const olderThanMs = parseDuration("--older-than", olderThan, "a limit of zero removes every run that has ended. Give a limit above zero: 1h, say, or 30d.");
  const dryRun = values["dry-run"] === true;
  const json = values.json === true;
  // A --root that is not there (a typo in a cron line) is refused: it would remove nothing, every time, exit 0.
  if (values.root !== undefined) await checkRootToRead(values.root, "runs or local copies");
  const root = await checkRoot(values.root, dryRun ? "read" : "write");
  // Before the entries are listed: a flow run that ended before this had stored its tasks' entries
  // already (a task's entry is stored before its flow run ends), so the listing names every source it needs.
  const endedBefore = Date.now() - olderThanMs;
  const tracker = await reachableTracker({ root, env });
  // Only read: the entries name the runs to keep.
  const store = await CacheStore.fromUrl(env.CAIRN_CACHE_URL || undefined, { root, source: "CAIRN_CACHE_URL", access: "read" });
  let keep: Set<string>;
  try {
    keep = new Set((await store.list({ keep: true })).map((e) => e.sourceRunId));
  } finally {
    await store.close();
  }
  const would = dryRun ? "Would remove" : "Removed";
  const when = formatUtc(endedBefore);
  // The embedded store removes runs; a server's runs are its own (a capability, not the tracker's kind).
  const local = "pruneRuns" in tracker && typeof tracker.pruneRuns === "function" ? (tracker as Tracker & Pick<LocalStore, "pruneRuns" | "uri">) : undefined;
  let runs: PruneRunsResult | undefined;
  if (local) {
    // A run whose process was killed is closed first (KILLED, ending now): it goes at a later prune.
    if (!dryRun) sayAbandoned(await closeAbandonedRuns(local, [], { warn: warnOn(stderr) }), stderr);
    runs = await local.pruneRuns({ endedBefore, keep, dryRun });
    if (!json) stdout.write(prunedRunsText(runs, { would, when, uri: local.uri }));
  } else {
    // On stderr under --json, as `cache ls --json` says what it does not list: stdout holds the document only.
    (json ? stderr : stdout).write(
      `The runs on ${describeTracker(tracker)} stay: they are MLflow's (delete them there, in its UI or with \`mlflow runs delete\`, then \`mlflow gc\` frees their files).\n`,
    );
  }
  const folders: ("artifacts" | "downloads")[] = local ? ["downloads"] : ["artifacts", "downloads"];
  const copies = await pruneLocalCopies({
    root,
    folders,
    writtenBefore: endedBefore,
    keep,
    // A run the tracker cannot tell about now may be running: its copy stays.
    mayRun: (runId) => tracker.getRun(runId).then((run) => run?.status === "RUNNING" || run?.status === "SCHEDULED", () => true),
    dryRun,
  });
  if (json) {
    // The text's figures, for a program (a cron job's monitoring) to read: one document, as `runs --json` prints.
    // `runs`: null where they are the server's, none removed. A server's URI without the password it may hold.
    const document = {
      dryRun,
      endedBefore,
      tracker: { kind: tracker.kind, uri: local ? local.uri : redactUri(tracker.uri) },
      runs: runs ?? null,
      localCopies: { folders: [...folders, "artifact-stamps"], ...copies },
    };
    stdout.write(`${JSON.stringify(document, null, 2)}\n`);
    return EXIT.ok;
  }
  stdout.write(
    `${would} ${plural(copies.copies, "local copy", "local copies")} of runs' artifacts (${formatBytes(copies.copyBytes)}) and ` +
      `${plural(copies.stamps, "artifact stamp")} (${formatBytes(copies.stampBytes)}) that nothing refers to (${folders.map((f) => `${f}/`).join(", ")}, artifact-stamps/).\n`,
  );
  if (dryRun) stdout.write("Nothing was removed (--dry-run).\n");
  return EXIT.ok;
}

/** What `cairn runs prune` says of the runs it removed from the embedded store, and kept. */
function prunedRunsText(r: PruneRunsResult, o: { would: string; when: string; uri: string }): string {
  const others = r.removedRuns - r.removedFlowRuns;
  let text =
    `${o.would} ${plural(r.removedFlowRuns, "flow run")} and ${plural(others, "other run")} under them (tasks, hits, sweeps) that ended before ${o.when} from ${o.uri}: ` +
    `${formatBytes(r.freedBytes)} of records, logs, artifacts and report pages.\n`;
  if (r.keptForCache) {
    text +=
      `Kept ${plural(r.keptForCache, "older run")} of flow runs a cache entry uses a run of as its source, each flow run whole with its tasks: ` +
      `\`cairn cache prune\` removes entries, and their runs go at the next runs prune.\n`;
  }
  if (r.keptRunning) text += `Kept ${plural(r.keptRunning, "older run")} of flow runs still RUNNING or with a run under them still RUNNING, each flow run whole.\n`;
  return text;
}

/** The flags of `cairn runs prune`. */
const RUNS_PRUNE_FLAGS = { root: { type: "string" }, "older-than": { type: "string" }, "dry-run": { type: "boolean" }, json: { type: "boolean" } } as const satisfies FlagOptions;

/** `1 flow run`, `3 flow runs`. */
function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString("en-US")} ${n === 1 ? one : many}`;
}

/**
 * What `cairn runs` says of an argument (it takes flags only), which it once ignored, listing every
 * run: a run id was meant for `cairn show`, a name most likely for `--experiment`.
 */
function runsArgumentMessage(positionals: string[]): string {
  const given = positionals.map((p) => `"${printableLine(p)}"`).join(" ");
  const first = printableLine(positionals[0]!);
  const hint = /^[0-9a-f]{4,32}$/i.test(first)
    ? `To see one run, a flow run or a task run, run \`cairn show ${first}\`.`
    : `To list one experiment's flow runs, run \`cairn runs --experiment ${first}\`.`;
  return `Expected no arguments after \`cairn runs\` but its flags, got ${given}. ${hint}`;
}

/** The runs not Cairn's that `cairn runs` counts, at most: each costs its whole record in the answer. */
const OTHER_RUNS_COUNTED = 100;

/**
 * The condition that keeps a listing to Cairn's flow runs. A server MLflow's own clients use may
 * hold top-level runs Cairn did not make (a script's `mlflow.start_run()` in the same experiment),
 * without the {@link KIND_TAG} every flow run is created with. The embedded store holds Cairn's runs
 * only, and there a flow run killed in its first second is recorded from its index line alone,
 * without its tags: filtering would hide it.
 */
function flowRunsOnly(tracker: Tracker): Pick<RunFilter, "topLevelOnly" | "tags"> {
  return tracker.capabilities.mlflowClients ? { topLevelOnly: true, tags: { [KIND_TAG]: "flow" } } : { topLevelOnly: true };
}

/** How many top-level runs of `experimentIds` {@link flowRunsOnly} leaves out, up to {@link OTHER_RUNS_COUNTED}. */
async function countOtherRuns(tracker: Tracker, experimentIds: string[]): Promise<number> {
  if (!tracker.capabilities.mlflowClients || !experimentIds.length) return 0;
  const others = await tracker.searchRuns({ experimentIds, topLevelOnly: true, withoutTag: { key: KIND_TAG, value: "flow" }, maxResults: OTHER_RUNS_COUNTED });
  return others.length;
}

/** The line that says runs were left out of a listing as not Cairn's, so that none is hidden silently; undefined for none. */
function describeOtherRuns(count: number): string | undefined {
  if (!count) return undefined;
  const how = count >= OTHER_RUNS_COUNTED ? `${OTHER_RUNS_COUNTED} or more runs` : count === 1 ? "1 run" : `${count} runs`;
  return `Not listed: ${how} that Cairn did not make (without the tag ${KIND_TAG}=flow its flow runs carry: another program's, such as a script's mlflow.start_run()).`;
}

/**
 * Closes the runs this host's dead processes left RUNNING in `experimentIds`, says so, and lists
 * runs with `list`, each as it is after the closing. Against a server the two go side by side
 * (one request's wait, not two in a row); the embedded store lists after closing, which may
 * write the first record of a run killed in its first second.
 */
async function listClosingAbandoned(tracker: Tracker, experimentIds: string[], list: () => Promise<RunRecord[]>, stderr: Writable): Promise<RunRecord[]> {
  const listing = () => (experimentIds.length ? list() : Promise.resolve([]));
  const closing = closeAbandonedRuns(tracker, experimentIds, { warn: warnOn(stderr) }); // never rejects
  const listed = tracker.capabilities.remote ? listing() : undefined;
  listed?.catch(() => {}); // awaited below, after the closing is said, whether or not the listing failed
  const closed = await closing;
  sayAbandoned(closed, stderr);
  const runs = await (listed ?? listing());
  const now = new Map(closed.map((r) => [r.runId, r]));
  return runs.map((r) => now.get(r.runId) ?? r);
}

async function showCommand(args: string[], stdout: Writable, stderr: Writable, env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: "boolean" }, root: { type: "string" }, experiment: { type: "string" } }, "show");
  const given = positionals[0];
  if (!given) throw new UsageError("Expected a run id: cairn show RUN_ID (see `cairn runs`).");
  if (positionals.length > 1) throw new UsageError(`Expected one run id, got ${positionals.length}: ${positionals.join(" ")}.`);
  const tracker = await reachableTracker({ root: await rootToRead(values.root, env), env });
  let closed = false;
  let run = await findRun(given, {
    tracker,
    // A run killed in its first second may have no record yet but its index line: closing it writes one.
    experimentIds: async () => {
      const ids = await experimentsOf(tracker, values.experiment, "show", stderr);
      closed = sayAbandoned(await closeAbandonedRuns(tracker, ids, { warn: warnOn(stderr) }), stderr);
      return ids;
    },
    ...(values.experiment ? { label: `experiment "${values.experiment}"` } : {}),
  });
  if (!closed && sayAbandoned(await closeAbandonedRuns(tracker, [run.experimentId], { warn: warnOn(stderr) }), stderr)) run = (await tracker.getRun(run.runId)) ?? run;
  const runId = run.runId;
  // Every task run, as `cairn report` lists them: a bound would drop a long chain's first steps
  // (the tracker returns the newest first) without a word.
  const found = await tracker.searchRuns({ experimentIds: [run.experimentId], parentRunId: runId, maxResults: Number.MAX_SAFE_INTEGER });
  // A map's or sweep's own runs are its items, in item order as under its row in the flow run's table.
  const children = isGroup(run) ? byItem(found) : await withItemRuns(tracker, found);
  // A cache hit's run holds no params or metrics of its own (copying them would cost a request
  // per hit): they are its source run's, read here, all in one request where the tracker can.
  const sources = await sourceRunsOfHits(tracker, [run, ...children]);
  const sourceOf = (r: RunRecord) => sources.get(r.tags[CACHED_FROM_TAG] ?? "");
  // A failed task run's whole error and its stack, as its run keeps them (masked when written): its tags hold a cut message only.
  const errorText = run.parentRunId !== undefined && run.tags["cairn.status"] === "failed" ? await readErrorFile(tracker, runId) : undefined;
  if (values.json) {
    const withSource = (r: RunRecord) => {
      const source = sourceOf(r);
      return source ? { ...r, cachedFrom: { runId: source.runId, name: source.name, status: source.status, params: source.params, metrics: source.metrics } } : r;
    };
    const shown = errorText === undefined ? withSource(run) : { ...withSource(run), errorText };
    stdout.write(`${JSON.stringify({ run: shown, tasks: children.map(withSource) }, nonFinite, 2)}\n`);
    return EXIT.ok;
  }
  const c = createColors(colorsOn(env, stdout));
  const lines = [`${c.bold(printableLine(run.name))}  run ${run.runId}  ${shownStatus(run)}  ${duration(run)}`];
  if (run.parentRunId !== undefined) lines.push(await parentLine(tracker, run));
  const source = sourceOf(run);
  if (run.tags[CACHED_FROM_TAG]) lines.push(`cached from ${printableLine(run.tags[CACHED_FROM_TAG])}${source ? ` (${printableLine(source.name)}, ${source.status})` : ""}`);
  lines.push(`started ${new Date(run.startTime).toISOString()}`);
  const from = source ? ` (of source run ${source.runId})` : "";
  const params = source && !Object.keys(run.params).length ? source.params : run.params;
  const allMetrics = source && !Object.keys(run.metrics).length ? source.metrics : run.metrics;
  // A flow run's task counters (cairn.tasks, cairn.failed, ...) are said on a line of their own, below.
  const counted = run.parentRunId === undefined ? flowCounts(allMetrics) : "";
  const metrics = counted ? Object.fromEntries(Object.entries(allMetrics).filter(([k]) => !FLOW_COUNTERS.includes(k))) : allMetrics;
  if (Object.keys(params).length) lines.push(`params${params === run.params ? "" : from}: ${Object.entries(params).map(([k, v]) => printableLine(`${k}=${v}`)).join(" ")}`);
  if (Object.keys(metrics).length) lines.push(`metrics${metrics === run.metrics ? "" : from}: ${formatMetrics(metrics)}`);
  const uncounted = uncountedNote(run);
  if (uncounted) lines.push(uncounted);
  const note = run.parentRunId !== undefined && !run.tags[CACHED_FROM_TAG] ? taskNote(run, true) : "";
  const stopped = run.tags["cairn.status"] === "skipped" || run.tags["cairn.status"] === "cancelled";
  if (note) lines.push(stopped ? note : `error: ${errorText === undefined ? errorTagsNote(run, note) : wholeError(errorText, errorFileAt(tracker, runId))}`);
  // Where the error file and a process's logs are on this machine, for a person to open or a CI step to upload.
  const files = errorText === undefined ? undefined : runFilesLine(localRunFiles(tracker, runId));
  if (files) lines.push(files);
  // Whatever the task's end: what its retried attempts failed with (a failed one's error file holds their stacks).
  const attempts = run.tags["cairn.attempts"] ?? "?";
  for (const { attempt, error } of attemptErrors(run.tags)) lines.push(`attempt ${attempt} of ${attempts} failed: ${error}`);
  const ending = run.parentRunId === undefined ? flowEnding(run) : "";
  if (ending) lines.push(ending);
  const abandoned = abandonedNote(run);
  if (abandoned) lines.push(abandoned);
  if (counted) lines.push(counted);
  // What the record holds is data (from a shared server, anyone's): printable, past the first line's
  // own colours; a name or value on one line (params, metrics), so that none can add lines of its own.
  stdout.write(`${[lines[0], ...lines.slice(1).map(printable)].join("\n")}\n`);
  // A task run has no task runs below it (unless its work started runs of its own, as `mlflow run` does).
  if (run.parentRunId !== undefined && !children.length) return EXIT.ok;
  // A hit's source run in a column of its own, beside its run id, when there are hits: as the
  // run's own lines say `cached … from RUN`, not after its metrics at the end of a long line.
  const hits = children.some((r) => r.tags[CACHED_FROM_TAG]);
  // An item's row is indented under its map's or sweep's: its parent is that run, not the one shown.
  const rows = children.map((r) => [
    r.parentRunId === runId ? r.name : `  ${r.name}`,
    shownStatus(r),
    duration(r),
    r.runId,
    ...(hits ? [r.tags[CACHED_FROM_TAG] ?? ""] : []),
    formatMetrics(Object.keys(r.metrics).length ? r.metrics : (sourceOf(r)?.metrics ?? {})),
    [uncountedNote(r), taskNote(r)].filter(Boolean).join("; "),
  ]);
  const header = [run.parentRunId === undefined ? "task" : "run", "status", "duration", "run id", ...(hits ? ["cached from"] : []), "metrics", ""];
  stdout.write(`\n${table(header, rows, c)}`);
  return EXIT.ok;
}

/**
 * What a task run belongs to: its flow run; for a map's item or a sweep's trial (its parent is its
 * map's run, one level below the flow run), that map's run and the flow run above it, read only then.
 */
async function parentLine(tracker: Tracker, run: RunRecord): Promise<string> {
  const parent = run.tags["cairn.parent_node"] === undefined ? undefined : await tracker.getRun(run.parentRunId!);
  if (parent?.parentRunId === undefined) return `task run of flow run ${run.parentRunId}`;
  const kind = parent.tags[KIND_TAG] === "sweep" ? "trial of sweep" : "item of map";
  return `${kind} run ${parent.runId} (${printableLine(parent.name)}) of flow run ${parent.parentRunId}`;
}

/**
 * `runs` (a run's children), the first started first, each map's and sweep's item runs after it
 * in item order. Items are runs one level further down (MLflow's nested runs, as the report reads
 * them): one search per map or sweep, each unbounded as the first is, for a map of thousands of
 * items; a search per parent, not one `IN` over them all, which MLflow's filter grammar does not
 * take for a tag (the parent's id), and item runs carry no tag of the flow run. Started together,
 * they reach a server no more at once than the MLflow client's in-flight limit lets out (shared
 * by the process, cut when a server or its proxy says it is busy or answers 429): a flow of
 * hundreds of maps waits in this process, not in the server's queue.
 */
async function withItemRuns(tracker: Tracker, runs: RunRecord[]): Promise<RunRecord[]> {
  runs.sort((a, b) => a.startTime - b.startTime);
  const groups = runs.filter(isGroup);
  if (!groups.length) return runs;
  const itemsOf = await Promise.all(
    groups.map((g) => tracker.searchRuns({ experimentIds: [g.experimentId], parentRunId: g.runId, maxResults: Number.MAX_SAFE_INTEGER })),
  );
  const byGroup = new Map(groups.map((g, i) => [g.runId, byItem(itemsOf[i]!)]));
  return runs.flatMap((r) => [r, ...(byGroup.get(r.runId) ?? [])]);
}

/** Whether `run` is a map's or a sweep's, whose item runs are its children. */
function isGroup(run: RunRecord): boolean {
  return run.tags[KIND_TAG] === "map" || run.tags[KIND_TAG] === "sweep";
}

/** `items` in item order (`cairn.item`); a run without the tag last, the first started first. */
function byItem(items: RunRecord[]): RunRecord[] {
  const index = (r: RunRecord) => Number(r.tags["cairn.item"] ?? Number.MAX_SAFE_INTEGER);
  return items.sort((a, b) => index(a) - index(b) || a.startTime - b.startTime);
}

async function reportCommand(args: string[], stdout: Writable, stderr: Writable, env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parse(
    args,
    { out: { type: "string", short: "o" }, open: { type: "boolean" }, experiment: { type: "string" }, root: { type: "string" } },
    "report",
  );
  if (positionals.length > 1) throw new UsageError(`Expected one run id (or latest), got ${positionals.length}: ${positionals.join(" ")}.`);
  const given = positionals[0] ?? "latest";
  const root = await rootToRead(values.root, env);
  const tracker = await reachableTracker({ root, env });
  let run: RunRecord;
  if (given === "latest") {
    const ids = await experimentsOf(tracker, values.experiment, "report", stderr);
    const [latest] = await listClosingAbandoned(tracker, ids, () => tracker.searchRuns({ experimentIds: ids, ...flowRunsOnly(tracker), maxResults: 1 }), stderr);
    if (!latest) {
      throw new UsageError(
        `Expected a flow run to report on, found none in ${tracker.uri}${values.experiment ? ` (experiment "${values.experiment}")` : ""}. ` +
          "Run a flow first (cairn run FILE), or point --root or MLFLOW_TRACKING_URI where its runs are recorded.",
      );
    }
    run = latest;
  } else {
    run = await findRun(given, {
      tracker,
      experimentIds: () => experimentsOf(tracker, values.experiment, "report", stderr),
      ...(values.experiment ? { label: `experiment "${values.experiment}"` } : {}),
    });
  }
  if (run.parentRunId !== undefined) {
    // Named at the top: an item's or a trial's parent is its map's or sweep's run, itself no flow run.
    const place = await flowRunOf(tracker, run);
    throw new UsageError(`Expected a flow run, got ${describeRunPlace(run, place)}. Run \`cairn report ${place.flowRunId}\`.`);
  }
  const { buildReport } = await import("@cairn/report");
  // The cache entries say what changed for the tasks that missed; without the store a miss is said plainly.
  // (The embedded store only where it exists: a report is no reason to make a .cairn folder.)
  const store = env.CAIRN_CACHE_URL || existsSync(root) ? await CacheStore.fromUrl(env.CAIRN_CACHE_URL || undefined, { root, access: "read" }).catch(() => undefined) : undefined;
  let html: string;
  try {
    html = await buildReport(tracker, run.runId, store ? { store } : {});
  } finally {
    await store?.close().catch(() => {});
  }
  const out = resolve(values.out ?? `cairn-report-${run.runId.slice(0, 8)}.html`);
  try {
    // Written beside it, then renamed over it: a write that fails (a full disk) leaves a report already there whole.
    const existing = await stat(out).catch(() => undefined);
    if (existing && !existing.isFile()) {
      // Not a file (/dev/null, /dev/stdout, a named pipe): written to as it is. A file renamed over
      // it would replace the device or pipe itself (as root, /dev/null for the whole machine).
      await writeFile(out, html);
    } else {
      const target = existing ? realpathSync(out) : out;
      const temp = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
      try {
        await writeFile(temp, html, { flag: "wx" });
        // A file already there keeps its mode (a private 0600 one stays private, a shared 0664 one shared);
        // a new one has the usual 0666 & ~umask. Set after the write: the umask would mask a mode given to it.
        if (existing) await chmod(temp, existing.mode & 0o7777);
        await rename(temp, target);
      } finally {
        await rm(temp, { force: true }).catch(() => {});
      }
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const fix =
      code === "ENOSPC" || code === "EDQUOT"
        ? "Free space there, or pass --out FILE on another disk"
        : code === "EFBIG"
          ? "Raise this shell's file size limit (ulimit -f), or pass --out FILE on a file system that takes a file this large"
          : "Pass --out FILE in a folder you can write to";
    const message = `Cannot write the report to ${out}: ${(error as Error).message.replace(/\.$/, "")}. ${fix}; a file already there is left as it was.`;
    // A --out that names no file's place is the command line's fault (exit 2); a write the disk refused is the command failing at its work (exit 1).
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") throw new UsageError(message, { cause: error });
    stderr.write(`cairn: ${printable(message)}\n`);
    return EXIT.flowFailed;
  }
  // The run's name is its record's (anyone's, on a shared server): printable, on one line.
  stdout.write(`Wrote the report of flow run ${run.runId} (${printableLine(run.name)}, ${run.status}) to ${out}\n`);
  if (values.open) await openFile(out, stderr);
  return EXIT.ok;
}

/**
 * How long `--open` waits for the opener to fail: xdg-open on a machine without a desktop exits 3
 * at once, while one that starts a browser in the foreground (a bare `$BROWSER`) may not exit
 * until the browser does, and is then left running.
 */
const OPENER_WAIT_MS = 3000;

/**
 * Opens `file` with the desktop's default application. A failure of the opener (not found, or
 * exiting non-zero, as xdg-open does with "no method available" on a headless machine) is said
 * as a warning with the report's path: the report is written, only not shown.
 */
async function openFile(file: string, stderr: Writable): Promise<void> {
  const [command, args] = process.platform === "darwin" ? ["open", [file]] : process.platform === "win32" ? ["cmd", ["/c", "start", "", file]] : ["xdg-open", [file]];
  const child = spawn(command, args as string[], { detached: true, stdio: "ignore" });
  const why = await new Promise<string | undefined>((settle) => {
    const timer = setTimeout(() => settle(undefined), OPENER_WAIT_MS);
    const done = (reason: string | undefined) => {
      clearTimeout(timer);
      settle(reason);
    };
    child.on("error", (error) => done(error.message));
    child.on("exit", (code, signal) => done(code === 0 ? undefined : code !== null ? `it exited with code ${code}` : `it was ended by ${signal}`));
  });
  child.unref();
  if (why !== undefined) stderr.write(`cairn: warning: could not open the report with ${command} (${why}); it is written at ${printableLine(file)}: open that file in a browser yourself.\n`);
}

/**
 * Why a flow run ended as it did, as its record says: the reason it was cancelled with, or the
 * error it failed with (both masked when they were recorded). A cancelled run's error repeats its
 * reason, so only the reason is said; "" for a run that succeeded or is still running.
 */
function flowEnding(r: RunRecord): string {
  const reason = r.tags[CANCEL_REASON_TAG];
  if (reason) return `cancelled: ${reason}`;
  const error = errorOf(r);
  return error ? `error: ${error}` : "";
}

/**
 * Of a run that a later command closed as KILLED because its process had ended without closing
 * it (killed, crashed): why, as its `cairn.abandoned` tag says it, and what its duration means,
 * since its end time is when it was found; "" for any other run.
 */
function abandonedNote(r: RunRecord): string {
  const why = r.tags[ABANDONED_TAG];
  if (why === undefined) return "";
  return `abandoned: ${why.replace(/\.?$/, ".")} Its duration runs until then, when it was found, not until its process ended.`;
}

/** `Name: message` of a failed run's error, from its tags; "" when it has none. */
function errorOf(r: RunRecord): string {
  const t = r.tags;
  // Runs recorded before the name and message had tags of their own carry `cairn.error` only.
  return (t["cairn.error.name"] !== undefined ? `${t["cairn.error.name"]}: ${t["cairn.error.message"] ?? ""}` : t["cairn.error"]) ?? "";
}

/**
 * A run's status as `cairn show` prints it: MLflow's (FINISHED, FAILED, KILLED), but `cached` for a
 * cache hit's run, as the run's own table says it (its record is FINISHED: MLflow knows no other).
 */
function shownStatus(r: RunRecord): string {
  return r.tags[CACHED_FROM_TAG] ? "cached" : r.status;
}

/** Why a task run is what it is, on its row: what it failed with, what it was skipped for (a hit's source has its column). */
/** A sweep trial past its stopWhen's cut, started before the stop was known (SWEEP_COUNTED_TAG): its run ended as any other's. */
function uncountedNote(r: RunRecord): string {
  return r.tags[SWEEP_COUNTED_TAG] === "false" ? "not counted: started before the sweep's stopWhen was met by an earlier trial" : "";
}

function taskNote(r: RunRecord, full = false): string {
  const t = r.tags;
  if (t[CACHED_FROM_TAG]) return "";
  if (t["cairn.status"] === "skipped") {
    const why = skippedWhy(t, r.name);
    return t[SKIPPED_REASON_TAG] === "flow-failed" ? `${why} (its run ${t[SKIPPED_BECAUSE_TAG]} says why)` : why;
  }
  if (t["cairn.status"] === "cancelled") return "cancelled";
  const error = errorOf(r);
  // Its own `cairn show` says why whole (abandonedNote).
  if (!error) return t[ABANDONED_TAG] !== undefined && !full ? "abandoned: its process ended without closing it" : "";
  if (full) return error;
  // One line on a row; `cairn show` of the task run prints it whole.
  const line = error.split("\n")[0]!;
  return line.length > 120 || error.includes("\n") ? `${line.slice(0, 117)}...` : line;
}

/** A failed run's error as its tags keep it, when its error file cannot be read (a run recorded before there was one). */
function errorTagsNote(run: RunRecord, note: string): string {
  return `${note}${run.tags["cairn.error.name"] !== undefined ? `\n(the whole text and its stack: artifact ${ERROR_ARTIFACT})` : ""}`;
}

/** A task run's error file as `cairn show` prints it: its first lines, each line cut when long, saying `where` the rest is. */
function wholeError(text: string, where: string): string {
  return shownErrorText(cutLongLines(text, where), where);
}

/** The task counters a flow run ends with (README: the flow run's metrics), said by {@link flowCounts}, not among its metrics. */
const FLOW_COUNTERS = ["cairn.tasks", "cairn.succeeded", "cairn.cached", "cairn.failed", "cairn.cancelled", "cairn.skipped"];

/**
 * `tasks: 8 (2 succeeded, 3 cached, 1 failed, 2 skipped)`: a flow run's counters (README: the flow
 * run's metrics), those above 0, as disjoint counts that add up to the total, in the words of
 * `cairn run`'s summary ("54 tasks: 1 succeeded, 53 cached"); "" without them. `cairn.succeeded`
 * counts the hits too: said beside `cairn.cached` as recorded, `8 succeeded, 4 cached` read as 12 of 8.
 */
function flowCounts(metrics: Record<string, number>): string {
  const total = metrics["cairn.tasks"];
  if (total === undefined) return "";
  const cached = metrics["cairn.cached"] ?? 0;
  const counts: [string, number][] = [
    ["succeeded", Math.max(0, (metrics["cairn.succeeded"] ?? 0) - cached)],
    ["cached", cached],
    ["failed", metrics["cairn.failed"] ?? 0],
    ["cancelled", metrics["cairn.cancelled"] ?? 0],
    ["skipped", metrics["cairn.skipped"] ?? 0],
  ];
  const parts = counts.filter(([, n]) => n > 0).map(([what, n]) => `${n} ${what}`);
  return `tasks: ${total}${parts.length ? ` (${parts.join(", ")})` : ""}`;
}

/** `k=v k=v`, numbers as they are. */
function formatMetrics(metrics: Record<string, number>): string {
  return Object.entries(metrics)
    .map(([k, v]) => printableLine(`${k}=${v}`))
    .join(" ");
}


/** Prints the one line about runs a killed process left RUNNING and that were just closed; true when there were any. */
function sayAbandoned(closed: readonly RunRecord[], stderr: Writable): boolean {
  const line = describeAbandonedRuns(closed);
  if (line) stderr.write(`cairn: ${printable(line)}\n`);
  return line !== undefined;
}

/** A JSON replacer that writes NaN and ±Infinity as MLflow's REST API does ("NaN", "Infinity"), not as JSON's null. */
function nonFinite(_: string, v: unknown): unknown {
  return typeof v === "number" && !Number.isFinite(v) ? String(v) : v;
}

/** The state folder of a command that only reads: `--root`'s, checked, else `.cairn` in the working directory. */
async function rootToRead(given: string | undefined, env: NodeJS.ProcessEnv): Promise<string> {
  // With a server, the runs are its own: a --root that is not there holds no runs to miss.
  if (given === undefined) return resolve(".cairn");
  return trackingUriOf({ env }) ? checkRoot(given, "read") : checkRootToRead(given, "runs");
}

/**
 * The tracker of `runs`, `show` and `report`, checked reachable first (one quick request, as
 * `run` does): a server that is down is said at once, not after every request's retries.
 */
async function reachableTracker(options: Parameters<typeof resolveTracker>[0]): Promise<Tracker> {
  const tracker = await resolveTracker(options);
  // A server only: the embedded store's ping makes its folder, which a command that reads must not.
  if (tracker.capabilities.remote) await tracker.ping();
  return tracker;
}

/**
 * Whether to colour what goes to `stream`: never with a non-empty NO_COLOR (no-color.org); with
 * FORCE_COLOR set, unless it is `0` or `false` (so `FORCE_COLOR=0` turns colours off, as in Node
 * and chalk); else when the stream is a terminal that is not `TERM=dumb` (one that shows escape
 * codes as text, as Emacs's shell does; picocolors, chalk and git say so too).
 */
function colorsOn(env: NodeJS.ProcessEnv, stream: Writable): boolean {
  if (env.NO_COLOR) return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined) return force !== "0" && force.toLowerCase() !== "false";
  return (stream as NodeJS.WriteStream).isTTY === true && env.TERM !== "dumb";
}

/** A store's warning (a damaged record, a run left unclosed), said on stderr as one line. */
function warnOn(stderr: Writable): (message: string) => void {
  return (message) => stderr.write(`cairn: ${printable(message)}\n`);
}

/** What each command that takes --experiment does without it, for the error that names an experiment there is not. */
const WITHOUT_EXPERIMENT = {
  runs: "cairn runs lists the runs of every experiment",
  show: "cairn show looks for the run in every experiment",
  report: "cairn report looks for the run in every experiment",
} as const;

/** The experiments to list runs of; `leftOut` gets the ids of those left out because their record is damaged or cannot be read. */
async function experimentsOf(tracker: Tracker, name: string | undefined, command: keyof typeof WITHOUT_EXPERIMENT, stderr: Writable, leftOut: string[] = []): Promise<string[]> {
  // An experiment whose record is damaged is left out of the listing, said once, not a failure of every listing.
  const say = warnOn(stderr);
  const warn = (message: string, experiment: { experimentId: string; listed: boolean }) => {
    say(message);
    if (!experiment.listed) leftOut.push(experiment.experimentId);
  };
  if (name) {
    const before = leftOut.length;
    const all = tracker.listExperiments ? await tracker.listExperiments({ warn }) : undefined;
    if (all) {
      const ids = all.filter((e) => e.name === name).map((e) => e.experimentId);
      if (!ids.length) {
        // An experiment left out because its record cannot be read may be the one asked for: its name is unknown.
        const unread = leftOut.length - before;
        throw new UsageError(
          `No experiment named "${name}" in ${tracker.uri} has runs to show: ` +
            (unread > 0
              ? `there is none by that name among those whose record could be read, and ${unread === 1 ? "1 experiment" : `${unread} experiments`} could not be read (the warning above); once it can be read, try again`
              : `there is none by that name${otherNormalisationOf(name, all.map((e) => e.name)) || meantOf(name, all.map((e) => e.name))}` +
                (tracker.capabilities.remote ? ", or it was deleted (`mlflow experiments restore` brings it back)" : "") +
                `. Without --experiment, ${WITHOUT_EXPERIMENT[command]}`) +
            ".",
        );
      }
      return ids;
    }
    return [await tracker.ensureExperiment(name)];
  }
  if (!tracker.listExperiments) throw new UsageError(`Pass --experiment NAME to list runs from ${tracker.uri}.`);
  return (await tracker.listExperiments({ warn })).map((e) => e.experimentId);
}

/** Rows of text from runs and stores (names, params, reasons, errors): each cell printable on one line (see printable.ts). */
function table(header: string[], data: string[][], c: ReturnType<typeof createColors>): string {
  const rows = data.map((r) => r.map(printableLine));
  // Reduced, not spread into Math.max: a map's items may be more rows than the stack takes arguments.
  const widths = header.map((h, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? "").length), h.length));
  const fmt = (r: string[]) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd();
  return `${[c.bold(fmt(header)), ...rows.map(fmt)].join("\n")}\n`;
}

/**
 * A run's duration as the run's summary said it: a task run's own work (DURATION_TAG), which its
 * record's span also holds its creation and closing; none for a task that started no attempt
 * (its span is only its record's making), but a map's or sweep's run, which makes none of its own,
 * has its span however it ended; a flow run's own (DURATION_TAG too, on the monotonic
 * clock); else (a hit, an older flow run) its record's span.
 */
function duration(r: RunRecord): string {
  const own = r.tags[DURATION_TAG] === undefined ? undefined : Number(r.tags[DURATION_TAG]);
  if (own !== undefined && Number.isFinite(own)) return formatDuration(own);
  // A map's or sweep's run makes no attempt of its own (its items do): it has its span however it ended.
  const group = r.tags[KIND_TAG] === "map" || r.tags[KIND_TAG] === "sweep";
  if (!group && startedNoAttempt(r.tags)) return "-";
  // Clamped: a wall clock stepped back during a run (NTP, a laptop waking) ends it before its start.
  return r.endTime ? formatDuration(Math.max(0, r.endTime - r.startTime)) : r.status === "RUNNING" ? "running" : "-";
}

/** How far ahead of this host's a worker's clock may be before it is said: rounding and a little drift. */
const CLOCK_AHEAD_MARGIN_MS = 1000;

/**
 * How long ago a live worker wrote its heartbeat (its beatAt is its own clock's). Never negative: a
 * worker whose clock is ahead of this host's beat within its record's ttl, which is all that is
 * known, and its clock's lead is said, as it skews what it records too.
 */
function heartbeatAge(beatAt: number, now = Date.now()): string {
  const ms = now - beatAt;
  if (ms >= -CLOCK_AHEAD_MARGIN_MS) return `${formatDuration(Math.max(0, ms))} ago`;
  return `recent; its clock is ${formatDuration(-ms)} ahead of this host's`;
}

/** The default of CAIRN_STILL_RUNNING_MS: under the 10 minutes of silence after which CircleCI and Travis end a job. */
const STILL_RUNNING_MS = 60_000;

/**
 * CAIRN_STILL_RUNNING_MS: after how many ms without a printed line the plain lines say which
 * tasks still run (see PlainOptions.stillRunningMs); 0 never. Unset or empty: the default.
 */
function stillRunningFromEnv(env: NodeJS.ProcessEnv): number {
  const raw = env.CAIRN_STILL_RUNNING_MS;
  if (raw === undefined || raw.trim() === "") return STILL_RUNNING_MS;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n > LONGEST_TIMER_MS) {
    throw new UsageError(
      `Expected CAIRN_STILL_RUNNING_MS to be an integer from 0 to ${LONGEST_TIMER} in digits (ms without output before \`cairn run\` says which tasks still run; 0: never), got ${JSON.stringify(raw)}. ` +
        `Set it to a number such as 60000, or unset it for the default, ${STILL_RUNNING_MS}.`,
    );
  }
  return n;
}

/** `raw` as an integer >= `min`; `fix` says what the flag means and its default, for the message. */
function integerOption(flag: string, raw: string, min: number, fix?: string): number {
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`Expected \`${flag}\` to be an integer >= ${min}, got \`${raw}\`.${fix ? ` ${fix}` : ""}`);
  }
  return n;
}

/** The secrets of every `--secrets FILE`, read in the order given: a key in a later file wins. */
function readSecrets(files: readonly string[]): Record<string, string> {
  const entries: Array<[string, string]> = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      throw new UsageError(`Cannot read the secrets file ${file}: ${(error as Error).message}. Pass a KEY=VALUE file with --secrets.`);
    }
    entries.push(...Object.entries(parseSecretsFile(file, text)));
  }
  // fromEntries, not assignment: a key `__proto__` stays a key.
  return Object.fromEntries(entries);
}

