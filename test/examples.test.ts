/**
 * examples/multistep as its README runs it on the embedded defaults: the real scripts with
 * scikit-learn (from .venv), the notebook report, a cold run and then a re-run that is all hits.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairnBin, childEnv, repo, start, tmp } from "./cache/helpers.ts";
import { hasVenv, VENV_PYTHON } from "./kinds/helpers.ts";

const example = join(repo, "examples/multistep/flow.ts");

/** `cairn run` of the example in `cwd`, on the embedded store (childEnv drops MLFLOW_*). */
const cairnRun = (cwd: string) => start(process.execPath, [cairnBin, "run", example], { cwd, env: childEnv({ CAIRN_PYTHON: VENV_PYTHON }) }).done;

const STEPS = ["download", "process", "train-logreg", "train-forest", "evaluate-logreg", "evaluate-forest", "pick", "report"];
const statusOf = (stdout: string, step: string) => new RegExp(`^${step}\\s+(\\w+)`, "m").exec(stdout)?.[1];

describe.skipIf(!hasVenv)("examples/multistep", () => {
  it("runs cold with its warm Python, then re-runs with every step a cache hit", async () => {
    const cwd = await tmp("cairn-example-");
    const cold = await cairnRun(cwd);
    expect(cold.code, cold.stdout + cold.stderr).toBe(0);
    expect(STEPS.map((s) => statusOf(cold.stdout, s))).toEqual(STEPS.map(() => "succeeded"));
    expect(cold.stdout).toMatch(/Outputs: .*"best":"(logreg|forest)"/);
    expect(cold.stdout + cold.stderr).not.toMatch(/preload:/); // no warning: the warm Python started and imported everything

    const warm = await cairnRun(cwd);
    expect(warm.code, warm.stdout + warm.stderr).toBe(0);
    expect(STEPS.map((s) => statusOf(warm.stdout, s))).toEqual(STEPS.map(() => "cached"));
  }, 180_000);
});
