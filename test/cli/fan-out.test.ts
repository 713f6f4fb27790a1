/**
 * Maps and sweeps at the command line: `cairn run` ends with a sweep's leaderboard and its
 * `--json` events place each item (parent, item, itemKey); `cairn plan` shows a map whose items
 * are not known yet as such, and each item once they are; `cairn explain` takes an item.
 */
import { describe, expect, it } from "vitest";
import { cairn, fixture, tmp } from "./helpers.ts";

const file = fixture("sweep.flow.ts");

describe("maps and sweeps in the CLI", () => {
  it("plans, runs with a leaderboard and item events, then plans and explains items", async () => {
    const cwd = await tmp("cairn-fanout-cli-");
    const planned = await cairn(["plan", file], { cwd });
    expect(planned.code).toBe(0);
    expect(planned.stdout).toMatch(/measure\s+runs \(items unknown\)\s+a map over listItems\.items: its items are known once "listItems" runs/);
    expect(planned.stdout).toMatch(/fit\[5\]\s+runs\s+no cache entry/);
    expect(planned.stdout).toMatch(/big\s+skipped\s+its condition \(params\.n\) is false/);

    const run = await cairn(["run", file], { cwd, env: { NO_COLOR: "1" } });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("Sweep fit: 6 trials, best fit[3]");
    expect(run.stdout).toMatch(/trial\s+params\s+metric\s+status\s+cached/);
    expect(run.stdout).toMatch(/fit\[3\]\s+depth=5,lr=0\.1\s+5\s+succeeded\s+no/);
    expect(run.stdout).toMatch(/^big\s+skipped/m);

    const json = await cairn(["run", file, "--json"], { cwd });
    expect(json.code).toBe(0);
    const events = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events).toContainEqual(expect.objectContaining({ type: "task", task: "measure[2]", status: "cached", parent: "measure", item: 2 }));
    expect(events).toContainEqual(expect.objectContaining({ type: "task", task: "fit[3]", status: "cached", parent: "fit", item: 3, itemKey: "depth=5,lr=0.1" }));

    const table = await cairn(["plan", file], { cwd, env: { NO_COLOR: "1" } });
    expect(table.stdout).toMatch(/^measure\s+items cached\s+all 3 of its items are in the cache$/m);
    const again = await cairn(["plan", file, "--json"], { cwd });
    const plan = JSON.parse(again.stdout) as Array<Record<string, unknown>>;
    expect(plan.find((p) => p.task === "measure")).toMatchObject({ action: "hit", items: 3 });
    expect(plan.find((p) => p.task === "measure[1]")).toMatchObject({ action: "hit", parent: "measure", item: 1 });

    const wider = await cairn(["plan", file, "-p", "n=4"], { cwd });
    expect(wider.stdout).toMatch(/measure\s+runs \(items unknown\)/);
    const unknown = await cairn(["explain", file, "measure[0]", "-p", "n=4"], { cwd });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('"measure" is a map over listItems.items: its items are known once "listItems" runs (run the flow, then explain its items)');

    const whole = await cairn(["explain", file, "measure"], { cwd });
    expect(whole.code, whole.stderr).toBe(0);
    expect(whole.stdout).toContain("measure would run no item: all 3 of its items are in the cache. A run reports it succeeded: it has no cache entry of its own, its items have.");
    expect(whole.stdout).not.toContain("undefined");
    const skipped = await cairn(["explain", file, "big"], { cwd });
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stdout.trim()).toBe("big would not run: its condition (params.n) is false.");

    const explained = await cairn(["explain", file, "fit[3]", "--json"], { cwd });
    expect(explained.code, explained.stderr).toBe(0);
    expect(JSON.parse(explained.stdout)).toMatchObject({ task: "fit[3]", planned: { action: "hit", parent: "fit", item: 3 } });
    const missing = await cairn(["explain", file, "fit[9]"], { cwd });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('an item of "fit", which has 6 (fit[0] to fit[5])');
  }, 120_000);

  it("plan and explain say of a map what the run then does: an empty list, every item cached, a list known before the run", async () => {
    const cwd = await tmp("cairn-fanout-words-");
    const mapFile = fixture("param-map.flow.ts");
    const env = { NO_COLOR: "1" };
    const explained = await cairn(["explain", mapFile, "work", "-p", 'items=["a","b"]'], { cwd, env });
    expect(explained.code, explained.stderr).toBe(0);
    expect(explained.stdout.trim()).toBe("work would run: 2 of its 2 items run. See `cairn plan` for each item, or `cairn explain FILE work[0]` for one.");

    const empty = ["-p", "items=[]"];
    const planned = await cairn(["plan", mapFile, ...empty], { cwd, env });
    expect(planned.stdout).toMatch(/^work\s+no items\s+its list is empty$/m);
    // The map's own row is not counted, in the total either (it was: "0 of 2").
    expect(planned.stdout).toContain("0 of 1 tasks would come from the cache; not counted: the row of work (a map's items are counted, each on its own row).");
    const emptyWhy = await cairn(["explain", mapFile, "work", ...empty], { cwd, env });
    expect(emptyWhy.stdout.trim()).toBe("work would run no item: its list is empty. A run reports it succeeded: it has no cache entry of its own, its items have.");
    const ran = await cairn(["run", mapFile, ...empty], { cwd, env });
    expect(ran.stdout).toMatch(/^work\s+succeeded/m);

    // Every item cached: plan counts as the run does (the map node succeeded, not cached).
    const two = ["-p", 'items=["a","b"]'];
    expect((await cairn(["run", mapFile, ...two], { cwd, env })).code).toBe(0);
    const warm = await cairn(["plan", mapFile, ...two], { cwd, env });
    expect(warm.stdout).toMatch(/^work\s+items cached\s+all 2 of its items are in the cache$/m);
    expect(warm.stdout).toContain("3 of 3 tasks would come from the cache; not counted: the row of work (a map's items are counted, each on its own row).");
    const rerun = await cairn(["run", mapFile, ...two, "--json"], { cwd });
    const ended = rerun.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.type === "task" && e.status !== "queued" && e.status !== "running");
    expect(ended.map((e) => [e.task, e.status]).sort()).toEqual([["reduce", "cached"], ["work", "succeeded"], ["work[0]", "cached"], ["work[1]", "cached"]]);

    // --rerun of an item past the param's list: refused by plan as by run, before anything runs.
    for (const command of ["plan", "run"]) {
      const past = await cairn([command, mapFile, ...two, "--rerun", "work[5]"], { cwd, env });
      expect(past.code).not.toBe(0);
      expect(past.stderr).toContain('Expected `--rerun TASK` to be an item of "work", which has 2 (work[0] to work[1], from params.items), got "work[5]"');
    }
  }, 120_000);
});
