import { spawn, spawnSync } from "node:child_process";
import { appendFile, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir, uptime } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it, vi } from "vitest";
import { TrackingError, UnsafePathError } from "../../errors.ts";
import { trackerComplianceSuite } from "../tracker-compliance.ts";
import { LocalStore } from "./local-store.ts";

const tmp = () => mkdtemp(join(tmpdir(), "cairn-local-"));

trackerComplianceSuite("LocalStore", async () => new LocalStore({ root: await tmp() }));

const repo = resolve(import.meta.dirname, "../../../../..");
const storeModule = join(repo, "packages/core/src/tracking/local/local-store.ts");

/** Runs `body` in a real second Node process (through tsx), with `store` opened on `root`. */
function inProcess(root: string, body: string): Promise<{ code: number | null; stderr: string }> {
  const code = `
    import { LocalStore } from ${JSON.stringify(storeModule)};
    const store = new LocalStore({ root: ${JSON.stringify(root)} });
    ${body}
  `;
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: repo, stdio: ["ignore", "inherit", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", fail);
    child.on("close", (exitCode) => done({ code: exitCode, stderr }));
  });
}

/** A process that creates `runs` runs in `experiment` at once, each with params, stepped metrics and an artifact. */
function writer(root: string, experiment: string, runs: number, label: string) {
  return inProcess(
    root,
    `
    const exp = await store.ensureExperiment(${JSON.stringify(experiment)});
    const { mkdir, writeFile } = await import("node:fs/promises");
    await Promise.all(Array.from({ length: ${runs} }, async (_, i) => {
      const id = await store.createRun({ experimentId: exp, name: "${label}-" + i, tags: { "cairn.writer": "${label}" } });
      for (let k = 0; k < 5; k++) {
        await store.logBatch(id, { params: { ["p" + k]: "x".repeat(2000) }, metrics: [{ key: "m", value: k, step: k, timestamp: Date.now() }] });
      }
      await mkdir(store.artifactDir(id), { recursive: true });
      await writeFile(store.artifactDir(id) + "/out.txt", "${label}-" + i);
      await store.endRun(id, "FINISHED");
    }));
  `,
  );
}

describe("LocalStore with several processes", () => {
  it("two processes create the same experiment and write runs at once: all runs whole and readable", async () => {
    const root = await tmp();
    const results = await Promise.all([writer(root, "shared", 60, "a"), writer(root, "shared", 60, "b")]);
    expect(results).toEqual([
      { code: 0, stderr: "" },
      { code: 0, stderr: "" },
    ]);
    const store = new LocalStore({ root });
    const experiments = await store.listExperiments();
    expect(experiments).toEqual([{ experimentId: await store.ensureExperiment("shared"), name: "shared" }]);
    const runs = await store.searchRuns({ experimentIds: [experiments[0]!.experimentId], maxResults: 1000 });
    expect(runs).toHaveLength(120);
    expect(new Set(runs.map((r) => r.runId)).size).toBe(120);
    expect(runs.filter((r) => r.tags["cairn.writer"] === "a")).toHaveLength(60);
    for (const run of runs) {
      expect(run.status).toBe("FINISHED");
      expect(Object.keys(run.params)).toHaveLength(5);
      expect(run.metrics.m).toBe(4);
      expect((await store.getMetricHistory(run.runId, "m")).map((p) => p.step)).toEqual([0, 1, 2, 3, 4]);
      expect(await readFile(join(store.artifactDir(run.runId), "out.txt"), "utf8")).toBe(run.name);
    }
    // Every index line is whole, and no temp file is left behind by the atomic writes.
    const index = await readFile(join(root, "experiments", experiments[0]!.experimentId, "runs.jsonl"), "utf8");
    expect(index.trimEnd().split("\n").map((l) => JSON.parse(l).runId as string).sort()).toEqual(runs.map((r) => r.runId).sort());
    expect((await readdir(join(root, "runs"))).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect((await readdir(join(root, "experiments", experiments[0]!.experimentId))).sort()).toEqual(["meta.json", "runs.jsonl"]);
  });

  it("a reader in another process never sees a half-written run file while a writer rewrites it", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const runId = await store.createRun({ experimentId: await store.ensureExperiment("torn"), name: "big" });
    await store.flush();
    const file = join(root, "runs", `${runId}.json`);
    // The reader runs until the writer leaves a marker file, then reports what it saw.
    const reader = inProcess(
      root,
      `
      const { readFile, access } = await import("node:fs/promises");
      let reads = 0, torn = 0;
      for (;;) {
        const done = await access(${JSON.stringify(join(root, "done"))}).then(() => true, () => false);
        try { JSON.parse(await readFile(${JSON.stringify(file)}, "utf8")); reads++; } catch { torn++; }
        if (done) break;
      }
      console.error(JSON.stringify({ reads, torn }));
    `,
    );
    for (let i = 0; i < 100; i++) {
      await store.logBatch(runId, { params: { [`p${i}`]: "y".repeat(20_000) } });
      await store.flush(); // rewrites the run file each time
    }
    await writeFile(join(root, "done"), "");
    const { code, stderr } = await reader;
    expect(code).toBe(0);
    const seen = JSON.parse(stderr) as { reads: number; torn: number };
    expect(seen.torn).toBe(0);
    expect(seen.reads).toBeGreaterThan(0);
    expect(Object.keys((await new LocalStore({ root }).getRun(runId))!.params)).toHaveLength(100);
  });

  it("refuses writes to a run another process created, with a clear message", async () => {
    const root = await tmp();
    const a = new LocalStore({ root });
    const runId = await a.createRun({ experimentId: await a.ensureExperiment("x"), name: "r" });
    await a.flush();
    const b = new LocalStore({ root });
    await expect(b.endRun(runId, "FINISHED")).rejects.toThrow(/was not created by this process/);
    await expect(b.logBatch(runId, { tags: { a: "b" } })).rejects.toBeInstanceOf(TrackingError);
    expect((await b.getRun(runId))!.status).toBe("RUNNING");
  });
});

