import { type BigIntStats, existsSync } from "node:fs";
import { copyFile, link, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve as resolvePath } from "node:path";
import {
  type AcquireLeaseOptions,
  type ArtifactRecord,
  CacheBackendError,
  type CacheEntry,
  type CodeEnvironment,
  type ExpiredEntry,
  type FolderListing,
  type CacheStore,
  type DiffOptions,
  type LeaseResult,
  type NewCacheEntry,
  type OutputsManifest,
  type RecordedIngredients,
  type RecordedInput,
  computeCacheKey,
  DECLARATION_ENTRY,
  SOURCE_CODE_ENTRY,
  completeEntry,
  describeCodeFolder,
  describePath,
  editedSince,
  formatOwner,
  listFolder,
  readStamped,
  type ReadFile,
  hashValue,
  earlierByTask,
  NEAREST_CANDIDATES,
  nearestEntry,
  cacheEntryProblem,
  partialPath,
  pathExists,
  privateDigestAsync,
  quotesHint,
  redactUrl as redactUri,
  replaceArtifacts,
} from "@cairn/cache";
import { type Artifact, isArtifact } from "../definition/artifact.ts";
import type { FlowNode, TaskDefinition } from "../definition/flow-definition.ts";
import { isPlainObject, setOwnProperty } from "../definition/ref.ts";
import { booleanFromEnv, ownValue } from "../internal.ts";
import { type PathSource, safePathSegment, safeRelativePath } from "../definition/artifact-path.ts";
import { ArtifactMismatchError, CodeFileError, MlflowApiError, OptionError, UnsafePathError } from "../errors.ts";
import { ArtifactStamps, type FolderChanges, type StampOf } from "./artifact-stamps.ts";
import { makeFolder } from "../make-folder.ts";
import { envReadsOfTask, type EnvReadsOfTask } from "./env-reads.ts";
import { RunScope } from "../run/run-scope.ts";
import { expiredMiss, missReasonTag, type MissReason } from "./miss-reason.ts";
import type { SecretRegistry } from "../run/secrets.ts";
import { isUntrackedRecord } from "../tracking/null-tracker.ts";
import { hasLocalArtifacts } from "../tracking/run-files.ts";
import type { RunFilter, RunRecord, Tracker } from "../tracking/tracker.ts";
import { cairnBuild } from "../cairn-build.ts";
import { Slots } from "../scheduler/slots.ts";

/** The tag that marks a run whose outputs are a cache entry; the MLflow lookup searches it. */
export const CACHE_KEY_TAG = "cairn.cache_key";
/**
 * The tag of a task run that failed or was cancelled while running: the key it ran for. It stores
 * no entry, so without this a later plan could not tell a key whose run failed from one that never
 * ran ({@link TaskCache.failedRuns}). One tag for both, the run's status telling them apart
 * (FAILED, KILLED): an MLflow filter has no OR, so two tags would be two searches.
 */
export const FAILED_KEY_TAG = "cairn.failed_key";
/**
 * The tag of a task run that runs with the cache on: the key it computes, in the request that
 * creates it (no request of its own). A run whose process died before it ended (kill -9) says
 * no more; the next command that closes it KILLED copies it to {@link FAILED_KEY_TAG} in the
 * same write (ABANDONED_COPIED_TAGS), so that a later plan finds the key interrupted, not new.
 */
export const KEY_TAG = "cairn.key";
/**
 * The tag of a run whose cache entry was removed (`cache clear`, `prune`, an eviction): when it was.
 * Removing an entry deletes its index document, which a lookup by tag search (the index cannot be
 * read) never reads; this tag is what tells that lookup the run found is no entry any more.
 */
export const CACHE_REMOVED_TAG = "cairn.cache_removed";
/** The tag of a cache hit's run: the key it was found by. */
const HIT_KEY_TAG = "cairn.cache_hit_key";
/** The tag of every task run: the task's name (what a cache entry's `taskName` is). */
const TASK_TAG = "cairn.task";
/** The tag of a run that reused another run's outputs: the source run's id. */
export const CACHED_FROM_TAG = "cairn.cached_from";
/** The source run's name (its node id), beside {@link CACHED_FROM_TAG}, for people reading the tags. */
export const CACHED_FROM_NAME_TAG = "cairn.cached_from.name";
/** Where a task run keeps its outputs manifest (values, artifact digests, cache key and ingredients). */
export const MANIFEST_PATH = "cairn/outputs.json";

/** A task's cache key and what it was made of. */
export interface TaskKey {
  key: string;
  ingredients: RecordedIngredients;
}

/** The outputs manifest as written to `cairn/outputs.json`. */
export interface StoredManifest extends OutputsManifest {
  cacheKey?: string;
  taskName?: string;
  ingredients?: RecordedIngredients;
  /** Epoch ms after which the entry is stale (the task's `ttl`); MLflow's record outlives the store's TTL. */
  expiresAt?: number;
}

/** Why a cache entry could not be used; the entry is evicted and the task runs. */
export interface BadEntry {
  key: string;
  reason: string;
  /**
   * The entry could not be checked (its source run could not be read: a file the store cannot
   * read, a server that failed): nothing says it is bad, so it stays, and is a miss this time.
   */
  kept?: true;
  /**
   * A damaged index document met again in this run: its warning was given at the first meeting
   * (once per document, however many lookups read it).
   */
  said?: true;
}

/**
 * What a task's lookup met for its key and could not use: why it misses (see `MissReason`).
 * `waited`: the entry another process wrote while this task waited for it (its lease).
 */
export interface UnusedEntry {
  readonly bad?: BadEntry;
  readonly foreign?: ForeignEntry;
  /** Its entry was past the task's `ttl`. */
  readonly expired?: ExpiredEntry;
  readonly waited?: true;
}

/**
 * An entry for the key exists, but its source run is recorded in another tracker than the one
 * this run or command uses (made against an MLflow server, read now with the embedded store, or
 * the other way round): it cannot be checked from here, so it is a miss here, and stays for
 * whoever records there.
 */
export interface ForeignEntry {
  key: string;
  taskName: string;
  sourceRunId: string;
  /**
   * Where the entry's source run is recorded (`id`: another embedded store's id, see
   * `Tracker.storeId`; `copy`: another copy of this store's folder, see `Tracker.storeCopy`).
   */
  tracker: { kind: string; uri: string; id?: string; copy?: string };
  /** Where this run or command records. */
  here: { kind: string; uri: string; id?: string; copy?: string };
}

/** What a lookup makes of one entry it found: usable (`entry`), or why not. */
type Checked = { entry: CacheEntry; bad?: undefined; foreign?: undefined; edited?: string } | { entry?: undefined; bad: BadEntry; foreign?: undefined } | { entry?: undefined; bad?: undefined; foreign: ForeignEntry };

/** A tracker for people: "the embedded store at .cairn", "the MLflow server at http://...". */
export function describeTracker(tracker: { kind: string; uri: string; id?: string }): string {
  if (tracker.kind === "local") return `the embedded store at ${tracker.uri}`;
  if (tracker.kind === "mlflow") return `the MLflow server at ${redactUri(tracker.uri)}`;
  if (isUntrackedRecord(tracker)) return "no tracker (tracking off)";
  return `the ${tracker.kind} tracker at ${redactUri(tracker.uri)}`;
}

/** How to run against `tracker`: "with MLFLOW_TRACKING_URI=http://..." or "with MLFLOW_TRACKING_URI unset". */
export function runAgainst(tracker: { kind: string; uri: string }): string {
  if (tracker.kind === "local") return "with MLFLOW_TRACKING_URI unset";
  if (tracker.kind === "mlflow") return `with MLFLOW_TRACKING_URI=${redactUri(tracker.uri)}`;
  return `against ${redactUri(tracker.uri)}`;
}

/**
 * The run's one warning about foreign entries (see {@link TaskCache.onForeignEntry}). Entries of
 * another embedded store, met through a shared store, get their own: no setting here reuses them,
 * and the two machines overwrite each other's entries.
 */
export function foreignWarning(foreign: ForeignEntry): string {
  if (ofAnotherCopy(foreign)) {
    return (
      `Cache entries exist for these tasks' keys (task "${foreign.taskName}" first), but their source runs were recorded by ${anotherCopyWords(foreign)}: ` +
      `they cannot be checked from here, so those tasks run, and their entries replace those. ${SHARE_RUNS_FIX}`
    );
  }
  const head = `Cache entries exist for these tasks' keys (task "${foreign.taskName}" first), but their source runs are recorded in ${describeTracker(foreign.tracker)}${sameUriOtherStore(foreign)}`;
  if (foreign.tracker.kind === "local" && foreign.here.kind === "local") {
    return (
      `${head}, another folder's or machine's, met through the shared cache store: they cannot be checked from here, so those tasks run, and their entries replace those. ` +
      SHARE_RUNS_FIX
    );
  }
  return `${head}, not in ${describeTracker(foreign.here)} where this run records: they cannot be used here, so those tasks run. To reuse them, run ${runAgainst(foreign.tracker)}.`;
}

/**
 * For an entry of another embedded store at this one's path (another machine's checkout at the
 * same path): the two ids, which tell them apart. Empty otherwise.
 */
function sameUriOtherStore(foreign: ForeignEntry): string {
  const { tracker, here } = foreign;
  if (tracker.kind !== here.kind || tracker.uri !== here.uri || tracker.id === undefined) return "";
  return ` (store id ${tracker.id}; the store at this path here is ${here.id ?? "another"})`;
}

/** How machines that share a cache store share the runs its entries point at. */
const SHARE_RUNS_FIX = "To share hits between machines, point them all at one MLflow server (MLFLOW_TRACKING_URI).";

/** True for an entry made by another copy of this very store (the same path and id): see `Tracker.storeCopy`. */
function ofAnotherCopy(foreign: ForeignEntry): boolean {
  const { tracker, here } = foreign;
  return tracker.kind === here.kind && tracker.uri === here.uri && tracker.id === here.id && tracker.copy !== undefined && here.copy !== undefined && tracker.copy !== here.copy;
}

/** The copy of the store that made such an entry, for people (see {@link ofAnotherCopy}). */
function anotherCopyWords(foreign: ForeignEntry): string {
  return (
    `another copy of the embedded store at ${foreign.tracker.uri} (store id ${foreign.tracker.id}, as here: a .cairn restored from a CI cache or copied from another, ` +
    `or another machine's at the same path, met through the shared cache store), whose runs are not here`
  );
}

/** Why a foreign entry is not used, and how to use it. */
export function foreignReason(foreign: ForeignEntry): string {
  if (ofAnotherCopy(foreign)) return `its entry's source run ${foreign.sourceRunId} was recorded by ${anotherCopyWords(foreign)}: it cannot be checked from here`;
  if (foreign.tracker.kind === "local" && foreign.here.kind === "local") {
    return (
      `its entry's source run ${foreign.sourceRunId} is recorded in ${describeTracker(foreign.tracker)}${sameUriOtherStore(foreign)}, another folder's or machine's, ` +
      `met through the shared cache store: it cannot be checked from here`
    );
  }
  return (
    `its entry's source run ${foreign.sourceRunId} is recorded in another tracker, ${describeTracker(foreign.tracker)}, ` +
    `not in ${describeTracker(foreign.here)} where this one records; run ${runAgainst(foreign.tracker)} to reuse it`
  );
}

/** How a run treats a shared store (redis, postgres) that stops answering. */
export interface CacheFailurePolicy {
  /**
   * Fail instead of going on without the store: the operation's `CacheBackendError` fails
   * the task that met it (and a store unreachable at the start fails the run).
   * @default false
   */
  strict?: boolean;
}

/** What a run's TaskCache knows of the run beyond the store. */
export interface TaskCacheOptions extends CacheFailurePolicy {
  /** The flow run's params: the ones a task reads through `ctx.params` enter its key ({@link TaskDefinition.paramsRead}). */
  params?: Readonly<Record<string, unknown>>;
  /**
   * The name of the flow's experiment when it does not exist yet (`cairn plan` and `explain` do not
   * create it): the tracker holds nothing of it, so only the store is read.
   */
  missingExperiment?: string;
  /**
   * The shared store did not answer when the run opened it (`store` is then its stand-in,
   * `CacheStore.unreachable`): the run goes on without it from the start, as after it stopped answering.
   */
  down?: CacheBackendError;
  /**
   * The scope of the code this process has loaded (see {@link RunScope}): a worker's flow module,
   * whose code-file reads and package versions then describe the code it loaded, not the disk now.
   */
  loadedCode?: RunScope;
}

/** `CAIRN_LEASE_TTL_MS`, checked where it enters: undefined when unset. */
function leaseTtlFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.CAIRN_LEASE_TTL_MS;
  // Blanks around it are no part of a number, as they are none of a switch's (booleanFromEnv).
  const text = raw?.trim();
  if (text === undefined || text === "") return undefined;
  const ms = Number(text);
  // At most a day: the lease is renewed every third of it, and a timer cannot wait past 2^31-1 ms (Node fires it at once).
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(ms) || ms < 100 || ms > 86_400_000) {
    const expected = "an integer of milliseconds from 100 to 86400000 (a day; how long a single-flight lease lasts unrenewed; default 10000)";
    const fix = quotesHint("CAIRN_LEASE_TTL_MS", raw) || " Write the milliseconds in digits (CAIRN_LEASE_TTL_MS=30000), or unset it for 10000.";
    throw new OptionError("CAIRN_LEASE_TTL_MS", expected, raw, `Expected \`CAIRN_LEASE_TTL_MS\` to be ${expected}, got ${JSON.stringify(raw)}.${fix}`);
  }
  return ms;
}

/**
 * True for a shared store (redis, postgres) that did not answer, after the store's own retries.
 * Not for one that answered with a refusal (`reply`: out of memory, read-only): it is up, so
 * only that operation fails, with a warning, and the run keeps the store.
 */
export function isStoreDown(error: unknown): error is CacheBackendError {
  return CacheBackendError.is(error) && error.backend !== "embedded" && error.reply === undefined;
}

/**
 * The one warning of a run that goes on without its shared store, whether it was unreachable
 * at the start or stopped answering while the run went on.
 */
export function storeDownWarning(error: CacheBackendError, atStart: boolean, tracker: Pick<Tracker, "capabilities" | "readIndexEntry" | "writeIndexEntry" | "uri">): string {
  const what = keepsIndex(tracker)
    ? `lookups read only the experiment's index in ${redactUri(tracker.uri)} (its hits checked as any), results are recorded there alone, `
    : `lookups miss, results are not stored, `;
  return (
    `${error.message} ${atStart ? "The run goes on" : "The rest of the run goes on"} without the shared cache: ` +
    `${what}and no single-flight leases are taken. ` +
    `To fail instead, make the cache strict (CAIRN_CACHE_STRICT=1).`
  );
}

