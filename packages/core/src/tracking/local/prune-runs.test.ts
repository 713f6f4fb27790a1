/**
 * `LocalStore.pruneRuns` (`cairn runs prune`): an operator's `.cairn` grew forever, since nothing
 * removed runs. It removes old flow runs whole, keeps what a cache entry or a live process needs,
 * and never loses the line of a run created while it rewrites an index.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import * as fsPromises from "node:fs/promises";
import { appendFile, link, mkdtemp, readdir, readFile, rename, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatOwner, parseOwner } from "@cairn/cache";
import { describe, expect, it, vi } from "vitest";
import { LocalStore } from "./local-store.ts";
import { choosePrunedRuns, type PrunableRun } from "./prune-runs.ts";

/** Work a test runs just before the prune renames or removes a file whose path passes `when`: a recorder racing it. */
const races = vi.hoisted(() => [] as { when: (path: string) => boolean; run: () => Promise<unknown>; ran?: boolean }[]);

// lstat passes through, counted: a prune must not stat every removed run's would-be files.
// rename, rm, unlink and link pass through after the race waiting for their (first) path, if any.
vi.mock("node:fs/promises", async (original) => {
  const fs = await original<typeof import("node:fs/promises")>();
  const raced =
    <A extends unknown[], R>(fn: (path: string, ...rest: A) => Promise<R>) =>
    async (path: string, ...rest: A): Promise<R> => {
      const race = races.find((r) => !r.ran && r.when(String(path)));
      if (race) {
        race.ran = true;
        await race.run();
      }
      return fn(path, ...rest);
    };
  return { ...fs, lstat: vi.fn(fs.lstat), rename: raced(fs.rename), rm: raced(fs.rm), unlink: raced(fs.unlink), link: raced(fs.link) };
});

const tmp = () => mkdtemp(join(tmpdir(), "cairn-prune-"));
const DAY = 86_400_000;

/** A flow run with `tasks` task runs (each with an artifact), all ended `daysAgo` days ago. */
async function flowRun(store: LocalStore, experimentId: string, daysAgo: number, tasks = 2): Promise<{ flow: string; tasks: string[] }> {
  const startTime = Date.now() - daysAgo * DAY;
  const flow = await store.createRun({ experimentId, name: "etl", startTime });
  const ids: string[] = [];
  for (let i = 0; i < tasks; i++) {
    const id = await store.createRun({ experimentId, name: `t${i}`, parentRunId: flow, startTime });
    await store.logBatch(id, { params: { i: String(i) }, metrics: [{ key: "m", value: i, step: 0, timestamp: startTime }] });
    await store.endRun(id, "FINISHED", startTime + 1);
    ids.push(id);
  }
  await store.endRun(flow, "FINISHED", startTime + 2);
  return { flow, tasks: ids };
}

async function indexed(root: string, experimentId: string): Promise<string[]> {
  const text = await readFile(join(root, "experiments", experimentId, "runs.jsonl"), "utf8");
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { runId: string }).runId);
}

describe("choosePrunedRuns", () => {
  it("keeps a tree whole when one of its runs is RUNNING, counted for it, not for the cache", async () => {
    // flow > group > task (RUNNING); flow > source (a kept cache entry's source); flow > done.
    const lines = [
      { runId: "flow", startTime: 1, writer: "w" },
      { runId: "group", parentRunId: "flow", startTime: 1, writer: "w" },
      { runId: "task", parentRunId: "group", startTime: 1, writer: "w" },
      { runId: "source", parentRunId: "flow", startTime: 1, writer: "w" },
      { runId: "done", parentRunId: "flow", startTime: 1, writer: "w" },
    ];
    const runs: Record<string, PrunableRun> = { task: { status: "RUNNING", startTime: 1 } };
    const choice = await choosePrunedRuns(lines, {
      endedBefore: 100,
      keep: new Set(["source"]),
      runOf: async (runId) => runs[runId] ?? { status: "FINISHED", startTime: 1, endTime: 2 },
      writerMayRun: () => false,
    });
    expect(choice.remove.map((line) => line.runId)).toEqual([]);
    expect(choice).toMatchObject({ keptRunning: 5, keptForCache: 0 });
  });

  it("keeps a flow run whole when a kept cache entry names one of its runs: its failed and skipped task runs stay beside the source", async () => {
    // Before, only the source and the runs above it stayed: `cairn show` of the flow run counted a
    // failed task its table no longer listed, and the failed task's run and error were gone.
    const lines = [
      { runId: "flow", startTime: 1, writer: "w" },
      { runId: "extract", parentRunId: "flow", startTime: 1, writer: "w" },
      { runId: "extract[0]", parentRunId: "extract", startTime: 1, writer: "w" },
      { runId: "load", parentRunId: "flow", startTime: 1, writer: "w" },
      { runId: "skipped", parentRunId: "flow", startTime: 1 },
      { runId: "other", startTime: 1, writer: "w" },
      { runId: "other-task", parentRunId: "other", startTime: 1, writer: "w" },
    ];
    const choice = await choosePrunedRuns(lines, {
      endedBefore: 100,
      keep: new Set(["extract[0]"]),
      runOf: async () => ({ status: "FINISHED", startTime: 1, endTime: 2 }),
      writerMayRun: () => false,
    });
    expect(choice.remove.map((line) => line.runId)).toEqual(["other", "other-task"]);
    expect(choice).toMatchObject({ keptRunning: 0, keptForCache: 5 });
  });
});

