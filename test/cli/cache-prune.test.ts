/**
 * `cairn cache prune` deletes: a limit it cannot read must stop it before the store is touched
 * (exit 2), never be read as a tiny limit that removes every entry.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairn, repo, tmp } from "./helpers.ts";

const flowFile = join(repo, "test/fixtures/ok.flow.ts");

async function cachedProject(): Promise<string> {
  const cwd = await tmp("cairn-cli-prune-");
  const r = await cairn(["run", flowFile, "--no-report"], { cwd });
  expect(r.code, r.stderr).toBe(0);
  return cwd;
}

async function entries(cwd: string): Promise<number> {
  const r = await cairn(["cache", "ls", "--json"], { cwd });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as unknown[]).length;
}

describe("cairn cache prune reads its limits strictly", () => {
  it.each([
    ["--max-size", "5G"],
    ["--max-size", "5,000MB"],
    ["--max-size", "5XB"],
    ["--older-than", "7"],
  ])("%s %s is refused (exit 2) and removes nothing", async (flag, value) => {
    const cwd = await cachedProject();
    const before = await entries(cwd);
    expect(before).toBeGreaterThan(0);
    const r = await cairn(["cache", "prune", flag, value], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`Expected \`${flag}\` to be a number and a unit`);
    expect(r.stderr).toContain(`got \`${value}\``);
    expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack
    expect(await entries(cwd)).toBe(before);
  });

  it("--max-size 5GB and --older-than 7d keep a fresh, small entry", async () => {
    const cwd = await cachedProject();
    const before = await entries(cwd);
    const r = await cairn(["cache", "prune", "--max-size", "5GB", "--older-than", "7d"], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Removed 0 entries/);
    expect(await entries(cwd)).toBe(before);
  });
});

describe("cairn cache prune says what it frees", () => {
  it("the removed entries' records; their artifacts stay with their runs, and it says so", async () => {
    const cwd = await tmp("cairn-cli-prune-");
    const run = await cairn(["run", join(repo, "test/cli/fixtures/artifact-output.flow.ts"), "--no-report", "--json"], { cwd });
    expect(run.code, run.stderr).toBe(0);
    const [entry] = JSON.parse((await cairn(["cache", "ls", "--json"], { cwd })).stdout) as Array<{ sourceRunId: string }>;
    const artifact = join(cwd, ".cairn", "artifacts", entry!.sourceRunId, "report.txt");
    expect(existsSync(artifact)).toBe(true);
    // MLFLOW_TRACKING_URI of blanks is unset, as for every command: the artifacts are in the embedded store.
    const r = await cairn(["cache", "prune", "--max-size", "1B"], { cwd, env: { MLFLOW_TRACKING_URI: "  " } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Removed 1 entry \(its record, [\d.]+ (B|KB)\); kept 0 entries/);
    expect(r.stdout).toContain(`The 7 B of artifacts of the removed entry stay with its run (in ${join(cwd, ".cairn", "artifacts")})`);
    expect(r.stdout).not.toMatch(/MLflow server/);
    expect(existsSync(artifact)).toBe(true);
  });
});

describe("cairn cache clear --task with an empty value", () => {
  // `cairn cache clear --task "$TASK"` with TASK unset: it emptied the whole cache.
  it.each([[["--task", ""]], [["--task="]], [["--task", "  "]]])("cache clear %j is refused (exit 2) and removes nothing", async (flags) => {
    const cwd = await cachedProject();
    const before = await entries(cwd);
    expect(before).toBeGreaterThan(0);
    const r = await cairn(["cache", "clear", ...flags], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Expected `--task NAME` to have a value, got an empty one");
    expect(r.stderr).toContain("leaving --task out means every task");
    expect(await entries(cwd)).toBe(before);
  });
});
