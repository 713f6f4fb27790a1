/**
 * The cache across real processes: two racers on one embedded store, kill -9 and
 * resume, and the CLI's --rerun / --refresh / --no-cache. Marker files count how
 * often each task really ran, whatever process ran it.
 */
import { type ChildProcess, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheStore, type CacheEntry } from "@cairn/cache";
import { startRedisServer, type RedisServer } from "../../packages/cache/test/redis-server.ts";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { countMarks } from "./fixtures/markers.ts";
import { type Exit, cairnBin, cairnRun, childEnv, entryFiles, finalStatus, fixture, killGroup, repo, sleep, start, taskEvents, tmp, tsxScript } from "./helpers.ts";

/** slow-after-fast.flow.ts in fresh folders: "fast" ends at once, "slow" runs 4 s, long enough to be killed in. */
async function slowAfterFast() {
  const markers = await tmp();
  return { root: await tmp(), markers, file: fixture("slow-after-fast.flow.ts"), env: { MARKER_DIR: markers, SLOW_MS: "4000" } };
}

const flowEvents = (exit: Exit) => exit.json.filter((e) => e.type === "flow");
/** `cairn show RUN --json`: the flow run and its task runs, as the tracker records them. */
function cairnShow(runId: string, env: NodeJS.ProcessEnv): { run: { status: string; tags: Record<string, string> }; tasks: Array<{ status: string; tags: Record<string, string> }> } {
  const shown = spawnSync(process.execPath, [cairnBin, "show", runId, "--json"], { cwd: repo, env: childEnv(env), encoding: "utf8" });
  if (shown.status !== 0) throw new Error(`cairn show ${runId} exited with ${shown.status}:\n${shown.stderr}`);
  return JSON.parse(shown.stdout);
}
const expectOk = (exit: Exit) => {
  if (exit.code !== 0) throw new Error(`exited with ${exit.code ?? exit.signal}:\n${exit.stderr}\n${exit.stdout}`);
};

describe("two processes on one store at once", () => {
  it("compute the slow task once; both succeed; the other one waits and reports it cached; both read the same whole entry", async () => {
    const root = await tmp();
    const markers = await tmp();
    const barrier = await tmp();
    const env = { MARKER_DIR: markers, SLOW_MS: "2000" };
    const script = fixture("race.ts");
    const [one, two] = await Promise.all([tsxScript(script, [root, barrier, "one"], env).done, tsxScript(script, [root, barrier, "two"], env).done]);
    expectOk(one);
    expectOk(two);

    // The slow task ran exactly once across both processes. (The instant "fast" task is not
    // counted: see the lookup-then-lease window in local.test.ts, which can let it run twice.)
    const marks = await countMarks(markers);
    expect(marks.slow).toBe(1);
    expect(marks.fast).toBeGreaterThanOrEqual(1);

    const reports = [one, two].map((exit) => exit.json.find((e) => e.report === true) as { id: string; status: string; slow: { status: string; runId: string; cachedFrom?: string }; outputs: unknown; entries: CacheEntry[] });
    for (const r of reports) {
      expect(r.status).toBe("succeeded");
      expect(r.outputs).toEqual({ w: 2 });
    }
    const computed = reports.filter((r) => r.slow.status === "succeeded");
    const cached = reports.filter((r) => r.slow.status === "cached");
    expect(computed).toHaveLength(1);
    expect(cached).toHaveLength(1);
    expect(cached[0]!.slow.cachedFrom).toBe(computed[0]!.slow.runId);

    // They started together, so the one that did not compute waited for the other.
    const waiter = cached[0]!.id === "one" ? one : two;
    const slowStatuses = taskEvents(waiter.json, "slow").map((e) => e.status);
    expect(slowStatuses).toContain("waiting");
    expect(slowStatuses).not.toContain("running");
    expect(slowStatuses.indexOf("waiting")).toBeLessThan(slowStatuses.indexOf("cached"));

    // No torn entry: each process read back one whole entry, the same one, naming the computing run.
    for (const r of reports) {
      expect(r.entries).toHaveLength(1);
      expect(r.entries[0]).toMatchObject({ taskName: "slow", sourceRunId: computed[0]!.slow.runId, outputs: { values: { w: 2 }, artifacts: [] } });
    }
    expect(reports[0]!.entries[0]).toEqual(reports[1]!.entries[0]);
    for (const file of await entryFiles(root)) expect(() => JSON.parse(readFileSync(file, "utf8"))).not.toThrow();
    expect(await entryFiles(root)).toHaveLength(2); // fast and slow
    expect((await readdir(join(root, "cache", "entries"))).filter((n) => !n.endsWith(".json"))).toEqual([]); // no temp file left half-written beside them
  });
});

