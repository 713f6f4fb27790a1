import { describe, expect, it } from "vitest";
import { flow, task } from "@cairn/dsl";
import { buildFlowGraph } from "../graph/flow-graph.ts";
import { forcedNodes } from "./rerun.ts";

const one = task("one").run(() => ({ v: 1 }));
const add = task("add").input<{ a: number; b?: number }>().run(({ a }) => ({ v: a + 1 }));
// a → b → c, and d on its own; b and c are both `add`.
const graph = buildFlowGraph(
  flow("rerun").build(() => {
    const a = one();
    const b = add({ a: a.v });
    add({ a: b.v });
    one();
    return {};
  }).definition,
);
const ids = graph.definition.nodes.map((n) => n.id);
const forcedIds = (forced: Uint8Array | undefined) => ids.filter((_, i) => forced?.[i] === 1);

describe("forcedNodes", () => {
  it("forces a node named by id or by task name, with everything downstream of it", () => {
    expect(forcedNodes(graph, [])).toBeUndefined();
    expect(forcedIds(forcedNodes(graph, [ids[1]!]))).toEqual([ids[1], ids[2]]);
    expect(forcedIds(forcedNodes(graph, ["one"]))).toEqual(ids);
    expect(forcedIds(forcedNodes(graph, [ids[3]!]))).toEqual([ids[3]]);
  });

  it("forces every node on refresh, after checking the names", () => {
    expect(forcedIds(forcedNodes(graph, [], true))).toEqual(ids);
    expect(() => forcedNodes(graph, ["nope"], true)).toThrow(`Expected \`rerun\` to be a task name or node id of flow "rerun": ${ids.join(", ")}, got "nope"`);
    // An item id of a node that is not a map is no item.
    expect(() => forcedNodes(graph, [`${ids[1]}[0]`])).toThrow(/Expected `rerun` to be/);
  });
});