/**
 * True for a tracker other machines record to that keeps an index of entries (MLflow's
 * cairn-index/): without the shared store, lookups and results go there alone.
 */
function keepsIndex(tracker: Pick<Tracker, "capabilities" | "readIndexEntry" | "writeIndexEntry">): boolean {
  return tracker.capabilities.sharedRuns && tracker.readIndexEntry !== undefined && tracker.writeIndexEntry !== undefined;
}

/**
 * The cache as the scheduler sees it: keys from inputs and code, lookups that
 * check what they return, and entries written after success. Lookups that fail
 * for any reason are misses, never crashes.
 *
 * Every store operation of a run goes through here. When a shared store stops answering
 * (its own retries spent), the run goes on without it from then on, with one notice to
 * {@link onStoreDown}'s listener (or from the start, {@link TaskCacheOptions.down}): lookups
 * read the tracker's index alone (else miss), results are recorded there alone (else not at
 * all), no lease is taken, and waits on other processes' leases end. Under {@link CacheFailurePolicy.strict} the
 * error is thrown instead.
 */
/** Artifacts of one output digested at a time (a folder digests 8 of its files at a time in turn). */
const DIGESTS_AT_ONCE = 16;

/**
 * Runs the functions given to it `limit` at a time, first come first served, each call's promise
 * settling as its function's does. The scheduler's own slots rather than p-queue, which an
 * installed `cairn run` loaded at its start with its four modules (one of them CommonJS, through
 * Node's ES module interop) for this alone (BENCHMARKS.md, twenty-ninth session).
 */
function limitTo(limit: number): <T>(fn: () => Promise<T>) => Promise<T> {
  const slots = new Slots(limit);
  return <T>(fn: () => Promise<T>) =>
    new Promise<T>((resolve, reject) =>
      slots.take(0, () => {
        let running: Promise<T>;
        try {
          running = fn();
        } catch (error) {
          running = Promise.reject(error);
        }
        running.then(resolve, reject).finally(() => slots.free());
      }),
    );
}

export class TaskCache {
  /** Keys being computed in this process, so one flow computes each key once. */
  readonly inflight = new Map<string, Promise<CacheEntry | undefined>>();
  /**
   * This process, as its leases name it: `host:pid` with its start time and pid space, so that
   * another process of this machine can tell, once it is gone, that its leases hold nothing.
   */
  readonly owner = formatOwner();
  /** Expiry of entries found through the tracker, for storing them locally with what is left. */
  private readonly trackerExpiry = new Map<string, number>();
  /** Stands for the flow run when keys are computed outside one (plan, explain). */
  private readonly planId = `plan-${process.pid}-${Date.now()}`;
  /** The state the tasks of this run (or plan) share: the code reads of `codeDependencies`, `resolveCode`'s answers. */
  readonly scope: RunScope;
  /**
   * Source runs asked about ahead of their lookups, all at once (see {@link checkSourceRuns}):
   * the run, undefined when it is gone, or UNSETTLED when the answer did not cover it.
   */
  private readonly dependencies = new WeakMap<TaskDefinition, Promise<Record<string, string>>>();
  private readonly sourceRuns = new Map<string, Promise<{ run: RunRecord | undefined | typeof UNSETTLED; at: number }>>();
  /** Source runs read one by one (not asked ahead, or asked again), by id: the newest answer. */
  private readonly verifiedRuns = new Map<string, RunRecord>();
  /**
   * Source runs not asked ahead (a map's items, known only once it runs), gathered while the
   * tracker answers the batch before them: one search for many hits (see {@link askSourceRun}).
   */
  private sourceBatch: { ids: Set<string>; answer: Promise<Map<string, RunRecord | undefined>> } | undefined;
  /** The batch of {@link sourceBatch} being answered: the next one is sent once it is. */
  private sourceBatchAnswered: Promise<unknown> = Promise.resolve();
  /**
   * The tracker index's names as last listed (see `Tracker.listIndexEntries`), and when: a key
   * not listed is a miss without a read. Listed again once older than {@link FRESH_ANSWER_MS},
   * so that a long run meets what other machines recorded meanwhile.
   */
  private indexListing: { names: Promise<Set<string> | undefined>; at: number } | undefined;
  /**
   * The hits this run took, by the artifacts their outputs hold (see {@link artifactId}): whose
   * entries a download that does not match evicts (see {@link evictHolders}).
   */
  private readonly hitArtifacts = new Map<string, Set<{ key: string; taskName: string; sourceRunId: string | undefined }>>();
  /** Names of the source runs this run has seen (verified, found by tag, or recorded here), by run id. */
  private readonly sourceNames = new Map<string, string>();
  /** Of each key made, how its declared code files were read (see {@link codeEdited}). */
  private readonly codeReads = new WeakMap<TaskKey, CodeRead[]>();
  /** Sizes and mtimes of the artifact files this root digested: a hit's unchanged file is not read again. */
  private readonly stamps: ArtifactStamps;

  /** The index documents this run found damaged, by name: each is warned of once (see {@link damagedIndexDocument}). */
  private readonly damagedSaid = new Set<string>();
  /** See {@link storeId}. */
  private storeId_: Promise<string | undefined> | undefined;
  /** See {@link storeCopy}. */
  private storeCopy_: Promise<string | undefined> | undefined;
  /** Why the shared store is no longer used by this run, once it stopped answering. */
  private down_: CacheBackendError | undefined;
  /** A peek failed: the look-ahead stops asking (see peek). */
  private peekFailed = false;
  /** Aborted when the store goes down: ends waits on other processes' leases at once. */
  private readonly downSignal = new AbortController();
  private downListener: ((error: CacheBackendError) => void) | undefined;
  /** Told about the first foreign entry a lookup meets (see {@link onForeignEntry}). */
  private foreignListener: ((entry: ForeignEntry) => void) | undefined;
  private foreignMet = false;
  /**
   * What of the tracker's artifacts this run's lookups no longer read, once a read of it failed
   * its retries: the index (lookups then search by tag), the runs' manifests (a run found by tag
   * is then a miss). Not one full retry policy per task.
   */
  private readonly artifactReadsDown = new Set<"index" | "manifest">();
  /** Told once of each in {@link artifactReadsDown} (see {@link onIndexDown}). */
  private indexDownListener: ((message: string) => void) | undefined;
  /** See {@link CacheFailurePolicy.strict}. */
  readonly strict: boolean;
  /** How long a single-flight lease lasts unrenewed: `CAIRN_LEASE_TTL_MS`, else the lookup's default. */
  readonly leaseTtlMs: number | undefined;
  /** See {@link TaskCacheOptions.missingExperiment}. */
  readonly missingExperiment: string | undefined;
  /**
   * `CAIRN_PYTHON_ENV_KEY`: a task's {@link TaskDefinition.environment} (a Python task's
   * interpreter and packages) enters its key. Off by default: a queue coordinator then needs no
   * copy of its workers' Python, and no `python -c` runs; keys are what they were without it.
   */
  readonly environmentKeyed: boolean;
  /** See {@link TaskCacheOptions.params}. */
  private readonly params: Readonly<Record<string, unknown>>;
  /** When this run began: entries made since are its own, never "earlier" (see {@link missReason}). */
  private readonly startedAt = Date.now();
  /**
   * The hashes of the input values keyed so far, by the value: an upstream output fed to twenty
   * tasks is hashed once, not twenty times. Outputs are not changed once stored (storedForm), nor
   * are the flow's literals and params.
   */
  private readonly inputDigests = new WeakMap<object, string>();
  /**
   * The store's entries made before this run, newest first, of each task that missed: listed once
   * a task, at its first miss, and that task's only, by a store that indexes its entries by task
   * (the embedded one reads no other task's entries for it); else all of them once, at the run's
   * first miss (under {@link ALL_TASKS}), for every task. `by`: when the misses stop waiting,
   * {@link MISS_REASON_LIST_MS} after it began.
   */
  private readonly earlier = new Map<string, { byTask: Promise<Map<string, CacheEntry[]>>; by: number }>();
  /** The failed runs by key, searched once for a plan's or explain's misses (see {@link failedRuns}). */
  private failedRunsRead: Promise<EndedRuns> | undefined;
  /** The experiment's index documents by task, read once for a plan's or explain's comparisons (see {@link earlierEntries}). */
  private indexDocuments: Promise<IndexDocuments> | undefined;

  constructor(
    readonly store: CacheStore,
    private readonly tracker: Tracker,
    private readonly experimentId: string,
    private readonly workDir: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
    options: TaskCacheOptions = {},
    /**
     * The run's secrets: an entry whose outputs hold one (written before it was known) is not
     * used, and what a lookup says of an entry (file names found in a folder artifact) is masked.
     */
    private readonly secrets?: Pick<SecretRegistry, "find" | "mask">,
  ) {
    this.strict = options.strict === true;
    this.missingExperiment = options.missingExperiment;
    this.params = options.params ?? {};
    this.scope = new RunScope(options.loadedCode ? { loaded: options.loadedCode } : {});
    this.leaseTtlMs = leaseTtlFromEnv(env);
    this.stamps = new ArtifactStamps(join(resolvePath(workDir), "artifact-stamps"));
    this.environmentKeyed = booleanFromEnv(env, "CAIRN_PYTHON_ENV_KEY");
    if (options.down) {
      this.down_ = options.down;
      this.downSignal.abort(options.down);
    }
  }

  /**
   * Why a task missed, from what its lookup met (`unused`: an entry it could not use), else
   * from the task's nearest entry made before this run (listed at its first miss, before this
   * run's entries could replace the ones it compares with, see {@link earlier}): the value of
   * `MISS_REASON_TAG` its run records. Never rejects.
   */
  async missReason(key: TaskKey, task: Pick<TaskDefinition, "name" | "describeResolved">, unused: UnusedEntry | undefined): Promise<string> {
    let reason: MissReason;
    if (unused?.bad) reason = { kind: "unusable", reason: unused.bad.reason, evicted: unused.bad.kept !== true, ...(unused.waited ? { waited: true as const } : {}) };
    else if (unused?.foreign) {
      const { tracker } = unused.foreign;
      reason = { kind: "foreign", tracker: { kind: tracker.kind, uri: tracker.uri }, ...(ofAnotherCopy(unused.foreign) ? { copy: true as const } : {}) };
    }
    else if (unused?.expired) reason = expiredMiss(unused.expired, Date.now());
    else {
      try {
        // Begun together: the index's read (beside the task, as the store's listing) does not wait for the store's.
        const listing = this.earlierOf(task.name);
        const inIndex = this.searchesIndex ? { found: this.indexEntriesOf(task.name), by: Date.now() + MISS_REASON_LIST_MS } : undefined;
        const earlier = await withinMs(listing.byTask, listing.by - Date.now());
        if (earlier === undefined) return missReasonTag({ kind: "unlisted", error: `the cache store at ${this.store.location} took longer than ${MISS_REASON_LIST_MS / 1000} s to list (cairn explain compares with it)` });
        const indexed = inIndex && (await withinMs(inIndex.found, inIndex.by - Date.now()));
        if (inIndex && indexed === undefined) return missReasonTag({ kind: "unlisted", error: `${this.indexWords} took longer than ${MISS_REASON_LIST_MS / 1000} s to read (cairn explain compares with it)` });
        const entries = withIndexed(earlier.get(task.name) ?? [], (indexed?.entries ?? []).filter((e) => e.createdAt < this.startedAt));
        const best = nearestEntry(entries, this.storedIngredients(key), diffOptionsOf(task));
        reason = best
          ? { kind: "changed", nearest: { runId: best.entry.sourceRunId, createdAt: best.entry.createdAt, changes: best.changes.map((c) => c.message) } }
          : { kind: "new", store: this.store.location, searched: indexed?.searched ?? `the cache store at ${this.store.location}` };
      } catch (error) {
        reason = { kind: "unlisted", error: (error as Error).message };
      }
    }
    return missReasonTag(reason);
  }

  /** The listing a miss of `taskName` compares with (see {@link earlier}), begun at the first miss that needs it. */
  private earlierOf(taskName: string): { byTask: Promise<Map<string, CacheEntry[]>>; by: number } {
    const indexed = this.store.indexesTasks;
    const name = indexed ? taskName : ALL_TASKS;
    let listing = this.earlier.get(name);
    if (!listing) {
      const entries = indexed
        ? this.store.list({ taskName, keep: true, indexed, before: this.startedAt, limit: NEAREST_CANDIDATES })
        : listWhole(this.store);
      listing = { byTask: entries.then((e) => earlierByTask(e, this.startedAt)), by: Date.now() + MISS_REASON_LIST_MS };
      this.earlier.set(name, listing);
    }
    return listing;
  }

  /**
   * The ingredients of `key` as they are stored (in the entry, the index and the outputs
   * manifest): an input whose value holds a secret that became known after its key was made
   * (see `digestSecrets`) is recorded by its hash only, as a large one is, so that no record
   * holds the secret; `cairn explain` then names the input without its value.
   */
  storedIngredients(key: TaskKey, secrets: Pick<SecretRegistry, "find"> | undefined = this.secrets): RecordedIngredients {
    const { inputs, params, codeParts } = key.ingredients;
    const holds = (input: RecordedInput) => "value" in input && secrets!.find(input.value) !== undefined;
    const any = (values: Record<string, RecordedInput> | undefined) => values !== undefined && Object.values(values).some(holds);
    // A cache key or resolved code that holds a secret leaves the parts out: a change is then "code changed".
    const partHolds = codeParts !== undefined && secrets !== undefined && secrets.find([codeParts.cacheKey, codeParts.resolved]) !== undefined;
    if (!secrets || (!any(inputs) && !any(params) && !partHolds)) return key.ingredients;
    const scrub = (values: Record<string, RecordedInput>) => Object.fromEntries(Object.entries(values).map(([name, input]) => [name, holds(input) ? { sha256: input.sha256 } : input]));
    const { codeParts: _, ...rest } = key.ingredients;
    return { ...(partHolds ? rest : key.ingredients), inputs: scrub(inputs), ...(params ? { params: scrub(params) } : {}) };
  }

  /** The error that made the run stop using the store, if it did. */
  get down(): CacheBackendError | undefined {
    return this.down_;
  }

  /**
   * Called once, at the first lookup that finds an entry recorded in another kind of tracker, or
   * in another server than this run's (a {@link ForeignEntry}): the move between the embedded
   * store and a server that turns every task into a miss; or an entry of another embedded store
   * met through a shared store (a teammate's `.cairn`, through a shared redis), see {@link foreignWarning}.
   */
  onForeignEntry(listener: (entry: ForeignEntry) => void): void {
    this.foreignListener = listener;
  }

