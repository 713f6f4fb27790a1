/**
 * Two real processes on one cache store, one of them computing a slow key: the second waits for
 * it only when the first's entry could be used there. One records to a real mlflow server (one
 * for this file), the other to the embedded store of the same root, whose cache store both share:
 * an entry of one is no hit for the other, so the second computes at once instead of waiting
 * for the whole of the first's task and then computing it anyway.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { countMarks } from "./fixtures/markers.ts";
import { type Exit, cairnBin, cairnRun, childEnv, finalStatus, fixture, killGroup, sleep, start, taskEvents, tmp } from "./helpers.ts";

let server: MlflowServer;
beforeAll(async () => {
  server = await startMlflowServer();
});
afterAll(async () => {
  await server?.stop();
});

const expectOk = (exit: Exit) => {
  if (exit.code !== 0) throw new Error(`exited with ${exit.code ?? exit.signal}:\n${exit.stderr}\n${exit.stdout}`);
};
/** The lines a run printed of its task "held" computing beside another process (its warnings go to stderr). */
const besideLines = (exit: Exit) => exit.stderr.split("\n").filter((l) => l.includes("[held]") && l.includes("is being computed now by"));

/**
 * held.flow.ts in one root: the first run (with `first`'s env) holds "held" until a release file
 * exists; the second (with `second`'s) starts once it works, and the release is written once the
 * second's "held" waits or runs. Both exits, and how often "held" really ran.
 */
async function holdThenMeet(first: NodeJS.ProcessEnv, second: NodeJS.ProcessEnv) {
  const root = await tmp();
  const markers = await tmp();
  const release = join(await tmp(), "release");
  const file = fixture("held.flow.ts");
  const shared = { MARKER_DIR: markers, RELEASE_FILE: release };
  const holder = start(process.execPath, [cairnBin, "run", file, "--json", "--root", root], { env: childEnv({ ...shared, ...first }) });
  try {
    for (const until = Date.now() + 30_000; !(await countMarks(markers)).held; await sleep(25)) {
      if (Date.now() > until) throw new Error(`the first run's task never started:\n${(await Promise.race([holder.done, sleep(10)]))?.stderr ?? ""}`);
    }
    let met = false;
    const meeting = cairnRun(file, root, [], { ...shared, ...second }, (out) => {
      if (met || !out.split("\n").some((l) => l.includes('"task":"held"') && /"status":"(waiting|running)"/.test(l))) return;
      met = true;
      void writeFile(release, "");
    });
    const two = await meeting.done;
    await writeFile(release, ""); // also when it ended before meeting the task
    const one = await holder.done;
    return { one, two, held: (await countMarks(markers)).held };
  } finally {
    killGroup(holder.child);
  }
}

describe("a run meets the lease of a run that records elsewhere", () => {
  it.each([
    { first: "mlflow", second: "the embedded store" },
    { first: "the embedded store", second: "mlflow" },
  ])("first with $first, second with $second: the second computes at once, saying why, and both succeed", async ({ first }) => {
    const mlflow = { MLFLOW_TRACKING_URI: server.uri };
    const { one, two, held } = await holdThenMeet(first === "mlflow" ? mlflow : {}, first === "mlflow" ? {} : mlflow);
    expectOk(one);
    expectOk(two);
    const statuses = taskEvents(two.json, "held").map((e) => e.status);
    // Before, it sat in "waiting" for the first's whole task, then ran it all the same.
    expect(statuses).not.toContain("waiting");
    expect(statuses).toContain("running");
    expect(finalStatus(two.json, "held")).toBe("succeeded");
    expect(held).toBe(2);
    const said = besideLines(two);
    expect(said).toHaveLength(1);
    const where = first === "mlflow" ? `which records to the MLflow server at ${server.uri}` : "which records to the embedded store at ";
    expect(said[0]).toContain(where);
    expect(said[0]).toContain("its entry could not be used here, so the task runs now instead of waiting for it");
    expect(said[0]).toContain(first === "mlflow" ? `run both with MLFLOW_TRACKING_URI=${server.uri}` : "run both with MLFLOW_TRACKING_URI unset");
  });

  it("both with mlflow: the second still waits for the first and takes its entry", async () => {
    const mlflow = { MLFLOW_TRACKING_URI: server.uri };
    const { one, two, held } = await holdThenMeet(mlflow, mlflow);
    expectOk(one);
    expectOk(two);
    expect(taskEvents(two.json, "held").map((e) => e.status)).toContain("waiting");
    expect(finalStatus(two.json, "held")).toBe("cached");
    expect(taskEvents(two.json, "held").find((e) => e.status === "cached")!.cachedFrom).toBe(taskEvents(one.json, "held").find((e) => e.status === "succeeded")!.taskRunId);
    expect(held).toBe(1);
    expect(besideLines(two)).toEqual([]);
  });
});
