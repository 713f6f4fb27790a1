/**
 * Every kind that runs a step with Python gives its cache key the Python environment (see
 * packages/process/src/python/python-environment.ts): script() of a .py file or with a Python
 * interpreter, notebook(), mlflowProject() and mlflowModel(); a script Python does not run has none.
 */
import { execFileSync } from "node:child_process";
import { chmod, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CacheStore, diffIngredients } from "@cairn/cache";
import { LocalStore, OptionError, TaskCache, type FlowNode, type TaskDefinition } from "@cairn/core";
import { mlflowModel } from "../../packages/mlflow/src/model/mlflow-model.ts";
import { mlflowProject } from "../../packages/mlflow/src/project/mlflow-project.ts";
import { notebook, script } from "../../packages/process/src/index.ts";
import { fixture, hasVenv, tempRoot, VENV_PYTHON } from "./helpers.ts";

/** The key TaskCache makes for `task` (no inputs) with the run's environment variables `env`. */
async function keyOf(task: TaskDefinition, env: NodeJS.ProcessEnv) {
  const root = await tempRoot();
  const store = await CacheStore.fromUrl(undefined, { root });
  const node: FlowNode = { id: task.name, task, inputs: {}, after: [] };
  return new TaskCache(store, new LocalStore({ root }), "0000000000000000", root, env).keyFor(node, {});
}

describe.skipIf(!hasVenv)("the kinds that run Python hold its environment", () => {
  it("script, notebook, mlflowProject and mlflowModel give the environment of the Python they run with", async () => {
    const saved = process.env.CAIRN_PYTHON;
    process.env.CAIRN_PYTHON = VENV_PYTHON;
    try {
      const tasks = [
        script("py", { file: fixture("train.py") }),
        script("py3", { file: fixture("train.py"), interpreter: VENV_PYTHON }),
        notebook("nb", fixture("report.ipynb"), { python: VENV_PYTHON }),
        mlflowProject("proj", { uri: fixture("mlproject"), entryPoint: "main", python: VENV_PYTHON }),
        mlflowModel("score", "models:/churn/3", { python: VENV_PYTHON }),
      ];
      for (const t of tasks) {
        const env = await t.definition.environment?.();
        expect(env, t.definition.name).toMatchObject({ noun: "Python environment", interpreter: expect.stringMatching(/^cpython 3\./) });
        expect(env!.packages, t.definition.name).toHaveProperty("mlflow");
      }
    } finally {
      if (saved === undefined) delete process.env.CAIRN_PYTHON;
      else process.env.CAIRN_PYTHON = saved;
    }
  });

  it("a script no Python runs has none: a TypeScript file, or an interpreter that is not a Python", () => {
    expect(script("ts", { file: fixture("summarize.ts") }).definition.environment).toBeUndefined();
    expect(script("uv", { file: fixture("train.py"), interpreter: ["uv", "run"] }).definition.environment).toBeUndefined();
  });

  it("a script run by PyPy or a free-threaded CPython has one too: pypy, pypy3, pypy3.10, python3.13t, with .exe", () => {
    for (const interpreter of ["/opt/pypy/bin/pypy3", "pypy", "pypy3.10", "/usr/bin/python3.13t", "python3", "python.exe", "C:/pypy/pypy3.exe"]) {
      expect(script("py", { file: fixture("train.py"), interpreter }).definition.environment, interpreter).toBeTypeOf("function");
    }
    for (const interpreter of ["pythonista", "pypy4", "/usr/bin/node", "python3.13x"]) {
      expect(script("py", { file: fixture("train.py"), interpreter }).definition.environment, interpreter).toBeUndefined();
    }
  });
});

describe.skipIf(!hasVenv)("CAIRN_PYTHON_ENV_KEY", () => {
  it("off (the default), a Python task's key is the key without an environment, and no Python is started for it; on, the environment counts", async () => {
    const root = await tempRoot();
    // A "Python" that leaves a trace when started.
    const trace = join(root, "started");
    const python = join(root, "python3");
    await writeFile(python, `#!/bin/sh\necho started >> ${trace}\nexec ${VENV_PYTHON} "$@"\n`);
    await chmod(python, 0o755);
    const { definition } = script("py", { file: fixture("train.py"), interpreter: python });
    const without = await keyOf({ ...definition, environment: undefined }, {});
    for (const off of [{}, { CAIRN_PYTHON_ENV_KEY: "0" }, { CAIRN_PYTHON_ENV_KEY: " off " }]) {
      const key = await keyOf(definition, off);
      expect(key.key).toBe(without.key);
      expect(key.ingredients).not.toHaveProperty("environment");
    }
    expect(await readFile(trace, "utf8").catch(() => "never")).toBe("never");
    const on = await keyOf(definition, { CAIRN_PYTHON_ENV_KEY: "1" });
    expect(on.key).not.toBe(without.key);
    expect(on.ingredients.environment).toMatchObject({ noun: "Python environment", interpreter: expect.stringMatching(/^cpython 3\./) });
    expect(await readFile(trace, "utf8")).toBe("started\n");
  });

  it("on, a package installed while the process runs changes the next key the same process makes, and explain names it", async () => {
    const root = await tempRoot();
    execFileSync(VENV_PYTHON, ["-m", "venv", "--without-pip", join(root, "venv")]);
    const [lib] = (await readdir(join(root, "venv/lib"))).filter((n) => n.startsWith("python"));
    const { definition } = script("py", { file: fixture("train.py"), interpreter: join(root, "venv/bin/python") });
    const before = await keyOf(definition, { CAIRN_PYTHON_ENV_KEY: "1" });
    expect(await keyOf(definition, { CAIRN_PYTHON_ENV_KEY: "1" })).toMatchObject({ key: before.key });
    // What pip leaves in site-packages (a long-lived worker would otherwise key by the old list).
    await mkdir(join(root, "venv/lib", lib!, "site-packages", "tinypkg-1.0.dist-info"));
    const after = await keyOf(definition, { CAIRN_PYTHON_ENV_KEY: "1" });
    expect(after.key).not.toBe(before.key);
    expect(diffIngredients(before.ingredients, after.ingredients).map((c) => c.message)).toEqual(["Python environment changed: tinypkg 1.0 added"]);
  });

  it("a value that is no switch is an OptionError naming the variable", async () => {
    const { definition } = script("py", { file: fixture("train.py") });
    const error = await keyOf(definition, { CAIRN_PYTHON_ENV_KEY: "maybe" }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(OptionError);
    expect((error as Error).message).toContain("CAIRN_PYTHON_ENV_KEY");
  });
});
