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
});
