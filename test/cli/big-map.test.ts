/**
 * `cairn plan` of a map with more items than one call takes as arguments: the plan's rows and
 * the table's column widths were spread into one call (`push(...items)`, `Math.max(...widths)`),
 * which overflowed the stack (`RangeError: Maximum call stack size exceeded`, ~125,000 items on
 * Node's default stack). The CLI runs here with a smaller stack (`--stack-size=200`: ~30,000),
 * to show that with a third of the items.
 */
import { describe, expect, it } from "vitest";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { fixture, tmp } from "./helpers.ts";

const ITEMS = 40_000;

describe("a map of many items", () => {
  it(`cairn plan lists all ${ITEMS.toLocaleString("en")} items of a map`, async () => {
    const cwd = await tmp("cairn-big-map-");
    const plan = await start(process.execPath, ["--stack-size=200", cairnBin, "plan", fixture("big-map.flow.ts")], { cwd, env: childEnv({ ITEMS: String(ITEMS) }) }).done;
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(`double         runs  ${ITEMS} of its ${ITEMS} items run`);
    expect(plan.stdout).toMatch(new RegExp(`^double\\[${ITEMS - 1}\\] +runs +no cache entry`, "m"));
    expect(plan.stdout).toContain(`0 of ${ITEMS} tasks would come from the cache`);
  }, 120_000);
});