  /**
   * Called once, when a lookup's read of the tracker's artifacts (the index's listing or a
   * document, a run's manifest) failed its retries, with the warning to show: lookups then go by
   * tag search for the rest of the run.
   */
  onIndexDown(listener: (message: string) => void): void {
    this.indexDownListener = listener;
  }

  /**
   * A lookup's read of the tracker's artifacts failed: when it failed its retries (not an answer
   * about that one file), the run stops reading them (see {@link artifactReadsDown}), said once.
   */
  private artifactReadFailed(what: "index" | "manifest", error: unknown): void {
    if (this.artifactReadsDown.has(what) || (MlflowApiError.is(error) && error.status < 500)) return;
    this.artifactReadsDown.add(what);
    const why = (error as Error | undefined)?.message ?? String(error);
    const then =
      what === "index"
        ? `its cache index (cairn-index/): ${why} For the rest of this run, lookups search the runs by their cairn.cache_key tag instead.`
        : `the cache manifests of its runs (cairn/manifest.json): ${why} For the rest of this run, a task whose entry a search by tag finds runs instead of reading it.`;
    this.indexDownListener?.(
      `Cache lookups cannot read the artifacts of experiment ${this.experimentId} on ${describeTracker(this.tracker)}, ${then} ` +
        `Writes of artifacts may still work: check that the server's artifact store lets it read and list what it writes (for S3, s3:GetObject and s3:ListBucket).`,
    );
  }

  /** Called once, when the shared store stops answering and the run goes on without it. */
  onStoreDown(listener: (error: CacheBackendError) => void): void {
    this.downListener = listener;
  }

  /**
   * Runs one store operation; once the shared store is down (now or before), answers
   * `fallback` instead. Strict: the error is thrown. Other errors pass through.
   */
  private async guard<T>(operation: () => Promise<T>, fallback: T): Promise<T> {
    if (this.down_) return fallback;
    try {
      return await operation();
    } catch (error) {
      if (this.strict || !isStoreDown(error)) throw error;
      if (!this.down_) {
        this.down_ = error;
        this.downSignal.abort(error);
        this.downListener?.(error);
      }
      return fallback;
    }
  }

  /**
   * The store's entry of `key` as it is, changing nothing (see `CacheStore.peek`); a miss once the
   * store is down, or once a peek failed. A peek is a guess made before the run (the look-ahead,
   * plan.ts), perhaps before anyone listens: a store that fails it is left to the run's own
   * lookups, which stop using it and say so.
   */
  peek(key: string): Promise<CacheEntry | undefined> {
    if (this.down_ || this.peekFailed) return Promise.resolve(undefined);
    return this.store.peek(key).catch(() => ((this.peekFailed = true), undefined));
  }

  /**
   * Tries to become the one process that computes `key` (see `CacheStore.acquireLease`).
   * Once the store is down, every caller "holds" a lease that guards nothing: it computes.
   * A held lease's renew and release do nothing once the store is down.
   */
  async acquireLease(key: string, options: AcquireLeaseOptions): Promise<LeaseResult> {
    const unguarded: LeaseResult = { acquired: true, key, owner: options.owner, expiresAt: Number.POSITIVE_INFINITY, release: async () => {}, renew: async () => {} };
    const lease = await this.guard(() => this.store.acquireLease(key, options), unguarded);
    if (!lease.acquired || lease === unguarded) return lease;
    return Object.assign(lease, {
      release: ((release) => () => this.guard(release, undefined))(lease.release),
      renew: ((renew) => () => this.guard(renew, undefined))(lease.renew),
    });
  }

  /**
   * Who computes `key` elsewhere now (see `CacheStore.leaseHolder`); `undefined` when no one
   * does, once the store is down, or when its lease cannot be read (a plan's hint, not a duty).
   */
  leaseHolder(key: string): Promise<{ holder: string; expiresAt: number } | undefined> {
    return this.guard(() => this.store.leaseHolder(key), undefined).catch(() => undefined);
  }

  /**
   * Waits while another process computes `key` (see `CacheStore.waitFor`); `undefined` (compute
   * it yourself) once the store is down, even while waiting: a wait never outlives the store.
   * `replacing`: the task is forced (`--refresh`, `--rerun`), so the entry in the store now is the
   * one it replaces, never its result: only the entry the other process writes ends the wait.
   */
  async waitFor(key: string, signal: AbortSignal, options: { replacing?: boolean } = {}): Promise<CacheEntry | undefined> {
    if (this.down_) return undefined;
    const both = AbortSignal.any([signal, this.downSignal.signal]);
    try {
      const replacing = options.replacing ? await this.guard(() => this.store.get(key), undefined) : undefined;
      return await this.guard(() => this.store.waitFor(key, { signal: both, replacing }), undefined);
    } catch (error) {
      if (this.down_ && !signal.aborted) return undefined;
      throw error;
    }
  }

  /**
   * The key of a node given its resolved, validated inputs. Artifacts count by content;
   * what the task's code resolves to now (a model's registry version) counts too.
   */
  async keyFor(node: FlowNode, inputs: Record<string, unknown>, run: { flowRunId?: string; signal?: AbortSignal } = {}): Promise<TaskKey> {
    // As the task gets them (`{ seed: undefined }` is not `{}` to `{ seed: 42, ...cfg }`).
    let contentInputs = await digestSecrets((await replaceArtifacts(inputs, isArtifact, artifactDigest)) as Record<string, unknown>, this.secrets);
    if (node.task.inputFiles) contentInputs = withFileContents(contentInputs, await node.task.inputFiles(inputs));
    // Found before the env: what the function reads from process.env through another name is there.
    const found = node.task.codeDependencies ? await this.dependenciesOf(node.task) : undefined;
    // Null-prototype: a declared `constructor` or `__proto__` is a key like any other, and unset unless set.
    const env: Record<string, string | undefined> = Object.create(null);
    for (const name of node.task.env) env[name] = ownValue(this.env, name);
    // Read by the function from the process's own environment, not the run's `env` (a declared
    // name keeps the run's value, which `ctx.env()` gives).
    for (const name of envReadsOfTask(node.task, found).names) if (!(name in env)) env[name] = ownValue(process.env, name);
    // Their slow digests made off the event loop, several at once; computeCacheKey then finds them made.
    await Promise.all(Object.entries(env).map(([name, value]) => (value === undefined ? undefined : privateDigestAsync(value, `env\0${name}`))));
    const cacheKey = node.task.cache !== false ? node.task.cache.key : undefined;
    let extra = cacheKey !== undefined ? `\0cache-key:${cacheKey}` : "";
    let resolvedTo: string | undefined;
    let codeFiles: Record<string, string> | undefined;
    let codeFolders: Record<string, Record<string, string> | number> | undefined;
    let codeReads: CodeRead[] | undefined;
    let declaration: string | undefined;
    if (node.task.codeFiles?.length) {
      // As code: what a run writes in a folder (`__pycache__/`) or a tool leaves there (`.git/`,
      // `.DS_Store`) is left out, so that running the task does not change its own key.
      // Each with what its stat said around the read, so that the end of the attempt can ask cheaply whether it is still the code the key counted (codeEdited).
      const described = await Promise.all(
        node.task.codeFiles.map(({ path }) =>
          describedCode(path, this.writesTo).catch((error: unknown) => {
            throw new CodeFileError(node.id, path, (error as Error).message);
          }),
        ),
      );
      codeFiles = Object.fromEntries(node.task.codeFiles.map((file, i) => [file.name, described[i]!.digest]));
      codeReads = node.task.codeFiles.map((file, i) => ({ name: file.name, path: file.path, read: described[i]!.read }));
      const folders = node.task.codeFiles.flatMap((file, i) => (described[i]!.files === undefined ? [] : [[file.name, described[i]!.files!] as const]));
      if (folders.length) codeFolders = Object.fromEntries(folders);
    }
    let sourceCode: string | undefined;
    if (found) {
      declaration = (found as { [DECLARATION_ENTRY]?: string })[DECLARATION_ENTRY];
      sourceCode = (found as { [SOURCE_CODE_ENTRY]?: string })[SOURCE_CODE_ENTRY];
      // What the task declares wins over what was found under the same name.
      if (Object.keys(found).length) codeFiles = { ...found, ...codeFiles };
    }
    if (node.task.resolveCode) {
      const resolved = await node.task.resolveCode({
        flowRunId: run.flowRunId ?? this.planId,
        scope: this.scope,
        tracking: { kind: this.tracker.kind, uri: this.tracker.uri, experimentId: this.experimentId, capabilities: this.tracker.capabilities },
        ...(run.signal ? { signal: run.signal } : {}),
      });
      if (typeof resolved !== "string") {
        throw new TypeError(`the task's resolveCode() must resolve to a string (what its code resolves to now, e.g. a model's version), got ${resolved === null ? "null" : typeof resolved}`);
      }
      extra += `\0resolved:${resolved}`;
      resolvedTo = resolved;
    }
    let environment: CodeEnvironment | undefined;
    if (node.task.environment && this.environmentKeyed) {
      const { noun, interpreter, packages } = await node.task.environment();
      environment = { noun, interpreter, packages: { ...packages } };
    }
    const params = node.task.paramsRead ? this.paramsOf(await node.task.paramsRead()) : undefined;
    // The task's code as its source has it, for a module compiled by tsc (its text is tsc's).
    const own = `${node.task.kind}\0${typeof sourceCode === "string" ? sourceCode : node.task.code}`;
    const key = computeCacheKey({
      taskName: node.task.name,
      ...(node.task.version !== undefined ? { taskVersion: node.task.version } : {}),
      code: `${own}${extra}`,
      codeParts: {
        own,
        ...(cacheKey !== undefined ? { cacheKey: String(cacheKey) } : {}),
        ...(resolvedTo !== undefined ? { resolved: resolvedTo } : {}),
        ...(node.task.codeName !== undefined ? { what: node.task.codeName } : {}),
        ...(node.task.codeContents !== undefined ? { contents: { noun: node.task.codeContents.noun, files: node.task.codeContents.files } } : {}),
        ...(node.task.codeOptions !== undefined ? { byOption: { content: node.task.codeOptions.content, options: { ...node.task.codeOptions.options } } } : {}),
        ...(node.task.codeFormerly !== undefined ? { formerly: { own: `${node.task.kind}\0${node.task.codeFormerly.code}`, why: node.task.codeFormerly.why } } : {}),
        ...(declaration !== undefined && codeFiles?.[declaration] !== undefined ? { declaration } : {}),
        ...(node.task.kind !== "function" ? { kind: node.task.kind } : {}),
      },
      ...(codeFiles ? { codeFiles } : {}),
      ...(codeFolders ? { codeFolders } : {}),
      inputs: contentInputs,
      env,
      ...(params ? { params } : {}),
      ...(environment ? { environment } : {}),
    }, { digests: this.inputDigests });
    this.codeReads.set(key, codeReads ?? []);
    return key;
  }

  /**
   * The names of the code files of `node` that no longer hold what its `key` counted: its declared
   * `codeFiles` as {@link keyFor} read them, and what the task's own {@link TaskDefinition.codeEdited}
   * says (a script's or notebook's file, the modules it imports); empty when none. Asked when an
   * attempt has succeeded: a result made by other code than its key describes must not be stored
   * under that key, where a later run of the old code would take it. One stat a file while unchanged.
   * Also asked when an attempt starts: a script's file read when the flow was loaded may have changed
   * before the task started. For a key made by another process (a queue worker runs the key its
   * coordinator made), only what the task itself says: its declared files were not read here.
   */
  async codeEdited(node: FlowNode, key: TaskKey): Promise<string[]> {
    const reads = this.codeReads.get(key) ?? [];
    const [declared, own] = await Promise.all([
      Promise.all(reads.map(async ({ name, path, read }) => ((await codeEditedSince(path, read, this.writesTo)) ? [name] : []))),
      node.task.codeEdited ? node.task.codeEdited(this.scope) : [],
    ]);
    return [...new Set([...own, ...declared.flat()])];
  }

  /**
   * Where a run writes while its tasks run, left out by path of every `.codeFiles()` folder that
   * holds it (see `DescribeOptions.leftOut`): this root (the embedded cache store, the embedded
   * tracker, the artifacts, the downloads), and when elsewhere the embedded store's folder and a
   * local tracker's. A root inside a declared folder (`--root sub/.state`, `--root .cache/cairn`
   * with `.codeFiles(".")`) otherwise changed the folder's digest as the run wrote there, so the
   * task was never cached.
   */
  private get writesTo(): string[] {
    const folders = [resolvePath(this.workDir)];
    if (this.store.kind === "embedded") folders.push(resolvePath(this.store.location));
    if (hasLocalArtifacts(this.tracker) && isAbsolute(this.tracker.uri)) folders.push(this.tracker.uri);
    return folders;
  }

  /** The run's values of the params a task reads (a param the run does not set is left out). */
  private paramsOf(read: readonly string[] | "all"): Record<string, unknown> | undefined {
    if (read === "all") return { ...this.params };
    const picked: Record<string, unknown> = {};
    for (const name of read) if (Object.hasOwn(this.params, name) && this.params[name] !== undefined) picked[name] = this.params[name];
    return picked;
  }

  /**
   * Starts finding the code dependencies of `tasks` (reading and hashing their modules) and their
   * environments, so that the first keys of the run do not wait for them.
   */
  prefetchCode(tasks: Iterable<TaskDefinition>): void {
    for (const task of tasks) {
      if (task.codeDependencies) this.dependenciesOf(task).catch(() => {}); // keyFor reports it
      // A Python task's interpreter is asked once per process: started here, it answers while the rest is read.
      if (task.environment && this.environmentKeyed) task.environment().catch(() => {}); // keyFor reports it
    }
  }

  /**
   * What `task`'s code reads from `process.env`, as its key has it (see envReadsOfTask): what its
   * code dependencies found in its parsed text, when they can be found; else what its definition says.
   */
  async envReadsOf(task: TaskDefinition): Promise<EnvReadsOfTask> {
    return envReadsOfTask(task, task.codeDependencies ? await this.dependenciesOf(task).catch(() => undefined) : undefined);
  }

  /** A task's {@link TaskDefinition.codeDependencies}, found once per flow run (a task used by many nodes asks once). */
  private dependenciesOf(task: TaskDefinition): Promise<Record<string, string>> {
    let found = this.dependencies.get(task);
    if (!found) {
      found = task.codeDependencies!(this.scope);
      this.dependencies.set(task, found);
    }
    return found;
  }

