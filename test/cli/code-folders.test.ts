/**
 * A folder declared with `.codeFiles()` counts by the code and data in it, not by what running that
 * code or a tool writes there: a Python script task that imports from its declared folder (a real
 * interpreter, with bytecode writing on, so that its first run writes `pylib/__pycache__/`) hits on
 * its next run, and a `.DS_Store`, an empty folder or a `.git/` added beside the code change nothing.
 * When a file in the folder does change, `cairn explain` names it, as it names a project's files.
 * A `--root` inside the declared folder is left out of it: the run writes there while the task runs.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, jsonLines, start } from "../cache/helpers.ts";
import { repo } from "./helpers.ts";

const PYTHON = join(repo, ".venv/bin/python");

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

const FLOW = `import { flow, script } from "cairn-dag";

const step = script("step", { file: "./step.py" }).codeFiles("./pylib", "data/extra").output<{ n: number }>();

export default flow("code-folders").build(() => ({ n: step({}).n }));
`;

const STEP = `import os
import cairn_task
from pylib.helpers import rows

here = os.path.dirname(os.path.abspath(__file__))
extra = os.path.join(here, "data", "extra")
cairn_task.set_outputs({"n": rows() + len([f for f in os.listdir(extra) if f.endswith(".csv")])})
`;

// Bytecode writing on for the child (this machine's environment may turn it off), so that the
// first run's import writes pylib/__pycache__/ as it does on a user's machine.
const env = childEnv({ CAIRN_PYTHON: PYTHON, PYTHONDONTWRITEBYTECODE: undefined });
const cairnIn = (cwd: string, args: string[]) => start(process.execPath, [cairnBin, ...args], { cwd, env }).done;

async function statusOf(cwd: string): Promise<string | undefined> {
  const run = await cairnIn(cwd, ["run", "flow.ts", "--json"]);
  expect(run.code, run.stderr).toBe(0);
  return jsonLines(run.stdout).filter((e) => e.type === "task" && e.task === "step").at(-1)?.status as string | undefined;
}

/** A fresh project: the flow, its script, the code folder `pylib` it imports from and the data folder `data/extra` it reads. */
async function project(): Promise<string> {
  // Inside the workspace, where a flow file resolves cairn-dag.
  const cwd = await mkdtemp(join(repo, "test", ".x-code-folders-"));
  made.push(cwd);
  await mkdir(join(cwd, "pylib"));
  await mkdir(join(cwd, "data", "extra"), { recursive: true });
  await writeFile(join(cwd, "flow.ts"), FLOW);
  await writeFile(join(cwd, "step.py"), STEP);
  await writeFile(join(cwd, "pylib", "__init__.py"), "");
  await writeFile(join(cwd, "pylib", "helpers.py"), "def rows():\n    return 3\n");
  await writeFile(join(cwd, "data", "extra", "a.csv"), "x\n1\n");
  return cwd;
}

