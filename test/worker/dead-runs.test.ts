/**
 * closeDeadRuns (packages/worker/src/dead-runs.ts) on the embedded store, without Redis or
 * worker processes (dispatch.test.ts kills real workers): a dead worker's run, closed FAILED or
 * KILLED by whoever meets its job next, has its key where plan looks, in the write that closes it,
 * and plan and explain say the key was interrupted by its worker's death, not that it is new.
 */
import { describe, expect, it } from "vitest";
import { explainTask, openFlowCache, planFlow, type PlannedTask } from "@cairn/core";
import { flow, LocalStore, task } from "@cairn/dsl";
import { closeDeadRuns, poisonTags, stoppedWhileRunning } from "../../packages/worker/src/dead-runs.ts";
import { PoisonTaskError } from "../../packages/worker/src/errors.ts";
import { runCollect, tmp } from "../cache/helpers.ts";

const sq = task("dead-sq")
  .input<{ x: number }>()
  .run(({ x }) => ({ y: x * x }));
const f = flow("dead-worker-key")
  .params<{ x: number }>()
  .build(({ params }) => ({ y: sq({ x: params.x }).y }));

/** The plan of `f` with `x`, and explain's of its one task, over the store at `root`. */
async function planOf(root: string, x: number): Promise<{ planned: PlannedTask; explained: PlannedTask }> {
  const { tasks, params } = await openFlowCache(f.definition, { root, params: { x }, env: {} });
  try {
    const [planned] = await planFlow(f.definition, { params, cache: tasks });
    const explained = (await explainTask(f.definition, "dead-sq", { params, cache: tasks })).planned;
    return { planned: planned!, explained };
  } finally {
    await tasks.store.close();
  }
}