  /**
   * A usable entry for `key`: from the store, else (a tracker other machines record to, such
   * as MLflow: `capabilities.sharedRuns`) from the experiment's index or a run tagged with the
   * key. The index is read too when the store's entry cannot be used here: one a run with
   * another tracker (the embedded store, tracking off) wrote over the one this tracker's run
   * made. Entries whose run or artifacts are gone or changed are evicted. `storeOnly`: the
   * store alone, as after taking the key's lease (whoever held it wrote to this same store).
   * `fresh`: the tracker's index is read for this key even when its last listing (up to
   * {@link FRESH_ANSWER_MS} old) did not have it, as when another process is known to have just stored it.
   * An entry past the task's ttl (in the store, or the tracker's) is reported (`expired`), and
   * deleted from the store. `readOnly`: nothing changes (for `cairn plan` and `cairn explain`,
   * which only read): a bad or expired entry is reported (`bad`, `expired`) but stays, an entry
   * found in the tracker is not copied into the store, and a download that no longer matches stays on disk. An entry one mode cannot use may be another's
   * (a `--no-tracking` run's entry, judged by a run that records).
   */
  async lookup(key: string, options: { storeOnly?: boolean; fresh?: boolean; readOnly?: boolean } = {}): Promise<{ entry?: CacheEntry; edited?: string; bad?: BadEntry; foreign?: ForeignEntry; expired?: ExpiredEntry }> {
    const readOnly = options.readOnly === true;
    const stored = await this.guard(() => this.store.lookup(key, { keep: readOnly }), {});
    // Which store, in the reason: a shared one is many machines', and the one to look at.
    const inStore: Checked | undefined = stored.evicted ? { bad: { key, reason: `${stored.evicted} (in the cache store at ${this.store.location})` } } : stored.entry ? await this.checked(key, stored.entry, false, readOnly) : undefined;
    if (inStore?.entry) return withEdited(inStore);
    const asksTracker = !options.storeOnly && this.tracker.capabilities.sharedRuns && this.missingExperiment === undefined;
    // A tracker that fails this second look leaves the store's answer (the look is a chance, not a duty).
    const answer = asksTracker ? await this.fromTracker(key, options.fresh === true, readOnly).catch((error: unknown) => (inStore ? undefined : Promise.reject(error))) : undefined;
    const found = answer?.entry;
    const expired = stored.expired ?? answer?.expired;
    // The index's entry of the same source run as the store's bad one is as bad: not checked twice.
    const same = found !== undefined && stored.entry !== undefined && inStore?.bad !== undefined && found.sourceRunId === stored.entry.sourceRunId;
    const inTracker = found && !same ? await this.checked(key, found, true, readOnly) : undefined;
    if (inTracker?.entry) {
      if (!readOnly && !inStore?.foreign) {
        // Later lookups stay local, and expire when the original would have. A foreign entry
        // stays in the store instead, for the tracker it belongs to: switching back hits there too.
        const left = this.trackerExpiry.get(key);
        await this.guard(() => this.store.set(inTracker.entry, left !== undefined ? { ttlMs: Math.max(1, left - Date.now()) } : {}), undefined).catch(() => undefined);
      }
      return withEdited(inTracker);
    }
    // What the store holds is said first: it is what a run with the other setting would use.
    const unused = inStore ?? inTracker ?? (answer?.bad ? { bad: answer.bad } : undefined);
    if (unused?.foreign && !this.foreignMet) {
      // Another embedded store's entry is news only through a shared store (in its own, it is a leftover).
      const { tracker } = unused.foreign;
      if (tracker.kind !== this.tracker.kind || this.tracker.capabilities.sharedRuns || this.store.kind !== "embedded") {
        this.foreignMet = true;
        this.foreignListener?.(unused.foreign);
      }
    }
    if (unused) return unused;
    // An entry past its ttl: said, not taken.
    return expired ? { expired } : {};
  }

  /**
   * Whether `entry` (the store's, or `fromTracker`: found in the tracker) can be used here: the
   * entry as placed on this machine, else why not. A bad entry of the store is evicted (unless
   * `readOnly`); one recorded in another tracker is not (see {@link ForeignEntry}).
   */
  private async checked(key: string, found: CacheEntry, fromTracker: boolean, readOnly: boolean): Promise<Checked> {
    const entry = await this.placed(found);
    // A source run of another kind of tracker (the embedded store's, seen from a server) cannot
    // be here: asking the tracker for it is a request per entry that only says so.
    if (!fromTracker && this.ofAnotherKind(entry)) return this.foreignOf(key, entry, await this.storeId(), await this.storeCopy());
    const secret = this.secrets?.find(entry.outputs.values);
    let verdict: Verdict;
    try {
      verdict = secret !== undefined ? { problem: `its outputs hold the value of secret "${secret}"` } : await this.verify(entry, readOnly);
    } catch (error) {
      return { bad: { key, reason: this.masked(`it could not be checked: ${(error as Error).message.replace(/\.$/, "")}`), kept: true } };
    }
    if (verdict.problem === undefined) {
      const usable = withPaths(entry, verdict.moved);
      if (!readOnly) this.heldBy(usable);
      return { entry: usable, ...(verdict.edited.length ? { edited: this.masked(editedWarning(verdict.edited)) } : {}) };
    }
    // It names the files found changed in a folder: names the task never chose (added since) may hold a secret.
    const problem = this.masked(verdict.problem);
    // An entry another tracker recorded (a teammate's local store, through a shared redis)
    // cannot be checked from here: it is a miss here, but stays for whoever can use it.
    const hereId = await this.storeId();
    const hereCopy = await this.storeCopy();
    // Its run missing, made through a shared store by another copy of this one (a restored
    // .cairn): not gone, elsewhere. An embedded cache's entry came with its folder's copy: its own.
    const anotherCopy = verdict.runGone === true && this.store.kind !== "embedded" && this.isAnotherCopy(entry, hereCopy);
    const elsewhere = this.isForeign(entry, hereId) || anotherCopy;
    if (!fromTracker && elsewhere) return this.foreignOf(key, entry, hereId, hereCopy);
    if (!readOnly && !fromTracker) await this.guard(() => this.store.delete(key), false).catch(() => false);
    return { bad: { key, reason: problem } };
  }

  /** `text` with the run's secrets masked (see {@link secrets}): what a lookup says, and the errors plan and explain show. */
  masked(text: string): string {
    return this.secrets ? this.secrets.mask(text) : text;
  }

  /**
   * Asks the tracker about these source runs in one go (a tracker with `getRuns`: one search
   * instead of one request per hit), so that the lookups that verify them, one after another
   * down a chain of hits, find the answer waiting. Only this TaskCache, that is this flow run,
   * uses the answers; a run the answer does not cover is asked about on its own, as before.
   */
  checkSourceRuns(runIds: Iterable<string>): void {
    if (!this.tracker.getRuns || !this.tracker.capabilities.records || this.missingExperiment !== undefined) return;
    const ids = [...new Set(runIds)].filter((id) => !this.sourceRuns.has(id));
    if (!ids.length) return;
    // A failed search settles nothing: each lookup then asks getRun, whose failure it reports.
    const answer = this.tracker.getRuns(ids, [this.experimentId]).catch(() => new Map<string, RunRecord | undefined>());
    for (const id of ids) this.sourceRuns.set(id, answer.then((found) => ({ run: found.has(id) ? found.get(id) : UNSETTLED, at: Date.now() })));
  }

  /**
   * Adds digests and sizes to every artifact in the outputs, and builds the manifest. The
   * outputs are walked once, synchronously, and copied only along the way to an artifact: an
   * output of JSON data alone is handed back as it is, with no promise, copy or path string per value.
   * `listed`: folders' listings already taken since the task ended (its name check), by absolute
   * path; each is the listing its folder's stamp is checked against, so the folder is not walked
   * for it once more.
   */
  async manifest(outputs: unknown, listed?: ReadonlyMap<string, FolderListing>): Promise<{ values: unknown; artifacts: ArtifactRecord[] }> {
    const found: Array<{ artifact: Artifact; path: string; copy: Record<string, unknown> }> = [];
    // The path to where the walk is, as parts (`rows`, `[3]`, `.model`): joined only for an artifact.
    const at: string[] = [];
    const walk = (value: unknown): unknown => {
      if (isArtifact(value)) {
        const copy = { ...value } as Record<string, unknown>;
        found.push({ artifact: value, path: at.join(""), copy });
        return copy;
      }
      if (Array.isArray(value)) {
        let out: unknown[] | undefined;
        for (let i = 0; i < value.length; i++) {
          at.push(`[${i}]`);
          const r = walk(value[i]);
          at.pop();
          if (r !== value[i]) (out ??= value.slice())[i] = r;
        }
        return out ?? value;
      }
      if (isPlainObject(value)) {
        let out: Record<string, unknown> | undefined;
        const keys = Object.keys(value);
        for (const k of keys) {
          at.push(at.length ? `.${k}` : k);
          const r = walk(value[k]);
          at.pop();
          if (r !== value[k]) {
            if (!out) {
              out = {};
              for (const key of keys) setOwnProperty(out, key, value[key]);
            }
            setOwnProperty(out, k, r);
          }
        }
        return out ?? value;
      }
      return value;
    };
    const values = walk(outputs);
    // A few files digested at a time: an output of thousands of artifacts must not open them all at once (EMFILE).
    const digests = limitTo(DIGESTS_AT_ONCE);
    // Each file's size, mtime and ctime as it was digested, by run: what lets a later hit trust it on a stat.
    const stamps = new Map<string, StampOf[]>();
    const artifacts = await Promise.all(
      found.map(async ({ artifact, path, copy }): Promise<ArtifactRecord> => {
        let described: { digest: string; sizeBytes: number; emptyFolders?: readonly string[] };
        if (artifact.digest && artifact.size !== undefined) described = { digest: artifact.digest, sizeBytes: artifact.size };
        else {
          const taken = await digests(() => this.stamps.describe(artifact.path, undefined, listed?.get(resolvePath(artifact.path))));
          described = taken.described;
          if (taken.stamp && artifact.runId !== undefined) stamps.set(artifact.runId, [...(stamps.get(artifact.runId) ?? []), taken.stamp]);
        }
        copy.digest = described.digest;
        copy.size = described.sizeBytes;
        // On every folder, even with none: a folder artifact without it was recorded by an older Cairn (see localArtifacts).
        if (described.emptyFolders) copy.emptyFolders = described.emptyFolders;
        return { path, digest: described.digest, size: described.sizeBytes, artifactPath: artifact.artifactPath };
      }),
    );
    await Promise.all([...stamps].map(([runId, taken]) => this.stamps.add(runId, taken).catch(() => {})));
    return { values, artifacts };
  }

  /**
   * Stores the entry of a successful run: in the store, and (with MLflow) in the experiment's
   * index, where other machines find it with one read. When the shared store is down, in the
   * index alone: a lookup reads the index for a key the store lacks, so the result is not lost
   * to a dead store (without an index, no entry). An index entry that could not be written
   * leaves the stored entry, and says why in `indexError`.
   */
  async record(key: TaskKey, node: FlowNode, runId: string, manifest: OutputsManifest): Promise<{ entry?: CacheEntry; indexError?: Error }> {
    const ttlMs = node.task.cache !== false ? node.task.cache.ttlMs : undefined;
    const [id, copy] = await Promise.all([this.storeId(), this.storeCopy()]);
    const made: NewCacheEntry = {
      key: key.key,
      taskName: node.task.name,
      ingredients: key.ingredients,
      sourceRunId: runId,
      tracker: { kind: this.tracker.kind, uri: this.tracker.uri, ...(id !== undefined ? { id } : {}), ...(copy !== undefined ? { copy } : {}) },
      outputs: { values: manifest.values, artifacts: manifest.artifacts },
      cairn: cairnBuild(this.env).id,
    };
    const stored = await this.guard(() => this.store.set(made, ttlMs !== undefined ? { ttlMs } : {}), undefined);
    const entry = stored ?? (keepsIndex(this.tracker) && this.missingExperiment === undefined ? completeEntry(made) : undefined);
    if (!entry) return {};
    this.sourceNames.set(runId, node.id); // a task run is named after its node
    if (this.tracker.writeIndexEntry) {
      const doc: IndexDocument = { ...entry, ...(ttlMs !== undefined ? { expiresAt: entry.createdAt + ttlMs } : {}) };
      try {
        await this.tracker.writeIndexEntry(this.experimentId, indexName(entry.key), JSON.stringify(doc));
      } catch (error) {
        return { entry, indexError: error instanceof Error ? error : new Error(String(error)) };
      }
    }
    return { entry };
  }

  /**
   * Makes every artifact in a task's inputs readable locally: one that lives only
   * in the tracker (a hit from another machine) is downloaded into the work folder.
   */
  materialize<T>(inputs: T, taskName?: string): Promise<T> {
    return localArtifacts(inputs, this.tracker, this.workDir, taskName, (artifact) => this.evictHolders(artifact), this.stamps);
  }

  /**
   * A download of `artifact` did not match its digest, after the hits that hold it were decided:
   * their entries are evicted, from the store and from the tracker's index (where a later run
   * would find them again), so that the next run computes them. Those are the hits of this run
   * that hold it, and the entry of the run that wrote it (found by its key tag), while that entry
   * still names that run: a task on a worker reads what the flow's coordinator decided was a hit.
   * Says what became of them.
   */
  private async evictHolders(artifact: Artifact): Promise<string> {
    // key → its task, and where its entry goes from (the writer's entry only where it still names the writer).
    const holders = new Map<string, { taskName: string; store: boolean; index: boolean; sourceRunId: string | undefined }>();
    for (const h of this.hitArtifacts.get(artifactId(artifact)) ?? []) holders.set(h.key, { taskName: h.taskName, store: true, index: true, sourceRunId: h.sourceRunId });
    const writer = artifact.runId !== undefined ? await this.tracker.getRun(artifact.runId).catch(() => undefined) : undefined;
    const key = writer?.tags[CACHE_KEY_TAG];
    if (writer && key && !holders.has(key)) {
      const [stored, indexed] = await Promise.all([
        this.guard(() => this.store.peek(key), undefined).catch(() => undefined),
        this.tracker.readIndexEntry?.(this.experimentId, indexName(key)).then(
          (text) => (text === undefined ? undefined : (JSON.parse(text) as { sourceRunId?: unknown }).sourceRunId),
          () => undefined,
        ),
      ]);
      const store = stored?.sourceRunId === writer.runId;
      const index = indexed === writer.runId;
      if (store || index) holders.set(key, { taskName: stored?.taskName ?? writer.tags["cairn.task"] ?? writer.name, store, index, sourceRunId: writer.runId });
    }
    if (!holders.size) return "";
    const kept: string[] = [];
    await Promise.all(
      [...holders].map(async ([key, where]) => {
        if (where.store) await this.guard(() => this.store.delete(key), false).catch(() => false);
        if (!where.index) return;
        const removed = this.tracker.deleteIndexEntry
          ? await removeIndexEntry(this.tracker, this.experimentId, key, where.sourceRunId).then(() => true, () => false)
          : !this.tracker.readIndexEntry;
        if (!removed) kept.push(key);
      }),
    );
    const tasks = [...new Set([...holders.values()].map((h) => h.taskName))];
    const named = tasks.map((t) => `"${t}"`).join(", ");
    const entries = [...holders].map(([key, h]) => `task "${h.taskName}", key ${key.slice(0, 12)}`).join("; ");
    const head = `The cache entr${holders.size === 1 ? "y" : "ies"} that hold${holders.size === 1 ? "s" : ""} it (${entries}) ${holders.size === 1 ? "was" : "were"} evicted`;
    if (!kept.length) return `${head}: run the flow again and ${named} ${tasks.length === 1 ? "runs" : "run"} again.`;
    return (
      `${head} from the cache store, but ${kept.length === 1 ? "its entry" : `${kept.length} of them`} could not be removed from the experiment's index on ${redactUri(this.tracker.uri)}, ` +
      `where the next run finds ${kept.length === 1 ? "it" : "them"} again: force ${named} to run again (--rerun ${tasks[0]}).`
    );
  }

