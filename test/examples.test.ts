/**
 * examples/multistep as its README runs it on the embedded defaults: the real scripts with
 * scikit-learn (from .venv), the notebook report, a cold run and then a re-run that is all hits.
 * examples/quickstart as `pnpm quickstart` runs it (`cairn run flow.ts` in its folder), and an
 * edit to the CSV it ships re-runs it.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
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

describe("examples/quickstart", () => {
  /** A copy inside the workspace (where its flow resolves cairn-dag and zod), without a .cairn of earlier runs. */
  const copies: string[] = [];
  afterAll(async () => {
    for (const dir of copies) await rm(dir, { recursive: true, force: true });
  });
  const cairnIn = (cwd: string, args: string[]) => start(process.execPath, [cairnBin, ...args], { cwd, env: childEnv() }).done;
  const statuses = (json: Array<Record<string, unknown>>) =>
    Object.fromEntries(json.filter((e) => e.type === "task" && ["succeeded", "cached"].includes(e.status as string)).map((e) => [e.task, e.status]));
  const accuracy = (json: Array<Record<string, unknown>>) => (json.find((e) => e.type === "flow" && e.status === "succeeded")!.outputs as { accuracy: number }).accuracy;

  it("runs as `pnpm quickstart` does; an edit to its CSV re-runs load and what the new rows change, not a stale hit", async () => {
    const cwd = await mkdtemp(join(repo, "test", ".x-quickstart-"));
    copies.push(cwd);
    await cp(join(repo, "examples/quickstart"), cwd, { recursive: true, filter: (from) => !from.includes(".cairn") });
    const cold = await cairnIn(cwd, ["run", "flow.ts", "--json"]);
    expect(cold.code, cold.stderr).toBe(0);
    expect(new Set(Object.values(statuses(cold.json)))).toEqual(new Set(["succeeded"]));
    const before = accuracy(cold.json);
    expect(before).toBeLessThan(1);
    // No customer churns any more: the model learns to predict that, and is right on every test row.
    const csv = join(cwd, "data/customers.csv");
    const [header, ...lines] = (await readFile(csv, "utf8")).trim().split("\n");
    await writeFile(csv, `${[header, ...lines.map((l) => l.replace(/,1$/, ",0"))].join("\n")}\n`);
    const explain = await cairnIn(cwd, ["explain", "flow.ts", "load"]);
    expect(explain.stdout).toMatch(/load would run: no cache entry/);
    expect(explain.stdout).toMatch(/code file `\.\/data\/customers\.csv` changed/);
    // Before, every task was a hit and the accuracy was the old data's.
    const edited = await cairnIn(cwd, ["run", "flow.ts", "--json"]);
    expect(edited.code, edited.stderr).toBe(0);
    expect(statuses(edited.json)).toMatchObject({ load: "succeeded", split: "succeeded", train: "succeeded", evaluate: "succeeded" });
    expect(accuracy(edited.json)).toBe(1);
    const warm = await cairnIn(cwd, ["run", "flow.ts", "--json"]);
    expect(new Set(Object.values(statuses(warm.json)))).toEqual(new Set(["cached"]));
    expect(accuracy(warm.json)).toBe(accuracy(edited.json));
  }, 120_000);

  it("shares its cache entries between checkouts at other places: a second copy's run is all hits (its CSV's path is no absolute one)", async () => {
    const base = await mkdtemp(join(repo, "test", ".x-quickstart-"));
    copies.push(base);
    const [alice, bob] = [join(base, "alice"), join(base, "bob", "work")];
    for (const to of [alice, bob]) await cp(join(repo, "examples/quickstart"), to, { recursive: true, filter: (from) => !from.includes(".cairn") });
    const root = join(base, "store");
    const first = await cairnIn(alice, ["run", "flow.ts", "--json", "--root", root]);
    expect(first.code, first.stderr).toBe(0);
    const second = await cairnIn(bob, ["run", "flow.ts", "--json", "--root", root]);
    expect(second.code, second.stderr).toBe(0);
    expect(new Set(Object.values(statuses(second.json)))).toEqual(new Set(["cached"]));
  }, 120_000);
});
