import { describe, expect, it } from "vitest";
import type { Tracker } from "@cairn/core";
import { fromSent, INLINE_OUTPUTS_BYTES, jsonBytesOver, toSent } from "./outputs-by-reference.ts";

describe("outputs by reference", () => {
  it("counts a value's JSON about as JSON.stringify does, and stops once it is over", () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => `row-${i}-${"x".repeat(40)}`);
    const size = JSON.stringify({ rows, n: 1 }).length;
    expect(jsonBytesOver({ rows, n: 1 }, size * 0.95)).toBe(true);
    expect(jsonBytesOver({ rows, n: 1 }, size * 1.05)).toBe(false);
    const cycle: Record<string, unknown> = { a: "x" };
    cycle.self = cycle;
    expect(jsonBytesOver(cycle, 100)).toBe(false);
  });

  it("a worker sends a large output of a run by reference, a small one or one without a run as it is", () => {
    const big = { ok: true as const, outputs: { s: "x".repeat(INLINE_OUTPUTS_BYTES + 1) }, runId: "r1", attempts: 1 };
    expect(toSent(big)).toEqual({ ok: true, runId: "r1", attempts: 1, outputsIn: "r1" });
    const small = { ...big, outputs: { s: "x" } };
    expect(toSent(small)).toBe(small);
    const { runId: _r, ...runless } = big;
    expect(toSent(runless)).toBe(runless);
  });

  it("outputs the coordinator cannot read from their run fail the task with QueueOutputsUnreadableError, which says where they are and what to do", async () => {
    const tracker = { uri: "http://user:pw@mlflow-host:5000", downloadArtifact: () => Promise.reject(new Error("connect ECONNREFUSED 10.0.0.5:5000")) } as unknown as Tracker;
    const outcome = await fromSent({ ok: true, runId: "r1", attempts: 1, durationMs: 5, outputsIn: "r1" }, tracker, "big");
    expect(outcome).toMatchObject({ ok: false, cancelled: false, runId: "r1", attempts: 1, error: { name: "QueueOutputsUnreadableError", code: "CAIRN_QUEUE_OUTPUTS_UNREADABLE" } });
    const message = (outcome as { error: { message: string } }).error.message;
    expect(message).toBe(
      'Task "big" finished on a worker, and its outputs, over the 1 MB that travel through the queue\'s Redis, were left in its run r1 (cairn/outputs.json on the MLflow server at http://user:***@mlflow-host:5000/), ' +
        "which this process could not read: connect ECONNREFUSED 10.0.0.5:5000. Check that this machine reaches the MLflow server and its artifacts (the worker wrote them there), then run the flow again (a task with a cache key is then a hit of that run, and does not run again).",
    );
    expect(message).not.toContain("pw");
  });
});
