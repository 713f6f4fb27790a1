/**
 * runDispatchedTask stores a task's result under the key its own process makes from the task's
 * inputs, never under the key the task names: a dispatched task whose key is another input's (a
 * crafted or altered job) is refused with CacheKeyMismatchError, and nothing is stored. And a
 * dispatcher's credentials (a queue URL's password) are masked in the run's events.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CacheStore } from "@cairn/cache";
import { LocalStore, runDispatchedTask, TaskCache, type TaskDispatcher } from "@cairn/core";
import { flow, task } from "cairn-dag";

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe("a dispatched task whose key is not its inputs'", () => {
  it("is refused where it runs, and no entry is stored under the key it names", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-dispatched-key-"));
    dirs.push(root);
    let ran = 0;
    const double = task("double").input<{ x: number }>().run(async ({ x }) => {
      ran++;
      return { y: x * 2 };
    });
    const store = await CacheStore.fromUrl(undefined, { root });
    const tracker = new LocalStore({ root });
    // The other side of a queue that got n=1000's inputs under the key the coordinator made for 21.
    const altering: TaskDispatcher = {
      open: () => {},
      run: async (sent, signal, log) => {
        const cache = new TaskCache(store, tracker, sent.experimentId, root, {});
        return runDispatchedTask(sent.node, { ...sent, inputs: { x: 1000 } }, { tracker, cache, workDir: root, signal, env: {}, secrets: {}, emit: (e) => e.type === "log" && log(e) });
      },
    };
    const f = flow("dispatched-key").build(() => ({ y: double({ x: 21 }).y }));
    const result = await (await f.run({ root, dispatcher: altering, env: {}, cache: { store } })).wait();
    expect(result.status).toBe("failed");
    const error = result.tasks.double?.error as Error;
    expect(error.name).toBe("CacheKeyMismatchError");
    expect(error.message).toMatch(/^Task "double" was not run: expected cache key \w+ for the inputs its job carries .*, the job says \w+ \(its record differs in input "x"\)\./);
    expect(ran).toBe(0);
    // The run of x=21 in one process finds no entry: it runs, and gets 42.
    const again = await (await f.run({ root, env: {}, cache: { store } })).wait();
    expect(again).toMatchObject({ status: "succeeded", outputs: { y: 42 } });
    expect(again.tasks.double?.status).toBe("succeeded");
    expect(ran).toBe(1);
    await store.close();
  });
});

describe("a dispatcher's credentials", () => {
  it("are masked in the log lines its tasks send back, as the tracker's are", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-dispatched-creds-"));
    dirs.push(root);
    const password = "q-pass-55aa91";
    const tracker = new LocalStore({ root });
    const dispatcher: TaskDispatcher = {
      open: () => {},
      credentials: () => ({ "the queue URL's password": password }),
      run: async (sent, signal, log) => {
        // A worker that did not mask it (an older one): the line arrives as the task printed it.
        log({ type: "log", level: "warn", runId: sent.flowRunId, task: sent.nodeId, message: `parent: cairn worker f.ts --queue redis://:${password}@host:6379`, time: Date.now() });
        return runDispatchedTask(sent.node, sent, { tracker, workDir: root, signal, env: {}, secrets: {}, emit: (e) => e.type === "log" && log(e) });
      },
    };
    const t = task("t").run(async () => ({ ok: true }));
    const run = await flow("dispatched-creds").build(() => ({ ok: t({}).ok })).run({ root, dispatcher, env: {}, cache: false });
    const lines: string[] = [];
    run.on((e) => e.type === "log" && lines.push(e.message));
    expect(await run.wait()).toMatchObject({ status: "succeeded" });
    expect(lines.join("\n")).toContain("--queue redis://:***@host:6379");
    expect(lines.join("\n")).not.toContain(password);
  });
});