describe("LocalStore", () => {
  it("keeps the layout: experiments with meta and index, run files, artifact folders", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    expect(store.kind).toBe("local");
    expect(store.uri).toBe(resolve(root));
    const experimentId = await store.ensureExperiment("layout");
    expect(experimentId).toMatch(/^[0-9a-f]{16}$/);
    const runId = await store.createRun({ experimentId, name: "r" });
    await store.logBatch(runId, { metrics: [{ key: "m", value: 1, step: 0, timestamp: 1 }] });
    await store.logArtifact(runId, await file("hello"), "out");
    await store.endRun(runId, "FINISHED");
    expect(store.artifactDir(runId)).toBe(join(resolve(root), "artifacts", runId));
    expect(JSON.parse(await readFile(join(root, "experiments", experimentId, "meta.json"), "utf8"))).toMatchObject({ experimentId, name: "layout" });
    expect((await readdir(join(root, "runs"))).sort()).toEqual([`${runId}.json`, `${runId}.metrics.jsonl`]);
    expect(await readdir(join(root, "artifacts", runId, "out"))).toEqual(["hello.txt"]);
  });

  it("writes a run file once for a run that ends quickly, and keeps finished runs out of memory", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("quick");
    const runId = await store.createRun({ experimentId, name: "r" });
    await store.logBatch(runId, { params: { a: "1" } });
    // Not on disk yet: another process does not see the run until it ends or a second passes.
    expect(await new LocalStore({ root }).getRun(runId)).toBeUndefined();
    await store.endRun(runId, "FINISHED");
    expect(await new LocalStore({ root }).getRun(runId)).toMatchObject({ status: "FINISHED", params: { a: "1" } });
    expect((store as unknown as { owned: Map<string, unknown> }).owned.size).toBe(0);
  });

  it("keeps params, tags and metrics named constructor or __proto__ in its files, and its creator, reading them back, takes a later log of theirs", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const runId = await store.createRun({ experimentId: await store.ensureExperiment("proto"), name: "r", tags: JSON.parse('{"__proto__":"t0"}') as Record<string, string> });
    const proto = JSON.parse('{"__proto__":"p","constructor":"c"}') as Record<string, string>;
    await store.logBatch(runId, { params: proto, tags: proto, metrics: [{ key: "__proto__", value: 1, step: 0, timestamp: 1 }, { key: "constructor", value: 2, step: 0, timestamp: 1 }] });
    await store.endRun(runId, "FINISHED");
    const other = new LocalStore({ root });
    const read = (await other.getRun(runId))!;
    expect(Object.entries(read.params)).toEqual([["__proto__", "p"], ["constructor", "c"]]);
    expect(Object.entries(read.metrics)).toEqual([["__proto__", 1], ["constructor", 2]]);
    expect(Object.hasOwn(read.tags, "__proto__") && read.tags.constructor).toBe("c");
    // Its creator reads it back from its file after its end: the same values again are no change, a later point is the latest.
    await store.logBatch(runId, { params: proto, metrics: [{ key: "constructor", value: 3, step: 1, timestamp: 2 }] });
    await store.flush();
    expect((await new LocalStore({ root }).getRun(runId))!.metrics.constructor).toBe(3);
  });

  it("lets the creating store write to a run after it ended (a log after endRun)", async () => {
    const store = new LocalStore({ root: await tmp() });
    const runId = await store.createRun({ experimentId: await store.ensureExperiment("late"), name: "r" });
    await store.endRun(runId, "FAILED");
    await store.logBatch(runId, { tags: { late: "yes" } });
    await store.endRun(runId, "KILLED", 5);
    expect(await store.getRun(runId)).toMatchObject({ status: "KILLED", endTime: 5, tags: { late: "yes" } });
  });

  it("ends a run no earlier than it started when the clock stepped back during it", async () => {
    const store = new LocalStore({ root: await tmp() });
    const experimentId = await store.ensureExperiment("clock");
    // Started by a clock an hour ahead of the one that ends it (an NTP step back).
    const startTime = Date.now() + 3_600_000;
    const runId = await store.createRun({ experimentId, name: "r", startTime });
    await store.endRun(runId, "FINISHED");
    expect(await new LocalStore({ root: store.uri }).getRun(runId)).toMatchObject({ startTime, endTime: startTime });
  });

  it("refuses to change a param, as MLflow does; the same value again is fine", async () => {
    const store = new LocalStore({ root: await tmp() });
    const runId = await store.createRun({ experimentId: await store.ensureExperiment("params"), name: "r" });
    await store.logBatch(runId, { params: { lr: "0.1" } });
    await store.logBatch(runId, { params: { lr: "0.1" } });
    await expect(store.logBatch(runId, { params: { lr: "0.2" }, tags: { t: "1" } })).rejects.toThrow(/write-once/);
    expect((await store.getRun(runId))!.tags.t).toBeUndefined(); // a rejected batch changes nothing
  });

  it("rejects unknown experiments and bad ids with TrackingErrors, and artifact paths leaving the run with UnsafePathError", async () => {
    const store = new LocalStore({ root: await tmp() });
    await expect(store.createRun({ experimentId: "0123456789abcdef", name: "r" })).rejects.toThrow(/no experiment 0123456789abcdef/);
    await expect(store.createRun({ experimentId: "../../etc", name: "r" })).rejects.toBeInstanceOf(TrackingError);
    await expect(store.ensureExperiment("")).rejects.toBeInstanceOf(TrackingError);
    expect(() => store.artifactDir("../x")).toThrow(TrackingError);
    const runId = await store.createRun({ experimentId: await store.ensureExperiment("bad"), name: "r" });
    await expect(store.logArtifact(runId, await file("a"), "../outside")).rejects.toThrow(/climbs out with "\.\."/);
    await expect(store.downloadArtifact(runId, "../../runs", await tmp())).rejects.toBeInstanceOf(UnsafePathError);
    await expect(store.logArtifact(runId, "/no/such/file")).rejects.toBeInstanceOf(TrackingError);
    expect(await store.getRun("../../etc/passwd")).toBeUndefined();
  });

  it("does not copy a file the task already wrote into the artifact folder", async () => {
    const store = new LocalStore({ root: await tmp() });
    const runId = await store.createRun({ experimentId: await store.ensureExperiment("inplace"), name: "r" });
    await mkdir(join(store.artifactDir(runId), "out"), { recursive: true });
    await writeFile(join(store.artifactDir(runId), "out", "x.json"), "{}");
    await store.logArtifact(runId, join(store.artifactDir(runId), "out", "x.json"), "out");
    expect(await store.listArtifacts(runId, "out")).toEqual([{ path: "out/x.json", isDir: false, size: 2 }]);
  });

  it("writes runs still RUNNING to disk within a second, so other processes see them", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("live");
    const runId = await store.createRun({ experimentId, name: "long" });
    await new Promise((r) => setTimeout(r, 1300));
    const other = new LocalStore({ root });
    expect(await other.getRun(runId)).toMatchObject({ status: "RUNNING", name: "long" });
    expect((await other.searchRuns({ experimentIds: [experimentId] })).map((r) => r.runId)).toEqual([runId]);
  });

  it("a run file or folder that cannot be read is a TrackingError naming it; only a missing one is no run", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("unreadable");
    const runId = await store.createRun({ experimentId, name: "r" });
    await store.endRun(runId, "FINISHED");
    expect(await store.getRun("0".repeat(32))).toBeUndefined();
    const path = join(root, "runs", `${runId}.json`);
    await rm(path);
    await mkdir(path); // EISDIR on read (as root, modes would not stop a read)
    await expect(store.getRun(runId)).rejects.toThrow(new RegExp(`Cannot read ${path}.*EISDIR`));
    await expect(store.searchRuns({ experimentIds: [experimentId] })).rejects.toThrow(`${runId}.json`);
    const other = await tmp();
    await writeFile(join(other, "experiments"), "not a folder");
    await expect(new LocalStore({ root: other }).listExperiments()).rejects.toThrow(/Cannot read .*experiments.*ENOTDIR/);
  });

  it("lists an experiment whose meta.json is damaged by the name its runs prove, and leaves out (with a warning) one they do not", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const named = await store.ensureExperiment("flow-a");
    await store.endRun(await store.createRun({ experimentId: named, name: "flow-a" }), "FINISHED");
    const custom = await store.ensureExperiment("custom name");
    await store.endRun(await store.createRun({ experimentId: custom, name: "flow-b" }), "FINISHED");
    await store.ensureExperiment("fine");
    await store.flush();
    await writeFile(join(root, "experiments", named, "meta.json"), '{"na');
    await writeFile(join(root, "experiments", custom, "meta.json"), "");
    const warnings: string[] = [];
    const listed = await new LocalStore({ root }).listExperiments({ warn: (m) => warnings.push(m) });
    expect(listed).toEqual([
      { experimentId: expect.any(String), name: "fine" },
      { experimentId: named, name: "flow-a" },
    ]);
    expect(warnings).toHaveLength(2);
    expect(warnings.join("\n")).toContain(join(root, "experiments", custom, "meta.json"));
    expect(warnings.join("\n")).toMatch(/writes the file again/);
  });

  it("takes a meta.json that is valid JSON but not the experiment's record ({}, [], another id or name) for damaged: listed by its runs' name with a warning, and written again", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const wrong = {
      "meta-object": () => "{}",
      "meta-array": () => "[]",
      "meta-id": () => JSON.stringify({ experimentId: "0".repeat(16), name: "meta-id" }),
      "meta-name": (id: string) => JSON.stringify({ experimentId: id, name: "another name" }),
    };
    const ids: Record<string, string> = {};
    for (const name of Object.keys(wrong)) {
      ids[name] = await store.ensureExperiment(name);
      await store.endRun(await store.createRun({ experimentId: ids[name]!, name }), "FINISHED");
    }
    await store.flush();
    const metaOf = (name: string) => join(root, "experiments", ids[name]!, "meta.json");
    for (const [name, text] of Object.entries(wrong)) await writeFile(metaOf(name), text(ids[name]!));

    const warnings: string[] = [];
    const reader = new LocalStore({ root });
    expect((await reader.listExperiments({ warn: (m) => warnings.push(m) })).map((e) => [e.experimentId, e.name])).toEqual(
      Object.keys(wrong).sort().map((name) => [ids[name], name]),
    );
    expect(warnings).toHaveLength(4);
    for (const name of Object.keys(wrong)) expect(warnings.join("\n")).toContain(`${metaOf(name)} is not this experiment's record`);
    await expect(reader.getExperiment(ids["meta-object"]!)).rejects.toThrow(`${metaOf("meta-object")} is not this experiment's record`);

    // The flow's next run (ensureExperiment in a new process's store) writes each file again.
    const next = new LocalStore({ root });
    for (const name of Object.keys(wrong)) {
      expect(await next.ensureExperiment(name)).toBe(ids[name]);
      expect(JSON.parse(await readFile(metaOf(name), "utf8"))).toMatchObject({ experimentId: ids[name], name });
    }
    const after: string[] = [];
    expect(await new LocalStore({ root }).listExperiments({ warn: (m) => after.push(m) })).toHaveLength(4);
    expect(after).toEqual([]);
  });

  it("leaves no meta.json temp file when its write fails part-way (a file size limit: a real EFBIG after 512 bytes)", async () => {
    const root = await tmp();
    const code = `
      import { LocalStore } from ${JSON.stringify(storeModule)};
      await new LocalStore({ root: ${JSON.stringify(root)} }).ensureExperiment("x".repeat(600)).then(() => console.log("made"), (error) => console.log(error.cause?.code));
    `;
    const child = spawnSync("sh", ["-c", `ulimit -f 1 && exec "${process.execPath}" --import tsx --input-type=module -e '${code.replaceAll("'", "'\\''")}'`], { cwd: repo, encoding: "utf8" });
    expect(child.stderr).toBe("");
    expect(child.stdout.trim()).toBe("EFBIG");
    const [experiment] = await readdir(join(root, "experiments"));
    expect(await readdir(join(root, "experiments", experiment!))).toEqual([]);
  });

  it("lists experiments by name", async () => {
    const store = new LocalStore({ root: await tmp() });
    expect(await store.listExperiments()).toEqual([]);
    await store.ensureExperiment("b");
    await store.ensureExperiment("a");
    expect((await store.listExperiments()).map((e) => e.name)).toEqual(["a", "b"]);
  });
});

