import { describe, expect, it } from "vitest";
import { failedTaskFiles, failureSummary } from "./failure-summary.ts";

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

  it("cuts a line of an error longer than 1000 characters in its middle, keeping its start and end and saying where the whole text is", () => {
    const huge = `start ${"x".repeat(2_000_000)} end`;
    const result = {
      status: "failed",
      runId: "r1",
      durationMs: 5,
      tasks: {
        big: { task: "big", status: "failed", attempts: 1, error: { name: "Error", message: huge } },
        multi: { task: "multi", status: "failed", attempts: 1, error: { name: "Error", message: `one\n${huge}\nthree` } },
      },
      error: { name: "TaskFailed", message: "…" },
    } as unknown as Result;
    const text = failureSummary(result, "f", [], "/here");
    expect(text.length).toBeLessThan(3000);
    const cut = / … \[1999110 characters cut; its task run's artifact cairn\/error\.txt has the whole text, and --json prints it\] … /;
    expect(text).toMatch(new RegExp(`\n  big: start x{694}${cut.source}x{196} end\n`));
    expect(text).toMatch(new RegExp(`\n  multi: one\n    start x+${cut.source}x+ end\n    three\n`));
    // Runs not recorded (--no-tracking): --json is where the whole text is.
    expect(failureSummary(result, "f", [], "/here", false)).toContain(" … [1999110 characters cut; --json prints the whole text] … ");
  });

  it("names each failed task's files on this machine, its error file and its logs, under it and in lines of their own for stdout", () => {
    const result = {
      status: "failed",
      runId: "r1",
      durationMs: 5,
      tasks: {
        a: { task: "a", status: "failed", attempts: 1, runId: "ra", error: { name: "Error", message: "boom" } },
        b: { task: "b", status: "failed", attempts: 1, runId: "rb", error: { name: "ProcessFailedError", message: "exited with code 3" } },
        c: { task: "c", status: "succeeded", attempts: 1, runId: "rc" },
      },
      error: { name: "TaskFailed", message: "…" },
    } as unknown as Result;
    const files = (runId: string) =>
      runId === "ra" ? { error: ".cairn/artifacts/ra/cairn/error.txt", logs: [] } : { error: ".cairn/artifacts/rb/cairn/error.txt", logs: [".cairn/artifacts/rb/logs/stdout.txt", ".cairn/artifacts/rb/logs/stderr.txt"] };
    expect(failureSummary(result, "f", [], "/here", true, files)).toBe(
      'cairn: flow "f" failed in 5ms, run r1: 2 tasks failed\n  a: boom\n    whole error: .cairn/artifacts/ra/cairn/error.txt\n  b: exited with code 3\n    whole error: .cairn/artifacts/rb/cairn/error.txt; logs: .cairn/artifacts/rb/logs/stdout.txt, .cairn/artifacts/rb/logs/stderr.txt\n',
    );
    expect(failedTaskFiles(result, files)).toBe(
      "a: whole error: .cairn/artifacts/ra/cairn/error.txt\nb: whole error: .cairn/artifacts/rb/cairn/error.txt; logs: .cairn/artifacts/rb/logs/stdout.txt, .cairn/artifacts/rb/logs/stderr.txt\n",
    );
    // A server's runs keep no files here: nothing is added.
    expect(failedTaskFiles(result, () => ({ logs: [] }))).toBe("");
  });
});
