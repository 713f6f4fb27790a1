/**
 * How a task's run is closed: what it logged (one log-batch) and its files (the outputs
 * manifest, its artifacts) are sent side by side, not one after the other, and the run ends
 * only once all are in. The tracker is a real LocalStore presented as a server's tracker
 * (artifacts not kept locally, so files go through logArtifact), whose log-batch of the task's
 * run is held until the task's outputs.json has been sent.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import { LocalStore, type Tracker } from "@cairn/core";
import { flow, task } from "@cairn/dsl";

const tmp = () => mkdtemp(join(tmpdir(), "cairn-finish-order-"));

/** `store` as a tracker that keeps no artifacts locally; the log-batch that carries `cairn.status` waits for an outputs.json upload (or gives up after 5 s). */
function holdingTracker(store: LocalStore): { tracker: Tracker; calls: string[] } {
  const calls: string[] = [];
  let outputsSent!: () => void;
  const outputs = new Promise<void>((r) => (outputsSent = r));
  const capabilities = { ...store.capabilities, localArtifacts: false };
  const tracker = new Proxy(store, {
    get(target, key, receiver) {
      if (key === "capabilities") return capabilities;
      if (key === "artifactDir") return undefined;
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function") return value;
      if (key === "logArtifact") {
        return async (runId: string, path: string, artifactPath?: string) => {
          calls.push(`logArtifact ${basename(path)}`);
          if (basename(path) === "outputs.json") outputsSent();
          return (value as Tracker["logArtifact"]).call(target, runId, path, artifactPath);
        };
      }
      if (key === "logBatch") {
        return async (runId: string, batch: Parameters<Tracker["logBatch"]>[1]) => {
          if (batch.tags?.["cairn.status"] !== undefined) {
            calls.push("logBatch held");
            const waited = await Promise.race([outputs.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 5000).unref())]);
            calls.push(waited ? "logBatch sent after outputs.json" : "logBatch sent without outputs.json");
          }
          return (value as Tracker["logBatch"]).call(target, runId, batch);
        };
      }
      if (key === "endRun") {
        return async (...args: Parameters<Tracker["endRun"]>) => {
          calls.push(`endRun ${args[1]}`);
          return (value as Tracker["endRun"]).apply(target, args);
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
  return { tracker, calls };
}

describe("closing a task's run", () => {
  it("sends its outputs manifest while its log-batch is in flight, and ends the run after both", async () => {
    const root = await tmp();
    const { tracker, calls } = holdingTracker(new LocalStore({ root: join(root, "store") }));
    const one = task("one")
      .input<{ n: number }>()
      .run(({ n }, ctx) => {
        ctx.log.param("seen", n);
        return { n: n + 1 };
      });
    const result = await (await flow("finish-order").build(() => ({ n: one({ n: 1 }).n })).run({ tracker, cache: false, root })).wait();
    expect(result.status).toBe("succeeded");
    // The flow run's graph files go up meanwhile; they are not the task's.
    const own = calls.filter((c) => !/^logArtifact graph\./.test(c));
    const held = own.indexOf("logBatch held");
    expect(held).toBeGreaterThanOrEqual(0);
    expect(own.slice(held, held + 4)).toEqual(["logBatch held", "logArtifact outputs.json", "logBatch sent after outputs.json", "endRun FINISHED"]);
  });
});
