import { randomBytes } from "node:crypto";
import { realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { type FolderListing, listFolder } from "@cairn/cache";
import { dirname, join, resolve as resolvePath } from "node:path";
import { type Artifact, isArtifact } from "../definition/artifact.ts";
import { setOwnProperty } from "../definition/ref.ts";
import { makeFolder } from "../make-folder.ts";
import { safePathSegment, safeRelativePath, taskArtifactPath, taskFilePath } from "../definition/artifact-path.ts";
import { type ArtifactOnDisk, artifactOnDisk, danglingWords, isWithin, unfitFolderEntry } from "./artifact-content.ts";
import type { FlowNode } from "../definition/flow-definition.ts";
import type { RunEvent } from "../run/events.ts";
import type { RunScope } from "../run/run-scope.ts";
import type { SecretRegistry } from "../run/secrets.ts";
import { ARTIFACT_FILE, type ArtifactWriter, DECLARED_ENV, HOLD_WORK, type HeldWork, type LogLineOptions, SEND_ARTIFACT, SYSTEM_TAG, TRACKING_ENV, type RunLog, type TaskContext, type TaskLogger } from "../run/task-context.ts";
import type { RunRecorder } from "../tracking/run-recorder.ts";
import { hasLocalArtifacts } from "../tracking/run-files.ts";
import type { Tracker } from "../tracking/tracker.ts";
import { SecretLeakError, UndeclaredEnvError, UnsafePathError } from "../errors.ts";
import { ownValue } from "../internal.ts";

/** What every task context of one flow run shares; made once per run, not per task. */
export interface SharedContext {
  readonly params: Record<string, unknown>;
  readonly flowRunId: string;
  readonly scope: RunScope;
  readonly tracking: TaskContext["tracking"];
  readonly tracker: Tracker;
  /** Folder for task artifacts when the tracker keeps none locally. */
  readonly workDir: string;
  readonly secrets: SecretRegistry;
  /** The run's environment (`run({ env })`, else `process.env`): what the cache keys the variables a task declares with. */
  readonly env: NodeJS.ProcessEnv;
  /** The flow's params, checked against a secret first read from the environment (see SecretRegistry.get). */
  readonly paramsCheck: { flowName: string; values: Record<string, unknown> };
  readonly emit: (event: RunEvent) => void;
}

/** Where the attempts of one node leave work that outlives them, for the scheduler to wait for. */
export interface WorkHolder {
  held?: Promise<unknown>[];
}

/** The listings of a task's folder artifacts as its name check took them, by each folder's absolute path. */
export type FolderListings = Map<string, FolderListing>;

/** The artifacts folder of task run `runId`: the tracker's own, or one in the work folder when the tracker keeps none locally. */
export function taskArtifactDir(shared: SharedContext, nodeId: string, runId: string): string {
  const { tracker, workDir } = shared;
  return hasLocalArtifacts(tracker)
    ? tracker.artifactDir(runId)
    : join(resolvePath(workDir, "artifacts"), safePathSegment(runId, { taskName: nodeId, source: "the tracker's run id" }));
}

/**
 * The `ctx` of one attempt. A class with lazily made members, because most tasks
 * never log or write artifacts and the engine's budget is a few µs per task.
 */
export class RunningTaskContext implements TaskContext {
  private log_?: RunLog;
  private artifacts_?: ArtifactWriter;
  /** The names given to `ctx.artifacts.path()` and `file()`: each may be a folder the task filled (see {@link checkFolderNames}). */
  private mayBeFolders_?: Set<string>;
  private logger_?: TaskLogger;
  /** Set when the scheduler abandoned the attempt (see {@link close}). */
  private closed = false;
  /** Set when the attempt runs a process group that its signal ends (SIGTERM, then SIGKILL this many ms later). */
  killGraceMs: number | undefined;
  /** Set once that process group is gone (HeldWork.groupGone). */
  groupGone = false;
  readonly params: Record<string, unknown>;
  readonly flowRunId: string;
  readonly scope: RunScope;
  readonly tracking: TaskContext["tracking"];

  constructor(
    private readonly shared: SharedContext,
    private readonly node: FlowNode,
    readonly runId: string,
    readonly attempt: number,
    readonly signal: AbortSignal,
    private readonly recorder: RunRecorder,
    private readonly holder?: WorkHolder,
  ) {
    this.params = shared.params;
    this.flowRunId = shared.flowRunId;
    this.scope = shared.scope;
    this.tracking = shared.tracking;
  }

  /** @internal See HOLD_WORK. */
  [HOLD_WORK](work: Promise<unknown>, what: HeldWork = {}): void {
    if (what.killGraceMs !== undefined) this.killGraceMs = what.killGraceMs;
    what.groupGone?.then(
      () => (this.groupGone = true),
      () => (this.groupGone = true),
    );
    if (this.holder) (this.holder.held ??= []).push(work);
    // The engine only waits for held work (allSettled): a rejection would be lost, and with it the
    // file never sent or the process never ended. Said as the task's warning; the result stands.
    work.catch((error: unknown) => {
      const { emit, flowRunId, secrets } = this.shared;
      const task = this.node.id;
      const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      const message =
        `Work that attempt ${this.attempt} of task "${task}" handed to holdWork() failed: ${what}. ` +
        "The task's result stands, but what that work was to do (sending or masking a file, ending a process) may be undone; " +
        `catch the errors the work may meet in the kind (kind \`${this.node.task.kind}\`), or let the run await it to fail the attempt.`;
      emit({ type: "log", level: "warn", runId: flowRunId, task, message: secrets.mask(message), time: Date.now() });
    });
  }

  /** @internal See TRACKING_ENV. */
  [TRACKING_ENV](): Readonly<Record<string, string>> {
    return this.shared.tracker.childEnv?.() ?? {};
  }

  /** @internal See SYSTEM_TAG. Checked for secrets as ctx.log.tag() is; dropped once the attempt is closed. */
  [SYSTEM_TAG](key: string, value: string): void {
    const { secrets } = this.shared;
    if (!secrets.empty) secrets.assertClean([key, value], this.node.id, `tag "${secrets.mask(key)}"`);
    if (!this.closed) this.recorder.tag(key, value);
  }

  /** @internal See DECLARED_ENV. */
  [DECLARED_ENV](): Readonly<Record<string, string | undefined>> {
    const env: Record<string, string | undefined> = {};
    for (const name of this.node.task.env) setOwnProperty(env, name, ownValue(this.shared.env, name));
    return env;
  }

  /**
   * @internal See SEND_ARTIFACT. Not refused once the attempt is closed: what an abandoned
   * attempt sends is its own record (its process's logs, after a timeout), not an output. An empty
   * or missing file is not sent (one request less; an empty stream has nothing to read).
   */
  async [SEND_ARTIFACT](name: string, under?: string): Promise<void> {
    const { tracker } = this.shared;
    if (!tracker.capabilities.records || hasLocalArtifacts(tracker)) return;
    const artifactPath = safeRelativePath(name, { taskName: this.node.id, source: "sendArtifact()" });
    const path = join(this.artifactDir, artifactPath);
    const size = await stat(path).then(
      (s) => s.size,
      (error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return 0; // never written: nothing to send
        throw error;
      },
    );
    if (size === 0) return;
    const folder = dirname(artifactPath);
    const sentTo = under === undefined ? folder : folder === "." ? under : `${under}/${folder}`;
    await tracker.logArtifact(this.runId, path, sentTo === "." ? undefined : sentTo);
  }

  /** Set with `artifacts` (see ARTIFACT_FILE). */
  private artifactFile?: (name: unknown, source: string) => Artifact;

  /** @internal See ARTIFACT_FILE. */
  [ARTIFACT_FILE](name: unknown, source: string): Artifact {
    if (!this.artifactFile) void this.artifacts;
    return this.artifactFile!(name, source);
  }

  /**
   * Ends the attempt for its task: params, metrics and tags it logs from now on are dropped, and
   * artifact writes fail with the reason its signal aborted, so that abandoned work cannot change
   * the run that a retry, or the task's outcome, now owns. Log lines still go out (they say what
   * the stray work is doing), masked as ever.
   */
  close(): void {
    this.closed = true;
  }

  get nodeId(): string {
    return this.node.id;
  }

  get taskName(): string {
    return this.node.task.name;
  }

  env(name: string): string | undefined {
    // Only what the cache key holds: a read of another variable would make a result the key cannot tell apart.
    if (!this.node.task.env.includes(name)) throw new UndeclaredEnvError(String(name), this.node.id, this.node.task.env);
    return ownValue(this.shared.env, name);
  }

  secret(name: string): string {
    return this.shared.secrets.get(name, this.node.id, this.shared.paramsCheck);
  }

  mask(text: string): string {
    return this.shared.secrets.mask(text);
  }

  safeCut(text: string, at: number): number {
    return this.shared.secrets.safeCut(text, at);
  }

  get log(): RunLog {
    if (this.log_) return this.log_;
    const { recorder } = this;
    const { secrets } = this.shared;
    const id = this.node.id;
    const open = () => !this.closed;
    return (this.log_ = {
      // Keys are checked as well as values: a key is written as plainly as its value.
      param(key, value) {
        if (!secrets.empty) secrets.assertClean([key, String(value)], id, `param "${secrets.mask(key)}"`);
        if (open()) recorder.param(key, String(value));
      },
      metric(key, value, step = 0) {
        if (!secrets.empty) secrets.assertClean([key, value], id, `metric "${secrets.mask(key)}"`);
        if (open()) recorder.metric(key, value, step);
      },
      tag(key, value) {
        if (!secrets.empty) secrets.assertClean([key, value], id, `tag "${secrets.mask(key)}"`);
        if (open()) recorder.taskTag(key, value);
      },
    });
  }

  /**
   * Checks the artifacts among the attempt's outputs that may be folders, before anything records,
   * hashes or uploads them (an UnsafePathError otherwise, naming the entry and what to do):
   * - what each is on disk ({@link unfitFolderEntry}, as for a script's): a link out of the
   *   artifacts folder, the artifact itself or an entry of a folder, would hand over what it
   *   points to (`/etc/passwd`); so would a dangling link, a loop or a FIFO fail its upload;
   * and the names inside the folders, in one listing of each (as its stamps list it, links followed):
   * - by the rule of a task's own names, and of a name read from disk (`taskFilePath`): each file
   *   of a folder artifact is uploaded under its path, and checked relative to the folder when it is downloaded, so one an MLflow server refuses or renames would fail the run's
   *   closing after the task succeeded, or be stored where the run's record does not say. On every
   *   store, as the task's own names are, so that a flow that runs on the embedded store runs on a
   *   server too;
   * - for a known secret (SecretLeakError): the names inside go unmasked into this root's artifact
   *   stamps, MLflow's artifact paths and the warnings of a later hit. The files stay where the
   *   task wrote them.
   * Only the names given to `path()`, `file()` and a script's markers can be folders (`write()`
   * makes a file): a task that gave none costs nothing here.
   *
   * Returns each listing taken, by the folder's absolute path: the cache stamps the folder on
   * this listing as the one before its digest, instead of walking it again (see TaskCache.manifest).
   */
  checkFolderNames(output: unknown): Promise<FolderListings> | undefined {
    const names = this.mayBeFolders_;
    // Not even a promise: the engine's cost a task is counted in them (see BENCHMARKS.md).
    if (!names) return undefined;
    return this.listFolders(output, names);
  }

  private async listFolders(output: unknown, names: Set<string>): Promise<FolderListings> {
    const { secrets } = this.shared;
    const listings: FolderListings = new Map();
    let home: string | undefined;
    for (const folder of artifactsNamed(output, this.runId, names)) {
      const found = await artifactOnDisk(folder.path);
      // Nothing there: what is missing is another check's to say.
      if (!found) continue;
      home ??= await realpath(this.artifactDir);
      const unfit = await this.unfitArtifact(folder, found, home);
      if (unfit) throw new UnsafePathError(folder.artifactPath, secrets.empty ? unfit : secrets.mask(unfit), "the task's outputs", this.node.id, undefined, "entry");
      if (found.kind !== "folder") continue;
      const listing = await listFolder(folder.path).catch(() => undefined);
      if (listing) listings.set(resolvePath(folder.path), listing);
      const entries = Object.keys(listing ?? {});
      const source = `the folder artifact "${folder.artifactPath}" (a file or folder in it)`;
      for (const entry of entries) {
        const secret = secrets.empty ? undefined : secrets.find(entry);
        if (secret !== undefined) {
          throw new SecretLeakError(
            this.node.id,
            secret,
            `the name of a file in its folder artifact ${folder.artifactPath} (${secrets.mask(entry)})`,
            "name the folder's files without it (fixed names, or ones made of the task's inputs).",
          );
        }
        const kind = listing![entry]!.startsWith("dir") ? "folder" : listing![entry]!.startsWith("link") ? "link" : "file";
        taskFilePath(entry, folder.artifactPath, { taskName: this.node.id, source }, kind);
      }
    }
    return listings;
  }

  /**
   * Why `artifact` (`found` on disk) would not record, hash and upload as content of the
   * artifacts folder (real path `home`), with what to do; undefined when it would. A link out
   * (`ds -> /etc`, or a file in folder `ds` that is one) would hand over what it points to; a
   * FIFO's digest would wait for a writer for good; a dangling link has nothing to hand over.
   */
  private async unfitArtifact(artifact: Artifact, found: ArtifactOnDisk, home: string): Promise<string | undefined> {
    const where = `the task's artifacts folder (${this.artifactDir})`;
    const name = JSON.stringify(artifact.artifactPath);
    if (found.kind === "dangling") return `is ${danglingWords(found)}; remove the link, or write the file or folder at \`await ctx.artifacts.path(${name})\` instead`;
    const fix = `copy what it points to into the artifacts folder instead (\`await cp(target, await ctx.artifacts.path(${name}), { recursive: true })\`): an artifact is recorded, hashed and uploaded by its content`;
    if (!isWithin(found.real, home)) return `is a link to ${found.real}, outside ${where}; ${fix}`;
    if (found.kind === "other") return `is neither a file nor a folder (a FIFO, socket or device), which has no content to record, hash and upload; write a file or a folder at \`await ctx.artifacts.path(${name})\` instead`;
    if (found.kind !== "folder") return undefined;
    const bad = await unfitFolderEntry(artifact.path, found.real, home, "the artifacts folder");
    return bad && `is a folder holding ${bad} (the task's artifacts folder is ${this.artifactDir}). A folder artifact may hold only files, folders and links to them inside the artifacts folder`;
  }

  get logger(): TaskLogger {
    if (this.logger_) return this.logger_;
    const { emit, flowRunId } = this.shared;
    const task = this.node.id;
    // Masked where every event leaves the run (flow-run.ts), with the warnings of the engine.
    const line = (level: "debug" | "info" | "warn" | "error") => (message: string, options?: LogLineOptions) =>
      emit({ type: "log", level, runId: flowRunId, task, message: String(message), ...(options?.inLogFile === true ? { inLogFile: true as const } : {}), time: Date.now() });
    return (this.logger_ = { debug: line("debug"), info: line("info"), warn: line("warn"), error: line("error") });
  }

  private get artifactDir(): string {
    return taskArtifactDir(this.shared, this.node.id, this.runId);
  }

  get artifacts(): ArtifactWriter {
    if (this.artifacts_) return this.artifacts_;
    const runId = this.runId;
    const taskName = this.node.id;
    const artifactDir = this.artifactDir;
    const { secrets } = this.shared;
    // Every name a task gives becomes a path here, so every one is checked here.
    const file = (name: unknown, source: string): Artifact => {
      const artifactPath = secretFreeArtifactPath(name, { taskName, source }, secrets);
      return { kind: "cairn.artifact", path: join(artifactDir, artifactPath), artifactPath, runId };
    };
    const mayBeFolder = (a: Artifact): Artifact => {
      (this.mayBeFolders_ ??= new Set()).add(a.artifactPath);
      return a;
    };
    const checkOpen = () => {
      if (this.closed) throw this.signal.reason;
    };
    // A script's `$artifact` marker may name a folder it filled, as `path()` may.
    this.artifactFile = (name, source) => mayBeFolder(file(name, source));
    return (this.artifacts_ = {
      write: async (name, data) => {
        checkOpen();
        const a = file(name, "ctx.artifacts.write()");
        await makeFolder(dirname(a.path));
        // Written beside its place, then renamed into it: a write that the attempt's end cuts short
        // (its signal stops it between chunks), or that ends after the attempt was given up on,
        // never replaces or corrupts the file that a later attempt wrote under the same name.
        const partial = join(dirname(a.path), `.cairn-${randomBytes(6).toString("hex")}.partial`);
        try {
          await writeFile(partial, data, { signal: this.signal });
          checkOpen();
          await rename(partial, a.path);
        } catch (error) {
          await rm(partial, { force: true });
          throw this.signal.aborted ? this.signal.reason : artifactNotWritten(name, a.path, error);
        }
        return a;
      },
      async path(name) {
        checkOpen();
        // No name (or "") is the folder itself, for tools that fill a folder.
        if (name === "" || name === undefined) {
          await makeFolder(artifactDir);
          return artifactDir;
        }
        const p = mayBeFolder(file(name, "ctx.artifacts.path()")).path;
        await makeFolder(dirname(p));
        return p;
      },
      file: (name) => mayBeFolder(file(name, "ctx.artifacts.file()")),
    });
  }
}

/**
 * `name` as the path of a task's artifact ({@link taskArtifactPath}), refused with SecretLeakError
 * when it holds a known secret in any form the registry knows: as given, as normalised (a `\`
 * becomes "/", which turns a secret holding a `\` into text no mask finds, and a name with a `\`
 * into one holding a secret with a "/"), and in the UnsafePathError it would get (whose suggested
 * name is normalised so too). A name becomes a file on disk and a path in outputs.json,
 * the cache, artifact stamps and MLflow's paths, none of which is masked, so it is refused before
 * anything is written under it.
 */
function secretFreeArtifactPath(name: unknown, from: { taskName: string; source: string }, secrets: SecretRegistry): string {
  const where = `the name of an artifact (${from.source})`;
  const fix = "name the artifact without it (a fixed name, or one made of the task's inputs).";
  secrets.assertClean(name, from.taskName, where, fix);
  let path: string;
  try {
    path = taskArtifactPath(name, from);
  } catch (error) {
    if (UnsafePathError.is(error)) secrets.assertClean(error.message, from.taskName, where, fix);
    throw error;
  }
  secrets.assertClean(path, from.taskName, where, fix);
  return path;
}

/**
 * The Artifacts of run `runId` in `output` whose name is in `names`, found by a walk that goes
 * down only into arrays and plain objects (an output is JSON data by now).
 */
function artifactsNamed(output: unknown, runId: string, names: ReadonlySet<string>, found: Artifact[] = []): Artifact[] {
  if (isArtifact(output)) {
    if (output.runId === runId && names.has(output.artifactPath)) found.push(output);
  } else if (Array.isArray(output)) {
    for (const v of output) artifactsNamed(v, runId, names, found);
  } else if (output !== null && typeof output === "object") {
    for (const v of Object.values(output)) artifactsNamed(v, runId, names, found);
  }
  return found;
}

/**
 * A failed `ctx.artifacts.write()` in words that name the artifact and its path: fs errors name
 * neither (`ENOSPC: no space left on device, write`). Keeps the fs error's `code`, and it as cause.
 */
function artifactNotWritten(name: string, path: string, error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== "string") return error;
  const fix = code === "ENOSPC" || code === "EDQUOT" ? " The disk that holds it (or your quota) is full: free space on it." : "";
  const message = `ctx.artifacts.write(${JSON.stringify(name)}) could not write ${path}: ${(error as Error).message.replace(/\.$/, "")}.${fix}`;
  return Object.assign(new Error(message, { cause: error }), { code });
}