describe.skipIf(!existsSync(PYTHON))("a folder declared with .codeFiles()", () => {
  it("does not count what running its code writes in it, nor a .DS_Store, an empty folder or .git/", async () => {
    const cwd = await project();
    expect(await statusOf(cwd)).toBe("succeeded");
    // The import wrote the bytecode into the declared folder: it must change nothing.
    expect(existsSync(join(cwd, "pylib", "__pycache__"))).toBe(true);
    expect(await statusOf(cwd)).toBe("cached");

    // What a tool leaves beside the code, and a folder that holds no file.
    await writeFile(join(cwd, "pylib", ".DS_Store"), "finder");
    await mkdir(join(cwd, "pylib", "empty"));
    await mkdir(join(cwd, "data", "extra", ".git"));
    await writeFile(join(cwd, "data", "extra", ".git", "HEAD"), "ref: refs/heads/main\n");
    await writeFile(join(cwd, "data", "extra", ".DS_Store"), "finder");
    await mkdir(join(cwd, "data", "extra", "later"));
    expect(await statusOf(cwd)).toBe("cached");

    // `touch helpers.py`, then any import of it (a test run, a REPL): the same content, only the
    // bytecode Python writes again (it records the source's time) differs.
    const later = new Date(Date.now() + 5_000);
    await utimes(join(cwd, "pylib", "helpers.py"), later, later);
    const pyc = await readdir(join(cwd, "pylib", "__pycache__"));
    const before = await Promise.all(pyc.map((name) => readFile(join(cwd, "pylib", "__pycache__", name))));
    execFileSync(PYTHON, ["-c", "import pylib.helpers"], { cwd, env });
    const after = await Promise.all(pyc.map((name) => readFile(join(cwd, "pylib", "__pycache__", name))));
    expect(after.some((bytes, i) => !bytes.equals(before[i]!))).toBe(true);
    expect(await statusOf(cwd)).toBe("cached");

    // A real change of the code: a miss, then a hit again.
    await writeFile(join(cwd, "pylib", "helpers.py"), "def rows():\n    return 4\n");
    expect(await statusOf(cwd)).toBe("succeeded");
    expect(await statusOf(cwd)).toBe("cached");
  }, 180_000);

  it("`cairn explain` names the files of the folder that changed", async () => {
    const cwd = await project();
    expect(await statusOf(cwd)).toBe("succeeded");

    // A real change in the data folder: explain names the files, as it names a project's.
    await writeFile(join(cwd, "data", "extra", "a.csv"), "x\n2\n");
    await writeFile(join(cwd, "data", "extra", "b.csv"), "x\n3\n");
    const explained = await cairnIn(cwd, ["explain", "flow.ts", "step"]);
    expect(explained.code, explained.stderr).toBe(0);
    expect(explained.stdout).toContain("2 files of code folder `data/extra` changed: `a.csv`, `b.csv` (added)");
    expect(await statusOf(cwd)).toBe("succeeded");

    // One file changed in the code folder: named on its own.
    await writeFile(join(cwd, "pylib", "helpers.py"), "def rows():\n    return 4\n");
    const one = await cairnIn(cwd, ["explain", "flow.ts", "step"]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain("file `helpers.py` of code folder `./pylib` changed");
  }, 180_000);
});

/** A project whose task declares `declared` with `.codeFiles()`, and the code folder `sub/` (one file, and a `node_modules/`). */
async function rootProject(declared: string): Promise<string> {
  const cwd = await mkdtemp(join(repo, "test", ".x-code-folder-root-"));
  made.push(cwd);
  await mkdir(join(cwd, "sub", "node_modules", "pkg"), { recursive: true });
  await writeFile(join(cwd, "sub", "a.txt"), "code\n");
  await writeFile(join(cwd, "sub", "node_modules", "pkg", "index.js"), "module.exports = 1;\n");
  await writeFile(
    join(cwd, "flow.ts"),
    `import { flow, task } from "cairn-dag";\n\nconst t = task("t3").codeFiles(${JSON.stringify(declared)}).run(async () => ({ v: 1 }));\n\nexport default flow("cf3").build(() => ({ v: t({}).v }));\n`,
  );
  return cwd;
}

describe("a --root inside a folder declared with .codeFiles()", () => {
  for (const [declared, root] of [
    ["./sub", "sub/.state"],
    // CI's cache of the state folder (actions/cache of .cache/cairn) in a project declared whole.
    [".", ".cache/cairn"],
  ] as const) {
    it(`is left out of it: .codeFiles("${declared}") with --root ${root} is cached from its second run`, async () => {
      const cwd = await rootProject(declared);
      const said: string[] = [];
      for (const want of ["succeeded", "cached", "cached"]) {
        const run = await cairnIn(cwd, ["run", "flow.ts", "--json", "--root", root]);
        expect(run.code, run.stderr).toBe(0);
        said.push(run.stdout, run.stderr);
        const last = jsonLines(run.stdout).filter((e) => e.type === "task" && e.task === "t3").at(-1);
        expect(last?.status, run.stdout).toBe(want);
      }
      expect(said.join("\n")).not.toContain("changed since the flow was loaded");
      expect(said.join("\n")).not.toContain("not recorded");
      expect(existsSync(join(cwd, root, "cache"))).toBe(true);

      // A file under its node_modules/ edited: still a hit; the code edited: a miss.
      await writeFile(join(cwd, "sub", "node_modules", "pkg", "index.js"), "module.exports = 2;\n");
      const nm = await cairnIn(cwd, ["run", "flow.ts", "--json", "--root", root]);
      expect(jsonLines(nm.stdout).filter((e) => e.type === "task" && e.task === "t3").at(-1)?.status, nm.stdout).toBe("cached");
      await writeFile(join(cwd, "sub", "a.txt"), "code v2\n");
      const edited = await cairnIn(cwd, ["run", "flow.ts", "--json", "--root", root]);
      expect(jsonLines(edited.stdout).filter((e) => e.type === "task" && e.task === "t3").at(-1)?.status, edited.stdout).toBe("succeeded");
    }, 120_000);
  }
});
