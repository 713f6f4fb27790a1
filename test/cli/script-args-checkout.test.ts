/**
 * A script task whose `args` hold a path inside the project made from `import.meta.dirname` (as
 * README tells) hits in another checkout of the project at another place: the arg enters the key by
 * its path from the project's root, as `file` and `cwd` do, while the process still gets the
 * absolute path of its own checkout.
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, jsonLines, start } from "../cache/helpers.ts";
import { repo } from "./helpers.ts";

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

const FLOW = `import { join } from "node:path";
import { flow, script } from "cairn-dag";

const here = import.meta.dirname;
const pyargs = script("pyargs", { file: join(here, "steps/py_step.py"), args: [join(here, "data/rows.csv"), "/outside/the/project"], cwd: join(here, "steps") })
  .output<{ rows: number; path: string }>();

export default flow("script-args").build(() => {
  const r = pyargs({});
  return { rows: r.rows, path: r.path };
});
`;

const STEP = `import sys
import cairn_task
with open(sys.argv[1]) as f:
    rows = len(f.read().splitlines())
cairn_task.set_outputs({"rows": rows, "path": sys.argv[1]})
`;

const env = childEnv({ CAIRN_PYTHON: join(repo, ".venv/bin/python") });
const cairnIn = (cwd: string, args: string[]) => start(process.execPath, [cairnBin, ...args], { cwd, env }).done;

describe("a script's arg that is a path inside the project", () => {
  it("keys by its path from the project's root: another checkout hits, and a run there gets its own absolute path", async () => {
    // Inside the workspace, where a flow file resolves cairn-dag; each copy is a project of its own (its `.git`).
    const base = await mkdtemp(join(repo, "test", ".x-script-args-"));
    made.push(base);
    const alice = join(base, "alice", "proj");
    await mkdir(join(alice, "steps"), { recursive: true });
    await mkdir(join(alice, "data"));
    await mkdir(join(alice, ".git"));
    await writeFile(join(alice, "flow.ts"), FLOW);
    await writeFile(join(alice, "steps", "py_step.py"), STEP);
    await writeFile(join(alice, "data", "rows.csv"), "a\nb\nc\n");
    const bob = join(base, "bob", "work", "proj");
    await cp(alice, bob, { recursive: true });
    const root = join(base, "store");

    const first = await cairnIn(alice, ["run", "flow.ts", "--root", root, "--json"]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(JSON.stringify(join(alice, "data", "rows.csv")));

    const plan = await cairnIn(bob, ["plan", "flow.ts", "--root", root]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).not.toContain("changed");
    const second = await cairnIn(bob, ["run", "flow.ts", "--root", root, "--json"]);
    expect(second.code, second.stderr).toBe(0);
    expect(jsonLines(second.stdout).filter((e) => e.type === "task" && e.task === "pyargs").at(-1)?.status).toBe("cached");

    // Its arg still names its own checkout's file when it runs: with the cache off, bob's run reads bob's.
    await writeFile(join(bob, "data", "rows.csv"), "a\n");
    const third = await cairnIn(bob, ["run", "flow.ts", "--root", root, "--json", "--no-cache"]);
    expect(third.code, third.stderr).toBe(0);
    expect(third.stdout).toContain(JSON.stringify(join(bob, "data", "rows.csv")));
  }, 90_000);
});