  /** Notes the artifacts of a hit (see {@link hitArtifacts}). */
  private heldBy(entry: CacheEntry): void {
    const artifacts: Artifact[] = [];
    collectArtifacts(entry.outputs.values, artifacts);
    for (const a of artifacts) {
      if (a.runId === undefined) continue;
      let holders = this.hitArtifacts.get(artifactId(a));
      if (!holders) this.hitArtifacts.set(artifactId(a), (holders = new Set()));
      if (![...holders].some((h) => h.key === entry.key)) holders.add({ key: entry.key, taskName: entry.taskName, sourceRunId: entry.sourceRunId });
    }
  }

  /**
   * True for an entry recorded through another tracker than this one (not for tracking off): of
   * another kind or uri, or another store at this uri (both ids known and different: entries made
   * before stores had ids are told apart by their uri alone, as then).
   */
  private isForeign(entry: CacheEntry, hereId: string | undefined): boolean {
    if (isUntrackedRecord(entry.tracker)) return false;
    if (entry.tracker.kind !== this.tracker.kind || entry.tracker.uri !== this.tracker.uri) return true;
    return typeof entry.tracker.id === "string" && hereId !== undefined && entry.tracker.id !== hereId;
  }

  /** True for an entry that another copy of this store's folder made (see `Tracker.storeCopy`); false when either copy is unknown. */
  private isAnotherCopy(entry: CacheEntry, hereCopy: string | undefined): boolean {
    return typeof entry.tracker.copy === "string" && hereCopy !== undefined && entry.tracker.copy !== hereCopy;
  }

  /**
   * True for an entry a tracker of another kind recorded (not for tracking off, nor when this run
   * records nothing): its source run is known to be elsewhere without asking this tracker.
   */
  private ofAnotherKind(entry: CacheEntry): boolean {
    return this.tracker.capabilities.records && !isUntrackedRecord(entry.tracker) && entry.tracker.kind !== this.tracker.kind;
  }

  /**
   * Where this run records its task runs, as its single-flight leases name it: what another
   * process that meets the lease needs to tell whether this run's entry could be used there
   * ({@link mayUseEntryOf}). The uri with any password masked: every process of the store reads a lease.
   */
  async recordsTo(): Promise<{ kind: string; uri: string; id?: string }> {
    const id = await this.storeId();
    return { kind: this.tracker.kind, uri: redactUri(this.tracker.uri), ...(id !== undefined ? { id } : {}) };
  }

  /**
   * False when an entry recorded in `tracker` certainly cannot be used by this run, as its lookup
   * would find ({@link checked}, {@link verify}): this run records, and the entry's source run was
   * not recorded (tracking off), or was recorded by another kind of tracker, or by another embedded
   * store (both ids known). True otherwise, also where only the entry's check can tell: another
   * MLflow uri may name this same server.
   */
  async mayUseEntryOf(tracker: { kind: string; id?: string }): Promise<boolean> {
    if (!this.tracker.capabilities.records) return true;
    if (isUntrackedRecord(tracker) || tracker.kind !== this.tracker.kind) return false;
    const hereId = await this.storeId();
    return tracker.id === undefined || hereId === undefined || tracker.id === hereId;
  }

  /** The miss of an entry recorded through another tracker (see {@link ForeignEntry}). */
  private foreignOf(key: string, entry: CacheEntry, hereId: string | undefined, hereCopy: string | undefined): Checked {
    const { id, copy } = entry.tracker;
    return {
      foreign: {
        key,
        taskName: entry.taskName,
        sourceRunId: entry.sourceRunId,
        tracker: { kind: entry.tracker.kind, uri: entry.tracker.uri, ...(typeof id === "string" ? { id } : {}), ...(typeof copy === "string" ? { copy } : {}) },
        here: { kind: this.tracker.kind, uri: this.tracker.uri, ...(hereId !== undefined ? { id: hereId } : {}), ...(hereCopy !== undefined ? { copy: hereCopy } : {}) },
      },
    };
  }

  /** This tracker's copy of its store (see `Tracker.storeCopy`), asked once; undefined for a tracker without one. */
  private storeCopy(): Promise<string | undefined> {
    this.storeCopy_ ??= this.tracker.storeCopy ? this.tracker.storeCopy().catch(() => undefined) : Promise.resolve(undefined);
    return this.storeCopy_;
  }

  /** This tracker's store id (see `Tracker.storeId`), asked once; undefined for a tracker without one. */
  private storeId(): Promise<string | undefined> {
    this.storeId_ ??= this.tracker.storeId ? this.tracker.storeId().catch(() => undefined) : Promise.resolve(undefined);
    return this.storeId_;
  }

  /**
   * The name of a hit's source run, as this run met it (its lookup read the run, or this run
   * recorded it); undefined for an entry handed over by another process's computation.
   */
  sourceRunName(runId: string): string | undefined {
    return this.sourceNames.get(runId);
  }

  /**
   * The entry with each artifact's `path` where this machine keeps its run's artifact (the
   * tracker's folder, the work folder's, the downloads folder), never a path the entry names
   * elsewhere: an entry is data from a shared store or a server, and its path could name any
   * file here (`/etc/passwd`, `/dev/zero`). Such a path is replaced by the first of those places
   * that holds the file, else the downloads folder (the artifact is then downloaded from its run,
   * or the entry is a miss). Names that are not safe are left for {@link verify} to refuse.
   */
  private async placed(entry: CacheEntry): Promise<CacheEntry> {
    // Most entries hold no artifact, or each where it belongs: their values are not copied.
    const found: Artifact[] = [];
    collectArtifacts(entry.outputs.values, found);
    const moved = new Map<Artifact, string>();
    await Promise.all(found.map(async (a) => {
      const homes = this.homesOf(a);
      if (!homes || homes.includes(resolvePath(a.path))) return;
      let here = homes.at(-1)!;
      for (const home of homes) {
        if (await pathExists(home)) {
          here = home;
          break;
        }
      }
      moved.set(a, here);
    }));
    return withPaths(entry, moved);
  }

  /** Where this machine keeps an artifact of a run (see {@link artifactHomes}). */
  private homesOf(a: Artifact): string[] | undefined {
    return artifactHomes(a, this.tracker, this.workDir);
  }

  /** True when the artifact's `path` is its copy in this machine's downloads folder (see {@link placed}). */
  private isDownload(a: Artifact): boolean {
    const download = this.homesOf(a)?.at(-1);
    return download !== undefined && resolvePath(download) === resolvePath(a.path);
  }

  /**
   * Why the entry cannot be used (`problem`), else where its artifacts are to be read instead of
   * where it was placed (`moved`: an artifact edited here whose recorded bytes its run still
   * holds, to be downloaded), and the edited files (`edited`). `readOnly`: a stale download is not
   * discarded, and no stamp is written (see {@link lookup}).
   */
  private async verify(entry: CacheEntry, readOnly: boolean): Promise<Verdict> {
    const run = await this.sourceRun(entry.sourceRunId);
    if (run) this.sourceNames.set(run.runId, run.name);
    if (this.tracker.capabilities.records) {
      // Not "gone": a run with tracking off stored it, and a run that records needs a source run to point at.
      if (!run && isUntrackedRecord(entry.tracker)) return { problem: `its source run ${entry.sourceRunId} was never recorded (a run with tracking off, --no-tracking, stored it), and a run that records needs its source run` };
      if (!run) return { problem: `its source run ${entry.sourceRunId} no longer exists in ${this.tracker.uri}`, runGone: true };
      if (run.status !== "FINISHED") return { problem: `its source run ${entry.sourceRunId} is ${run.status}, not FINISHED` };
    }
    const artifacts: Artifact[] = [];
    collectArtifacts(entry.outputs.values, artifacts);
    // An entry is data from a shared store or server: its names become paths only once checked.
    const unsafe = unsafeNames(entry, artifacts);
    if (unsafe) return { problem: unsafe };
    const moved = new Map<Artifact, string>();
    const edited: string[] = [];
    for (const artifact of artifacts) {
      let here = await stat(artifact.path, { bigint: true }).catch(() => undefined);
      if (here && !here.isFile() && !here.isDirectory()) return { problem: `artifact ${artifact.artifactPath} of run ${artifact.runId} is not a file or a folder here` };
      const held = here && (await this.holdsRecorded(artifact, artifact.path, here, readOnly));
      if (held && !held.holds) {
        const download = this.homesOf(artifact)?.at(-1);
        if (this.isDownload(artifact)) {
          // Our own copy, not the artifact: a folder half downloaded by a killed process (before
          // folders were placed whole), or edited since. It counts as absent and is downloaded again.
          if (!readOnly) await discardCopy(artifact.path);
          here = undefined;
        } else if (artifact.runId && this.tracker.capabilities.sharedRuns && download) {
          // Edited in place where this root keeps the run's artifacts: the file is the user's now
          // and stays; the recorded bytes are still the run's, read from a download beside.
          edited.push(held.changed ? `${artifact.path} (${changesWords(held.changed)})` : artifact.path);
          moved.set(artifact, download);
          here = await stat(download, { bigint: true }).catch(() => undefined);
          if (here && !((here.isFile() || here.isDirectory()) && (await this.holdsRecorded(artifact, download, here, readOnly)).holds)) {
            if (!readOnly) await discardCopy(download);
            here = undefined;
          }
        } else {
          return {
            problem:
              `artifact ${artifact.artifactPath} of run ${artifact.runId} changed since it was cached: ${artifact.path} no longer holds the bytes its run recorded ` +
              `(${held.changed ? changesWords(held.changed) : "edited in place?"}), and ${describeTracker(this.tracker)} keeps no other copy`,
          };
        }
      }
      if (here) continue;
      // A folder that holds no file at all has nothing on the server to list: it is made from its record.
      if (Array.isArray(artifact.emptyFolders) && artifact.emptyFolders.includes(".") && artifact.runId && this.tracker.capabilities.sharedRuns) continue;
      if (artifact.runId && this.tracker.capabilities.sharedRuns) {
        const parent = dirname(artifact.artifactPath);
        const listed = (await this.tracker.listArtifacts(artifact.runId, parent === "." ? undefined : parent)).find((a) => a.path === artifact.artifactPath);
        if (!listed) return { problem: `artifact ${artifact.artifactPath} of run ${artifact.runId} is missing${olderFolderOfEmptyFolders(artifact) ? OLDER_EMPTY_FOLDERS : ""}` };
        // The listing's size is free; the digest is checked when a task downloads it (localArtifacts).
        if (!listed.isDir && listed.size !== undefined && artifact.size !== undefined && listed.size !== artifact.size) {
          return {
            problem: `artifact ${artifact.artifactPath} of run ${artifact.runId} is ${listed.size} bytes on ${redactUri(this.tracker.uri)}, not the ${artifact.size} bytes it was cached with (the server's copy was changed or damaged)`,
          };
        }
      } else {
        return { problem: `artifact ${artifact.path} is missing` };
      }
    }
    return { moved, edited };
  }

  /**
   * Whether the file or folder at `path` (whose stat is `info`) holds the artifact's recorded
   * bytes: a file whose size, mtime and ctime are those stamped when it was last digested, or a folder
   * whose files and their stats are, is not read again (see {@link ArtifactStamps}); any other is
   * digested. `changed`: what changed in a stamped folder.
   */
  private async holdsRecorded(artifact: Artifact, path: string, info: BigIntStats, readOnly: boolean): Promise<{ holds: boolean; changed?: FolderChanges }> {
    const { digest, changed } = await this.stamps.digestOf(path, artifact.runId, info, { record: !readOnly });
    return { holds: digest === artifact.digest, ...(changed ? { changed } : {}) };
  }

  /**
   * The source runs this run read (asked ahead, or verified one by one), by id: what a report at
   * the run's end shows beside its hits without asking the tracker again.
   */
  async readSourceRuns(): Promise<Map<string, RunRecord>> {
    const read = new Map<string, RunRecord>(this.verifiedRuns);
    await Promise.all(
      [...this.sourceRuns].map(async ([id, answer]) => {
        const { run } = await answer;
        if (run && run !== UNSETTLED && !read.has(id)) read.set(id, run);
      }),
    );
    return read;
  }

  /** The source run as the tracker has it now, or undefined when it is gone; asked ahead when it could be. */
  private async sourceRun(runId: string): Promise<RunRecord | undefined> {
    const ahead = this.sourceRuns.get(runId);
    if (ahead) {
      const { run, at } = await ahead;
      // An answer is as good as a request made now only while it is fresh: a task that waited
      // behind a long-running upstream task asks again.
      if (run !== UNSETTLED && Date.now() - at <= FRESH_ANSWER_MS) return run;
    }
    const batched = await this.askSourceRun(runId);
    const run = batched === UNSETTLED ? await this.tracker.getRun(runId) : batched;
    if (run) this.verifiedRuns.set(runId, run);
    return run;
  }