describe("LocalStore: its id", () => {
  it("is made once in store-id and read back by every instance at that path; a store elsewhere, or a new one at the same path, has another", async () => {
    const root = await tmp();
    const [first, racing] = await Promise.all([new LocalStore({ root }).storeId(), new LocalStore({ root }).storeId()]);
    expect(first).toMatch(/^[0-9a-f]{16}$/);
    expect(racing).toBe(first); // racing makers agree: the first file stands
    expect((await readFile(join(root, "store-id"), "utf8")).trim()).toBe(first);
    expect(await new LocalStore({ root }).storeId()).toBe(first);
    expect(await new LocalStore({ root: await tmp() }).storeId()).not.toBe(first);
    // Another machine's checkout at the same path: the same uri, another id.
    await rm(root, { recursive: true, force: true });
    expect(await new LocalStore({ root }).storeId()).not.toBe(first);
    // A damaged file is replaced.
    await writeFile(join(root, "store-id"), "not an id");
    expect(await new LocalStore({ root }).storeId()).toMatch(/^[0-9a-f]{16}$/);
  });

  it("its copy is the same for every instance at that path, and another for a copy of the folder that keeps its content and mtimes (a restored CI cache)", async () => {
    const root = await tmp();
    const copy = await new LocalStore({ root }).storeCopy();
    expect(copy).toMatch(/^[0-9a-f]+\.[0-9a-f]+$/);
    expect(await new LocalStore({ root }).storeCopy()).toBe(copy);
    const restored = join(await tmp(), "restored");
    spawnSync("cp", ["-a", root, restored]);
    const there = new LocalStore({ root: restored });
    expect(await there.storeId()).toBe(await new LocalStore({ root }).storeId());
    expect(await there.storeCopy()).not.toBe(copy);
  });
});

