/**
 * Every error of running tasks through a queue: each says what was expected, what arrived,
 * where, and how to fix it, with the fields a caller branches on.
 */
import { CairnError, MANIFEST_PATH } from "@cairn/core";
import { redactUri } from "@cairn/core";

/** `--queue` / `queueDispatcher()` cannot serve this run: the workers could not share its record. */
export class QueueNeedsSharedTrackerError extends CairnError {
  static override readonly code: string = "CAIRN_QUEUE_NEEDS_SHARED_TRACKER";
  override name = "QueueNeedsSharedTrackerError";
  constructor(
    readonly flowName: string,
    readonly tracker: { kind: string; uri: string },
  ) {
    // A run that records nothing is one given `--no-tracking` (`tracker: false`): "records to none (none)" named neither.
    const none = tracker.kind === "none";
    const where = none ? "no tracker (`--no-tracking`, or `tracker: false`, records no runs)" : tracker.kind === "local" ? `the embedded store (${tracker.uri})` : `${tracker.kind} (${redactUri(tracker.uri)})`;
    super(
      `Flow "${flowName}" cannot run its tasks through a queue while it records to ${where}: ` +
        `workers on other machines record their task runs, and hand over artifacts, through an MLflow server that every machine reaches. ` +
        `${none ? "Drop --no-tracking (or `tracker: false`), and s" : "S"}et MLFLOW_TRACKING_URI=http://<mlflow-host>:5000 for the run and for every worker (and, for a shared cache store, the same CAIRN_CACHE_URL).`,
    );
  }
}