describe("a dead queue worker's task run, closed by another process", () => {
  it.each(["FAILED", "KILLED"] as const)("closed %s: carries its key as cairn.failed_key, and plan and explain say the key was interrupted by its worker, naming its run, not new", async (status) => {
    const root = await tmp();
    // A first run makes the experiment; x = 2's key has no entry.
    const first = await runCollect(f, { root, params: { x: 1 } });
    const { planned: fresh } = await planOf(root, 2);
    expect(fresh.reason).toBe("no cache entry for these inputs and code: input `x` changed from 1 to 2");
    const key = fresh.key!.key;
    // The run a worker opened for it (its key in the create request, as runTask writes it), then died under.
    const store = new LocalStore({ root });
    const { experimentId } = (await store.getRun(first.result.runId))!;
    const runId = await store.createRun({ experimentId, name: "dead-sq", tags: { "cairn.key": key, "cairn.worker": "w-vm1-42" } });
    await closeDeadRuns(store, [runId], status, (worker) => `${stoppedWhileRunning(worker, "dead-sq")}.`, "worker w-vm2-7");
    await store.flush();
    const closed = (await new LocalStore({ root }).getRun(runId))!;
    expect(closed.status).toBe(status);
    // Before: no cairn.failed_key, and plan said "input `x` changed from 1 to 2", as if it never ran.
    expect(closed.tags["cairn.failed_key"]).toBe(key);
    const { planned, explained } = await planOf(root, 2);
    const interrupted = { runId, interrupted: true, why: "its queue worker w-vm1-42 stopped without closing it" };
    expect(planned).toMatchObject({ action: "run", cancelled: interrupted });
    expect(planned.failed).toBeUndefined();
    expect(planned.reason).toMatch(
      new RegExp(`^no cache entry for these inputs and code: a run with this key was interrupted \\(run ${runId}, \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\): its queue worker w-vm1-42 stopped without closing it; no entry is stored for it$`),
    );
    expect(explained.cancelled).toMatchObject(interrupted);
  });

  // Before: a worker killed after tagging its run `succeeded`, before closing it, left a FAILED run still tagged succeeded (a search by the tag found two runs
  // for the task), and the coordinator named the worker by pid and host only (by nothing when its run had no owner tag) where a worker named it by id too.
  it.each([
    ["FAILED", "failed"],
    ["KILLED", "cancelled"],
  ] as const)("closed %s: its cairn.status says %s, whatever the dead worker tagged it, and the reason names the worker by id, pid and host, and who closed it", async (status, tag) => {
    const root = await tmp();
    const first = await runCollect(f, { root, params: { x: 1 } });
    const store = new LocalStore({ root });
    const { experimentId } = (await store.getRun(first.result.runId))!;
    const tags = { "cairn.worker": "w-vm1-42", "cairn.owner": "vm-1:42", "cairn.status": "succeeded" };
    const [owned, bare] = [await store.createRun({ experimentId, name: "dead-sq", tags }), await store.createRun({ experimentId, name: "dead-sq", tags: { "cairn.worker": "w-vm1-43" } })];
    await closeDeadRuns(store, [owned, bare], status, (worker) => `${stoppedWhileRunning(worker, "dead-sq")}, and the flow run was cancelled before another worker took the task.`, "worker w-vm2-7");
    await store.flush();
    const read = new LocalStore({ root });
    const [closed, closedBare] = [(await read.getRun(owned))!, (await read.getRun(bare))!];
    expect(closed).toMatchObject({ status, tags: { "cairn.status": tag } });
    expect(closedBare).toMatchObject({ status, tags: { "cairn.status": tag } });
    const said = (who: string) =>
      new RegExp(
        `^Its worker \\(${who}\\) stopped answering while it ran task "dead-sq" \\(killed, crashed, or cut off from Redis for longer than CAIRN_QUEUE_LOCK_MS\\), and the flow run was cancelled before another worker took the task\\. Closed as ${status} by worker w-vm2-7 at \\d{4}-[\\dT:.-]+Z\\.$`,
      );
    expect(closed.tags["cairn.abandoned"]).toMatch(said("w-vm1-42, pid 42 on vm-1"));
    expect(closedBare.tags["cairn.abandoned"]).toMatch(said("w-vm1-43"));
  });

  it("given up as a poison task (closed FAILED with its PoisonTaskError): plan and explain say the key failed, its worker dying N times, not interrupted", async () => {
    const root = await tmp();
    const first = await runCollect(f, { root, params: { x: 1 } });
    const key = (await planOf(root, 2)).planned.key!.key;
    const store = new LocalStore({ root });
    const { experimentId } = (await store.getRun(first.result.runId))!;
    const runId = await store.createRun({ experimentId, name: "dead-sq", tags: { "cairn.key": key, "cairn.worker": "w-vm1-42" } });
    // As the dispatcher closes the runs of a job BullMQ gave up (its workers died CAIRN_QUEUE_MAX_DEATHS times).
    const poison = new PoisonTaskError("dead-sq", 3, "job stalled more than allowable limit");
    await closeDeadRuns(store, [runId], "FAILED", (worker) => `${stoppedWhileRunning(worker, "dead-sq")}, and the task was given up as a poison task (PoisonTaskError).`, "the coordinator", poisonTags(poison));
    await store.flush();
    const { planned, explained } = await planOf(root, 2);
    // Before: "a run with this key was interrupted ...: its queue worker w-vm1-42 stopped without closing it".
    expect(planned.cancelled).toBeUndefined();
    expect(planned.failed).toMatchObject({ runId, why: "its worker died 3 times running it (PoisonTaskError)" });
    expect(planned.failed!.error).toMatch(/^PoisonTaskError: Task "dead-sq" was given up: the worker running it died 3 times/);
    expect(planned.reason).toMatch(
      new RegExp(`^no cache entry for these inputs and code: a run with this key failed \\(run ${runId}, [\\dTZ:.-]+\\): its worker died 3 times running it \\(PoisonTaskError\\); no entry is stored for it$`),
    );
    expect(explained.failed).toMatchObject({ runId, why: "its worker died 3 times running it (PoisonTaskError)" });
  });
});
