import { describe, expect, it } from "vitest";
import { Slots } from "./slots.ts";

describe("Slots", () => {
  it("starts tasks at once up to the limit, then one per slot given back: highest priority first, equals in arrival order", () => {
    const slots = new Slots(2);
    const started: string[] = [];
    const take = (name: string, priority: number) => slots.take(priority, () => started.push(name));
    take("a", 1);
    take("b", 1);
    take("low", 1);
    take("high", 5);
    take("mid-1", 3);
    take("mid-2", 3);
    take("low-2", 1);
    expect(started).toEqual(["a", "b"]);
    for (let i = 0; i < 5; i++) slots.free();
    expect(started).toEqual(["a", "b", "high", "mid-1", "mid-2", "low", "low-2"]);
  });

  it("gives a slot back to the limit when no one waits, and never starts what was cleared", () => {
    const slots = new Slots(1);
    const started: string[] = [];
    slots.take(0, () => started.push("a"));
    slots.take(0, () => started.push("cleared"));
    slots.clear();
    slots.free();
    expect(started).toEqual(["a"]);
    slots.take(0, () => started.push("b"));
    expect(started).toEqual(["a", "b"]);
  });

  it("keeps its order over many tasks", () => {
    const slots = new Slots(1);
    const started: number[] = [];
    slots.take(0, () => {});
    const priorities = Array.from({ length: 200 }, (_, i) => (i * 37) % 11);
    priorities.forEach((p, i) => slots.take(p, () => started.push(i)));
    for (let i = 0; i < priorities.length; i++) slots.free();
    const expected = priorities.map((p, i) => ({ p, i })).sort((x, y) => y.p - x.p || x.i - y.i).map((x) => x.i);
    expect(started).toEqual(expected);
  });
});