  /**
   * The source run as a batch asks a server for it (Tracker.getRuns): the ids asked for while the
   * batch before is being answered go together in the next, so that a map's hundreds of hits cost
   * a few searches, not one request each, and a lone hit is asked at once, by itself. UNSETTLED when the
   * tracker batches nothing (the embedded store's reads are local) or its answer did not cover
   * the run: the caller then asks for it alone, and reports that request's failure.
   */
  private askSourceRun(runId: string): Promise<RunRecord | undefined | typeof UNSETTLED> {
    if (!this.tracker.getRuns || !this.tracker.capabilities.remote || !this.tracker.capabilities.records || this.missingExperiment !== undefined) return Promise.resolve(UNSETTLED);
    let batch = this.sourceBatch;
    if (!batch) {
      const ids = new Set<string>();
      const answer = this.sourceBatchAnswered.then(() => {
        // Sent: ids asked for from now on gather in the next batch.
        if (this.sourceBatch?.ids === ids) this.sourceBatch = undefined;
        // One alone (lookups one after another, as a plan's) is asked as before, by a get: a search costs the server more.
        if (ids.size < 2) return new Map<string, RunRecord | undefined>();
        return this.tracker.getRuns!([...ids], [this.experimentId]).catch(() => new Map<string, RunRecord | undefined>());
      });
      this.sourceBatchAnswered = answer;
      batch = this.sourceBatch = { ids, answer };
    }
    batch.ids.add(runId);
    return batch.answer.then((found) => (found.has(runId) ? found.get(runId) : UNSETTLED));
  }

  /**
   * The entry another machine recorded: one read of the experiment's index (flat in the
   * number of runs). Without an index (a tracker that has none, an experiment whose
   * artifacts are not proxied), one search by tag, whose manifest comes from the run.
   */
  private async fromTracker(key: string, fresh: boolean, readOnly: boolean): Promise<TrackerEntry | undefined> {
    if (this.tracker.readIndexEntry && !this.artifactReadsDown.has("index")) {
      const listed = fresh ? undefined : await this.listedIndex();
      if (this.artifactReadsDown.has("index")) return this.fromTag(key, readOnly);
      if (listed && !listed.has(indexName(key))) return undefined;
      let text: string | undefined;
      try {
        text = await this.tracker.readIndexEntry(this.experimentId, indexName(key));
      } catch (error) {
        this.artifactReadFailed("index", error);
        return this.fromTag(key, readOnly);
      }
      if (text === undefined) return undefined;
      const read = readIndexDocument(text, key);
      // A damaged document is no entry: the task runs, and its result replaces the document.
      if ("problem" in read) return { bad: this.damagedIndexDocument(key, read.problem) };
      const { expiresAt, entry } = read;
      if (expiresAt !== undefined) {
        if (expiresAt <= Date.now()) return { expired: { at: expiresAt, entry } }; // past the task's ttl
        this.trackerExpiry.set(key, expiresAt);
      }
      // Recorded through this same server, whatever address the recording machine used for it.
      return { entry: { ...entry, tracker: { kind: this.tracker.kind, uri: this.tracker.uri } } };
    }
    return this.fromTag(key, readOnly);
  }

  /**
   * A damaged index document of `key` (`problem`: what is wrong with it) as the entry its lookup
   * could not use: kept, since the task's result replaces it; said once a run (see {@link BadEntry.said}).
   */
  private damagedIndexDocument(key: string, problem: string): BadEntry {
    const name = indexName(key);
    const first = !this.damagedSaid.has(name);
    this.damagedSaid.add(name);
    const where = `the index document ${name} of experiment ${this.experimentId} on ${describeTracker(this.tracker)}`;
    const reason =
      `${where} is damaged: ${problem}; ` +
      `should the task not replace it (it fails, or its cache is off), \`cairn cache clear --task <task>\` removes it with the task's other entries`;
    return { key, reason, kept: true, ...(first ? {} : { said: true as const }) };
  }

  /**
   * The earlier entries of a task that a miss can be compared with, deleting nothing: the
   * store's, and (a tracker other machines record to) the experiment's index, where another
   * machine's entries are, which a run hits too. `searched` names where they were looked for.
   * At most {@link INDEX_READS_MAX} index documents are read, then, when the index holds more,
   * those of the task's newest runs ({@link TASK_RUNS_SEARCHED}): the index's names are keys, in
   * no order of task or time, so its first documents may hold none of the task's recent entries,
   * which are the nearest most often. Entries past their ttl are left out.
   * `complete`: these are all the entries a run of the task could hit (every index document was
   * read, or there is no index to read), so a key that none of them has is a miss.
   */
  async earlierEntries(taskName: string): Promise<{ entries: CacheEntry[]; searched: string; complete: boolean }> {
    const entries = await this.store.list({ taskName, keep: true });
    if (!this.searchesIndex) {
      // A tracker other machines record to, without an index, is searched by tag at a lookup: not listed here.
      const complete = !this.tracker.capabilities.sharedRuns || this.missingExperiment !== undefined;
      return { entries, searched: `the cache store at ${this.store.location}`, complete };
    }
    const indexed = await this.indexEntriesOf(taskName);
    return { ...indexed, entries: withIndexed(entries, indexed.entries) };
  }

  /**
   * Whether a miss is compared with the experiment's index too (see {@link earlierEntries}): a
   * tracker other machines record to, with an index, and an experiment that exists.
   */
  private get searchesIndex(): boolean {
    const { readIndexEntry, listIndexEntries, capabilities } = this.tracker;
    return readIndexEntry !== undefined && listIndexEntries !== undefined && capabilities.sharedRuns && this.missingExperiment === undefined;
  }

  /** The index a miss is compared with, in words (no credentials of the tracker's address). */
  private get indexWords(): string {
    return `the index of experiment ${this.experimentId} in ${redactUri(this.tracker.uri)}`;
  }

  /**
   * The task's entries in the experiment's index (its documents read once for every task, see
   * {@link readIndexDocuments}), where they were looked for (the store too), and whether they
   * are all a run of the task could hit there (see {@link earlierEntries}).
   */
  private async indexEntriesOf(taskName: string): Promise<{ entries: CacheEntry[]; searched: string; complete: boolean }> {
    this.indexDocuments ??= this.readIndexDocuments();
    const index = await this.indexDocuments;
    let newestRead = index.newest.get(taskName);
    if (!newestRead) index.newest.set(taskName, (newestRead = index.unread.size ? this.readNewestOfTask(taskName, index) : Promise.resolve(0)));
    const newest = await newestRead;
    const part = index.listed > index.read ? ` (${index.read} of its ${index.listed} documents read${newest ? `, ${newest} of them from the task's newest runs` : ""})` : "";
    return {
      entries: [...(index.byTask.get(taskName) ?? [])],
      searched: `the cache store at ${this.store.location} and ${this.indexWords}${part}`,
      complete: index.listedAll && !index.failed && !index.unread.size,
    };
  }

  /**
   * The newest failed or cancelled task runs of the experiment (status FAILED or KILLED), by the
   * key each ran for ({@link FAILED_KEY_TAG}; the newest run of a key): one search for every task
   * a plan or explain asks about, not one request per task, at most {@link FAILED_RUNS_SEARCHED}
   * runs, among the newest {@link FAILED_RUNS_WITHIN} where runs are read one by one. Empty when
   * the tracker keeps no runs or the experiment does not exist yet, or when the search fails (it
   * only words a miss).
   */
  failedRuns(): Promise<EndedRuns> {
    this.failedRunsRead ??= this.searchFailedRuns();
    return this.failedRunsRead;
  }

  private async searchFailedRuns(): Promise<EndedRuns> {
    const byKey = new Map<string, RunRecord>();
    if (!this.tracker.capabilities.records || this.missingExperiment !== undefined) return { byKey };
    let cut = false;
    // No status in the filter: only failed and cancelled runs get the tag, and a filter has no OR.
    const search: RunFilter = { experimentIds: [this.experimentId], hasTag: FAILED_KEY_TAG, within: FAILED_RUNS_WITHIN, maxResults: FAILED_RUNS_SEARCHED, onCut: () => (cut = true) };
    const runs = await this.tracker.searchRuns(search).catch(() => []);
    for (const run of runs) {
      const key = run.tags[FAILED_KEY_TAG];
      // A run tagged but not yet ended (its process died between the two) is neither yet.
      if (key !== undefined && (run.status === "FAILED" || run.status === "KILLED") && !byKey.has(key)) byKey.set(key, run);
    }
    // A full page may have left older tagged runs out; a cut, older runs unread.
    if (runs.length >= FAILED_RUNS_SEARCHED) return { byKey, bound: { runs: FAILED_RUNS_SEARCHED, endedOnly: true } };
    return cut ? { byKey, bound: { runs: FAILED_RUNS_WITHIN, endedOnly: false } } : { byKey };
  }

  /**
   * The experiment's index documents, by task, read once for all the tasks a plan or explain
   * compares (one request each, at most {@link INDEX_READS_MAX}): its names say only the key,
   * so a task's documents are known once read. Entries past their ttl are left out.
   */
  private async readIndexDocuments(): Promise<IndexDocuments> {
    // A run's lookups listed the index already (see listedIndex): its misses' reasons reuse that listing.
    const listed = await this.listedIndex();
    const names = listed ? [...listed] : [];
    const toRead = names.slice(0, INDEX_READS_MAX);
    const index: IndexDocuments = {
      byTask: new Map(),
      read: 0,
      listed: names.length,
      unread: new Set(names.slice(INDEX_READS_MAX)),
      newest: new Map(),
      listedAll: listed !== undefined,
      failed: false,
    };
    await this.readIntoIndex(toRead, index);
    return index;
  }

  /**
   * Reads the index documents of the task's newest runs that {@link readIndexDocuments} left
   * unread: their keys are in their tags (one search of the experiment's runs by the task's tag,
   * newest first). Resolves to how many it read; a search that fails reads none (the comparison
   * is a help, not a duty).
   */
  private async readNewestOfTask(taskName: string, index: IndexDocuments): Promise<number> {
    const runs = await this.tracker.searchRuns({ experimentIds: [this.experimentId], tags: { [TASK_TAG]: taskName }, maxResults: TASK_RUNS_SEARCHED }).catch(() => []);
    const names = [...new Set(runs.flatMap((r) => [r.tags[CACHE_KEY_TAG], r.tags[HIT_KEY_TAG]]).filter((k): k is string => k !== undefined).map(indexName))];
    const toRead = names.filter((n) => index.unread.has(n));
    for (const name of toRead) index.unread.delete(name);
    await this.readIntoIndex(toRead, index);
    return toRead.length;
  }

  /** Reads the index documents `names` (16 at a time) into `index`; one that cannot be read is noted (`failed`). */
  private async readIntoIndex(names: string[], index: IndexDocuments): Promise<void> {
    const now = Date.now();
    for (let i = 0; i < names.length; i += 16) {
      const texts = await Promise.all(
        names.slice(i, i + 16).map((n) => this.tracker.readIndexEntry!.call(this.tracker, this.experimentId, n).catch(() => ((index.failed = true), undefined))),
      );
      for (const [j, text] of texts.entries()) {
        const entry = text === undefined ? undefined : indexEntry(text, names[i + j]!, now);
        if (!entry) continue;
        const list = index.byTask.get(entry.taskName);
        if (list) list.push(entry);
        else index.byTask.set(entry.taskName, [entry]);
      }
    }
    index.read += names.length;
  }

  /** The index's names, listed at most once per {@link FRESH_ANSWER_MS}; undefined when they cannot be listed (every key is read). */
  private listedIndex(): Promise<Set<string> | undefined> {
    const list = this.tracker.listIndexEntries?.bind(this.tracker);
    if (!list) return Promise.resolve(undefined);
    const now = Date.now();
    if (!this.indexListing || now - this.indexListing.at > FRESH_ANSWER_MS) {
      this.indexListing = {
        names: list(this.experimentId).then(
          (names) => new Set(names),
          (error: unknown) => (this.artifactReadFailed("index", error), undefined),
        ),
        at: now,
      };
    }
    return this.indexListing.names;
  }

  /**
   * One search by tag in the flow's experiment; the manifest comes from the run's artifacts,
   * into `<workDir>/downloads`, or (`readOnly`: plan, explain) a temporary folder removed after.
   */
  private async fromTag(key: string, readOnly = false): Promise<TrackerEntry | undefined> {
    const [run] = await this.tracker.searchRuns({
      experimentIds: [this.experimentId],
      tags: { [CACHE_KEY_TAG]: key },
      status: "FINISHED",
      maxResults: 1,
    });
    // Its manifest cannot be read either: a miss, not one more full retry policy per task.
    if (!run || this.artifactReadsDown.has("manifest")) return undefined;
    // Its entry was removed since (the index document is gone, which this search cannot see).
    if (run.tags[CACHE_REMOVED_TAG] !== undefined) return undefined;
    const segment = safePathSegment(run.runId, { source: `MLflow's search for cache key ${key}` });
    const dir = readOnly ? await mkdtemp(join(tmpdir(), "cairn-manifest-")) : join(this.workDir, "downloads", segment);
    if (!readOnly) await makeFolder(dir);
    try {
      const file = await this.tracker.downloadArtifact(run.runId, MANIFEST_PATH, dir).catch((error: unknown) => {
        this.artifactReadFailed("manifest", error);
        throw error;
      });
      const manifest = JSON.parse(await readFile(file, "utf8")) as StoredManifest;
      if (manifest.cacheKey !== key || !manifest.ingredients) return undefined;
      const entry: CacheEntry = {
        key,
        taskName: manifest.taskName ?? run.tags["cairn.task"] ?? run.name,
        ingredients: manifest.ingredients,
        sourceRunId: run.runId,
        tracker: { kind: this.tracker.kind, uri: this.tracker.uri },
        outputs: { values: manifest.values, artifacts: manifest.artifacts },
        createdAt: run.endTime ?? run.startTime,
        sizeBytes: manifest.artifacts.reduce((n, a) => n + a.size, 0),
      };
      if (manifest.expiresAt !== undefined) {
        if (manifest.expiresAt <= Date.now()) return { expired: { at: manifest.expiresAt, entry } }; // past the task's ttl
        this.trackerExpiry.set(key, manifest.expiresAt);
      }
      return { entry };
    } catch {
      return undefined; // a run without a readable manifest is no cache entry
    } finally {
      if (readOnly) await rm(dir, { recursive: true, force: true });
    }
  }
}

/** How a task's miss is compared with its earlier entries: in its own words for what its code resolved to. */
export function diffOptionsOf(task: Pick<TaskDefinition, "describeResolved">): DiffOptions {
  const words = task.describeResolved;
  const checkouts = checkoutFolders();
  if (!words) return { checkouts };
  // A task's words never fail the comparison: the generic ones stand in.
  return {
    checkouts,
    resolvedChange: (before, after) => {
      try {
        return words(before, after);
      } catch {
        return undefined;
      }
    },
  };
}

/**
 * Where the project is checked out, as this process sees it: the working folder, and the nearest
 * folder at or above it that holds `.git`. A path input inside one that differs from an earlier
 * entry's only above it is said as a checkout path (see DiffOptions.checkouts). Found once per folder.
 */