describe("a run that holds the key, and a second run that meets it while it computes", () => {
  /**
   * held.flow.ts in fresh folders. `first(env, wrapper)` starts a run under `wrapper` (e.g.
   * unshare) and resolves once its task "held" works; `second()` then starts a plain run and
   * resolves with its exit, after releasing "held" once the second's task waits or runs. With
   * `ownRoots`, the second runs in a project folder of its own, as on another machine.
   */
  async function heldScenario(env: NodeJS.ProcessEnv = {}, options: { ownRoots?: boolean } = {}) {
    const root = await tmp();
    const secondRoot = options.ownRoots ? await tmp() : root;
    const markers = await tmp();
    const release = join(await tmp(), "release");
    const file = fixture("held.flow.ts");
    const shared = { MARKER_DIR: markers, RELEASE_FILE: release, ...env };
    return {
      markers,
      async first(extra: NodeJS.ProcessEnv, wrapper: string[] = []) {
        const started = start(wrapper[0] ?? process.execPath, [...wrapper.slice(1), ...(wrapper.length ? [process.execPath] : []), cairnBin, "run", file, "--json", "--root", root], {
          env: childEnv({ ...shared, ...extra }),
        });
        for (const until = Date.now() + 30_000; !(await countMarks(markers)).held; await sleep(25)) {
          if (Date.now() > until) throw new Error(`the first run's task never started:\n${(await Promise.race([started.done, sleep(10)]))?.stderr ?? ""}`);
        }
        return started;
      },
      async second() {
        let met = false;
        const run = cairnRun(file, secondRoot, [], shared, (out) => {
          if (met || !out.split("\n").some((l) => l.includes('"task":"held"') && /"status":"(waiting|running)"/.test(l))) return;
          met = true;
          void writeFile(release, "");
        });
        const exit = await run.done;
        await writeFile(release, ""); // also when it ended before meeting the task
        return exit;
      },
    };
  }

  const canUnshare = spawnSync("unshare", ["-p", "-f", "--mount-proc", "true"]).status === 0;

  it("in another PID namespace with this host name (a container with --network host): the second waits for it, and closes none of its runs", async (context) => {
    if (!canUnshare) context.skip("`unshare -p -f --mount-proc` is not permitted here (needs root or user namespaces)");
    const scenario = await heldScenario();
    const first = await scenario.first({}, ["unshare", "-p", "-f", "--kill-child", "--mount-proc"]);
    try {
      const second = await scenario.second();
      const one = await first.done;
      expectOk(one);
      expectOk(second);
      // Before, the second judged the first's pid (1 in its namespace) by this namespace's pid 1:
      // "gone", so it closed the first's live runs as KILLED and took its lease.
      expect(`${second.stdout}${second.stderr}`).not.toMatch(/KILLED/);
      expect((await countMarks(scenario.markers)).held).toBe(1);
      expect(taskEvents(second.json, "held").map((e) => e.status)).toContain("waiting");
      expect(finalStatus(second.json, "held")).toBe("cached");
      expect(taskEvents(second.json, "held").find((e) => e.status === "cached")!.cachedFrom).toBe(taskEvents(one.json, "held").find((e) => e.status === "succeeded")!.taskRunId);
      expect(flowEvents(one).at(-1)).toMatchObject({ status: "succeeded" });
    } finally {
      killGroup(first.child);
    }
  });

  /**
   * The first run as on another machine of the same host name (a container given one
   * `--hostname`, a cloned VM named `ubuntu`): another boot id, bound over
   * /proc/sys/kernel/random/boot_id in a mount namespace of its own. Undefined where mounts are
   * not permitted (not root).
   */
  const otherBootId = (() => {
    const file = join(mkdtempSync(join(tmpdir(), "cairn-boot-id-")), "boot_id");
    writeFileSync(file, `${randomUUID()}\n`);
    const wrapper = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /proc/sys/kernel/random/boot_id && exec "$@"', file];
    const seen = spawnSync(wrapper[0]!, [...wrapper.slice(1), "cat", "/proc/sys/kernel/random/boot_id"], { encoding: "utf8" });
    return seen.status === 0 && seen.stdout === readFileSync(file, "utf8") ? wrapper : undefined;
  })();

  describe("on another machine with this host name (another boot id)", () => {
    let mlflow: MlflowServer | undefined;
    let redis: RedisServer | undefined;
    beforeAll(async () => {
      if (!otherBootId) return;
      [mlflow, redis] = await Promise.all([startMlflowServer(), startRedisServer()]);
    });
    afterAll(async () => {
      await Promise.all([mlflow?.stop(), redis?.stop()]);
    });

    it.for([
      { where: "one embedded store in a shared project folder", ownRoots: false },
      { where: "a shared MLflow server and redis cache, each in its own folder", ownRoots: true },
    ])("$where: the second waits for the first's lease and closes none of its runs", async ({ ownRoots }, context) => {
      if (!otherBootId) context.skip("`unshare -m` and `mount --bind` are not permitted here (needs root)");
      const env = ownRoots ? { MLFLOW_TRACKING_URI: mlflow!.uri, CAIRN_CACHE_URL: redis!.url, MLFLOW_EXPERIMENT_NAME: `other-boot-${randomUUID().slice(0, 8)}` } : {};
      const scenario = await heldScenario(env, { ownRoots });
      const first = await scenario.first({}, otherBootId!);
      try {
        const second = await scenario.second();
        const one = await first.done;
        expectOk(one);
        expectOk(second);
        // Before, the second took the first's boot id for an earlier boot of this machine, so its
        // process for gone: it closed the first's live runs as KILLED and took its lease.
        expect(`${second.stdout}${second.stderr}`).not.toMatch(/KILLED|abandoned/);
        expect((await countMarks(scenario.markers)).held).toBe(1);
        expect(taskEvents(second.json, "held").map((e) => e.status)).toContain("waiting");
        expect(finalStatus(second.json, "held")).toBe("cached");
        expect(flowEvents(one).at(-1)).toMatchObject({ status: "succeeded" });
        if (ownRoots) {
          const flowRunId = flowEvents(one)[0]!.runId as string;
          const shown = cairnShow(flowRunId, env);
          expect(shown.run).toMatchObject({ status: "FINISHED" });
          expect(shown.run.tags["cairn.abandoned"]).toBeUndefined();
          for (const t of shown.tasks) expect(t.tags["cairn.abandoned"]).toBeUndefined();
        }
      } finally {
        killGroup(first.child);
      }
    });
  });

  it("busy in synchronous code past its lease's ttl, on this machine: the second waits for it instead of computing the key beside it", async () => {
    const scenario = await heldScenario({ BUSY: "1" });
    // The first's lease lasts 300 ms unrenewed, and its event loop is blocked until the release.
    const first = await scenario.first({ CAIRN_LEASE_TTL_MS: "300" });
    try {
      const second = await scenario.second();
      const one = await first.done;
      expectOk(one);
      expectOk(second);
      expect((await countMarks(scenario.markers)).held).toBe(1);
      expect(finalStatus(second.json, "held")).toBe("cached");
      expect(`${one.stdout}${one.stderr}`).not.toContain("single-flight lease");
    } finally {
      killGroup(first.child);
    }
  });
});

