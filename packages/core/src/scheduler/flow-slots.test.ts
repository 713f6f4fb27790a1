import { describe, expect, it } from "vitest";
import { FlowSlots } from "./flow-slots.ts";

describe("FlowSlots", () => {
  it("gives a slot back to the highest-priority waiting task whose pool has room, equals in arrival order", () => {
    const slots = new FlowSlots(1, { gpu: 1 });
    const gpu = slots.pool("gpu");
    const started: string[] = [];
    const take = (name: string, priority: number, pool: typeof gpu) => slots.take(priority, pool, () => started.push(name));
    take("g-running", 1, gpu);
    take("g-high", 4, gpu);
    take("low", 1, undefined);
    take("g-equal", 1, gpu);
    take("equal", 1, undefined);
    expect(started).toEqual(["g-running"]);
    // Each end gives back what the task that ran held: g-running, g-high, low, g-equal.
    for (const pool of [gpu, gpu, undefined, gpu]) slots.free(pool);
    // g-high took both slots; at its end low, queued before g-equal, came first.
    expect(started).toEqual(["g-running", "g-high", "low", "g-equal", "equal"]);
  });

  it("starts an unpooled task while the waiting pooled ones' pool is full", () => {
    const slots = new FlowSlots(2, { gpu: 1 });
    const gpu = slots.pool("gpu");
    const started: string[] = [];
    slots.take(1, gpu, () => started.push("g1"));
    slots.take(9, gpu, () => started.push("g2"));
    slots.take(1, undefined, () => started.push("n1"));
    expect(started).toEqual(["g1", "n1"]);
    slots.free(undefined);
    expect(started).toEqual(["g1", "n1"]); // g2's pool is full: the flow's slot stays free
    slots.take(1, undefined, () => started.push("n2"));
    expect(started).toEqual(["g1", "n1", "n2"]);
    slots.free(gpu);
    slots.free(undefined);
    expect(started).toEqual(["g1", "n1", "n2", "g2"]);
  });

  it("skips a dropped ticket, and never starts what was cleared", () => {
    const slots = new FlowSlots(1, {});
    const started: string[] = [];
    slots.take(0, undefined, () => started.push("a"));
    const dropped = slots.take(5, undefined, () => started.push("dropped"))!;
    slots.take(1, undefined, () => started.push("b"));
    slots.take(1, undefined, () => started.push("cleared"));
    slots.drop(dropped);
    slots.free(undefined);
    expect(started).toEqual(["a", "b"]);
    slots.clear();
    slots.free(undefined);
    slots.take(0, undefined, () => started.push("c"));
    expect(started).toEqual(["a", "b", "c"]);
  });
});
