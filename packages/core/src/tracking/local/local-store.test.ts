import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { trackerComplianceSuite } from "../tracker-compliance.ts";
import { LocalStore } from "./local-store.ts";

const tmp = () => mkdtemp(join(tmpdir(), "cairn-local-"));

trackerComplianceSuite("LocalStore", async () => new LocalStore({ root: await tmp() }));

const repo = resolve(import.meta.dirname, "../../../../..");

/** A real second process writing runs into the same store. */
function writer(root: string, experiment: string, runs: number): Promise<number | null> {
  const code = `
    import { LocalStore } from ${JSON.stringify(join(repo, "packages/core/src/tracking/local/local-store.ts"))};
    const s = new LocalStore({ root: ${JSON.stringify(root)} });
    const exp = await s.ensureExperiment(${JSON.stringify(experiment)});
    await Promise.all(Array.from({ length: ${runs} }, async (_, i) => {
      const id = await s.createRun({ experimentId: exp, name: "r" + i });
      for (let k = 0; k < 5; k++) await s.logBatch(id, { params: { ["p" + k]: "x".repeat(2000) }, metrics: [{ key: "m", value: k, step: k, timestamp: Date.now() }] });
      await s.endRun(id, "FINISHED");
    }));
  `;
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: repo, stdio: "inherit" });
    child.on("error", fail);
    child.on("close", done);
  });
}

describe("LocalStore with several processes", () => {
  it("two processes create the same experiment and write runs at once: all runs whole and readable", async () => {
    const root = await tmp();
    const codes = await Promise.all([writer(root, "shared", 40), writer(root, "shared", 40)]);
    expect(codes).toEqual([0, 0]);
    const store = new LocalStore({ root });
    const [experiment, ...others] = await store.listExperiments();
    expect(others).toEqual([]);
    const runs = await store.searchRuns({ experimentIds: [experiment!.experimentId], maxResults: 1000 });
    expect(runs).toHaveLength(80);
    for (const run of runs) {
      expect(run.status).toBe("FINISHED");
      expect(Object.keys(run.params)).toHaveLength(5);
      expect((await store.getMetricHistory(run.runId, "m")).map((p) => p.step)).toEqual([0, 1, 2, 3, 4]);
    }
    // No temp file is left behind by the atomic writes.
    for (const run of runs) expect(await readdir(join(root, "runs", run.runId))).not.toContain(expect.stringMatching(/\.tmp$/));
  });

  it("a reader never sees a half-written run.json while a writer rewrites it", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const exp = await store.ensureExperiment("torn");
    const runId = await store.createRun({ experimentId: exp, name: "big" });
    await store.flush();
    let stop = false;
    const reads = (async () => {
      let n = 0;
      while (!stop) {
        const text = await readFile(join(root, "runs", runId, "run.json"), "utf8");
        expect(() => JSON.parse(text)).not.toThrow();
        n++;
      }
      return n;
    })();
    for (let i = 0; i < 50; i++) {
      await store.logBatch(runId, { params: { [`p${i}`]: "y".repeat(5000) } });
      await store.flush(); // forces a rewrite of run.json each time
    }
    stop = true;
    expect(await reads).toBeGreaterThan(0);
  });

  it("refuses writes to a run another process created, with a clear message", async () => {
    const root = await tmp();
    const a = new LocalStore({ root });
    const runId = await a.createRun({ experimentId: await a.ensureExperiment("x"), name: "r" });
    const b = new LocalStore({ root });
    await expect(b.endRun(runId, "FINISHED")).rejects.toThrow(/was not created by this process/);
  });
});
