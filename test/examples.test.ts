/**
 * examples/multistep as its README runs it on the embedded defaults: the real scripts with
 * scikit-learn (from .venv), the notebook report, a cold run and then a re-run that is all hits.
 */
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { hasVenv, VENV_PYTHON } from "./kinds/helpers.ts";

const repo = resolve(import.meta.dirname, "..");
const bin = join(repo, "packages/dsl/bin/cairn.mjs");
const example = join(repo, "examples/multistep/flow.ts");

function cairnRun(cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Without MLFLOW_TRACKING_URI: the embedded store, in `cwd`/.cairn.
  const { MLFLOW_TRACKING_URI: _, ...env } = process.env;
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [bin, "run", example], { cwd, env: { ...env, NO_COLOR: "1", CAIRN_PYTHON: VENV_PYTHON }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.once("error", fail);
    child.once("exit", (code) => done({ code, stdout, stderr }));
  });
}

const STEPS = ["download", "process", "train-logreg", "train-forest", "evaluate-logreg", "evaluate-forest", "pick", "report"];
const statusOf = (stdout: string, step: string) => new RegExp(`^${step}\\s+(\\w+)`, "m").exec(stdout)?.[1];

describe.skipIf(!hasVenv)("examples/multistep", () => {
  it("runs cold with its warm Python, then re-runs with every step a cache hit", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "cairn-example-"));
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