/** Redis did not answer at the queue URL. */
export class QueueUnreachableError extends CairnError {
  static override readonly code: string = "CAIRN_QUEUE_UNREACHABLE";
  override name = "QueueUnreachableError";
  constructor(
    readonly url: string,
    readonly operation: string,
    /** `inRun`: a flow run's (its tasks already finished are kept in the cache), not a listing's or a worker's. */
    options?: { cause?: unknown; inRun?: boolean },
  ) {
    const cause = options?.cause instanceof Error ? options.cause.message : options?.cause === undefined ? "no answer" : String(options.cause);
    super(
      `The queue at ${redactUri(url)} did not answer while trying to ${operation} (${cause}). ` +
        `Check that redis-server runs there and this machine reaches it (redis-cli -u ${redactUri(url)} ping)${options?.inRun ? "; tasks already finished are kept in the cache" : ""}.`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
  }
}

/**
 * The queue's Redis answered, and refused the URL's credentials (`WRONGPASS`, `NOAUTH`) or what
 * its user may do (`NOPERM`): a setting to fix, not a service to wait for, so `cairn` exits 2 and a
 * supervisor does not start the worker again and again with the same password.
 */
export class QueueAuthError extends CairnError {
  static override readonly code: string = "CAIRN_QUEUE_AUTH";
  override name = "QueueAuthError";
  /** Redis's answer's first word: `WRONGPASS`, `NOAUTH` or `NOPERM`. */
  readonly reply: string;
  constructor(
    readonly url: string,
    readonly operation: string,
    /** Redis's answer (it never holds the password). */
    answer: string,
  ) {
    const reply = /^[A-Z]+/.exec(answer)?.[0] ?? "";
    const shown = redactUri(url);
    const fix =
      reply === "NOPERM"
        ? `The user the URL names may not run what a Cairn queue needs: give it every command and key (ACL SETUSER <user> on ~* &* +@all), or name another user in the URL.`
        : reply === "NOAUTH"
          ? `Redis asks for a password the URL does not give: put it in the URL (redis://:PASSWORD@host:6379, or redis://USER:PASSWORD@host:6379 for an ACL user), percent-encoded.`
          : `Check the user name and password in the URL against Redis's (requirepass, or the ACL user's), percent-encoded (%40 for @, %23 for #, %25 for %).`;
    super(
      `The queue's Redis at ${shown} refused ${reply === "NOPERM" ? "what its user may do" : "its password or user name"} while trying to ${operation} (${answer}). ` +
        `${fix} (A URL given with --queue, not in CAIRN_QUEUE, is on the command line, which other processes of the machine can read.) Try it with redis-cli -u ${shown} ping (with the real password). Retrying does not help.`,
    );
    this.reply = reply;
  }
}

/** The queue URL is not a Redis URL. */
export class QueueUrlError extends CairnError {
  static override readonly code: string = "CAIRN_QUEUE_URL";
  override name = "QueueUrlError";
  constructor(url: unknown, options: { reason?: string; hint?: string; expected?: string } = {}) {
    // A URL's password never reaches the message: a mistyped scheme still carries it.
    super(
      `Expected ${options.expected ?? "the queue to be a Redis URL (redis://host:6379 or rediss://...)"}, got ${JSON.stringify(typeof url === "string" ? redactUri(url) : url)}` +
        `${options.reason ? ` (${options.reason})` : ""}.${options.hint ? ` ${options.hint}` : ""}`,
    );
  }
}

/**
 * A job on a Cairn queue whose data is not a task a coordinator of this Cairn sends (fields
 * missing or of the wrong type): made by another program or another Cairn, or altered in Redis.
 * The worker runs nothing for it, says it on its log, and fails the job with this error.
 */
export class QueueJobDataError extends CairnError {
  static override readonly code: string = "CAIRN_QUEUE_JOB_DATA";
  override name = "QueueJobDataError";
  constructor(
    readonly jobId: string,
    readonly queue: string,
    /** What is wrong, field by field (`` `tracker` is missing, expected an object { kind, uri } of strings ``). */
    readonly problems: readonly string[],
    /** This worker's Cairn build. */
    build: string,
  ) {
    super(
      `Expected job ${jobId} of queue ${queue} to be a task that \`cairn run --queue\` of Cairn ${build} sends, got data where ${problems.join("; ")}. ` +
        `It was made by another program or another version of Cairn, or altered in the queue's Redis: nothing was run for it. ` +
        `Run the flow with the workers' Cairn; if no one here sent it, find out who else writes to the queue's Redis, and give it a password (see "Running on several machines").`,
    );
  }
}

/** Which worker: its id, as `cairn workers` lists it (`<host>-<pid>-<random>`), and its host. */
export interface WorkerIdentity {
  readonly id: string;
  readonly host: string;
}

/**
 * The workers that handed a job back before the last one refused it, by id, each with why
 * (`its code differs (its source)`), and how long it waited for another (ms).
 */
export interface Refusals {
  readonly by: readonly string[];
  readonly waitedMs: number;
  readonly why?: Readonly<Record<string, string>>;
}

/**
 * How long a refused task waited, and which other workers refused it and why: the end of the
 * message of every error a worker fails a task with once no live worker took it.
 */
export function refusedSentence(refused: Refusals, selfId: string, whom: string): string {
  const others = refused.by.filter((id) => id !== selfId);
  const named = others.map((id) => `${id}${refused.why?.[id] ? ` (${refused.why[id]})` : ""}`);
  return (
    `No live worker ${whom} took the task within ${Math.round(refused.waitedMs / 1000)} s` +
    `${named.length ? ` (worker${named.length === 1 ? "" : "s"} ${named.join(", ")} refused it too)` : ""}.`
  );
}

/**
 * The worker's value of a secret the coordinator knows from the start (`--secrets FILE`,
 * `run({ secrets })`) differs from the coordinator's (a rotated secrets file on one side): it
 * refuses the task before anything runs, as it could not recognise the run's value in an output
 * (which would be written to the task's run, the cache and the job before the coordinator
 * refused it). Compared by a salted slow digest: the value never travels, nor is it named here.
 * Raised once no live worker of the task's pool with the coordinator's value took the job within
 * the grace period (each worker whose value differs hands it back until then).
 */
export class SecretMismatchError extends CairnError {
  static override readonly code: string = "CAIRN_SECRET_MISMATCH";
  override name = "SecretMismatchError";
  /** The host of the worker that refused it last. */
  readonly host: string;
  /** The id of the worker that refused it last, as `cairn workers` lists it. */
  readonly workerId: string;
  constructor(
    /** The secret's name (never its value). */
    readonly secret: string,
    readonly nodeId: string,
    worker: WorkerIdentity,
    /** The workers that refused it, by id, and how long it waited for another (ms). */
    readonly refused: Refusals = { by: [worker.id], waitedMs: 0 },
  ) {
    super(
      `Task "${nodeId}" was not run by worker ${worker.id} (on ${worker.host}): its value of secret "${secret}" differs from the one the flow run knows from its --secrets file (or run({ secrets })) ` +
        `(compared by a salted digest; neither value is sent or shown), so it could not refuse an output or mask a log line that carries the run's value. ` +
        `${refusedSentence(refused, worker.id, "with the run's value")} ` +
        `Give that worker the coordinator's value: update ${secret}=... in the file it is started with (cairn worker --secrets FILE), or its environment variable ${secret}, and restart it; ` +
        `or, if the coordinator's value is the old one, update the coordinator's --secrets file.`,
    );
    this.host = worker.host;
    this.workerId = worker.id;
  }
}

/**
 * The worker's checkout has other code for a task than the coordinator's: it refuses to run it.
 * Raised once no live worker of the task's pool with the run's code took the job within the
 * grace period (each worker whose code differs hands it back until then).
 */
export class StaleCodeError extends CairnError {
  static override readonly code: string = "CAIRN_STALE_CODE";
  override name = "StaleCodeError";
  /** The host of the worker that refused it last. */
  readonly host: string;
  /** The id of the worker that refused it last, as `cairn workers` lists it. */
  readonly workerId: string;
  constructor(
    readonly nodeId: string,
    /** The worker's flow file, absolute. */
    readonly flowFile: string,
    worker: WorkerIdentity,
    /** What of its code differs: "its source", "file lib.ts", "package zod (4.0.1 in the run, 4.1.0 here)", ... */
    readonly differs: string[],
    /** The variables it declares with .env(), or its function reads from process.env by name, whose values differ (their names only). */
    readonly envDiffers: string[] = [],
    /** The workers that refused it, by id, and how long it waited for another (ms). */
    readonly refused: Refusals = { by: [worker.id], waitedMs: 0 },
    /** What differs in the Python environment it would run in (interpreter, packages), in words; absent when it agrees. */
    readonly environment?: string,
    /** Of `envDiffers`, those its function reads from process.env by name without declaring them with .env(). */
    readonly envReadUndeclared: string[] = [],
    /** The task's kind, when it is not one of Cairn's and its `code` differs (another installed version of the kind's package, often). */
    readonly kind?: string,
    /** The export conditions the coordinator and this worker resolve packages with, when they differ and its code does: the likely cause, not an old checkout. */
    readonly conditions?: { readonly coordinator: readonly string[]; readonly worker: readonly string[] },
  ) {
    const code = differs.length > 0;
    const env = envDiffers.map((name) => `environment variable ${name} (its value enters the task's cache key)`);
    const declared = envDiffers.filter((name) => !envReadUndeclared.includes(name));
    const read = envDiffers.filter((name) => envReadUndeclared.includes(name));
    const fixes = [
      ...(kind
        ? [
            `Kind ${kind}'s code (its \`code\`) differs: is another version of the package it comes from installed there? Compare the lockfiles of the two checkouts ` +
              `(package-lock.json, pnpm-lock.yaml, yarn.lock) and install the coordinator's version there.`,
          ]
        : []),
      ...(code && conditions
        ? [
            `The coordinator resolves packages with conditions [${conditions.coordinator.join(", ")}], this worker with [${conditions.worker.join(", ")}]: ` +
              `start the worker with the same --conditions / NODE_OPTIONS (${conditionsFlags(conditions.coordinator)}), ` +
              `so that it loads the files the coordinator keyed the task by; if its code still differs then, update its checkout to the coordinator's commit. A worker never runs other code than the run asked for.`,
          ]
        : []),
      ...(code && !conditions ? ["Update that worker's checkout to the coordinator's commit (and restart it), or stop it; a worker never runs other code than the run asked for."] : []),
      ...(differs.some((d) => d.startsWith("package "))
        ? ["A package the task imports is installed there in another version: compare the lockfiles of the two checkouts (package-lock.json, pnpm-lock.yaml, yarn.lock) and install the coordinator's versions there."]
        : []),
      ...(declared.length ? [`Give that worker the coordinator's values of the variables the task declares with .env() (${declared.join(", ")}; and restart it): what it computed with others would be stored under the run's cache key.`] : []),
      ...(read.length
        ? [
            `Give that worker the coordinator's values of the variables the task's function reads from process.env by name (${read.join(", ")}; and restart it): what it computed with others would be stored under the run's cache key. ` +
              `If a value differs by machine without changing what the task computes (a device list such as CUDA_VISIBLE_DEVICES, HOSTNAME), read it through a computed name instead (const name = ${JSON.stringify(read[0])}; process.env[name]): the key does not follow such a read, so workers do not compare it.`,
          ]
        : []),
      ...(environment
        ? ["Give that worker a Python with the coordinator's version and packages (its CAIRN_PYTHON, active virtualenv or project .venv; then restart it): a task's Python environment enters its cache key, and what it computed with others would be stored under the run's."]
        : []),
    ];
    super(
      `Task "${nodeId}" was not run by worker ${worker.id} (on ${worker.host}): ${code ? (kind && differs.length === 1 ? "its kind's code there" : `its code in ${flowFile} there`) : "its environment there"} differs from ${code ? "the code" : "the one"} the flow run was started with (${[...differs, ...env, ...(environment ? [environment] : [])].join(", ")}). ` +
        `${refusedSentence(refused, worker.id, `with the run's ${code ? "code" : "environment"}`)} ` +
        fixes.join(" "),
    );
    this.host = worker.host;
    this.workerId = worker.id;
  }
}

/** Node's own conditions, which follow from its version and `--no-addons`, not from `--conditions`. */
const NODE_OWN = new Set(["node", "node-addons", "module-sync"]);

/** How to start a worker with `conditions` (a coordinator's), in words. */
function conditionsFlags(conditions: readonly string[]): string {
  const user = conditions.filter((c) => !NODE_OWN.has(c));
  const flags = user.map((c) => `--conditions=${c}`).join(" ");
  return user.length ? `\`node ${flags} cairn worker ...\`, or NODE_OPTIONS="${flags}"` : "the coordinator gives none: no --conditions or -C on node's command line or in NODE_OPTIONS";
}

/**
 * The worker runs another Cairn than the coordinator that sent the task (another version, or
 * another commit packed as the same version): it refuses the task before anything runs, as a
 * worker whose code differs does. Cairn makes the cache key, so a worker of another build could
 * store its result under a key whose ingredients it does not know: a wrong hit for later runs.
 */
export class BuildMismatchError extends CairnError {
  static override readonly code: string = "CAIRN_BUILD_MISMATCH";
  override name = "BuildMismatchError";
  /** The host of the worker that refused it last. */
  readonly host: string;
  /** The id of the worker that refused it last, as `cairn workers` lists it. */
  readonly workerId: string;
  constructor(
    readonly nodeId: string,
    worker: WorkerIdentity,
    /** The coordinator's Cairn, "0.1.0+57ab83a"; undefined for a coordinator older than builds on jobs. */
    readonly coordinatorBuild: string | undefined,
    /** The worker's Cairn, as `cairn --version` prints it there. */
    readonly workerBuild: string,
    /** The workers that refused it, by id, and how long it waited for another (ms). */
    readonly refused: Refusals = { by: [worker.id], waitedMs: 0 },
  ) {
    super(
      `Task "${nodeId}" was not run by worker ${worker.id} (on ${worker.host}): ${buildMismatch(coordinatorBuild, workerBuild)}. ` +
        `A worker of another Cairn could make other cache keys and store its result under one whose ingredients it does not know. ` +
        `${refusedSentence(refused, worker.id, "of the coordinator's Cairn")} ` +
        `Install the same Cairn on the coordinator and every worker (\`cairn --version\` prints it on each), then restart the workers.`,
    );
    this.host = worker.host;
    this.workerId = worker.id;
  }
}

/** Which Cairn each side runs, in words: what a refusing worker says and its error names. */
export function buildMismatch(coordinatorBuild: string | undefined, workerBuild: string): string {
  const coordinator = coordinatorBuild === undefined ? "a Cairn older than this worker's, which sends no build with its tasks" : `Cairn ${coordinatorBuild}`;
  return `it runs Cairn ${workerBuild}, the flow run's coordinator ${coordinator}`;
}

/**
 * The worker's flow file has no such task. Raised, as StaleCodeError, once no live worker of the
 * task's pool whose flow has it took the job within the grace period.
 */
export class UnknownQueuedTaskError extends CairnError {
  static override readonly code: string = "CAIRN_UNKNOWN_QUEUED_TASK";
  override name = "UnknownQueuedTaskError";
  /** The host of the worker that refused it. */
  readonly host: string;
  /** The id of the worker that refused it, as `cairn workers` lists it. */
  readonly workerId: string;
  constructor(
    readonly nodeId: string,
    /** The worker's flow file, absolute. */
    readonly flowFile: string,
    worker: WorkerIdentity,
    /** The workers that refused it, and how long it waited for another. */
    readonly refused: Refusals = { by: [worker.id], waitedMs: 0 },
  ) {
    super(
      `Task "${nodeId}" was not run by worker ${worker.id} (on ${worker.host}): the flow in its ${flowFile} has no task with that id. ` +
        `${refusedSentence(refused, worker.id, "whose flow has it")} ` +
        `That worker's checkout is older or newer than the coordinator's (update it to the same commit and restart it), ` +
        `or it is another project's flow of the same name on the same Redis (queues are named by the flow's name: give the flows distinct names).`,
    );
    this.host = worker.host;
    this.workerId = worker.id;
  }
}

/** Redis answers, but the job of a task the coordinator waits on is gone from it (a restart without its data, a flush). */
export class QueueJobLostError extends CairnError {
  static override readonly code: string = "CAIRN_QUEUE_JOB_LOST";
  override name = "QueueJobLostError";
  /** `finished`: the worker's run of the task finished, but its outputs could not be read back from it (`unread`, why). */
  constructor(
    readonly url: string,
    readonly nodeId: string,
    readonly finished?: { readonly runId: string; readonly unread: unknown },
  ) {
    super(
      `The queue at ${redactUri(url)} no longer has the job of task "${nodeId}": Redis lost it while the task was queued or ran ` +
        `(restarted without its data, or flushed). ` +
        (finished
          ? `Its worker's run ${finished.runId} finished, but its outputs could not be read back from it (${finished.unread instanceof Error ? finished.unread.message : String(finished.unread)}); `
          : `Its result cannot come back; `) +
        `run the flow again (what finished is in the cache), and give that redis-server persistence (appendonly yes) if it restarts.`,
      finished ? { cause: finished.unread } : undefined,
    );
  }
}

/**
 * A task finished on a worker with outputs too large for Redis (over about 1 MB of JSON), which
 * it left in its run's `cairn/outputs.json` in MLflow, and the coordinator could not read them there.
 */
export class QueueOutputsUnreadableError extends CairnError {
  static override readonly code: string = "CAIRN_QUEUE_OUTPUTS_UNREADABLE";
  override name = "QueueOutputsUnreadableError";
  constructor(
    readonly nodeId: string,
    readonly runId: string,
    trackerUri: string,
    /** Outputs over this many bytes of JSON go by reference (INLINE_OUTPUTS_BYTES). */
    inlineBytes: number,
    options?: { cause?: unknown },
  ) {
    const cause = options?.cause instanceof Error ? options.cause.message : String(options?.cause ?? "no answer");
    super(
      `Task "${nodeId}" finished on a worker, and its outputs, over the ${inlineBytes / 1e6} MB that travel through the queue's Redis, were left in its run ${runId} ` +
        `(${MANIFEST_PATH}${trackerUri ? ` on the MLflow server at ${redactUri(trackerUri)}` : ""}), which this process could not read: ${cause}. ` +
        `Check that this machine reaches the MLflow server and its artifacts (the worker wrote them there), then run the flow again (a task with a cache key is then a hit of that run, and does not run again).`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
  }
}

/**
 * A task's inputs, over about 1 MB of JSON, were left by the coordinator in its flow run in
 * MLflow instead of its job, and the worker that took the job could not read them there: the
 * server could not be read (`removed` false), or the file was no longer there (`removed` true:
 * the coordinator removes it once it has let the task go).
 */
export class QueueInputsUnreadableError extends CairnError {
  static override readonly code: string = "CAIRN_QUEUE_INPUTS_UNREADABLE";
  override name = "QueueInputsUnreadableError";
  constructor(
    readonly nodeId: string,
    /** The flow run that holds them, and their file in its artifacts. */
    readonly inputsIn: { readonly runId: string; readonly path: string },
    trackerUri: string,
    worker: WorkerIdentity,
    /** Inputs over this many characters of JSON go by reference (INLINE_OUTPUTS_BYTES). */
    inlineBytes: number,
    options?: { cause?: unknown; removed?: boolean },
  ) {
    const cause = options?.cause instanceof Error ? options.cause.message : String(options?.cause ?? "no answer");
    const left = `its inputs, over the ${inlineBytes / 1e6} MB that travel through the queue's Redis, were left by the coordinator in its flow run ${inputsIn.runId} (${inputsIn.path}${trackerUri ? ` on the MLflow server at ${redactUri(trackerUri)}` : ""})`;
    super(
      options?.removed
        ? // The server answered: nothing to check on this worker. The coordinator removes the file once it lets the task go.
          `Task "${nodeId}" was not run by worker ${worker.id} (on ${worker.host}): ${left}, and are no longer there (${cause}): the coordinator removed them, its flow run having ended or given the task up ` +
            `(its queue's Redis unreachable for longer than CAIRN_QUEUE_DOWN_MS, or the job lost) while the job waited. Run the flow again if it did not finish.`
        : `Task "${nodeId}" was not run by worker ${worker.id} (on ${worker.host}): ${left}, which this worker could not read: ${cause}. ` +
            `Check that this worker reaches the MLflow server and its artifacts (its MLFLOW_TRACKING_URI names the coordinator's server, with MLFLOW_TRACKING_USERNAME/PASSWORD if the server asks for them), then run the flow again.`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.removed = options?.removed === true;
  }
  /** The file was no longer there (the server said 404): the coordinator removed it, not a server this worker cannot reach. */
  readonly removed: boolean;
}

/**
 * A task's job could not be sent: its inputs are more than Node makes one string of, or, when
 * they travel in the job (at most about 1 MB of JSON, or any size when they carry a secret the
 * run knows, which is never written to MLflow), more than Redis takes in one value (its
 * `proto-max-bulk-len`, 512 MB by default).
 */
export class QueueInputsTooLargeError extends CairnError {
  static override readonly code: string = "CAIRN_QUEUE_INPUTS_TOO_LARGE";
  override name = "QueueInputsTooLargeError";
  constructor(
    readonly nodeId: string,
    readonly url: string,
    options?: { cause?: unknown; carriesSecret?: boolean },
  ) {
    const cause = options?.cause instanceof Error ? options.cause.message : String(options?.cause);
    const why = options?.carriesSecret
      ? `its inputs carry the value of a secret the run knows, so they travel in its job (never through MLflow, where they would be kept), and are larger than Redis takes in one value`
      : `its inputs are larger than Redis takes in one value`;
    super(
      `Task "${nodeId}" could not be sent to the queue at ${redactUri(url)}: ${why} ` +
        `(its proto-max-bulk-len, 512 MB by default) or than Node makes one string of (${cause}). ` +
        `Hand such a value from task to task as an artifact (ctx.artifacts.write), which travels through MLflow and only its reference through Redis` +
        `${options?.carriesSecret ? "; a task reads a secret with ctx.secret() instead of taking it as an input" : ""}.`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
  }
}

/** A task whose workers died under it again and again: not tried once more. */
export class PoisonTaskError extends CairnError {
  static override readonly code: string = "CAIRN_POISON_TASK";
  override name = "PoisonTaskError";
  constructor(
    readonly nodeId: string,
    readonly deaths: number,
    /** BullMQ's reason for the failed job, kept for callers; the message says it in Cairn's words. */
    readonly reason: string,
  ) {
    super(
      `Task "${nodeId}" was given up: the worker running it died ${deaths} times in a row (each stopped renewing the task's lock for longer than CAIRN_QUEUE_LOCK_MS, and CAIRN_QUEUE_MAX_DEATHS was reached). ` +
        `A task that kills its process (out of memory, a crash in native code) would go on killing workers; ` +
        `run it alone with \`cairn run\` without --queue to see why, or raise its worker's memory.`,
    );
  }
}

/** A worker option is wrong. */
export class WorkerOptionError extends CairnError {
  static override readonly code: string = "CAIRN_WORKER_OPTION";
  override name = "WorkerOptionError";
  constructor(
    readonly option: string,
    readonly expected: string,
    readonly got: unknown,
  ) {
    super(`Expected \`${option}\` to be ${expected}, got ${JSON.stringify(got)}.`);
  }
}
