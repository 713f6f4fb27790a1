/**
 * Large task inputs travel beside the queue, as large outputs do (outputs-by-reference.ts): a job
 * is one value in Redis, kept there (and copied by BullMQ) while the task waits and runs, and
 * Redis refuses a value over 512 MB. The coordinator leaves inputs whose JSON is over
 * {@link INLINE_OUTPUTS_BYTES} in its flow run in MLflow, which every worker of a queue reaches
 * (the task's own run does not exist yet: its worker opens it), and the job names that file; the
 * worker reads it before the task starts, and the coordinator removes it once no worker can take
 * the job any more (its outcome is in, or it was removed), as the job itself is. Inputs that carry a secret the run knows are never written there
 * (MLflow keeps what it is given): they travel in the job, as every input did before.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MlflowApiError, type Tracker, writeRunFiles } from "@cairn/core";
import { QueueInputsUnreadableError, type WorkerIdentity } from "./errors.ts";
import { type InputsReference, type JobData, restoreNegativeZeros } from "./job.ts";
import { INLINE_OUTPUTS_BYTES, jsonBytesOver } from "./outputs-by-reference.ts";

/** The folder of a flow run's artifacts that holds the inputs of its queued tasks while they wait and run. */
export const INPUTS_FOLDER = "cairn/queued-inputs";

/** The file of task `nodeId`'s inputs in its flow run: readable, and one per task whatever its id holds (a map item's `[3]`). */
export function inputsFile(nodeId: string): string {
  const readable = nodeId.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 60);
  return `${readable}-${createHash("sha256").update(nodeId).digest("hex").slice(0, 12)}.json`;
}

/**
 * The coordinator's side: `data` as it goes into Redis, its inputs left in its flow run when
 * their JSON is over `limit` (and they carry no secret, and the run records to `tracker`).
 * Rejects with the tracker's error when they cannot be written, and with a RangeError when
 * their JSON is longer than Node's longest string.
 */
export async function sendInputs(data: JobData, tracker: Tracker | undefined, limit = INLINE_OUTPUTS_BYTES): Promise<JobData> {
  if (!tracker || data.inputsCarrySecret || !jsonBytesOver(data.inputs, limit)) return data;
  const file = inputsFile(data.nodeId);
  await writeRunFiles(tracker, data.flowRunId, INPUTS_FOLDER, { [file]: JSON.stringify(data.inputs) });
  return { ...data, inputs: {}, inputsIn: { runId: data.flowRunId, path: `${INPUTS_FOLDER}/${file}` } };
}

/**
 * The coordinator's side, once no worker can take the job any more (its outcome is in, it was
 * removed, or it was never sent): its inputs' file leaves the flow run. Not while the job may
 * still be in Redis (see the dispatcher's settle): a worker that took it would find no inputs.
 */
export async function dropInputs(data: JobData, tracker: Tracker | undefined): Promise<void> {
  if (!data.inputsIn || !tracker?.deleteArtifact) return;
  // Left in the flow run when MLflow does not answer now: a file of a run, never read again.
  await tracker.deleteArtifact(data.inputsIn.runId, data.inputsIn.path).catch(() => {});
}

/**
 * The worker's side: the task's inputs, read from the flow run when they were sent by reference
 * (with their -0 put back, see JobData.negativeZeros). Throws QueueInputsUnreadableError, which
 * says where they are and what to check, when they cannot be read.
 */
export async function receivedInputs(data: JobData, tracker: Tracker, worker: WorkerIdentity): Promise<Record<string, unknown>> {
  const ref = data.inputsIn;
  if (ref === undefined) return data.inputs;
  let dir: string | undefined;
  try {
    if (!isInputsReference(ref)) throw new Error(`the job names no inputs file of ${INPUTS_FOLDER}/ (${JSON.stringify(ref)})`);
    dir = await mkdtemp(join(tmpdir(), "cairn-inputs-"));
    const text = await readFile(await tracker.downloadArtifact(ref.runId, ref.path, dir), "utf8");
    const inputs = JSON.parse(text) as unknown;
    if (inputs === null || typeof inputs !== "object" || Array.isArray(inputs)) throw new Error(`${ref.path} holds no inputs object`);
    return restoreNegativeZeros({ ...data, inputs: inputs as Record<string, unknown> }).inputs;
  } catch (cause) {
    const shown = isInputsReference(ref) ? ref : { runId: String((ref as { runId?: unknown })?.runId), path: String((ref as { path?: unknown })?.path) };
    throw new QueueInputsUnreadableError(data.nodeId, shown, tracker.uri, worker, INLINE_OUTPUTS_BYTES, { cause, removed: MlflowApiError.is(cause) && cause.status === 404 });
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/** A reference this module made: a run id, and a file of {@link INPUTS_FOLDER} (a crafted job names nothing else of MLflow's). */
function isInputsReference(ref: unknown): ref is InputsReference {
  const { runId, path } = (ref ?? {}) as { runId?: unknown; path?: unknown };
  return typeof runId === "string" && /^[A-Za-z0-9_-]+$/.test(runId) && typeof path === "string" && path.startsWith(`${INPUTS_FOLDER}/`) && /^[A-Za-z0-9_.-]+\.json$/.test(path.slice(INPUTS_FOLDER.length + 1));
}
