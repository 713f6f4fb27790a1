/**
 * The record stage of a task: its run in the tracker (a child run of the flow run), its
 * inputs as params, its outputs manifest and artifacts, its error, its end; and the run of a
 * cache hit, recorded FINISHED and tagged with the run it came from.
 */
import { dirname, resolve as resolvePath } from "node:path";
import type { CacheEntry } from "@cairn/cache";
import { CACHED_FROM_NAME_TAG, CACHED_FROM_TAG, type StoredManifest } from "../caching/task-cache.ts";
import { isArtifact } from "../definition/artifact.ts";
import type { FlowNode } from "../definition/flow-definition.ts";
import type { ErrorInfo } from "../run/events.ts";
import type { SecretRegistry } from "../run/secrets.ts";
import type { RunRecorder } from "../tracking/run-recorder.ts";
import { hasLocalArtifacts, writeRunFiles } from "../tracking/run-files.ts";
import type { Tracker } from "../tracking/tracker.ts";

/** Where the task runs of one flow run are recorded. */
export interface RecordScope {
  readonly tracker: Tracker;
  readonly experimentId: string;
  readonly flowRunId: string;
  readonly flowName: string;
  /** Folder for task artifacts when the tracker keeps none locally. */
  readonly workDir: string;
  readonly secrets: SecretRegistry;
  /** Tags every task run carries, in its create request: MLflow's source tags (`mlflow.source.name`, `mlflow.user`, ...). */
  readonly runTags?: Readonly<Record<string, string>>;
}

/** createRun options for the null tracker, which ignores them: no tags object per task. */
const NO_RUN = { experimentId: "0", name: "" };

/** The tag a failed task's run carries: its error's name and message, masked. */
export const ERROR_TAG = "cairn.error";

/** Creates the task's run (RUNNING), before its first attempt. */
export function createTaskRun(scope: RecordScope, node: FlowNode): string | Promise<string> {
  const { tracker } = scope;
  const id = node.id;
  const records = tracker.capabilities.records;
  // A tracker that records nothing hands out ids with no round trip through a promise.
  if (!records && tracker.newRunId) return tracker.newRunId();
  return tracker.createRun(!records ? NO_RUN : {
    experimentId: scope.experimentId,
    name: id,
    parentRunId: scope.flowRunId,
    tags: {
      ...scope.runTags,
      "cairn.flow": scope.flowName,
      "cairn.task": node.task.name,
      "cairn.node_id": id,
      "cairn.task_kind": node.task.kind,
      ...(node.task.version ? { "cairn.task_version": node.task.version } : {}),
    },
  });
}

/** Longest input value logged as a param; longer ones go whole to `cairn/inputs.json`. */
const PARAM_VALUE_LIMIT = 500;

/**
 * Inputs become params: scalars as they are, artifacts as `runs:/<run>/<path>` URIs,
 * small structured values as JSON. No value is ever cut: when one is too long, its
 * param points at the artifact `cairn/inputs.json`, which holds all inputs whole.
 * Returns that file's content when it is needed.
 */
export function logInputs(recorder: RunRecorder, inputs: Record<string, unknown>, secrets: SecretRegistry): string | undefined {
  let needsFile = false;
  for (const key in inputs) {
    const value = inputs[key];
    let text: string;
    if (value === undefined) continue;
    if (typeof value === "string") text = value;
    else if (typeof value === "number" || typeof value === "boolean") text = String(value);
    else if (isArtifact(value)) text = value.runId ? `runs:/${value.runId}/${value.artifactPath}` : value.path;
    else text = JSON.stringify(value);
    if (text.length > PARAM_VALUE_LIMIT) {
      needsFile = true;
      text = "(too long for a param: see artifact cairn/inputs.json)";
    }
    // Masked by the recorder: inputs wired from literals, or from a param that carries a secret read from
    // the environment before it was known, may hold one. Masked, not refused: the task did not put it there.
    recorder.param(key, text);
  }
  return needsFile ? secrets.mask(JSON.stringify(inputs, null, 2)) : undefined;
}

/** `Name: message`, cut to fit a tag (MLflow keeps 8000 characters). */
export function errorTag(error: ErrorInfo): string {
  const text = `${error.name}: ${error.message}`;
  return text.length > 4000 ? `${text.slice(0, 3999)}…` : text;
}