describe("LocalStore: runs recorded already over (cache hits), in batch files", () => {
  it("writes no run file per run: one line each in one batch file, read back by another store", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("hits");
    const flowRun = await store.createRun({ experimentId, name: "flow" });
    const ids = await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.recordRun({ experimentId, name: `t${i}`, parentRunId: flowRun, tags: { "cairn.cached_from": `s${i}` }, status: "FINISHED" })),
    );
    await store.endRun(flowRun, "FINISHED");
    const batchId = ids[0]!.slice(0, 16);
    expect(ids.every((id) => id.startsWith(batchId))).toBe(true);
    expect((await readdir(join(root, "runs"))).sort()).toEqual([`${batchId}.batch.jsonl`, `${flowRun}.json`].sort());
    expect((await readFile(join(root, "runs", `${batchId}.batch.jsonl`), "utf8")).trimEnd().split("\n")).toHaveLength(50);
    // A reader in a fresh store (another process, `cairn show`): each run, and the flow's children.
    const reader = new LocalStore({ root });
    expect(await reader.getRun(ids[7]!)).toMatchObject({ runId: ids[7], name: "t7", status: "FINISHED", parentRunId: flowRun, tags: { "cairn.cached_from": "s7" } });
    const children = await reader.searchRuns({ experimentIds: [experimentId], parentRunId: flowRun, maxResults: 1000 });
    expect(children.map((r) => r.runId).sort()).toEqual([...ids].sort());
    expect(children.every((r) => r.status === "FINISHED")).toBe(true);
    // Lines appended after the reader read the file are found too.
    const later = await store.recordRun({ experimentId, name: "late", parentRunId: flowRun, status: "FINISHED" });
    expect(later.startsWith(batchId)).toBe(true);
    expect(await reader.getRun(later)).toMatchObject({ name: "late", status: "FINISHED" });
    expect(await reader.getRun(`${batchId}${"f".repeat(16)}`)).toBeUndefined();
  });

  it("reads the old layout and the new side by side; a run file written later wins over the line", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("mixed");
    const old = await store.createRun({ experimentId, name: "old-style" });
    await store.endRun(old, "FINISHED");
    const hit = await store.recordRun({ experimentId, name: "hit", status: "FINISHED", tags: { a: "1" } });
    await store.logBatch(hit, { tags: { b: "2" } });
    await store.flush();
    // The writer read the line back to change the run: what it keeps of the batch file is unchanged.
    const batchRead = (store as unknown as { batchesRead: Map<string, { runs: Map<string, { tags: Record<string, string> }> }> }).batchesRead;
    expect(batchRead.get(hit.slice(0, 16))!.runs.get(hit)!.tags.b).toBeUndefined();
    const reader = new LocalStore({ root });
    expect(await reader.getRun(old)).toMatchObject({ name: "old-style", status: "FINISHED" });
    expect(await reader.getRun(hit)).toMatchObject({ name: "hit", status: "FINISHED", tags: { a: "1", b: "2" } });
    expect((await reader.searchRuns({ experimentIds: [experimentId] })).map((r) => r.name).sort()).toEqual(["hit", "old-style"]);
  });

  it("starts a new batch file every thousand runs", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("many");
    const ids = await Promise.all(Array.from({ length: 1001 }, (_, i) => store.recordRun({ experimentId, name: `r${i}`, status: "FINISHED" })));
    expect(new Set(ids.map((id) => id.slice(0, 16))).size).toBe(2);
    expect((await readdir(join(root, "runs"))).filter((f) => f.endsWith(".batch.jsonl"))).toHaveLength(2);
    const reader = new LocalStore({ root });
    expect(await reader.getRun(ids[999]!)).toMatchObject({ name: "r999" });
    expect(await reader.getRun(ids[1000]!)).toMatchObject({ name: "r1000" });
  });

  it("a line cut short by a crash hides only that run; whole lines before it read back", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("torn");
    const ids = await Promise.all([0, 1, 2].map((i) => store.recordRun({ experimentId, name: `r${i}`, status: "FINISHED" })));
    const batch = join(root, "runs", `${ids[0]!.slice(0, 16)}.batch.jsonl`);
    const torn = `${ids[0]!.slice(0, 16)}${"9".repeat(16)}`;
    await appendFile(batch, `{"runId":"${torn}","experimentId":"${experimentId}","na`);
    const reader = new LocalStore({ root });
    for (const id of ids) expect(await reader.getRun(id)).toMatchObject({ runId: id, status: "FINISHED" });
    expect(await reader.getRun(torn)).toBeUndefined();
    expect(await reader.searchRuns({ experimentIds: [experimentId] })).toHaveLength(3);
  });

  it("survives kill -9 between batches: every run whose record had resolved reads back FINISHED, and the next process records on", async () => {
    const root = await tmp();
    const experimentId = await new LocalStore({ root }).ensureExperiment("killed");
    const code = `
      import { LocalStore } from ${JSON.stringify(storeModule)};
      const store = new LocalStore({ root: ${JSON.stringify(root)} });
      const flowRun = await store.createRun({ experimentId: ${JSON.stringify(experimentId)}, name: "flow" });
      for (let b = 0; ; b++) {
        const ids = await Promise.all(Array.from({ length: 20 }, (_, i) =>
          store.recordRun({ experimentId: ${JSON.stringify(experimentId)}, name: "t" + b + "-" + i, parentRunId: flowRun, status: "FINISHED" })));
        process.stdout.write(JSON.stringify({ flowRun, ids }) + "\\n");
        // A batch in flight when the kill lands: recorded or not, it must not damage what was.
        void Promise.all(Array.from({ length: 20 }, (_, i) =>
          store.recordRun({ experimentId: ${JSON.stringify(experimentId)}, name: "x" + b + "-" + i, parentRunId: flowRun, status: "FINISHED" })));
      }
    `;
    const recorded: string[] = [];
    let flowRun = "";
    await new Promise<void>((done, fail) => {
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: repo, stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const lines = out.split("\n");
        out = lines.pop()!;
        for (const line of lines) {
          const batch = JSON.parse(line) as { flowRun: string; ids: string[] };
          flowRun = batch.flowRun;
          recorded.push(...batch.ids);
        }
        if (recorded.length >= 200) child.kill("SIGKILL");
      });
      child.on("error", fail);
      child.on("close", (_code, signal) => (signal === "SIGKILL" ? done() : fail(new Error(`writer exited with ${_code}, not killed`))));
    });
    const reader = new LocalStore({ root });
    for (const id of recorded) expect(await reader.getRun(id)).toMatchObject({ runId: id, status: "FINISHED", parentRunId: flowRun });
    const children = await reader.searchRuns({ experimentIds: [experimentId], parentRunId: flowRun, maxResults: 100_000 });
    expect(children.map((r) => r.runId)).toEqual(expect.arrayContaining(recorded));
    expect(children.every((r) => r.status === "FINISHED")).toBe(true);
    // The next process records its own batch and reads everything.
    const next = new LocalStore({ root });
    const more = await next.recordRun({ experimentId, name: "after", status: "FINISHED" });
    expect(more.slice(0, 16)).not.toBe(recorded[0]!.slice(0, 16));
    expect(await new LocalStore({ root }).getRun(more)).toMatchObject({ name: "after", status: "FINISHED" });
  });
});

