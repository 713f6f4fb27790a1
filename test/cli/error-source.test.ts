/**
 * A failed task's error as the user reads it: a function task's error names the first stack
 * frame in the user's own code (file:line:column; the flow is compiled by the CLI and run with
 * source maps, so it is the .ts file's line), in the human output, the `--json` events and the
 * task's run; a failed script's traceback is not repeated on the task's line.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { flow, LocalStore, task, when } from "cairn-dag";
import { cairn, fixture, tmp } from "./helpers.ts";

const HELPER = fixture("error-source/helper.ts");
// helper.ts line 5: `    throw new Error(...)`; V8 points at `new`.
const AT = `${HELPER}:5:11`;

describe("a function task's error names the line of the user's code that raised it", () => {
  it("in the human output, with the path relative to the working folder when inside it", async () => {
    const outside = await cairn(["run", fixture("error-source/flow.ts"), "--no-tracking"]);
    expect(outside.code).toBe(1);
    expect(outside.stdout).toContain(`x is too big: 5\n    at ${AT}`);
    // Once on the task's line, once in the summary: never an engine frame.
    expect(outside.stdout.split(`at ${AT}`)).toHaveLength(3);
    expect(outside.stdout).not.toMatch(/packages\/|\.bundle|node_modules/);

    const inside = await cairn(["run", "flow.ts", "--no-tracking"], { cwd: fixture("error-source") });
    expect(inside.stdout).toContain("x is too big: 5\n    at helper.ts:5:11");
  });

  it("in the task's recorded run, while the --json events keep the error's { name, message } form", async () => {
    const cwd = await tmp("cairn-cli-error-source-");
    const r = await cairn(["run", fixture("error-source/flow.ts"), "--json"], { cwd });
    expect(r.code).toBe(1);
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string; status: string; task?: string; taskRunId?: string; error?: unknown });
    const failed = events.find((e) => e.type === "task" && e.status === "failed")!;
    expect(failed.error).toEqual({ name: "Error", message: "x is too big: 5" });
    const run = await new LocalStore({ root: join(cwd, ".cairn") }).getRun(failed.taskRunId!);
    expect(run?.tags).toMatchObject({ "cairn.error": "Error: x is too big: 5", "cairn.error.source": AT });
  });

  it("through the API, as the error's `at`, for a task declared in this file", async () => {
    const boom = task("boom").run(() => {
      throw new TypeError("not a number");
    });
    const seen: unknown[] = [];
    const run = await flow("api-error-source").build(() => ({ y: boom() })).run({ tracker: false, cache: false });
    run.on((e) => e.type === "task" && e.status === "failed" && seen.push(e.error?.at));
    const result = await run.wait();
    const at = `${import.meta.filename}:42:13`;
    expect(result.tasks.boom!.error!.at).toBe(at);
    expect(seen).toEqual([at]);
  });

  it("not for an error of Cairn's own (a script that failed)", async () => {
    const cwd = await tmp("cairn-cli-error-source-");
    const r = await cairn(["run", fixture("error-source/traceback.flow.ts"), "--json"], { cwd });
    const failed = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { status: string; taskRunId?: string }).find((e) => e.status === "failed")!;
    const run = await new LocalStore({ root: join(cwd, ".cairn") }).getRun(failed.taskRunId!);
    expect(run?.tags["cairn.error"]).toMatch(/^ProcessFailedError: /);
    expect(run?.tags["cairn.error.source"]).toBeUndefined();
  });
});

describe("a when() test that throws", () => {
  const FLOW = fixture("condition-throws.flow.ts");
  // condition-throws.flow.ts line 9: `  return { done: b({}, { if: when(...) }) ... }`; V8 points at `when`.
  const WHEN_AT = `${FLOW}:9:30`;
  const MESSAGE =
    'Task "b" did not run: the when() test of its condition on x.stats threw TypeError: Cannot read properties of undefined (reading \'count\'). ' +
    'Fix the test so that it returns true or false for every value x.stats may have (true runs "b", false skips it and its dependants), e.g. read fields that may be absent with `?.`.';

  it("fails the task with a ConditionError that names its condition and the when() call, not as the task's own failure", async () => {
    const r = await cairn(["run", FLOW, "--no-tracking"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${MESSAGE}\n    at ${WHEN_AT}`);
    expect(r.stdout).not.toMatch(/^\s*b failed: /m);
  });

  it("in the --json events and the task's recorded run, and through the API with the thrown error as its cause", async () => {
    const cwd = await tmp("cairn-cli-error-source-");
    const r = await cairn(["run", FLOW, "--json"], { cwd });
    expect(r.code).toBe(1);
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string; status: string; runId?: string; task?: string; error?: unknown });
    const failed = events.find((e) => e.type === "task" && e.status === "failed")!;
    expect(failed).toMatchObject({ task: "b", error: { name: "ConditionError", message: MESSAGE } });
    // A task that never started has its run made as the flow ends: found by its tag.
    const store = new LocalStore({ root: join(cwd, ".cairn") });
    const flowRun = (await store.getRun(events.find((e) => e.type === "flow")!.runId!))!;
    const runs = await store.searchRuns({ experimentIds: [flowRun.experimentId], hasTag: "cairn.error" });
    expect(runs.find((run) => run.tags["cairn.task"] === "b")?.tags).toMatchObject({ "cairn.error": `ConditionError: ${MESSAGE}`, "cairn.error.source": WHEN_AT });

    const { default: f } = (await import(FLOW)) as { default: { run(o: object): Promise<{ wait(): Promise<{ tasks: Record<string, { status: string; error?: { at?: string } }> }> }> } };
    const result = await (await f.run({ tracker: false, cache: false })).wait();
    expect(result.tasks.b).toMatchObject({ status: "failed", error: { name: "ConditionError", message: MESSAGE } });
    expect(result.tasks.b!.error!.at).toBe(WHEN_AT);
  });

  it("names the when() call in this file, whatever the test threw (an Error of its own here)", async () => {
    const x = task("x").run(() => ({ stats: { rows: 3 } }));
    const b = task("b").run(() => ({ done: true }));
    const f = flow("condition-cause").build(() => ({
      done: b({}, {
        if: when(x().stats, () => {
          throw new RangeError("no rows");
        }),
      }).done,
    }));
    const result = await (await f.run({ tracker: false, cache: false })).wait();
    expect(result.status).toBe("failed");
    expect(result.tasks.b!.error!.message).toMatch(/^Task "b" did not run: the when\(\) test of its condition on x\.stats threw RangeError: no rows\. /);
    expect(result.tasks.b!.error!.at).toBe(`${import.meta.filename}:102:13`);
  });
});

describe("a failed script's traceback", () => {
  it("is printed by the human output as the script wrote it, and again only in the closing summary", async () => {
    const r = await cairn(["run", fixture("error-source/traceback.flow.ts"), "--no-tracking"]);
    expect(r.code).toBe(1);
    const [run, summary] = r.stdout.split(/\ntask +status/);
    // The task's line right after its output does not repeat the tail.
    expect(run!.split("ValueError: the traceback's own line")).toHaveLength(2);
    expect(run).toContain("[py] ValueError: the traceback's own line");
    expect(run).toContain("exited with code 1. Its stderr is printed above. The full output is in the task run's artifacts logs/stdout.txt and logs/stderr.txt");
    expect(summary!.split("ValueError: the traceback's own line")).toHaveLength(2);
    expect(summary).toContain("Last 6 lines of stderr:");
  });

  it("stays in the error itself, for the API and --json", async () => {
    const r = await cairn(["run", fixture("error-source/traceback.flow.ts"), "--json", "--no-tracking"]);
    const failed = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string; status: string; error?: { message: string } }).find((e) => e.type === "task" && e.status === "failed")!;
    expect(failed.error!.message).toContain("Last 6 lines of stderr:\n  | Traceback (most recent call last):");
    expect(failed.error!.message).toContain("  | ValueError: the traceback's own line");
  });
});
