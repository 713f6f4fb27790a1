import { describe, expect, it } from "vitest";
import { failureSummary } from "./failure-summary.ts";

type Result = Parameters<typeof failureSummary>[0];

describe("failureSummary", () => {
  it("names the first five failed tasks, then counts the rest", () => {
    const tasks = Object.fromEntries(
      Array.from({ length: 7 }, (_, i) => [`t${i}`, { task: `t${i}`, status: "failed", attempts: 1, error: { name: "Error", message: `broke ${i}` } }]),
    );
    const text = failureSummary({ status: "failed", runId: "r1", durationMs: 1200, tasks, error: { name: "TaskFailed", message: "…" } } as unknown as Result, "f", ["see more"]);
    expect(text).toBe(
      'cairn: flow "f" failed in 1.2s, run r1: 7 tasks failed\n  t0: broke 0\n  t1: broke 1\n  t2: broke 2\n  t3: broke 3\n  t4: broke 4\n  … and 2 more failed tasks\ncairn: see more\n',
    );
  });

  it("says the flow's own error when no task's says why, with its name, and the failed tasks after it", () => {
    const result = {
      status: "failed",
      runId: "r1",
      durationMs: 5,
      tasks: { a: { task: "a", status: "failed", attempts: 1, error: { name: "Error", message: "one\ntwo\nthree\nfour\nfive\nsix", at: "/elsewhere/flow.ts:3:1" } } },
      error: { name: "TrackerError", message: "could not close the flow run\x1b[2J" },
    } as unknown as Result;
    expect(failureSummary(result, "f", [], "/here")).toBe(
      'cairn: flow "f" failed in 5ms, run r1: TrackerError: could not close the flow run\\x1b[2J\ncairn: 1 task failed:\n  a: one\n    … (2 lines left out)\n    four\n    five\n    six\n    at /elsewhere/flow.ts:3:1\n',
    );
  });
});