describe("LocalStore: a line left half written (a full disk, a crash mid-append)", () => {
  it("a run appended after half a line in runs.jsonl and metrics.jsonl is listed, shown and has its metrics", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("torn-index");
    const first = await store.createRun({ experimentId, name: "first" });
    await store.logBatch(first, { metrics: [{ key: "m", value: 1, step: 0, timestamp: 1 }] });
    await store.endRun(first, "FINISHED");
    await store.flush();
    // What a write that failed part-way on a full disk leaves: the start of a line, no newline.
    const index = join(root, "experiments", experimentId, "runs.jsonl");
    await appendFile(index, `{"runId":"${"9".repeat(32)}",`);
    await appendFile(join(root, "runs", `${first}.metrics.jsonl`), `{"key":"m","val`);
    const next = new LocalStore({ root });
    const after = await next.createRun({ experimentId, name: "after" });
    await next.endRun(after, "FINISHED");
    await store.logBatch(first, { metrics: [{ key: "m", value: 2, step: 1, timestamp: 2 }] });
    await Promise.all([store.flush(), next.flush()]);
    const reader = new LocalStore({ root });
    expect((await reader.searchRuns({ experimentIds: [experimentId] })).map((r) => r.name)).toEqual(["after", "first"]);
    expect((await reader.getMetricHistory(first, "m")).map((p) => p.value)).toEqual([1, 2]);
    // The half line stands alone: the new line starts a line of its own.
    expect((await readFile(index, "utf8")).split("\n").at(-2)).toMatch(/^\{"runId":"[0-9a-f]{32}","name":"after"/);
  });

  it("reads a whole record glued after half a line (as a writer that did not end the half line leaves it), in runs.jsonl and batch files", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("glued");
    const hit = await store.recordRun({ experimentId, name: "hit", status: "FINISHED", tags: { a: "1" } });
    await store.flush();
    const index = join(root, "experiments", experimentId, "runs.jsonl");
    const batch = join(root, "runs", `${hit.slice(0, 16)}.batch.jsonl`);
    const [indexLine, batchLine] = [(await readFile(index, "utf8")).trim(), (await readFile(batch, "utf8")).trim()];
    await writeFile(index, `{"runId":"${"9".repeat(32)}","na${indexLine}\n`);
    await writeFile(batch, `{"runId":"${"9".repeat(32)}","tags":{"x":${batchLine}\n`);
    const reader = new LocalStore({ root });
    expect(await reader.getRun(hit)).toMatchObject({ name: "hit", status: "FINISHED", tags: { a: "1" } });
    expect((await reader.searchRuns({ experimentIds: [experimentId] })).map((r) => r.runId)).toEqual([hit]);
  });

  it("a run whose process is killed -9 after it was appended to a torn runs.jsonl is closed as KILLED by the next process", async () => {
    const root = await tmp();
    const experimentId = await new LocalStore({ root }).ensureExperiment("torn-killed");
    await appendFile(join(root, "experiments", experimentId, "runs.jsonl"), `{"runId":"${"9".repeat(32)}",`);
    const code = `
      import { LocalStore } from ${JSON.stringify(storeModule)};
      const store = new LocalStore({ root: ${JSON.stringify(root)} });
      const id = await store.createRun({ experimentId: ${JSON.stringify(experimentId)}, name: "flow" });
      await store.flush();
      process.stdout.write(id + "\\n");
      setInterval(() => {}, 1000);
    `;
    const runId = await new Promise<string>((done, fail) => {
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: repo, stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      let id = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("\n") && !id) {
          id = out.trim();
          child.kill("SIGKILL");
        }
      });
      child.on("error", fail);
      child.on("close", (_code, signal) => (signal === "SIGKILL" ? done(id) : fail(new Error(`writer exited with ${_code}, not killed`))));
    });
    const next = new LocalStore({ root });
    expect((await next.closeAbandonedRuns()).map((r) => r.runId)).toEqual([runId]);
    expect(await next.searchRuns({ experimentIds: [experimentId] })).toMatchObject([{ runId, status: "KILLED" }]);
  });
});