/** Ends the task's run: what it logged, its outputs manifest and artifacts (when it succeeded), its status. */
export async function finishTaskRun(
  scope: RecordScope,
  runId: string,
  recorder: RunRecorder,
  attempts: number,
  status: "FINISHED" | "FAILED" | "KILLED",
  manifest?: StoredManifest,
): Promise<void> {
  const { tracker } = scope;
  if (!tracker.capabilities.records) return;
  recorder.tag("cairn.attempts", String(attempts));
  await recorder.flush();
  if (manifest !== undefined) {
    if (!hasLocalArtifacts(tracker)) await uploadArtifacts(tracker, runId, manifest.values, resolvePath(scope.workDir, "artifacts", runId));
    await writeRunFiles(tracker, runId, "cairn", { "outputs.json": JSON.stringify(manifest, null, 2) });
  }
  await tracker.endRun(runId, status);
}

async function uploadArtifacts(tracker: Tracker, runId: string, outputs: unknown, localRoot: string): Promise<void> {
  const uploads: Promise<void>[] = [];
  const visit = (v: unknown) => {
    if (isArtifact(v)) {
      if (v.runId === runId && v.path.startsWith(localRoot)) {
        const folder = dirname(v.artifactPath);
        uploads.push(tracker.logArtifact(runId, v.path, folder === "." ? undefined : folder));
      }
    } else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === "object") Object.values(v).forEach(visit);
  };
  visit(outputs);
  await Promise.all(uploads);
}

/** The tag that says what happened to a task; a hit's run carries `cached`. */
export const STATUS_TAG = "cairn.status";

/**
 * Records a cache hit as a FINISHED run tagged `cairn.status=cached` and with its source
 * (`cairn.cached_from`: the id, `cairn.cached_from.name`: its name when known), all in the
 * create request: a search can filter hits and follow them to their source, whose params and
 * metrics are not copied (a request per hit). `result.runId` is set when the run exists; with
 * a server that happens in the background (`background` holds the promise: the flow waits for
 * it at its end), so dependants do not wait for it.
 */
export async function recordHit(
  scope: RecordScope,
  node: FlowNode,
  entry: CacheEntry,
  result: { runId?: string },
  background: Set<Promise<void>>,
  warn: (task: string, message: string) => void,
  sourceName?: string,
): Promise<void> {
  const { tracker } = scope;
  if (!tracker.capabilities.records) return;
  const run = {
    experimentId: scope.experimentId,
    name: node.id,
    parentRunId: scope.flowRunId,
    tags: {
      ...scope.runTags,
      "cairn.flow": scope.flowName,
      "cairn.task": node.task.name,
      "cairn.node_id": node.id,
      "cairn.task_kind": node.task.kind,
      ...(node.task.version ? { "cairn.task_version": node.task.version } : {}),
      [STATUS_TAG]: "cached",
      [CACHED_FROM_TAG]: entry.sourceRunId,
      ...(sourceName !== undefined ? { [CACHED_FROM_NAME_TAG]: sourceName } : {}),
      "cairn.cache_hit_key": entry.key,
    },
  };
  const inBackground = (work: Promise<void>) => {
    background.add(work);
    void work.finally(() => background.delete(work));
  };
  if (tracker.recordRun && tracker.capabilities.remote) {
    // A server: the hit is complete now, and its run (two requests) is recorded in the
    // background, so dependants do not wait for it. The flow waits for all at its end.
    inBackground(
      tracker.recordRun({ ...run, status: "FINISHED" }).then(
        (runId) => void (result.runId = runId),
        (e: unknown) => warn(node.id, `could not record the cache hit's run: ${(e as Error).message}`),
      ),
    );
  } else if (tracker.recordRun) {
    // One step, already FINISHED: the embedded store appends the hits recorded at once in one write.
    result.runId = await tracker.recordRun({ ...run, status: "FINISHED" });
  } else {
    const runId = await tracker.createRun(run);
    result.runId = runId;
    // The hit is complete once its run exists; ending it (a request) goes on in the
    // background, so dependants do not wait for it. The flow waits for all at its end.
    inBackground(tracker.endRun(runId, "FINISHED").catch((e: unknown) => warn(node.id, `could not record the cache hit's run ${runId} as FINISHED: ${(e as Error).message}`)));
  }
}
