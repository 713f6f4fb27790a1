/**
 * The README's first flow runs as written: copied out of the README into a folder of the
 * workspace, run with `cairn run` (cold, then every task from the cache), and type-checked,
 * with the Embedding section's block that runs it from code. So does its TypeScript script
 * that uses currentTask(), run as a script() task.
 */
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cairn, repo } from "./cli/helpers.ts";

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe("the README's first flow", () => {
  it("runs as written with cairn run, then comes from the cache, and type-checks", async () => {
    const readme = await readFile(join(repo, "README.md"), "utf8");
    const code = /```ts\n(\/\/ flow\.ts\n[\s\S]*?)```/.exec(readme)?.[1];
    expect(code, "the README's ```ts block that starts with // flow.ts").toBeDefined();
    // Inside the workspace, so that "cairn-dag" and "zod" resolve as in a user's project.
    const dir = await mkdtemp(join(repo, "test", ".readme-flow-"));
    dirs.push(dir);
    const file = join(dir, "flow.ts");
    await writeFile(file, code!);
    const cold = await cairn(["run", file, "-p", "rows=500", "--json"], { cwd: dir });
    expect(cold.code, cold.stderr).toBe(0);
    expect(cold.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded", outputs: { accuracy: 0.55 } });
    const warm = await cairn(["run", file, "-p", "rows=500", "--json"], { cwd: dir });
    expect(warm.json.filter((e) => e.type === "task" && e.status !== "queued").map((e) => e.status)).toEqual(["cached", "cached"]);
    // The Embedding section's block, which imports that flow, type-checks beside it.
    const embedding = /### Embedding\n\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(embedding, "the README's ```ts block under ### Embedding").toBeDefined();
    await writeFile(join(dir, "embed.ts"), `declare const signal: AbortSignal;\n${embedding!}export {};\n`);
    // With the workspace's compiler options (strict, NodeNext, noUncheckedIndexedAccess as `cairn init`'s),
    // as `npm run typecheck` does in a project.
    await writeFile(join(dir, "tsconfig.json"), JSON.stringify({ extends: "../../tsconfig.json", include: ["flow.ts", "embed.ts"] }));
    execFileSync(join(repo, "node_modules/.bin/tsc"), ["-p", join(dir, "tsconfig.json")], { cwd: repo, encoding: "utf8" });
  }, 120_000);
});

describe("the README's currentTask() script", () => {
  it("runs as written as a script() task, and type-checks", async () => {
    const readme = await readFile(join(repo, "README.md"), "utf8");
    const code = /```ts\n(\/\/ steps\/train\.ts[\s\S]*?)```/.exec(readme)?.[1];
    expect(code, "the README's ```ts block that starts with // steps/train.ts").toBeDefined();
    const dir = await mkdtemp(join(repo, "test", ".readme-current-task-"));
    dirs.push(dir);
    await mkdir(join(dir, "steps"));
    await writeFile(join(dir, "steps/train.ts"), code!);
    // The flow its first line names.
    await writeFile(
      join(dir, "flow.ts"),
      [
        'import { flow, script, type Artifact } from "cairn-dag";',
        'const train = script("train", { file: "steps/train.ts" }).input<{ rows: number }>().output<{ model: Artifact; accuracy: number }>();',
        'export default flow("readme-current-task").build(() => {',
        "  const t = train({ rows: 7 });",
        "  return { model: t.model, accuracy: t.accuracy };",
        "});",
        "",
      ].join("\n"),
    );
    const ran = await cairn(["run", join(dir, "flow.ts"), "--json"], { cwd: dir });
    expect(ran.code, ran.stderr).toBe(0);
    const outputs = (ran.json.at(-1) as { outputs: { model: { path: string }; accuracy: number } }).outputs;
    expect(outputs.accuracy).toBe(0.9);
    expect(JSON.parse(await readFile(outputs.model.path, "utf8"))).toEqual({ rows: 7 });
    await writeFile(join(dir, "tsconfig.json"), JSON.stringify({ extends: "../../tsconfig.json", include: ["flow.ts", "steps/train.ts"] }));
    execFileSync(join(repo, "node_modules/.bin/tsc"), ["-p", join(dir, "tsconfig.json")], { cwd: repo, encoding: "utf8" });
  }, 120_000);
});
