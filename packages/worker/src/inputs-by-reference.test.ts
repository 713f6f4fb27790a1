import { mkdir, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import { MlflowApiError, type Tracker } from "@cairn/core";
import { type JobData, withNegativeZerosNoted } from "./job.ts";
import { dropInputs, INPUTS_FOLDER, receivedInputs, sendInputs } from "./inputs-by-reference.ts";
import { INLINE_OUTPUTS_BYTES } from "./outputs-by-reference.ts";

/** A tracker that keeps a run's text files in memory, as MLflow keeps a run's artifacts. */
function memoryTracker() {
  const files = new Map<string, string>();
  const tracker = {
    uri: "http://user:pw@mlflow-host:5000",
    capabilities: { records: true, localArtifacts: false, sharedRuns: true, mlflowClients: true, remote: true },
    logText: async (runId: string, path: string, text: string) => void files.set(`${runId}/${path}`, text),
    deleteArtifact: async (runId: string, path: string) => void files.delete(`${runId}/${path}`),
    downloadArtifact: async (runId: string, path: string, dir: string) => {
      const text = files.get(`${runId}/${path}`);
      if (text === undefined) throw new MlflowApiError(`mlflow-artifacts GET ${path}`, 404, "RESOURCE_DOES_NOT_EXIST", `no artifact ${path}`, runId);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, basename(path)), text);
      return join(dir, basename(path));
    },
  } as unknown as Tracker;
  return { tracker, files };
}

const job = (inputs: Record<string, unknown>, extra: Partial<JobData> = {}) => ({ flowRunId: "flowrun1", nodeId: "train[3]", inputs, params: {}, ...extra }) as unknown as JobData;
const worker = { id: "host-a-42-abcd1234", host: "host-a" };

describe("inputs by reference", () => {
  it("large inputs go to a file of the flow run, and the job names it; the worker reads them back whole, -0 and all; the file goes once the outcome is in", async () => {
    const { tracker, files } = memoryTracker();
    const inputs = { rows: Array.from({ length: 20_000 }, (_, i) => `row-${i}-${"x".repeat(60)}`), lr: -0 };
    const sent = await sendInputs(withNegativeZerosNoted(job(inputs)), tracker);
    expect(sent.inputs).toEqual({});
    expect(sent.inputsIn).toEqual({ runId: "flowrun1", path: expect.stringMatching(new RegExp(`^${INPUTS_FOLDER}/train_3_-[0-9a-f]{12}\\.json$`)) });
    expect([...files.keys()]).toEqual([`flowrun1/${sent.inputsIn!.path}`]);
    // As the worker reads the job: through JSON.
    const got = await receivedInputs(JSON.parse(JSON.stringify(sent)) as JobData, tracker, worker);
    expect(got.rows).toEqual(inputs.rows);
    expect(Object.is(got.lr, -0)).toBe(true);
    await dropInputs(sent, tracker);
    expect(files.size).toBe(0);
  });

  it("small inputs, and large ones that carry a secret of the run, travel in the job: nothing is written to MLflow", async () => {
    const { tracker, files } = memoryTracker();
    const small = job({ n: 1 });
    expect(await sendInputs(small, tracker)).toBe(small);
    const secret = job({ s: "x".repeat(INLINE_OUTPUTS_BYTES + 1) }, { inputsCarrySecret: true });
    expect(await sendInputs(secret, tracker)).toBe(secret);
    expect(files.size).toBe(0);
  });

  it("inputs the worker cannot read from the flow run fail the task with QueueInputsUnreadableError, which says where they are and what to do", async () => {
    const { tracker } = memoryTracker();
    const sent = job({}, { inputsIn: { runId: "flowrun1", path: `${INPUTS_FOLDER}/big-0123456789ab.json` } });
    const error = await receivedInputs(sent, { ...tracker, uri: tracker.uri, downloadArtifact: () => Promise.reject(new Error("connect ECONNREFUSED 10.0.0.5:5000")) } as Tracker, worker).catch((e: Error) => e);
    expect(error).toMatchObject({ name: "QueueInputsUnreadableError", nodeId: "train[3]" });
    expect((error as Error).message).toBe(
      'Task "train[3]" was not run by worker host-a-42-abcd1234 (on host-a): its inputs, over the 1 MB that travel through the queue\'s Redis, were left by the coordinator in its flow run flowrun1 ' +
        `(${INPUTS_FOLDER}/big-0123456789ab.json on the MLflow server at http://user:***@mlflow-host:5000/), which this worker could not read: connect ECONNREFUSED 10.0.0.5:5000. ` +
        "Check that this worker reaches the MLflow server and its artifacts (its MLFLOW_TRACKING_URI names the coordinator's server, with MLFLOW_TRACKING_USERNAME/PASSWORD if the server asks for them), then run the flow again.",
    );
    // Not there any more (the server says 404): the coordinator removed it, which no check of this worker mends.
    // It said "check that this worker reaches the MLflow server", wrong advice for a file removed.
    const gone = await receivedInputs(sent, tracker, worker).catch((e: Error) => e);
    expect(gone).toMatchObject({ name: "QueueInputsUnreadableError", removed: true });
    expect((gone as Error).message).toBe(
      'Task "train[3]" was not run by worker host-a-42-abcd1234 (on host-a): its inputs, over the 1 MB that travel through the queue\'s Redis, were left by the coordinator in its flow run flowrun1 ' +
        `(${INPUTS_FOLDER}/big-0123456789ab.json on the MLflow server at http://user:***@mlflow-host:5000/), and are no longer there (MLflow mlflow-artifacts GET ${INPUTS_FOLDER}/big-0123456789ab.json (run flowrun1) failed with HTTP 404 RESOURCE_DOES_NOT_EXIST: no artifact ${INPUTS_FOLDER}/big-0123456789ab.json): ` +
        "the coordinator removed them, its flow run having ended or given the task up (its queue's Redis unreachable for longer than CAIRN_QUEUE_DOWN_MS, or the job lost) while the job waited. Run the flow again if it did not finish.",
    );
    // A crafted job names nothing else of the server's.
    const crafted = job({}, { inputsIn: { runId: "flowrun1", path: "cairn/outputs.json" } });
    await expect(receivedInputs(crafted, tracker, worker)).rejects.toThrow(/the job names no inputs file of cairn\/queued-inputs\//);
  });
});