function checkoutFolders(): string[] {
  const cwd = process.cwd();
  let found = checkouts.get(cwd);
  if (found === undefined) {
    found = [cwd];
    for (let dir = cwd; dirname(dir) !== dir; dir = dirname(dir)) {
      if (existsSync(join(dir, ".git"))) {
        if (dir !== cwd) found.push(dir);
        break;
      }
    }
    checkouts.set(cwd, found);
  }
  return found;
}

const checkouts = new Map<string, string[]>();

/** What the tracker holds for a key: its entry, or one past the task's ttl. */
type TrackerEntry = { entry: CacheEntry; expired?: undefined; bad?: undefined } | { entry?: undefined; expired: ExpiredEntry; bad?: undefined } | { entry?: undefined; expired?: undefined; bad: BadEntry };

/** A source run the tracker's answer to {@link TaskCache.checkSourceRuns} did not cover. */
const UNSETTLED = Symbol("unsettled");

/** How long an answer of checkSourceRuns stands for the source run's state, and a listing of the index for its names. */
const FRESH_ANSWER_MS = 10_000;

/**
 * How long a miss's reason waits for the store's listing (see {@link TaskCache.missReason}): a
 * large shared store (40,000 entries in redis: 1.3 s) must not hold the runs' closings for long.
 */
const MISS_REASON_LIST_MS = 5_000;

/**
 * Listings of whole stores (those without an index by task: redis, postgres) under way in this
 * process, by store: the runs that miss meanwhile, as a service's concurrent runs do, share one
 * instead of each reading every entry. Dropped once settled: a later run lists again. So a run
 * that joins a listing begun before it began compares with the entries made until the listing
 * began, not with the few made in between (a miss's reason explains; it decides nothing).
 */
const wholeListings = new Map<string, Promise<CacheEntry[]>>();

/** The store's entries, only read: the listing under way in this process if there is one (see {@link wholeListings}). */
function listWhole(store: CacheStore): Promise<CacheEntry[]> {
  const id = `${store.kind} ${store.location} ${store.namespace}`;
  let listing = wholeListings.get(id);
  if (!listing) {
    const begun = store.list({ keep: true });
    const drop = () => void (wholeListings.get(id) === begun && wholeListings.delete(id));
    begun.then(drop, drop);
    wholeListings.set(id, (listing = begun));
  }
  return listing;
}

/**
 * The store's entries of a task and, after them, those of the experiment's index the store does
 * not have (another machine's), newest first: what a miss is compared with.
 */
function withIndexed(stored: CacheEntry[], indexed: CacheEntry[]): CacheEntry[] {
  const known = new Set(stored.map((e) => e.key));
  return [...stored, ...indexed.filter((e) => !known.has(e.key))].sort((a, b) => b.createdAt - a.createdAt);
}

/** Where {@link TaskCache.earlier} keeps the one listing of a store without an index by task (no task name is empty). */
const ALL_TASKS = "";

/** What `promise` gives within `ms` (none: only if it has already settled), else undefined (the promise goes on). */
async function withinMs<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, ms), undefined);
    timer.unref();
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The experiment's index as read for {@link TaskCache.earlierEntries}: complete when listed, and every document read. */
interface IndexDocuments {
  byTask: Map<string, CacheEntry[]>;
  read: number;
  listed: number;
  /** Names listed and not read yet. */
  unread: Set<string>;
  /** By task: how many documents of its newest runs were read, once (see `readNewestOfTask`). */
  newest: Map<string, Promise<number>>;
  /** The index could be listed. */
  listedAll: boolean;
  /** A document could not be read. */
  failed: boolean;
}

/** What {@link TaskCache.failedRuns} found. */
export interface EndedRuns {
  /** The newest failed or cancelled run of each key found. */
  byKey: Map<string, RunRecord>;
  /**
   * Set when the search may have stopped short of an older such run: it looked among the
   * experiment's newest `runs` runs (`endedOnly`: its newest failed and cancelled runs).
   */
  bound?: { runs: number; endedOnly: boolean };
}

/** Failed and cancelled runs {@link TaskCache.failedRuns} reads, newest first: one search (one page on MLflow). */
const FAILED_RUNS_SEARCHED = 1000;

/**
 * The experiment's newest runs {@link TaskCache.failedRuns} looks among where runs are read one
 * by one (the embedded store): with few failures it would otherwise read every run file kept.
 */
const FAILED_RUNS_WITHIN = 2000;

/** Index documents {@link TaskCache.earlierEntries} reads first, at most: one request each. */
const INDEX_READS_MAX = 500;

/** The task's newest runs whose index documents {@link TaskCache.earlierEntries} reads too, when it could not read them all. */
const TASK_RUNS_SEARCHED = 50;

/** The cache entry an index document `name` holds, unless it does not parse or is past its ttl at `now`. */
function indexEntry(text: string, name: string, now: number): CacheEntry | undefined {
  const read = readIndexDocument(text, name.replace(/\.json$/, ""));
  return "entry" in read && (read.expiresAt === undefined || read.expiresAt > now) ? read.entry : undefined;
}

/**
 * The entry an index document of `key` holds, with its expiry; else what is wrong with it, in
 * words. Never the document's text: a damaged document may hold anything, a secret too.
 */
function readIndexDocument(text: string, key: string): { entry: CacheEntry; expiresAt?: number } | { problem: string } {
  if (!text.trim()) return { problem: "it is empty" };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { problem: `it is not valid JSON (${Buffer.byteLength(text)} bytes that do not parse: cut short, or written by something other than Cairn)` };
  }
  if (!isPlainObject(doc)) return { problem: `it holds ${jsonKind(doc)}, not a JSON object` };
  const { expiresAt, ...rest } = doc as unknown as IndexDocument;
  const problem = cacheEntryProblem(rest, key);
  if (problem !== undefined) return { problem: problem.replace(/^its stored value/, "its content") };
  if (expiresAt !== undefined && typeof expiresAt !== "number") return { problem: "its `expiresAt` is not a number of milliseconds" };
  return { entry: rest as CacheEntry, ...(expiresAt !== undefined ? { expiresAt } : {}) };
}

/** What kind of JSON value `value` is, without the value: "a JSON array", "a JSON string". */
function jsonKind(value: unknown): string {
  if (value === null) return "JSON null";
  return Array.isArray(value) ? "a JSON array" : `a JSON ${typeof value}`;
}

/** A cache entry as kept in the tracker's index. */
interface IndexDocument extends CacheEntry {
  /** Epoch ms after which the entry is stale (the task's `ttl`). */
  expiresAt?: number;
}

/** An artifact as its run holds it, whatever machine's path it has. */
function artifactId(a: Artifact): string {
  return `${a.runId ?? ""}\0${a.artifactPath}`;
}

/** The index document of a key. */
function indexName(key: string): string {
  return `${key}.json`;
}

/**
 * Removes the index document of `key`, after tagging its source run (`sourceRunId`, else the one
 * the document names) {@link CACHE_REMOVED_TAG}: a lookup that goes by tag search because the
 * index cannot be read (see {@link TaskCache.fromTracker}) would find that FINISHED run again and
 * hit it. The tag is a best effort (its run may be gone): the document goes whatever became of it.
 */
async function removeIndexEntry(tracker: Tracker, experimentId: string, key: string, sourceRunId?: string): Promise<void> {
  const source = sourceRunId ?? (await tracker.readIndexEntry?.(experimentId, indexName(key)).then(sourceRunOf, () => undefined));
  if (source !== undefined) await tracker.logBatch(source, { tags: { [CACHE_REMOVED_TAG]: new Date().toISOString() } }).catch(() => undefined);
  await tracker.deleteIndexEntry!(experimentId, indexName(key));
}

/** The source run an index document names, if it can be read as naming one. */
function sourceRunOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    const { sourceRunId } = JSON.parse(text) as { sourceRunId?: unknown };
    return typeof sourceRunId === "string" && sourceRunId ? sourceRunId : undefined;
  } catch {
    return undefined; // a damaged document: nothing to tag, it is removed all the same
  }
}

/** What {@link removeIndexEntries} did in one experiment's index. */
export interface IndexCleanup {
  experimentId: string;
  /** The experiment's name, for people. */
  experiment: string;
  /** Index documents of the keys removed. */
  removed: number;
  /** Documents of the keys that stay, and why (the tracker cannot delete them, or a delete failed). */
  kept: number;
  keptBecause?: string;
  /** Documents of other keys in the index. */
  others: number;
}

/**
 * Removes the index documents of `keys` from every experiment's index of `tracker` (see
 * `Tracker.writeIndexEntry`): what `cairn cache clear` and `prune` remove from the store would
 * otherwise be found there by the next run. Lists each experiment's index once, then deletes what
 * matches. With `taskName` (`cairn cache clear --task`), also every key of that task's runs in
 * the experiment, whether or not the store had it (an entry another machine's store made): the
 * index's documents are named by key alone, so it is the runs that are searched by the task's
 * tag, one search of an experiment whose index holds anything, rather than each document read.
 * An experiment without an index (its artifacts not proxied) is left out. Resolves to each
 * experiment whose index holds anything. A tracker without an index resolves to [].
 */
export async function removeIndexEntries(tracker: Tracker, keys: ReadonlySet<string>, options: { taskName?: string } = {}): Promise<IndexCleanup[]> {
  if (!tracker.readIndexEntry || !tracker.listIndexEntries || !tracker.listExperiments) return [];
  const out: IndexCleanup[] = [];
  for (const { experimentId, name } of await tracker.listExperiments()) {
    const names = await tracker.listIndexEntries(experimentId).catch(() => undefined);
    if (!names?.length) continue;
    const wanted = options.taskName === undefined ? keys : new Set([...keys, ...(await keysOfTask(tracker, experimentId, options.taskName))]);
    const matching = names.filter((n) => n.endsWith(".json") && wanted.has(n.slice(0, -".json".length)));
    const cleanup: IndexCleanup = { experimentId, experiment: name, removed: 0, kept: 0, others: names.length - matching.length };
    if (!tracker.deleteIndexEntry) {
      cleanup.kept = matching.length;
      cleanup.keptBecause = `the ${tracker.kind} tracker cannot remove index documents`;
    }
    // A few at a time: a server is not sent thousands of requests at once.
    for (let i = 0; tracker.deleteIndexEntry && i < matching.length; i += 16) {
      const results = await Promise.allSettled(matching.slice(i, i + 16).map((n) => removeIndexEntry(tracker, experimentId, n.slice(0, -".json".length))));
      for (const r of results) {
        if (r.status === "fulfilled") cleanup.removed++;
        else {
          cleanup.kept++;
          cleanup.keptBecause ??= (r.reason as Error).message;
        }
      }
    }
    out.push(cleanup);
  }
  return out;
}

/**
 * The cache keys of task `taskName`'s runs in the experiment: those that stored an entry
 * ({@link CACHE_KEY_TAG}) and the hits ({@link HIT_KEY_TAG}); every run of the task, page by page.
 */
async function keysOfTask(tracker: Tracker, experimentId: string, taskName: string): Promise<string[]> {
  const runs = await tracker.searchRuns({ experimentIds: [experimentId], tags: { [TASK_TAG]: taskName }, maxResults: Number.MAX_SAFE_INTEGER });
  return runs.flatMap((r) => [r.tags[CACHE_KEY_TAG], r.tags[HIT_KEY_TAG]].filter((k): k is string => k !== undefined));
}

/** The inputs with each one `files` names as `{ $file: <content digest>, path: <its value> }` (see TaskDefinition.inputFiles). */
function withFileContents(inputs: Record<string, unknown>, files: Readonly<Record<string, string>>): Record<string, unknown> {
  const named = Object.keys(files).filter((name) => Object.hasOwn(inputs, name) && typeof files[name] === "string");
  if (!named.length) return inputs;
  const out = { ...inputs };
  for (const name of named) out[name] = { $file: files[name], path: inputs[name] };
  return out;
}

/**
 * `inputs` with each input that holds a secret known to the run replaced by a slow digest of its
 * value (see `privateDigest`): the key and the ingredients recorded with it are written to the
 * cache and to MLflow, and a sha256 of a short secret could be reversed by guessing.
 */
async function digestSecrets(inputs: Record<string, unknown>, secrets: Pick<SecretRegistry, "find"> | undefined): Promise<Record<string, unknown>> {
  if (!secrets) return inputs;
  const holding = Object.entries(inputs).filter(([, value]) => secrets.find(value) !== undefined);
  if (!holding.length) return inputs;
  // Side by side on the thread pool.
  const digests = await Promise.all(holding.map(([, value]) => privateDigestAsync(hashValue(value), "input")));
  const digested = { ...inputs };
  holding.forEach(([name], i) => (digested[name] = { "cairn.secret_digest": digests[i] }));
  return digested;
}

/**
 * Where this root keeps an artifact of a run: the tracker's folder, the work folder's
 * `artifacts/<run>/`, its `downloads/<run>/` last; undefined for one without a run or with unsafe names.
 */
function artifactHomes(a: Artifact, tracker: Tracker, workDir: string): string[] | undefined {
  if (a.runId === undefined) return undefined;
  let runDir: string;
  let parts: string[];
  try {
    runDir = safePathSegment(a.runId, { source: "a cache entry" });
    parts = safeRelativePath(a.artifactPath, { source: "a cache entry" }).split("/");
  } catch {
    return undefined;
  }
  const homes = [join(resolvePath(workDir, "artifacts"), runDir, ...parts), join(workDir, "downloads", runDir, ...parts)];
  if (hasLocalArtifacts(tracker)) homes.unshift(join(tracker.artifactDir(runDir), ...parts));
  return homes;
}

/** True when `a.path` is where this root keeps it (see {@link artifactHomes}); also for one whose names cannot be checked here. */
function atHome(a: Artifact, tracker: Tracker, workDir: string): boolean {
  const homes = artifactHomes(a, tracker, workDir);
  return !homes || homes.some((home) => resolvePath(home) === resolvePath(a.path));
}

/**
 * Places the file or folder at `from` (another root's copy of the artifact on this machine: a
 * worker's `--root`) at `copy` in this root's downloads, hard-linked file by file (free on one
 * file system, and it outlives the other root's cleanup), copied where links cannot be made.
 * True when it was placed and its digest is `digest`; false (nothing placed) when it is not:
 * the other copy was edited or removed since, and the artifact is downloaded from its run instead.
 */
async function placeLocalCopy(from: string, copy: string, digest: string): Promise<boolean> {
  const partial = partialPath(copy);
  try {
    await linkTree(from, partial);
    if ((await describePath(partial)).digest !== digest) return false;
    await rename(partial, copy).catch((error: NodeJS.ErrnoException) => {
      // A folder there now was placed whole by another process: keep it.
      if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
    });
    return true;
  } catch {
    return false;
  } finally {
    await rm(partial, { recursive: true, force: true }).catch(() => {});
  }
}

