/**
 * What stopped a flow travels with the cancel to where its dispatched tasks run, masked: a task
 * cancelled there records it on its run as in one process. A queue worker's run said "Cancelled:
 * Cancelled: the flow run was cancelled." whatever stopped the flow (fail-fast, Ctrl-C).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalStore, runDispatchedTask, type TaskDispatcher } from "@cairn/core";
import { flow, task } from "cairn-dag";

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
const SECRET = "tok-9f3a77c2e1";

/** A worker in this process, its cancel passed through JSON as Redis passes it; `sent` holds what it was sent. */
function jsonDispatcher(root: string, sent: string[]): TaskDispatcher {
  return {
    open: () => {},
    run: (task, signal, log) => {
      const there = new AbortController();
      signal.addEventListener("abort", () => {
        const text = JSON.stringify(signal.reason);
        sent.push(text);
        there.abort(JSON.parse(text));
      }, { once: true });
      return runDispatchedTask(task.node, task, { tracker: new LocalStore({ root }), workDir: root, signal: there.signal, secrets: {}, emit: (e) => e.type === "log" && log(e) });
    },
  };
}

const long = task("long").run((_, ctx) => new Promise<{ ok: boolean }>((_r, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true })));

describe("a dispatched task cancelled by the flow's stop", () => {
  it("records fail-fast naming the task that failed, as in one process", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-dispatched-stop-"));
    dirs.push(root);
    const boom = task("boom").run(async () => {
      await new Promise((r) => setTimeout(r, 200));
      throw new Error("boom");
    });
    const sent: string[] = [];
    const f = flow("dispatched-fail-fast").build(() => (long({}), boom({}), {}));
    const result = await (await f.run({ root, cache: false, dispatcher: jsonDispatcher(root, sent), env: {}, concurrency: 2 })).wait();
    expect(result.tasks.long).toMatchObject({ status: "cancelled", error: { name: "FailFast" } });
    const run = await new LocalStore({ root }).getRun(result.tasks.long!.runId!);
    expect(run).toMatchObject({ status: "KILLED", tags: { "cairn.error.name": "FailFast", "cairn.error.message": 'Stopped because task "boom" failed and the failure policy is fail-fast.' } });
  });

  it("records the reason of a cancel, masked in what is sent and in the run", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-dispatched-stop-"));
    dirs.push(root);
    const sent: string[] = [];
    const f = flow("dispatched-cancel").build(() => (long({}), {}));
    const run = await f.run({ root, cache: false, dispatcher: jsonDispatcher(root, sent), env: {}, secrets: { API_TOKEN: SECRET } });
    setTimeout(() => run.cancel(`SIGINT with ${SECRET}`), 500);
    const result = await run.wait();
    expect(result.tasks.long).toMatchObject({ status: "cancelled" });
    expect(sent.length).toBeGreaterThan(0);
    for (const text of sent) expect(text).not.toContain(SECRET);
    const record = await new LocalStore({ root }).getRun(result.tasks.long!.runId!);
    expect(record).toMatchObject({ status: "KILLED", tags: { "cairn.error.name": "CancelledError", "cairn.error.message": "Cancelled: SIGINT with ***." } });
  });
});