describe("kill -9 mid-flow", () => {
  it("then a re-run resumes: the task that finished is cached, the one that was killed runs", async () => {
    const { root, markers, file, env } = await slowAfterFast();
    let killed = false;
    const first = await cairnRun(file, root, [], env, (out, child) => {
      if (killed) return;
      const events = out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const fastDone = events.some((e) => e.type === "task" && e.task === "fast" && e.status === "succeeded");
      const slowRunning = events.some((e) => e.type === "task" && e.task === "slow" && e.status === "running");
      if (fastDone && slowRunning) {
        killed = true;
        // Well inside the slow task (4 s): its function has started and left its marker.
        setTimeout(() => killGroup(child, "SIGKILL"), 500);
      }
    }).done;
    expect(killed).toBe(true);
    expect(first.signal).toBe("SIGKILL");
    expect(flowEvents(first).filter((e) => e.status !== "running")).toEqual([]); // it never finished
    expect(await countMarks(markers)).toEqual({ fast: 1, slow: 1 });

    const again = await cairnRun(file, root, [], env).done;
    expectOk(again);
    expect(finalStatus(again.json, "fast")).toBe("cached");
    expect(finalStatus(again.json, "slow")).toBe("succeeded");
    expect(await countMarks(markers)).toEqual({ fast: 1, slow: 2 });
    const cachedFast = taskEvents(again.json, "fast").find((e) => e.status === "cached")!;
    expect(cachedFast.cachedFrom).toBe(taskEvents(first.json, "fast").find((e) => e.status === "succeeded")!.taskRunId);
    expect(flowEvents(again).at(-1)).toMatchObject({ status: "succeeded" });
    console.info(`[timing] re-run after kill -9 took ${again.ms} ms (the killed holder's lease on "slow" must lapse first)`);
  });
});

