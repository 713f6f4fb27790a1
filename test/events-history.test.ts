/**
 * `run.events()` replays every flow and task event, but log lines only to iterators open when
 * they were emitted: a chatty task's output is not kept in memory for the run's life.
 */
import { describe, expect, it } from "vitest";
import { flow, type RunEvent, task } from "cairn-dag";

const chatty = task("chatty").run((_: Record<string, never>, ctx) => {
  for (let i = 0; i < 3; i++) ctx.logger.info(`line ${i}`);
  return { ok: true };
});
const f = flow("chatty").build(() => ({ ok: chatty({}).ok }));
const off = { tracker: false as const, cache: false as const };

async function drain(it: AsyncGenerator<RunEvent>): Promise<RunEvent[]> {
  const out: RunEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

describe("run.events()", () => {
  it("gives log lines to an iterator open while they are emitted", async () => {
    const run = await f.run(off);
    const events = await drain(run.events());
    expect(events.filter((e) => e.type === "log").map((e) => (e as { message: string }).message)).toEqual(["line 0", "line 1", "line 2"]);
  });

  it("replays every flow and task event after the run, without its log lines", async () => {
    const run = await f.run(off);
    const seen: RunEvent[] = [];
    run.on((e) => seen.push(e));
    await run.wait();
    const replay = await drain(run.events());
    expect(seen.filter((e) => e.type === "log")).toHaveLength(3);
    expect(replay).toEqual(seen.filter((e) => e.type !== "log"));
  });

  it("a listener that throws or rejects is a warning, once per listener, never an unhandled rejection", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const run = await f.run(off);
      run.on(async () => {
        throw new Error("async listener boom");
      });
      run.on(() => {
        throw new Error("sync listener boom");
      });
      const seen: RunEvent[] = [];
      run.on((e) => void seen.push(e));
      const r = await run.wait();
      await new Promise((resolve) => setImmediate(resolve)); // an unhandled rejection is reported by now
      expect(r.status).toBe("succeeded");
      expect(unhandled).toEqual([]);
      const warnings = seen.filter((e) => e.type === "log" && e.level === "warn").map((e) => (e as { message: string }).message);
      expect(warnings).toHaveLength(2);
      expect(warnings).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^A listener given to run\.on\(\) threw Error: sync listener boom\. The run goes on/),
          expect.stringMatching(/^A listener given to run\.on\(\) threw Error: async listener boom\. The run goes on/),
        ]),
      );
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("a listener that throws at the final flow event is a process warning: no event follows the final one", async () => {
    const warned: Error[] = [];
    const onWarning = (w: Error) => void warned.push(w);
    process.on("warning", onWarning);
    try {
      const run = await f.run(off);
      run.on((e) => {
        if (e.type === "flow" && e.status !== "running") throw new Error("closing boom");
      });
      const seen: RunEvent[] = [];
      run.on((e) => void seen.push(e));
      const replay = drain(run.events());
      await run.wait();
      await new Promise((resolve) => setImmediate(resolve));
      for (const events of [seen, await replay]) expect(events.at(-1)).toMatchObject({ type: "flow", status: "succeeded" });
      expect(warned.map((w) => [w.name, w.message])).toEqual([["CairnListenerWarning", expect.stringMatching(/^A listener given to run\.on\(\) threw Error: closing boom/)]]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});