describe("LocalStore.pruneRuns", () => {
  it("removes flow runs that ended before the limit with their task runs and files; keeps a cache entry's source with its whole flow run, a RUNNING run and a young one", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("etl");
    const old = await flowRun(store, experimentId, 40);
    const source = await flowRun(store, experimentId, 40);
    const young = await flowRun(store, experimentId, 1);
    const running = await store.createRun({ experimentId, name: "etl", startTime: Date.now() - 40 * DAY });
    // A cache hit's run, recorded over: one line of a batch file.
    const hit = await store.recordRun({ experimentId, name: "t0", parentRunId: old.flow, status: "FINISHED", startTime: Date.now() - 40 * DAY, endTime: Date.now() - 40 * DAY });
    await store.flush();
    const artifact = join(store.artifactDir(old.tasks[0]!), "out.txt");
    await store.logArtifact(old.tasks[0]!, await writeTemp("out.txt", "x"));
    expect(existsSync(artifact)).toBe(true);
    // The batch file was last written when its runs were recorded (a live recorder appends to it since).
    const batch = join(root, "runs", `${hit.slice(0, 16)}.batch.jsonl`);
    await utimes(batch, new Date(Date.now() - 40 * DAY), new Date(Date.now() - 40 * DAY));

    const pruner = new LocalStore({ root });
    const dry = await pruner.pruneRuns({ endedBefore: Date.now() - 30 * DAY, keep: new Set([source.tasks[1]!]), dryRun: true });
    expect(dry).toMatchObject({ removedRuns: 4, removedFlowRuns: 1, keptForCache: 3, keptRunning: 1 });
    expect(await indexed(root, experimentId)).toHaveLength(11);

    const r = await pruner.pruneRuns({ endedBefore: Date.now() - 30 * DAY, keep: new Set([source.tasks[1]!]) });
    expect(r).toEqual(dry);
    expect(r.freedBytes).toBeGreaterThan(0);
    const left = await indexed(root, experimentId);
    expect(left.sort()).toEqual([source.flow, ...source.tasks, ...[young.flow, ...young.tasks], running].sort());
    for (const id of [old.flow, ...old.tasks]) {
      expect(existsSync(join(root, "runs", `${id}.json`)), id).toBe(false);
      expect(existsSync(join(root, "runs", `${id}.metrics.jsonl`)), id).toBe(false);
    }
    expect(existsSync(artifact)).toBe(false);
    expect(existsSync(batch)).toBe(false);
    const reader = new LocalStore({ root });
    expect(await reader.getRun(source.tasks[1]!)).toMatchObject({ status: "FINISHED", params: { i: "1" } });
    expect(await reader.getRun(running)).toMatchObject({ status: "RUNNING" });
    expect((await reader.searchRuns({ experimentIds: [experimentId], topLevelOnly: true })).map((run) => run.runId).sort()).toEqual([source.flow, young.flow, running].sort());
    await store.endRun(running, "FINISHED");
  });

  it("a run created while the prune rewrites the index keeps its line, also by a store that holds the index open", async () => {
    const root = await tmp();
    const writer = new LocalStore({ root });
    const experimentId = await writer.ensureExperiment("etl");
    for (let i = 0; i < 20; i++) await flowRun(writer, experimentId, 40, 1);
    // The writer's index stays open between its appends: the prune's rename leaves it pointing at the old file.
    const before = await writer.createRun({ experimentId, name: "etl" });
    const pruner = new LocalStore({ root });
    const created: string[] = [before];
    const pruned = pruner.pruneRuns({ endedBefore: Date.now() - 30 * DAY, keep: new Set() });
    // Runs created while the prune reads, rewrites and renames, and right after it.
    for (let i = 0; i < 30; i++) created.push(await writer.createRun({ experimentId, name: "etl" }));
    expect((await pruned).removedRuns).toBe(40);
    for (let i = 0; i < 5; i++) created.push(await writer.createRun({ experimentId, name: "etl" }));
    for (const id of created) await writer.endRun(id, "FINISHED");
    await writer.flush();
    const left = new Set(await indexed(root, experimentId));
    expect(created.filter((id) => !left.has(id))).toEqual([]);
    expect(left.size).toBe(created.length);
    const runs = await new LocalStore({ root }).searchRuns({ experimentIds: [experimentId], maxResults: 1000 });
    expect(runs).toHaveLength(created.length);
  });

  it("a hit recorded while the prune removes its idle batch file keeps its run, also one written through a file held open", async () => {
    const root = await tmp();
    // A long-lived recorder (a `cairn worker`) whose batch file has been idle longer than the limit.
    const worker = new LocalStore({ root });
    const experimentId = await worker.ensureExperiment("etl");
    const oldTime = Date.now() - 40 * DAY;
    const oldFlow = await worker.createRun({ experimentId, name: "etl", startTime: oldTime });
    const oldHit = await worker.recordRun({ experimentId, name: "t0", parentRunId: oldFlow, status: "FINISHED", startTime: oldTime, endTime: oldTime });
    await worker.endRun(oldFlow, "FINISHED", oldTime + 1);
    await worker.flush();
    const batch = join(root, "runs", `${oldHit.slice(0, 16)}.batch.jsonl`);
    await utimes(batch, new Date(oldTime), new Date(oldTime));
    const pruner = new LocalStore({ root });
    await pruner.getRun(oldHit); // the pruner has read the batch file before
    const flow = await worker.createRun({ experimentId, name: "etl" });
    const hits: string[] = [];
    const record = async () => hits.push(await worker.recordRun({ experimentId, name: "t0", parentRunId: flow, status: "FINISHED" }));
    // One hit once the prune has chosen the batch file, just before it goes; one more as the prune
    // ends its removal, through the file the worker still holds open.
    races.push({ when: (path) => path === batch, run: record }, { when: (path) => path.startsWith(`${batch}.`), run: record });
    try {
      const r = await pruner.pruneRuns({ endedBefore: Date.now() - 30 * DAY, keep: new Set() });
      expect(r.removedRuns).toBe(2);
    } finally {
      races.length = 0;
    }
    expect(hits.length).toBeGreaterThanOrEqual(1);
    await worker.endRun(flow, "FINISHED");
    await worker.flush();
    for (const reader of [new LocalStore({ root }), pruner]) {
      for (const hit of hits) expect(await reader.getRun(hit), hit).toMatchObject({ status: "FINISHED", parentRunId: flow });
      expect(await reader.getRun(oldHit)).toBeUndefined();
    }
    expect((await indexed(root, experimentId)).sort()).toEqual([flow, ...hits].sort());
    expect(hits).toHaveLength(2);
  });

  it("a batch file a killed prune left set aside is put back by the next prune: a hit recorded after the kill or after that prune read the file keeps its run, an old one goes, and nothing is left aside", async () => {
    const root = await tmp();
    const experimentId = await new LocalStore({ root }).ensureExperiment("etl");
    /** A flow run with one hit's run, recorded by `store` (each store has its own batch file). */
    const hit = async (store: LocalStore, daysAgo: number) => {
      const time = Date.now() - daysAgo * DAY;
      const flow = await store.createRun({ experimentId, name: "etl", startTime: time });
      const run = await store.recordRun({ experimentId, name: "t0", parentRunId: flow, status: "FINISHED", startTime: time, endTime: time });
      await store.endRun(flow, "FINISHED", time + 1);
      await store.flush();
      return { flow, hit: run, batch: join(root, "runs", `${run.slice(0, 16)}.batch.jsonl`) };
    };
    const [a, b, c] = [new LocalStore({ root }), new LocalStore({ root }), new LocalStore({ root })];
    // a: an old hit, then a young one appended after the killed prune had read the file.
    const aOld = await hit(a, 40);
    const aYoung = await hit(a, 0);
    // b: an old hit only, and a young one its recorder made a new file for after the kill.
    const bOld = await hit(b, 40);
    // c: old hits only, which this prune removes.
    const cOld = await hit(c, 40);
    for (const { batch } of [aOld, bOld, cOld]) {
      await utimes(batch, new Date(Date.now() - 40 * DAY), new Date(Date.now() - 40 * DAY));
      await rename(batch, `${batch}.pruning`); // as removeBatchFile leaves it when killed right after its rename
    }
    const bYoung = await hit(b, 0);
    // d: a young hit whose file is both at its path and aside (a restoring prune killed after its link).
    const dYoung = await hit(new LocalStore({ root }), 0);
    await link(dYoung.batch, `${dYoung.batch}.pruning`);
    expect(existsSync(bYoung.batch) && !existsSync(aYoung.batch)).toBe(true);
    // The killed prune's lock: its process is gone.
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    await writeFile(join(root, "prune.lock"), formatOwner().replace(`:${process.pid}`, `:${dead}`));
    expect(await new LocalStore({ root }).getRun(aYoung.hit)).toBeUndefined(); // set aside, no reader sees it

    const r = await new LocalStore({ root }).pruneRuns({ endedBefore: Date.now() - 30 * DAY, keep: new Set() });
    expect(r).toMatchObject({ removedRuns: 6, removedFlowRuns: 3 });
    expect((await readdir(join(root, "runs"))).filter((name) => name.endsWith(".pruning"))).toEqual([]);
    expect(existsSync(join(root, "prune.lock"))).toBe(false);
    const reader = new LocalStore({ root });
    for (const young of [aYoung, bYoung]) expect(await reader.getRun(young.hit), young.hit).toMatchObject({ status: "FINISHED", parentRunId: young.flow });
    expect(existsSync(cOld.batch)).toBe(false);
    expect(await reader.getRun(cOld.hit)).toBeUndefined();
    expect((await readFile(dYoung.batch, "utf8")).split("\n").filter(Boolean)).toHaveLength(1);
    expect((await indexed(root, experimentId)).sort()).toEqual([aYoung.flow, aYoung.hit, bYoung.flow, bYoung.hit, dYoung.flow, dYoung.hit].sort());
  });

  it("a store of many cache hits' runs is pruned with a listing of its folders, not a stat per run", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("etl");
    const { flow } = await flowRun(store, experimentId, 40, 1);
    await store.flush();
    // 20,000 hits' runs under the old flow run: index lines with no file of their own.
    let lines = "";
    for (let i = 0; i < 20_000; i++) lines += `${JSON.stringify({ runId: `${i.toString(16).padStart(8, "0")}${"0".repeat(24)}`, name: "t", startTime: 1, parentRunId: flow })}\n`;
    await appendFile(join(root, "experiments", experimentId, "runs.jsonl"), lines);
    vi.mocked(fsPromises.lstat).mockClear();
    const r = await new LocalStore({ root }).pruneRuns({ endedBefore: Date.now() - 30 * DAY, keep: new Set() });
    expect(r.removedRuns).toBe(20_002);
    expect(vi.mocked(fsPromises.lstat).mock.calls.length).toBeLessThan(100);
    expect(await indexed(root, experimentId)).toEqual([]);
  });

  it("refuses a second prune while one holds the store, naming its process", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    await store.ensureExperiment("etl");
    await writeFile(join(root, "prune.lock"), `${formatOwner()}:abcd1234`);
    await expect(new LocalStore({ root }).pruneRuns({ endedBefore: Date.now(), keep: new Set() })).rejects.toThrow(/Another prune is removing runs from .*\(process \d+ on .*\).*delete .*prune\.lock/);
  });

  // A full disk made the lock and refused its content: the empty lock left refused every later prune as "Another prune".
  it("on a full disk says to free space, and leaves no lock behind", async (ctx) => {
    const disk = await tmp();
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", disk], { stdio: "ignore" });
    } catch {
      return ctx.skip();
    }
    try {
      await new LocalStore({ root: disk }).ensureExperiment("etl");
      await writeFile(join(disk, "filler"), Buffer.alloc(256 * 1024)).catch(() => {});
      for (let i = 0; i < 2; i++) {
        await expect(new LocalStore({ root: disk }).pruneRuns({ endedBefore: Date.now(), keep: new Set() })).rejects.toThrow(
          `cannot write ${join(disk, "prune.lock")}: ENOSPC: no space left on device, write; the disk (or your quota) is full: free space on it, then run again.`,
        );
        expect(existsSync(join(disk, "prune.lock"))).toBe(false);
      }
    } finally {
      execFileSync("umount", [disk]);
    }
  });

  it("takes over an empty or unreadable lock older than a few seconds (its writer died before writing its owner); a younger one is refused", async () => {
    const root = await tmp();
    await new LocalStore({ root }).ensureExperiment("etl");
    const lock = join(root, "prune.lock");
    await writeFile(lock, "");
    // Before, it said "Another prune is removing runs" though no process owned the lock, and not when it would be taken over.
    const made = new Date((await fsPromises.stat(lock)).mtimeMs + 10_000).toTimeString().slice(0, 8);
    await expect(new LocalStore({ root }).pruneRuns({ endedBefore: Date.now(), keep: new Set() })).rejects.toThrow(
      new RegExp(
        `^Cannot prune runs from ${escape(root)}: ${escape(lock)} was left empty by a prune that was stopped before it wrote its pid\\. ` +
          `It is taken over 10 s after it was made, at ${made} \\(in (10|9|8) s\\): run this again then, or delete ${escape(lock)} if no prune runs\\.$`,
      ),
    );
    await writeFile(lock, "not an owner");
    await expect(new LocalStore({ root }).pruneRuns({ endedBefore: Date.now(), keep: new Set() })).rejects.toThrow(/prune\.lock names no prune's process\. It is taken over 10 s after it was made/);
    for (const text of ["", "not an owner"]) {
      await writeFile(lock, text);
      const old = new Date(Date.now() - 60_000);
      await utimes(lock, old, old);
      await expect(new LocalStore({ root }).pruneRuns({ endedBefore: Date.now(), keep: new Set() })).resolves.toMatchObject({ removedRuns: 0 });
      expect(existsSync(lock)).toBe(false);
    }
  });
  // Made empty and then written, a prune killed in between (kill -9) left an empty lock that refused every prune.
  it("makes its lock with its owner already in it: the lock's name is linked to a file that holds its process", async () => {
    const root = await tmp();
    await new LocalStore({ root }).ensureExperiment("etl");
    const lock = join(root, "prune.lock");
    let before: { lockThere: boolean; text: string } | undefined;
    races.push({ when: (path) => path.startsWith(`${lock}.`), run: async () => void (before = { lockThere: existsSync(lock), text: await readFile(readdirSync(root).filter((n) => n.startsWith("prune.lock.")).map((n) => join(root, n))[0]!, "utf8") }) });
    try {
      await expect(new LocalStore({ root }).pruneRuns({ endedBefore: Date.now(), keep: new Set() })).resolves.toMatchObject({ removedRuns: 0 });
    } finally {
      races.length = 0;
    }
    expect(before?.lockThere).toBe(false);
    expect(parseOwner(before!.text)).toMatchObject({ pid: process.pid });
    expect(readdirSync(root).filter((name) => name.startsWith("prune.lock"))).toEqual([]);
  });

  it("takes over a stale lock whose takeover claim a killed prune left (older than a few seconds); a young claim still refuses", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("etl");
    await flowRun(store, experimentId, 40);
    await store.flush();
    const lock = join(root, "prune.lock");
    await writeFile(lock, formatOwner().replace(`:${process.pid}`, `:${spawnSync(process.execPath, ["-e", ""]).pid}`));
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const { ino, mtimeMs } = await fsPromises.stat(lock);
    const claim = `${lock}.takeover-${ino}-${Math.trunc(mtimeMs)}`;
    await writeFile(claim, ""); // a prune killed between claiming the stale lock and removing it
    const prune = () => new LocalStore({ root }).pruneRuns({ endedBefore: Date.now() - 30 * DAY, keep: new Set() });
    await expect(prune()).rejects.toThrow(/^Another prune is removing runs from .*prune\.lock is there/);
    await utimes(claim, old, old);
    await expect(prune()).resolves.toMatchObject({ removedRuns: 3 });
    expect((await readdir(root)).filter((name) => name.startsWith("prune.lock"))).toEqual([]);
  });

  it("of two prunes that find the same dead takeover claim, one takes the lock over and the other is refused", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("etl");
    await flowRun(store, experimentId, 40);
    await store.flush();
    const lock = join(root, "prune.lock");
    await writeFile(lock, formatOwner().replace(`:${process.pid}`, `:${spawnSync(process.execPath, ["-e", ""]).pid}`));
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const { ino, mtimeMs } = await fsPromises.stat(lock);
    const claim = `${lock}.takeover-${ino}-${Math.trunc(mtimeMs)}`;
    await writeFile(claim, "");
    await utimes(claim, old, old);
    const prune = () => new LocalStore({ root }).pruneRuns({ endedBefore: Date.now() - 30 * DAY, keep: new Set() }).then((r) => r, (error: Error) => error);
    let second: Promise<unknown> | undefined;
    // The first, about to remove the dead claim: the second finds it too, and runs to its end.
    races.push({ when: (path) => path === claim, run: async () => void (await (second = prune())) });
    try {
      const outcomes = [await prune(), await second];
      const refused = outcomes.filter((o) => o instanceof Error);
      expect(refused).toHaveLength(1);
      expect((refused[0] as Error).message).toMatch(/^Another prune is removing runs from .*prune\.lock is there/);
      expect(outcomes.find((o) => !(o instanceof Error))).toMatchObject({ removedRuns: 3 });
      expect((await readdir(root)).filter((name) => name.startsWith("prune.lock"))).toEqual([]);
    } finally {
      races.length = 0;
    }
  });
});

