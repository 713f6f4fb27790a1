/**
 * Every kind that runs a step with Python gives its cache key the Python environment (see
 * packages/process/src/python/python-environment.ts): script() of a .py file or with a Python
 * interpreter, notebook(), mlflowProject() and mlflowModel(); a script Python does not run has none.
 */
import { describe, expect, it } from "vitest";
import { mlflowModel } from "../../packages/mlflow/src/model/mlflow-model.ts";
import { mlflowProject } from "../../packages/mlflow/src/project/mlflow-project.ts";
import { notebook, script } from "../../packages/process/src/index.ts";
import { fixture, hasVenv, VENV_PYTHON } from "./helpers.ts";

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