/**
 * `to` as a copy of the file or folder `from`, each file a hard link, or a copy across file
 * systems. Anything else (a device, a pipe, a link: the path is data from another process) is refused.
 */
async function linkTree(from: string, to: string): Promise<void> {
  const what = await lstat(from);
  if (what.isFile()) {
    await link(from, to).catch(() => copyFile(from, to));
    return;
  }
  if (!what.isDirectory()) throw new Error(`${from} is not a file or a folder`);
  await mkdir(to);
  for (const entry of await readdir(from, { withFileTypes: true })) await linkTree(join(from, entry.name), join(to, entry.name));
}

/**
 * The folder artifact `artifactPath` of run `runId` placed at `copy` whole, with the empty folders
 * its record names (`folders`, see Artifact.emptyFolders), which a tracker that stores files alone
 * (MLflow) does not give back: downloaded into a partial folder beside `copy` (nothing is asked of
 * the tracker when the folder holds no file at all), the folders made in it, then renamed to
 * `copy`, so that no process meets the folder before they are there. A folder placed there by
 * another process meanwhile is kept. The names are data from a record: checked before they become paths.
 */
async function downloadWithEmptyFolders(tracker: Tracker, runDir: string, artifactPath: string, copy: string, folders: readonly string[], from: PathSource): Promise<string> {
  const names = folders.filter((name) => name !== ".").map((name) => safeRelativePath(name, from).split("/"));
  const partial = partialPath(copy);
  try {
    await mkdir(partial);
    const placed = folders.includes(".") ? join(partial, "folder") : await tracker.downloadArtifact(runDir, artifactPath, partial);
    await mkdir(placed, { recursive: true });
    for (const parts of names) await mkdir(join(placed, ...parts), { recursive: true });
    await rename(placed, copy).catch((error: NodeJS.ErrnoException) => {
      // A folder there now was placed whole by another process: keep it.
      if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
    });
    return copy;
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
}

/**
 * True when `path` is a folder whose files' bytes add up to `size`: a download of a folder recorded
 * by an older Cairn, whose digest counted the empty folders MLflow does not keep, that differs in
 * nothing a listing of files can tell (see ArtifactMismatchError).
 */
async function allFileBytes(path: string, size: number | undefined): Promise<boolean> {
  const described = await describePath(path).catch(() => undefined);
  return described?.kind === "folder" && size !== undefined && described.sizeBytes === size;
}

function artifactDigest(a: Artifact): string | Promise<string> {
  return a.digest ?? describePath(a.path).then((d) => d.digest);
}

/**
 * `value` with every Artifact readable on this machine: one whose `path` does not exist here
 * (recorded on another machine, found through the MLflow index) is downloaded from its run into
 * `<workDir>/downloads/<run id>/<artifact path>`, or taken from there when an earlier download
 * with the same digest is present (one with another digest is removed and downloaded again),
 * and its `path` points at the local copy. One whose `path` is another root's on this machine
 * (a worker's `--root`) is placed there too, hard-linked, when its digest is the artifact's
 * (else downloaded). Artifacts where this root keeps them, or that no tracker can give, are left as they are. Used for a task's inputs and for the
 * flow's outputs, so that what a task reads and what the user is handed are local files.
 * A download whose digest is not the artifact's (the server's copy changed or damaged) is removed
 * and rejects with an ArtifactMismatchError, which ends with what `onMismatch` says it did about it;
 * so does a download refused for a name in the server's listing of a folder, with an UnsafePathError.
 */
export async function localArtifacts<T>(
  value: T,
  tracker: Tracker,
  workDir: string,
  taskName?: string,
  onMismatch?: (artifact: Artifact) => Promise<string>,
  /** Where a download's stat is stamped with its digest, so that a later hit need not read it (see ArtifactStamps). */
  stamps?: ArtifactStamps,
): Promise<T> {
  if (!tracker.capabilities.records) return value;
  const fetches: Promise<void>[] = [];
  const walk = (v: unknown): unknown => {
    if (isArtifact(v)) {
      const out = { ...v } as { -readonly [K in keyof Artifact]: Artifact[K] };
      fetches.push(
        (async () => {
          const present = await pathExists(v.path);
          // Where this root keeps it: used as it is, unread (a hit in one root costs no hashing).
          if (present && atHome(v, tracker, workDir)) return;
          if (!v.runId) return;
          // Both come from a cache entry or another machine's record: names, checked before they become a path.
          const from = { ...(taskName !== undefined ? { taskName } : {}), source: `the record of run ${JSON.stringify(v.runId)}` };
          const runDir = safePathSegment(v.runId, from);
          const artifactPath = safeRelativePath(v.artifactPath, from);
          const parts = artifactPath.split("/");
          const dest = join(workDir, "downloads", runDir, ...parts.slice(0, -1));
          const copy = join(dest, parts.at(-1)!);
          if (await pathExists(copy)) {
            // A copy that vanishes while it is read (another process discards it) is no match.
            if (v.digest && (await describeCopy(copy, v.runId, stamps).then((d) => d.digest, () => undefined)) === v.digest) {
              out.path = copy;
              return;
            }
            // An older download that is not this artifact (half a folder, edited): a download
            // keeps a folder it finds in place, so this one goes first.
            await discardCopy(copy);
          }
          await makeFolder(dest);
          // Another root's copy on this machine (a worker's --root): placed in this root's
          // downloads, where the other root's cleanup or edits cannot reach the path handed on.
          if (present && v.digest && (await placeLocalCopy(v.path, copy, v.digest))) {
            out.path = copy;
            return;
          }
          // Not an array: a record damaged or written by hand, taken as one without them.
          const folders = Array.isArray(v.emptyFolders) ? v.emptyFolders : undefined;
          const download = folders?.length
            ? downloadWithEmptyFolders(tracker, runDir, artifactPath, copy, folders, from)
            : tracker.downloadArtifact(runDir, artifactPath, dest);
          const downloaded = await download.catch(async (error: unknown) => {
            // A name in the server's listing of a folder that cannot become a path here: the
            // entry is unusable on every machine, so it is evicted, as one whose name is refused at lookup.
            if (!UnsafePathError.is(error) || !onMismatch) throw error;
            const outcome = await onMismatch(v).catch((e: unknown) => `Its cache entries could not be evicted: ${(e as Error).message}`);
            throw new UnsafePathError(error.artifactName, error.reason, error.source, error.taskName ?? taskName, outcome, error.refused);
          });
          if (v.digest) {
            // What the server hands over is checked as a copy on disk is: a task never reads other bytes than its record names.
            const got = (await describeCopy(downloaded, v.runId, stamps)).digest;
            if (got !== v.digest) {
              const filesWhole = folders === undefined && (await allFileBytes(downloaded, v.size));
              await discardCopy(downloaded);
              const outcome = (await onMismatch?.(v).catch((e: unknown) => `Its cache entries could not be evicted: ${(e as Error).message}`)) ?? "";
              throw new ArtifactMismatchError(artifactPath, v.runId, redactUri(tracker.uri), v.digest, got, outcome, taskName, filesWhole);
            }
          }
          out.path = downloaded;
        })(),
      );
      return out;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (isPlainObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  const result = walk(value) as T;
  await Promise.all(fetches);
  return result;
}

/** What {@link TaskCache.verify} found: why an entry cannot be used, or where to read what it holds. */
type Verdict = { problem: string; runGone?: true; moved?: undefined; edited?: undefined } | { problem?: undefined; moved: Map<Artifact, string>; edited: string[] };

/** `entry` with the artifacts `moved` names at their new paths; the entry itself when none moved. */
function withPaths(entry: CacheEntry, moved: ReadonlyMap<Artifact, string>): CacheEntry {
  if (!moved.size) return entry;
  const walk = (v: unknown): unknown =>
    isArtifact(v) ? (moved.has(v) ? { ...v, path: moved.get(v)! } : v) : Array.isArray(v) ? v.map(walk) : isPlainObject(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)])) : v;
  return { ...entry, outputs: { ...entry.outputs, values: walk(entry.outputs.values) } };
}

/** A usable entry as a lookup answers it: with the warning about its edited artifacts, when any. */
function withEdited(checked: { entry: CacheEntry; edited?: string }): { entry: CacheEntry; edited?: string } {
  return checked.edited !== undefined ? { entry: checked.entry, edited: checked.edited } : { entry: checked.entry };
}

/** What a task's log says of a hit whose artifacts were edited where this root keeps them (see TaskCache.verify). */
function editedWarning(files: string[]): string {
  const one = files.length === 1;
  return (
    `${one ? "its artifact" : "its artifacts"} ${files.join(", ")} ${one ? "was" : "were"} edited in place since ${one ? "it was" : "they were"} cached ` +
    `(the bytes are no longer the ones the cache entry records): the recorded ${one ? "one is" : "ones are"} downloaded from ${one ? "its" : "their"} run into this root's downloads and handed on instead, ` +
    `and the edited ${one ? "file is" : "files are"} left as ${one ? "it is" : "they are"}. Force the task to run again to replace the entry with what it writes now.`
  );
}

/** A copy's digest, stamped in `stamps` when given (a copy found unchanged since its stamp is not read). */
async function describeCopy(path: string, runId: string, stamps: ArtifactStamps | undefined): Promise<{ digest: string }> {
  if (!stamps) return describePath(path);
  const info = await stat(path, { bigint: true });
  return stamps.digestOf(path, runId, info, { record: true });
}

/** What a message says of the files changed in a folder artifact since it was stamped: a few names of each kind. */
function changesWords(changes: FolderChanges): string {
  const named = (names: string[], how: string) => {
    if (!names.length) return [];
    const shown = names.slice(0, CHANGED_NAMES_SHOWN).join(", ");
    return [`${shown}${names.length > CHANGED_NAMES_SHOWN ? ` and ${names.length - CHANGED_NAMES_SHOWN} more` : ""} ${how}`];
  };
  const parts = [...named(changes.edited, "changed"), ...named(changes.added, "added"), ...named(changes.removed, "removed")];
  return `in the folder: ${parts.join("; ")}`;
}

/** Names of each kind a message lists (a folder of thousands of files edited whole would bury the message). */
const CHANGED_NAMES_SHOWN = 5;

/** Why the names in an entry cannot become paths (an UnsafePathError's message), or undefined when all can. */
function unsafeNames(entry: CacheEntry, artifacts: Artifact[]): string | undefined {
  const from = { taskName: entry.taskName, source: `the cache entry of key ${entry.key}` };
  try {
    safePathSegment(entry.sourceRunId, from);
    for (const a of artifacts) {
      if (a.runId !== undefined) safePathSegment(a.runId, from);
      safeRelativePath(a.artifactPath, from);
      if (Array.isArray(a.emptyFolders)) for (const name of a.emptyFolders as unknown[]) if (name !== ".") safeRelativePath(name, from);
    }
    for (const record of entry.outputs.artifacts) safeRelativePath(record.artifactPath, from);
  } catch (error) {
    if (UnsafePathError.is(error)) return error.message;
    throw error;
  }
  return undefined;
}

function collectArtifacts(value: unknown, out: Artifact[]): void {
  if (isArtifact(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) collectArtifacts(v, out);
  else if (isPlainObject(value)) for (const v of Object.values(value)) collectArtifacts(v, out);
}

/**
 * Removes a copy in the downloads folder: renamed aside first (a partial name, swept by a later
 * download if this process dies before the removal ends), so no process sees it half removed.
 */
async function discardCopy(path: string): Promise<void> {
  const aside = partialPath(path);
  try {
    await rename(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return; // another process discarded it first
    throw error;
  }
  await rm(aside, { recursive: true, force: true });
}

/** The sha256 of no bytes: an empty file's digest, never a folder's (its digest starts from "cairn-folder-v1"). */
const EMPTY_FILE_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * True for a folder recorded by an older Cairn (no `emptyFolders`) that held no file: 0 bytes,
 * and a digest that is no empty file's. MLflow's artifact store keeps files alone, so the server
 * has nothing of it to list, and that alone may be why it is missing (see ArtifactMismatchError's
 * `mayBeEmptyFolders`, for one whose files arrived).
 */
function olderFolderOfEmptyFolders(artifact: Artifact): boolean {
  return !Array.isArray(artifact.emptyFolders) && artifact.size === 0 && typeof artifact.digest === "string" && artifact.digest !== EMPTY_FILE_SHA256;
}

const OLDER_EMPTY_FOLDERS =
  ": it is a folder recorded by an older Cairn that held no file, and whose record does not name the empty folders in it; MLflow's artifact store keeps no empty folder, " +
  "so the server has nothing of it to list, and that alone may be the whole difference (the server's copy need not be changed or damaged). " +
  "A run of the task now records its empty folders with it, and its entry is a hit on every machine";

/** A declared code file as {@link TaskCache.keyFor} read it: a file's digest and stat, a folder's digest and listing. */
interface CodeRead {
  readonly name: string;
  readonly path: string;
  readonly read: ReadFile | { readonly digest: string; readonly listing: string | undefined };
}

/**
 * A declared code file or folder described as code, with what lets a later check skip reading it
 * again: a file's stat around the read, a folder's listing (its files' stats, what its digest
 * leaves out left out, as is `leftOut`: see {@link TaskCache.writesTo}) when the walk's and one
 * taken after the digest are the same.
 */
async function describedCode(path: string, leftOut: readonly string[]): Promise<{ digest: string; files?: Record<string, string> | number; read: CodeRead["read"] }> {
  if (!(await stat(path)).isDirectory()) {
    const read = await readStamped(path, async (p) => (await describePath(p, { code: true })).digest);
    return { digest: read.digest, read };
  }
  const { description, listing } = await describeCodeFolder(path, leftOut);
  const before = JSON.stringify(listing);
  const after = JSON.stringify(await listFolder(path, { code: true, leftOut }).catch(() => undefined));
  return { ...description, read: { digest: description.digest, listing: before === after ? before : undefined } };
}

/** Whether a declared code file or folder no longer holds what `read` was read from (see {@link describedCode}). */
async function codeEditedSince(path: string, read: CodeRead["read"], leftOut: readonly string[]): Promise<boolean> {
  const digest = async (p: string) => (await describePath(p, { code: true, leftOut })).digest;
  if ("stamp" in read) return editedSince(path, read, digest);
  if (read.listing !== undefined && JSON.stringify(await listFolder(path, { code: true, leftOut }).catch(() => undefined)) === read.listing) return false;
  return (await digest(path).catch(() => undefined)) !== read.digest;
}