describe("two prunes over one stale lock", () => {
  // Both read the same stale lock. Before: the second to act unlinked it by path after the first
  // had replaced it with its own, took its own, and both removed runs at once.
  it.each([
    ["its process is gone", (): string => formatOwner().replace(`:${process.pid}`, `:${spawnSync(process.execPath, ["-e", ""]).pid}`)],
    ["empty and older than a few seconds", (): string => ""],
  ])("%s: one takes it over, the other is refused as another prune", async (_, text) => {
    const root = await tmp();
    const store = new LocalStore({ root });
    const experimentId = await store.ensureExperiment("etl");
    await flowRun(store, experimentId, 40);
    await store.flush();
    const lock = join(root, "prune.lock");
    await writeFile(lock, text());
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    let second: Promise<unknown> | undefined;
    let firstResumed = false;
    let holds!: () => void;
    const secondHolds = new Promise<void>((resolve) => (holds = resolve));
    let release!: () => void;
    const firstDone = new Promise<void>((resolve) => (release = resolve));
    races.push(
      // The first prune, about to remove the stale lock it read: the second starts and reads it too.
      {
        when: (path) => path === lock,
        run: async () => {
          second = new LocalStore({ root }).pruneRuns({ endedBefore: Date.now() - 30 * DAY, keep: new Set() });
          await Promise.race([secondHolds, second.catch(() => {})]);
          firstResumed = true;
        },
      },
      // The second, holding the lock, removes its first run's files once the first has ended.
      { when: (path) => !firstResumed && !path.startsWith(lock), run: async () => (holds(), await firstDone) },
    );
    try {
      const first = await new LocalStore({ root }).pruneRuns({ endedBefore: Date.now() - 30 * DAY, keep: new Set() }).then(
        (r) => r,
        (error: Error) => error,
      );
      release();
      const outcomes = [first, await second!.then((r) => r, (error: Error) => error)];
      const refused = outcomes.filter((o) => o instanceof Error);
      expect(refused).toHaveLength(1);
      expect((refused[0] as Error).message).toMatch(/^Another prune is removing runs from .*prune\.lock is there/);
      expect(outcomes.find((o) => !(o instanceof Error))).toMatchObject({ removedRuns: 3 });
      expect((await readdir(root)).filter((name) => name.startsWith("prune.lock"))).toEqual([]);
    } finally {
      races.length = 0;
      release();
    }
  });
});

async function writeTemp(name: string, text: string): Promise<string> {
  const path = join(await tmp(), name);
  await writeFile(path, text);
  return path;
}

/** `text` as a regular expression that matches it literally. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
