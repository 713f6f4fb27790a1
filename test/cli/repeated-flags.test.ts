/**
 * A flag given twice: parseArgs keeps the last value of a flag that takes one, without a word,
 * so a wrapper's own flag silently overrode the user's. Such a flag is refused (exit 2) before
 * anything runs; `--secrets` reads every file it is given.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cairn, repo, tmp } from "./helpers.ts";

const made: string[] = [];
/** A folder inside the workspace, where a flow file resolves `cairn-dag` as the examples do. */
const inWorkspace = async () => {
  const dir = await mkdtemp(join(repo, "test", ".repeated-flags-"));
  made.push(dir);
  return dir;
};
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

const ok = join(repo, "test/fixtures/ok.flow.ts");

describe("a flag that takes one value, given twice, is refused (exit 2)", () => {
  it.each([
    [["cache", "prune", "--older-than", "30d", "--older-than", "1ms"], "Expected `--older-than` once, got it twice (`30d`, `1ms`)"],
    [["run", ok, "--experiment", "e1", "--experiment=e2"], "Expected `--experiment` once, got it twice (`e1`, `e2`)"],
    [["run", ok, "-c", "2", "-c", "3"], "Expected `--concurrency` once, got it twice (`2`, `3`)"],
    [["run", ok, "--failure-policy", "continue", "--failure-policy", "fail-fast"], "Expected `--failure-policy` once"],
    [["graph", ok, "-f", "dot", "-f", "json"], "Expected `--format` once, got it twice (`dot`, `json`)"],
    [["runs", "-n", "2", "-n", "3"], "Expected `--limit` once"],
    [["run", ok, "-p", "n=1", "-p", "n=7"], "Expected one -p n=..., got two (`-p n=1`, `-p n=7`)"],
    [["run", ok, "--pool", "gpu=1", "--pool", "gpu=3"], "Expected one --pool gpu=N, got two (`--pool gpu=1`, `--pool gpu=3`)"],
  ])("cairn %j", async (args, message) => {
    const cwd = await tmp("cairn-cli-twice-");
    const r = await cairn(args, { cwd });
    expect(r.stderr).toContain(message);
    expect(r.code).toBe(2);
  });
});

describe("--secrets given twice reads both files, in order", () => {
  it("a task reads a secret of each file; a key in both takes the later file's value", async () => {
    const cwd = await inWorkspace();
    await writeFile(join(cwd, "a.env"), "TOKEN_A=aaaaaaaa-first\nBOTH=from-a-file-1\n");
    await writeFile(join(cwd, "b.env"), "TOKEN_B=bbbbbbbb-second\nBOTH=from-b-file-2\n");
    await writeFile(
      join(cwd, "flow.ts"),
      `import { flow, task } from "cairn-dag";\n` +
        `const t = task("reads").run((_, ctx) => ({ ok: [ctx.secret("TOKEN_A"), ctx.secret("TOKEN_B"), ctx.secret("BOTH")].map((s) => s.length).join(","), later: ctx.secret("BOTH").endsWith("2") }));\n` +
        `export default flow("two-files").build(() => { const r = t({}); return { ok: r.ok, later: r.later }; });\n`,
    );
    const r = await cairn(["run", "flow.ts", "--secrets", "a.env", "--secrets", "b.env", "--no-report", "--json"], { cwd });
    expect(r.code, r.stderr).toBe(0);
    const end = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { outputs: { ok: string; later: boolean } };
    expect(end.outputs).toEqual({ ok: "14,15,13", later: true });
  });
});
