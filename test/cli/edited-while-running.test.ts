/**
 * A result is stored only under the key of the code that made it: a script, or a helper module it
 * imports, edited while the task runs (after its key was made from the old text) leaves no cache
 * entry, so that the next run of the old code runs it again instead of taking the new code's
 * result; so does a module a notebook imports, and a file a function task declares with `.codeFiles()`. `cairn` as a user runs it,
 * a real Python script (or the function) waiting for the test to edit a file.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, type Exit, jsonLines, sleep, start } from "../cache/helpers.ts";
import { repo } from "./helpers.ts";

const PYTHON = join(repo, ".venv/bin/python");

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

const FLOW = `import { flow, script } from "cairn-dag";

const t = script("t", { file: "./steps/ver.py" }).output<{ score: number }>();

export default flow("ver").build(() => ({ score: t({}).score }));
`;

// Says it started, then waits for the test's go: the test edits a file in between.
const STEP = (version: string) => `import os, time
import cairn_task
from vmod import BONUS

VERSION = ${version}
here = os.path.dirname(os.path.abspath(__file__))
open(os.path.join(here, "started"), "w").close()
while not os.path.exists(os.path.join(here, "go")):
    time.sleep(0.05)
cairn_task.set_outputs({"score": VERSION * 10 + BONUS})
`;
const HELPER = (bonus: number) => `BONUS = ${bonus}\n`;

// A function task that reads a file it declares with .codeFiles(), waiting as the script does.
const FUNCTION_FLOW = `import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { flow, task } from "cairn-dag";

const steps = join(import.meta.dirname, "steps");
const t = task("t")
  .codeFiles("./steps/conf.json")
  .run(async () => {
    writeFileSync(join(steps, "started"), "");
    while (!existsSync(join(steps, "go"))) await sleep(50);
    return { score: (JSON.parse(readFileSync(join(steps, "conf.json"), "utf8")) as { score: number }).score };
  });

export default flow("ver").build(() => ({ score: t({}).score }));
`;

// A notebook whose second cell imports the helper: the test edits the helper while the first cell waits.
const NOTEBOOK_FLOW = `import { flow, notebook } from "cairn-dag";

const t = notebook("t", "./steps/ver.ipynb").output<{ score: number }>();

export default flow("ver").build(() => ({ score: t({}).score }));
`;
const cell = (source: string) => ({ cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: [source] });
const NOTEBOOK = JSON.stringify({
  cells: [
    cell("import os, time\nopen('started', 'w').close()\nwhile not os.path.exists('go'):\n    time.sleep(0.05)\n"),
    cell("import cairn_task\nfrom vmod import BONUS\ncairn_task.set_outputs(score=10 + BONUS)\n"),
  ],
  metadata: { kernelspec: { display_name: "python3", language: "python", name: "python3" }, language_info: { name: "python" } },
  nbformat: 4,
  nbformat_minor: 4,
});

const env = childEnv({ CAIRN_PYTHON: PYTHON });

/** A fresh project inside the workspace (where a flow file resolves cairn-dag). */
async function project(): Promise<string> {
  const cwd = await mkdtemp(join(repo, "test", ".x-edited-"));
  made.push(cwd);
  await mkdir(join(cwd, "steps"));
  await writeFile(join(cwd, "flow.ts"), FLOW);
  await writeFile(join(cwd, "steps", "ver.py"), STEP("1"));
  await writeFile(join(cwd, "steps", "vmod.py"), HELPER(0));
  return cwd;
}

/** `cairn run flow.ts --json`; `meanwhile` runs once the step has started, before it is let go. */
async function run(cwd: string, meanwhile?: () => Promise<void>): Promise<Exit> {
  const steps = join(cwd, "steps");
  await rm(join(steps, "started"), { force: true });
  if (!meanwhile) await writeFile(join(steps, "go"), "");
  else await rm(join(steps, "go"), { force: true });
  const started = start(process.execPath, [cairnBin, "run", "flow.ts", "--json"], { cwd, env });
  if (meanwhile) {
    for (let i = 0; i < 1200 && !existsSync(join(steps, "started")); i++) await sleep(50);
    expect(existsSync(join(steps, "started")), "the step did not start").toBe(true);
    await meanwhile();
    await writeFile(join(steps, "go"), "");
  }
  const exit = await started.done;
  expect(exit.code, exit.stderr).toBe(0);
  return exit;
}