describe("kill -9 after cache hits were recorded", () => {
  it("leaves the hit's run readable (FINISHED, tagged with its source), and the next run resumes", async () => {
    const { root, markers, file, env } = await slowAfterFast();
    // Kills the run once "slow" is running (and, in the second run, "fast" was a hit recorded before it).
    const killWhenSlowRuns = () => {
      let killed = false;
      return (out: string, child: ChildProcess) => {
        if (killed || !out.split("\n").some((l) => l.includes('"status":"running"') && l.includes('"task":"slow"'))) return;
        killed = true;
        setTimeout(() => killGroup(child, "SIGKILL"), 300);
      };
    };
    const first = await cairnRun(file, root, [], env, killWhenSlowRuns()).done;
    expect(first.signal).toBe("SIGKILL");
    const second = await cairnRun(file, root, [], env, killWhenSlowRuns()).done;
    expect(second.signal).toBe("SIGKILL");
    const hit = taskEvents(second.json, "fast").find((e) => e.status === "cached")!;
    const source = taskEvents(first.json, "fast").find((e) => e.status === "succeeded")!.taskRunId;
    expect(hit.cachedFrom).toBe(source);

    // The killed run's hit is on disk whole, as a line of a batch file, and reads back.
    const { LocalStore } = await import("@cairn/core");
    const store = new LocalStore({ root });
    expect((await readdir(join(root, "runs"))).some((n) => n.endsWith(".batch.jsonl"))).toBe(true);
    const recorded = await store.getRun(hit.taskRunId as string);
    expect(recorded).toMatchObject({ status: "FINISHED", name: "fast", tags: { "cairn.cached_from": source } });
    const flowRunId = flowEvents(second)[0]!.runId as string;
    const children = await store.searchRuns({ experimentIds: [recorded!.experimentId], parentRunId: flowRunId });
    // (The killed "slow" run shows once its file was written, a second after it started: not tested here.)
    expect(children.filter((r) => r.name === "fast").map((r) => r.runId)).toEqual([hit.taskRunId]);

    const third = await cairnRun(file, root, [], env).done;
    expectOk(third);
    expect(finalStatus(third.json, "fast")).toBe("cached");
    expect(finalStatus(third.json, "slow")).toBe("succeeded");
    expect(await countMarks(markers)).toEqual({ fast: 1, slow: 3 });
  });
});

describe("two --refresh runs at once", () => {
  it("the second waits for the first's computation and takes its new entry, never the entry both were asked to replace", async () => {
    const { root, markers, file, env } = await slowAfterFast();
    const prime = await cairnRun(file, root, [], { ...env, SLOW_MS: "10" }).done;
    expectOk(prime);
    const old = taskEvents(prime.json, "slow").find((e) => e.status === "succeeded")!.taskRunId;
    // The second starts once the first computes "slow" (4 s), holding its lease.
    let second: Promise<Exit> | undefined;
    const first = await cairnRun(file, root, ["--refresh"], env, (out) => {
      if (!second && out.split("\n").some((l) => l.includes('"status":"running"') && l.includes('"task":"slow"'))) second = cairnRun(file, root, ["--refresh"], env).done;
    }).done;
    expectOk(first);
    expect(second).toBeDefined();
    const other = await second!;
    expectOk(other);
    const fresh = taskEvents(first.json, "slow").find((e) => e.status === "succeeded")!.taskRunId;
    const statuses = taskEvents(other.json, "slow").map((e) => e.status);
    expect(statuses).toContain("waiting");
    // Before, the wait ended at once on the old entry: "cached" from the run both had been told to replace.
    expect(finalStatus(other.json, "slow")).toBe("cached");
    expect(taskEvents(other.json, "slow").find((e) => e.status === "cached")!.cachedFrom).toBe(fresh);
    expect(fresh).not.toBe(old);
    expect((await countMarks(markers)).slow).toBe(2); // the prime and the first refresh
  });
});