describe("LocalStore: closing the runs of a process killed -9", () => {
  it("leaves a run whose file cannot be read as it is (never a fresh KILLED record over a finished run), warns naming it, and a later store closes the rest", async () => {
    const root = await tmp();
    // A real writer: a flow run, a task that finished with a param and a metric, and one still running, then kill -9.
    const code = `
      import { LocalStore } from ${JSON.stringify(storeModule)};
      const store = new LocalStore({ root: ${JSON.stringify(root)} });
      const experimentId = await store.ensureExperiment("killed-unreadable");
      const flow = await store.createRun({ experimentId, name: "killed-unreadable" });
      const fast = await store.createRun({ experimentId, name: "fast", parentRunId: flow });
      await store.logBatch(fast, { params: { lr: "0.1" }, metrics: [{ key: "acc", value: 0.93 }] });
      await store.endRun(fast, "FINISHED");
      const slow = await store.createRun({ experimentId, name: "slow", parentRunId: flow });
      await store.flush();
      process.stdout.write(JSON.stringify({ flow, fast, slow }) + "\\n");
      setInterval(() => {}, 1000);
    `;
    const ids = await killedWriter<{ flow: string; fast: string; slow: string }>(code);
    const fastFile = join(root, "runs", `${ids.fast}.json`);
    const saved = join(root, "fast.json.saved");
    await rename(fastFile, saved);
    await mkdir(fastFile); // EISDIR on read; as root, modes would not stop a read
    const [live] = await readdir(join(root, "live"));

    const warnings: string[] = [];
    const closer = new LocalStore({ root });
    expect((await closer.closeAbandonedRuns(undefined, { warn: (m) => warnings.push(m) })).map((r) => r.runId)).toEqual([ids.flow, ids.slow]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(fastFile);
    expect(warnings[0]).toMatch(/EISDIR/);
    expect(warnings[0]).toContain(`Run ${ids.fast} ("fast") is left as it is`);
    // The writer's live file is back under its own name, for a later closer.
    expect(await readdir(join(root, "live"))).toEqual([live]);

    // Readable again: the next store finds nothing left to close, and the finished run is whole.
    await rm(fastFile, { recursive: true });
    await rename(saved, fastFile);
    const next = new LocalStore({ root });
    expect(await next.closeAbandonedRuns(undefined, { warn: (m) => warnings.push(m) })).toEqual([]);
    expect(warnings).toHaveLength(1);
    expect(await readdir(join(root, "live"))).toEqual([]);
    expect(await next.getRun(ids.fast)).toMatchObject({ status: "FINISHED", params: { lr: "0.1" }, metrics: { acc: 0.93 } });
    expect(await next.getRun(ids.slow)).toMatchObject({ status: "KILLED" });
  }, 30_000);

  it("puts back a dead writer's live file it cannot read, instead of deleting it and leaving the writer's runs RUNNING for good", async () => {
    const root = await tmp();
    const code = `
      import { LocalStore } from ${JSON.stringify(storeModule)};
      const store = new LocalStore({ root: ${JSON.stringify(root)} });
      const experimentId = await store.ensureExperiment("killed-live");
      const flow = await store.createRun({ experimentId, name: "killed-live" });
      await store.flush();
      process.stdout.write(JSON.stringify({ flow }) + "\\n");
      setInterval(() => {}, 1000);
    `;
    const ids = await killedWriter<{ flow: string }>(code);
    const [live] = await readdir(join(root, "live"));
    const liveFile = join(root, "live", live!);
    const saved = join(root, "live.saved");
    await rename(liveFile, saved);
    await mkdir(liveFile); // EISDIR on read
    const warnings: string[] = [];
    expect(await new LocalStore({ root }).closeAbandonedRuns(undefined, { warn: (m) => warnings.push(m) })).toEqual([]);
    expect(warnings).toEqual([expect.stringMatching(/EISDIR.*the runs its writer left RUNNING are closed once it can be read/)]);
    expect(await readdir(join(root, "live"))).toEqual([live]);
    await rm(liveFile, { recursive: true });
    await rename(saved, liveFile);
    const next = new LocalStore({ root });
    expect((await next.closeAbandonedRuns()).map((r) => r.runId)).toEqual([ids.flow]);
    expect(await next.getRun(ids.flow)).toMatchObject({ status: "KILLED" });
  }, 30_000);
});

/** Runs `code` (a module that writes to a store, prints its run ids as one JSON line, then waits) in a process, and kills it -9 once it has printed; resolves to what it printed. */
/** Runs `code` in a real process (under `wrapper`, with `nodeArgs`), and kills it -9 once it printed its line, the JSON it resolves to. */
describe("LocalStore: runs left RUNNING by a writer of another boot id under this host name", () => {
  it("closes them only when its live file was last written before this machine booted (an earlier boot), not when since (a machine given this name)", async (context) => {
    // Another boot id bound over the kernel's in a mount namespace of its own, as another machine of this name has.
    const bootId = join(await tmp(), "boot_id");
    await writeFile(bootId, `${"0".repeat(8)}-1111-2222-3333-${Date.now().toString(16).padStart(12, "0")}\n`);
    const wrapper = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /proc/sys/kernel/random/boot_id && exec "$@"', bootId];
    if (spawnSync(wrapper[0]!, [...wrapper.slice(1), "true"]).status !== 0) context.skip("`unshare -m` and `mount --bind` are not permitted here (needs root)");
    const root = await tmp();
    // Its clock runs back to before this machine booted, so that its owner says it started then:
    // only its live file's time (the real clock's) tells that it was at work since.
    const skew = `${pathToFileURL(join(repo, "packages/cache/test/fixtures/skew-clock.mjs")).href}?ms=${-Math.round(uptime() * 1000 + 10 * 60_000)}`;
    const code = `
      import { LocalStore } from ${JSON.stringify(storeModule)};
      const store = new LocalStore({ root: ${JSON.stringify(root)} });
      const experimentId = await store.ensureExperiment("other-boot");
      const flow = await store.createRun({ experimentId, name: "other-boot" });
      await store.flush();
      process.stdout.write(JSON.stringify({ flow }) + "\\n");
      setInterval(() => {}, 1000);
    `;
    const ids = await killedWriter<{ flow: string }>(code, { wrapper, nodeArgs: ["--import", skew] });
    const [live] = await readdir(join(root, "live"));
    expect(await new LocalStore({ root }).closeAbandonedRuns()).toEqual([]);
    expect(await new LocalStore({ root }).getRun(ids.flow)).toMatchObject({ status: "RUNNING" });
    const beforeBoot = new Date(Date.now() - uptime() * 1000 - 5 * 60_000);
    await utimes(join(root, "live", live!), beforeBoot, beforeBoot);
    expect((await new LocalStore({ root }).closeAbandonedRuns()).map((r) => r.runId)).toEqual([ids.flow]);
  });
});

function killedWriter<T>(code: string, options: { wrapper?: string[]; nodeArgs?: string[] } = {}): Promise<T> {
  return new Promise<T>((done, fail) => {
    const [command, ...prefix] = [...(options.wrapper ?? []), process.execPath];
    const args = [...prefix, ...(options.nodeArgs ?? []), "--import", "tsx", "--input-type=module", "-e", code];
    const child = spawn(command!, args, { cwd: repo, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("\n")) child.kill("SIGKILL");
    });
    child.on("error", fail);
    child.on("close", (_code, signal) => (signal === "SIGKILL" ? done(JSON.parse(out) as T) : fail(new Error(`writer exited with ${_code}, not killed`))));
  });
}