const stepOf = (exit: Exit) => jsonLines(exit.stdout).filter((e) => e.type === "task" && e.task === "t").at(-1);
const scoreOf = (exit: Exit) => (jsonLines(exit.stdout).find((e) => e.type === "flow" && e.outputs !== undefined)?.outputs as { score?: number } | undefined)?.score;

describe.skipIf(!existsSync(PYTHON))("a task whose code is edited while it runs", () => {
  it.each([
    ["the script", "steps/ver.py", (cwd: string) => writeFile(join(cwd, "steps", "ver.py"), STEP("2")), (cwd: string) => writeFile(join(cwd, "steps", "ver.py"), STEP("1"))],
    ["a module it imports", "steps/vmod.py", (cwd: string) => writeFile(join(cwd, "steps", "vmod.py"), HELPER(5)), (cwd: string) => writeFile(join(cwd, "steps", "vmod.py"), HELPER(0))],
  ])("%s: its result is not cached, and the next run of the old code runs it again", async (_what, name, edit, revert) => {
    const cwd = await project();
    const edited = await run(cwd, () => edit(cwd));
    // The run goes on with the result the new code made, and says it is not stored.
    expect(stepOf(edited)?.status).toBe("succeeded");
    const said = `${edited.stdout}\n${edited.stderr}`;
    // Named from the project's root (the workspace's, here).
    expect(said).toMatch(new RegExp(`\`test/\\.x-edited-\\w+/${name.replace(".", "\\.")}\` was edited while the task ran \\(after its cache key was made\\): its result is not cached; the next run runs it again\\.`));
    expect(await readdir(join(cwd, ".cairn", "cache", "entries")).catch(() => [])).toEqual([]);
    // Its run says so, and carries no key a lookup would take it by.
    const records = await readdir(join(cwd, ".cairn", "runs"));
    const texts = await Promise.all(records.map((file) => readFile(join(cwd, ".cairn", "runs", file), "utf8")));
    expect(texts.some((text) => text.includes("cairn.code_edited") && text.includes(name))).toBe(true);
    expect(texts.some((text) => text.includes("cairn.cache_key"))).toBe(false);

    // The old code again: it runs (not the edited code's result, served as its own), and is stored.
    await revert(cwd);
    const again = await run(cwd);
    expect(stepOf(again)?.status).toBe("succeeded");
    expect(scoreOf(again)).toBe(10);
    expect(stepOf(await run(cwd))?.status).toBe("cached");
  }, 180_000);

  it("a module a notebook's cell imports: its result is not cached either", async () => {
    const cwd = await project();
    await writeFile(join(cwd, "flow.ts"), NOTEBOOK_FLOW);
    await writeFile(join(cwd, "steps", "ver.ipynb"), NOTEBOOK);
    const edited = await run(cwd, () => writeFile(join(cwd, "steps", "vmod.py"), HELPER(5)));
    expect(stepOf(edited)?.status).toBe("succeeded");
    expect(scoreOf(edited)).toBe(15);
    expect(`${edited.stdout}\n${edited.stderr}`).toMatch(/steps\/vmod\.py` was edited while the task ran \(after its cache key was made\): its result is not cached/);

    await writeFile(join(cwd, "steps", "vmod.py"), HELPER(0));
    const again = await run(cwd);
    expect(stepOf(again)?.status).toBe("succeeded");
    expect(scoreOf(again)).toBe(10);
    expect(stepOf(await run(cwd))?.status).toBe("cached");
  }, 180_000);

  it("a function task's .codeFiles() file: its result is not cached either", async () => {
    const cwd = await project();
    await writeFile(join(cwd, "flow.ts"), FUNCTION_FLOW);
    await writeFile(join(cwd, "steps", "conf.json"), `{"score": 10}`);
    const edited = await run(cwd, () => writeFile(join(cwd, "steps", "conf.json"), `{"score": 20}`));
    expect(stepOf(edited)?.status).toBe("succeeded");
    expect(scoreOf(edited)).toBe(20);
    expect(`${edited.stdout}\n${edited.stderr}`).toContain("`./steps/conf.json` was edited while the task ran (after its cache key was made): its result is not cached");

    await writeFile(join(cwd, "steps", "conf.json"), `{"score": 10}`);
    const again = await run(cwd);
    expect(stepOf(again)?.status).toBe("succeeded");
    expect(scoreOf(again)).toBe(10);
    expect(stepOf(await run(cwd))?.status).toBe("cached");
  }, 180_000);
});
