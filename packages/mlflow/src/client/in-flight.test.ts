import { describe, expect, it } from "vitest";
import { InFlightLimit, inFlightLimit, MAX_IN_FLIGHT } from "./in-flight.ts";

describe("InFlightLimit", () => {
  it("lets in at most `limit` requests, the others in the order they came", async () => {
    const limit = new InFlightLimit(2);
    const done = [await limit.acquire(), await limit.acquire()];
    const order: number[] = [];
    const third = limit.acquire().then((d) => (order.push(3), d));
    const fourth = limit.acquire().then((d) => (order.push(4), d));
    await Promise.resolve();
    expect(order).toEqual([]);
    done[0]!("answered");
    (await third)("answered");
    done[1]!("answered");
    (await fourth)("answered");
    expect(order).toEqual([3, 4]);
    expect(limit.active).toBe(0);
  });

  it("halves once for a burst of busy answers, then grows back by one each `limit` answers", async () => {
    const limit = new InFlightLimit(8);
    const burst = await Promise.all(Array.from({ length: 8 }, () => limit.acquire()));
    // Eight requests sent together all meet the lock: one cut, not eight (8 -> 4, not 8 -> 1).
    for (const done of burst) done("busy");
    expect(limit.limit).toBe(4);
    // A request sent after the cut that meets it again cuts again.
    (await limit.acquire())("busy");
    expect(limit.limit).toBe(2);
    for (let i = 0; i < 2; i++) (await limit.acquire())("answered");
    expect(limit.limit).toBe(3);
    for (let i = 0; i < 3 + 4 + 5 + 6 + 7; i++) (await limit.acquire())("answered");
    expect(limit.limit).toBe(8);
    for (let i = 0; i < 100; i++) (await limit.acquire())("answered");
    expect(limit.limit).toBe(8);
    // No answer (refused, timed out) says nothing of the database: the limit stays.
    (await limit.acquire())("none");
    expect(limit.limit).toBe(8);
  });

  it("a wait its signal ends (a cancelled run) goes without a place, and leaves the queue", async () => {
    const limit = new InFlightLimit(1);
    const first = await limit.acquire();
    const cancel = new AbortController();
    const waiting = limit.acquire(cancel.signal);
    cancel.abort();
    (await waiting)("busy");
    expect(limit.limit).toBe(1);
    expect(limit.active).toBe(1);
    first("answered");
    expect(limit.active).toBe(0);
    (await limit.acquire(cancel.signal))("answered");
  });

  it("is one per server for the whole process", () => {
    expect(inFlightLimit("http://127.0.0.1:1")).toBe(inFlightLimit("http://127.0.0.1:1"));
    expect(inFlightLimit("http://127.0.0.1:1")).not.toBe(inFlightLimit("http://127.0.0.1:2"));
    expect(inFlightLimit("http://127.0.0.1:3").limit).toBe(MAX_IN_FLIGHT);
  });
});