describe("the CLI's cache flags", () => {
  const file = fixture("force.flow.ts");
  const statusesOf = (exit: Exit) => Object.fromEntries(["a", "b", "c"].map((t) => [t, finalStatus(exit.json, t)]));
  const sourceRuns = async (root: string) => {
    const store = await CacheStore.fromUrl(undefined, { root });
    return Object.fromEntries((await store.list()).map((e) => [e.taskName, e.sourceRunId]));
  };

  it("--rerun TASK runs it and its dependants; --refresh runs all and stores again; --no-cache neither looks up nor stores", async () => {
    const root = await tmp();
    const markers = await tmp();
    const env = { MARKER_DIR: markers };

    const first = await cairnRun(file, root, [], env).done;
    expectOk(first);
    expect(statusesOf(first)).toEqual({ a: "succeeded", b: "succeeded", c: "succeeded" });
    expect(await countMarks(markers)).toEqual({ a: 1, b: 1, c: 1 });

    const rerun = await cairnRun(file, root, ["--rerun", "a"], env).done;
    expectOk(rerun);
    expect(statusesOf(rerun)).toEqual({ a: "succeeded", b: "succeeded", c: "cached" });
    expect(await countMarks(markers)).toEqual({ a: 2, b: 2, c: 1 });

    const refresh = await cairnRun(file, root, ["--refresh"], env).done;
    expectOk(refresh);
    expect(statusesOf(refresh)).toEqual({ a: "succeeded", b: "succeeded", c: "succeeded" });
    expect(await countMarks(markers)).toEqual({ a: 3, b: 3, c: 2 });
    // refresh stored its results again: the entries now name its runs.
    const refreshed = await sourceRuns(root);
    for (const t of ["a", "b", "c"]) expect(refreshed[t]).toBe(taskEvents(refresh.json, t).find((e) => e.status === "succeeded")!.taskRunId);

    const plain = await cairnRun(file, root, [], env).done;
    expectOk(plain);
    expect(statusesOf(plain)).toEqual({ a: "cached", b: "cached", c: "cached" });
    expect(await countMarks(markers)).toEqual({ a: 3, b: 3, c: 2 });

    // --no-cache on a full cache: everything runs, and the entries are left as they were.
    const noCache = await cairnRun(file, root, ["--no-cache"], env).done;
    expectOk(noCache);
    expect(statusesOf(noCache)).toEqual({ a: "succeeded", b: "succeeded", c: "succeeded" });
    expect(await countMarks(markers)).toEqual({ a: 4, b: 4, c: 3 });
    expect(await sourceRuns(root)).toEqual(refreshed);
  });

  it("--rerun by a downstream task leaves its upstream cached", async () => {
    const root = await tmp();
    const markers = await tmp();
    const env = { MARKER_DIR: markers };
    expectOk(await cairnRun(file, root, [], env).done);
    const rerun = await cairnRun(file, root, ["--rerun", "b"], env).done;
    expectOk(rerun);
    expect(statusesOf(rerun)).toEqual({ a: "cached", b: "succeeded", c: "cached" });
    expect(await countMarks(markers)).toEqual({ a: 1, b: 2, c: 1 });
  });

  it("after a --no-cache first run the store is empty and a normal run computes everything", async () => {
    const root = await tmp();
    const markers = await tmp();
    const env = { MARKER_DIR: markers };
    const noCache = await cairnRun(file, root, ["--no-cache"], env).done;
    expectOk(noCache);
    expect(statusesOf(noCache)).toEqual({ a: "succeeded", b: "succeeded", c: "succeeded" });
    expect(await entryFiles(root)).toEqual([]);

    const normal = await cairnRun(file, root, [], env).done;
    expectOk(normal);
    expect(statusesOf(normal)).toEqual({ a: "succeeded", b: "succeeded", c: "succeeded" });
    expect(await countMarks(markers)).toEqual({ a: 2, b: 2, c: 2 });
    expect(await entryFiles(root)).toHaveLength(3);
  });
});