async function file(name: string): Promise<string> {
  const path = join(await tmp(), `${name}.txt`);
  await writeFile(path, name);
  return path;
}

describe("a root that is a symbolic link to nothing", () => {
  it("says it is a link and where it points, not only mkdir's ENOENT", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-dangling-"));
    const root = join(dir, ".cairn");
    await symlink(join(dir, "gone", "store"), root);
    await expect(new LocalStore({ root }).ping()).rejects.toThrow(
      `Cannot use ${root} as Cairn's local store: ENOENT: no such file or directory, mkdir '${root}'; it is a symbolic link to ${join(dir, "gone", "store")}, which does not exist: create that folder, or remove the link. Point it at a writable folder`,
    );
    await rm(dir, { recursive: true, force: true });
  });
});

describe("LocalStore: a search bounded to the newest runs (within)", () => {
  it("looks no further than the newest `within` runs, so a search for rare runs does not read every run file", async () => {
    const store = new LocalStore({ root: await tmp() });
    const experimentId = await store.ensureExperiment("within");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await store.createRun({ experimentId, name: `r${i}`, startTime: 1_700_000_000_000 + i * 1000, ...(i === 1 ? { tags: { "cairn.failed_key": "k" } } : {}) }));
    for (const [i, id] of ids.entries()) await store.endRun(id, i === 1 ? "FAILED" : "FINISHED");
    const search = { experimentIds: [experimentId], status: "FAILED", hasTag: "cairn.failed_key" } as const;
    expect((await store.searchRuns({ ...search, experimentIds: [experimentId], within: 4 })).map((r) => r.name)).toEqual(["r1"]);
    expect(await store.searchRuns({ ...search, experimentIds: [experimentId], within: 3 })).toEqual([]);
    // Told when runs were left unread, so that a caller can say its answer is bounded; not when none were.
    const cuts: number[] = [];
    for (const within of [3, 5, 6]) await store.searchRuns({ ...search, experimentIds: [experimentId], within, onCut: () => cuts.push(within) });
    expect(cuts).toEqual([3]);
    expect((await store.searchRuns({ experimentIds: [experimentId], within: 2 })).map((r) => r.name)).toEqual(["r4", "r3"]);
  });
});

