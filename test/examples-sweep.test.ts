/**
 * examples/sweep as its README runs it on the embedded defaults: a cold run (the map over the
 * files found at run time, the grid's trials, the leaderboard), then a re-run that is all hits
 * and picks the same best trial.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairnBin, childEnv, repo, start, tmp } from "./cache/helpers.ts";
import { hasVenv, VENV_PYTHON } from "./kinds/helpers.ts";

const example = join(repo, "examples/sweep/flow.ts");
const cairnRun = (cwd: string) => start(process.execPath, [cairnBin, "run", example], { cwd, env: childEnv({ CAIRN_PYTHON: VENV_PYTHON, NO_COLOR: "1" }) }).done;
const statuses = (stdout: string, prefix: string) => [...stdout.matchAll(new RegExp(`^${prefix}\\[\\d+\\]\\s+(\\w+)\\s+\\S+\\s+[0-9a-f]{32}$`, "gm"))].map((m) => m[1]);
const best = (stdout: string) => /Sweep trial: 8 trials, best (trial\[\d+\])/.exec(stdout)?.[1];

describe.skipIf(!hasVenv)("examples/sweep", () => {
  it("runs the map and the sweep cold, then re-runs all from the cache with the same best", async () => {
    const cwd = await tmp("cairn-example-sweep-");
    const cold = await cairnRun(cwd);
    expect(cold.code, cold.stdout + cold.stderr).toBe(0);
    expect(statuses(cold.stdout, "trial")).toEqual(Array(8).fill("succeeded"));
    expect(statuses(cold.stdout, "profile")).toEqual(Array(3).fill("succeeded"));
    expect(cold.stdout).toMatch(/"splits":\[\{"file":"score.csv","rows":20/);
    expect(best(cold.stdout)).toBeDefined();

    const warm = await cairnRun(cwd);
    expect(warm.code, warm.stdout + warm.stderr).toBe(0);
    expect(statuses(warm.stdout, "trial")).toEqual(Array(8).fill("cached"));
    expect(statuses(warm.stdout, "profile")).toEqual(Array(3).fill("cached"));
    expect(best(warm.stdout)).toBe(best(cold.stdout));
  }, 240_000);
});
