/**
 * The engine asks a tracker what it can do (`capabilities`), never which tracker it is: a
 * tracker of a kind the engine has never heard of behaves as its capabilities say.
 */
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LocalStore, NullTracker, registerTrackerScheme, TrackerCallError, type Tracker } from "@cairn/core";
import { flow, task } from "@cairn/dsl";

const tmp = () => mkdtemp(join(tmpdir(), "cairn-capabilities-"));

/** `tracker` under another name, every call noted. */
function renamed(tracker: Tracker, kind: string): { tracker: Tracker; calls: string[] } {
  const calls: string[] = [];
  const proxy = new Proxy(tracker, {
    get(target, key, receiver) {
      if (key === "kind") return kind;
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.push(String(key));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { tracker: proxy, calls };
}

const produce = task("produce")
  .input<{ n: number }>()
  .run(async ({ n }, ctx) => {
    ctx.log.metric("n", n);
    return { file: await ctx.artifacts.write("out.txt", `n=${n}`), n };
  });
const twoStep = flow("capabilities").build(() => ({ file: produce({ n: 3 }).file }));

describe("a tracker the engine does not know by name", () => {
  it("that records nothing is asked for run ids and nothing else", async () => {
    const { tracker, calls } = renamed(new NullTracker(), "off");
    const result = await (await twoStep.run({ tracker, cache: false, root: await tmp() })).wait();
    expect(result.status).toBe("succeeded");
    expect(result.tasks.produce!.runId).toMatch(/^[0-9a-f]{32}$/);
    expect(calls.filter((c) => ["logArtifact", "getRun", "searchRuns", "listArtifacts", "downloadArtifact"].includes(c))).toEqual([]);
  });

  it("that keeps artifacts in a local folder has them written there in place, and its runs are cache hits later", async () => {
    const root = await tmp();
    const { tracker, calls } = renamed(new LocalStore({ root: join(root, "store") }), "my-store");
    const first = await (await twoStep.run({ tracker, root })).wait();
    expect(first.status).toBe("succeeded");
    const runId = first.tasks.produce!.runId!;
    const file = (first.outputs as { file: { path: string } }).file.path;
    expect(file).toBe(join((tracker as LocalStore).artifactDir(runId), "out.txt"));
    expect(await readFile(file, "utf8")).toBe("n=3");
    expect(calls).not.toContain("logArtifact"); // written in place, never copied in
    expect((await tracker.getRun(runId))!.metrics).toMatchObject({ n: 3 });
    const second = await (await twoStep.run({ tracker, root })).wait();
    expect(second.tasks.produce!.status).toBe("cached");
  });
});

describe("a tracker of a registered scheme that fails with an error of its own", () => {
  it("fails the flow with a TrackerCallError naming the call and the run, not the tracker's bare `Error: service said 500`", async () => {
    const root = await tmp();
    class Failing extends LocalStore {
      override async logBatch(): Promise<void> {
        throw new Error("service said 500");
      }
    }
    registerTrackerScheme(["capfail"], async () => new Failing({ root: join(root, "store") }));
    const run = await twoStep.run({ root, cache: false, env: { MLFLOW_TRACKING_URI: "capfail://x" } });
    const result = await run.wait();
    expect(result.status).toBe("failed");
    // The flow run's own params, logged before its tasks start.
    expect(result.error?.name, result.error?.message).toBe(TrackerCallError.name);
    expect(result.error?.message).toMatch(
      new RegExp(`^The tracker for the tracking URI capfail://x failed: logBatch\\(\\) for run ${run.runId} failed with Error: service said 500\\. That tracker comes from the factory registered for "capfail://" URIs`),
    );
    expect(result.tasks.produce!.status).toBe("skipped");
  });
});