describe("LocalStore.searchRuns for a parent's runs", () => {
  // The end-of-run report searches once per parent; an index of months of runs (242k lines) was
  // parsed whole each time, seconds of an all-hit run.
  it("parses only the index lines that hold the parent's id, and finds the same runs", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("etl");
    const parent = await store.createRun({ experimentId, name: "etl" });
    const children = [];
    for (let i = 0; i < 3; i++) children.push(await store.createRun({ experimentId, name: `t${i}`, parentRunId: parent }));
    const other = await store.createRun({ experimentId, name: "etl" });
    let lines = "";
    for (let i = 0; i < 10_000; i++) lines += `${JSON.stringify({ runId: `${i.toString(16).padStart(8, "0")}${"0".repeat(24)}`, name: "t", startTime: 1, parentRunId: other })}\n`;
    await appendFile(join(root, "experiments", experimentId, "runs.jsonl"), lines);
    await store.flush();
    const parse = vi.spyOn(JSON, "parse");
    try {
      const found = await new LocalStore({ root }).searchRuns({ experimentIds: [experimentId], parentRunId: parent });
      expect(found.map((r) => r.runId).sort()).toEqual([...children].sort());
      expect(parse.mock.calls.length).toBeLessThan(100);
    } finally {
      parse.mockRestore();
    }
  });
});

describe("LocalStore.searchRuns for a run id prefix", () => {
  // `cairn show <prefix>` read every run kept (5,000 runs: 5,000 run records) to find the one it names.
  it("reads the records of the runs whose id starts with it only, found by their index lines", async () => {
    const root = await tmp();
    const writer = new LocalStore({ root });
    const experimentId = await writer.ensureExperiment("etl");
    const flowRun = await writer.createRun({ experimentId, name: "etl" });
    const tasks: string[] = [];
    for (let i = 0; i < 20; i++) tasks.push(await writer.createRun({ experimentId, name: `t${i}`, parentRunId: flowRun }));
    for (const id of [flowRun, ...tasks]) await writer.endRun(id, "FINISHED");
    // Cache hits' runs recorded together share their first 16 digits: a prefix of those names them all.
    const hits = await Promise.all(Array.from({ length: 5 }, (_, i) => writer.recordRun({ experimentId, name: `hit${i}`, parentRunId: flowRun, status: "FINISHED" })));
    await writer.flush();
    const store = new LocalStore({ root });
    const reads = vi.spyOn(store, "getRun");
    const search = (runIdPrefix: string) => store.searchRuns({ experimentIds: [experimentId], runIdPrefix, maxResults: Number.MAX_SAFE_INTEGER });
    const target = tasks[7]!;
    expect((await search(target.slice(0, 12))).map((r) => r.runId)).toEqual([target]);
    expect(reads.mock.calls.map(([id]) => id)).toEqual([target]);
    reads.mockClear();
    expect((await search(hits[0]!.slice(0, 16))).map((r) => r.runId).sort()).toEqual([...hits].sort());
    expect(reads).toHaveBeenCalledTimes(hits.length);
    reads.mockClear();
    // None: nothing read. Each line found is checked whole: a prefix met elsewhere in a line (its parent's id) is no match.
    const none = target.slice(0, 12).replace(/.$/, (c) => (c === "0" ? "1" : "0"));
    expect(await search(none)).toEqual([]);
    expect(await search(flowRun.slice(8, 20))).toEqual([]);
    expect(reads).not.toHaveBeenCalled();
  });
});

describe("LocalStore on a full disk", () => {
  // Its message lacked the advice every other store error gives (free space, then run again).
  it("logBatch's metrics that cannot be appended say the file and to free space on its disk", async (ctx) => {
    const disk = await tmp();
    if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", disk]).status !== 0) return ctx.skip();
    try {
      const store = new LocalStore({ root: disk });
      const experimentId = await store.ensureExperiment("full");
      const runId = await store.createRun({ experimentId, name: "r" });
      await store.flush();
      await writeFile(join(disk, "filler"), Buffer.alloc(256 * 1024)).catch(() => {});
      const metrics = Array.from({ length: 2000 }, (_, step) => ({ key: "loss", value: step / 3, step, timestamp: 1 }));
      await expect(store.logBatch(runId, { metrics })).rejects.toThrow(
        new RegExp(`^LocalStore\\.logBatch: cannot append metrics of run ${runId} to ${disk}/.*\\.metrics\\.jsonl: ENOSPC: no space left on device, write; the disk \\(or your quota\\) is full: free space on it, then run again\\.$`),
      );
      await rm(join(disk, "filler"));
      await store.flush();
    } finally {
      spawnSync("umount", [disk]);
    }
  });
});
