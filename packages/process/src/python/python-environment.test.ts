/**
 * A Python's environment as a task's key holds it: read from real virtualenvs (made by the
 * project's .venv Python, `--without-pip`) with distributions dropped in as folders.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pythonEnvironment } from "./python-environment.ts";

const VENV_PYTHON = resolve(import.meta.dirname, "../../../../.venv/bin/python");

let dir: string;

/** A virtualenv at `name` holding `installed` (folder names of its site-packages); its python. */
async function venv(name: string, installed: readonly string[]): Promise<string> {
  const root = join(dir, name);
  execFileSync(VENV_PYTHON, ["-m", "venv", "--without-pip", root]);
  const [lib] = (await readdir(join(root, "lib"))).filter((n) => n.startsWith("python"));
  for (const folder of installed) await mkdir(join(root, "lib", lib!, "site-packages", folder));
  return join(root, "bin/python");
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-pyenv-unit-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe.skipIf(!existsSync(VENV_PYTHON))("pythonEnvironment", () => {
  it("holds the interpreter's version and the installed distributions by normalised name, without the installers", async () => {
    const python = await venv("a", ["Scikit_Learn-1.3.2.dist-info", "zope.interface-6.1-py3.11.egg-info", "pip-24.0.dist-info", "setuptools-69.0.dist-info", "wheel-0.42.dist-info", "tinypkg", "__pycache__"]);
    const env = await pythonEnvironment(python);
    expect(env.noun).toBe("Python environment");
    expect(env.interpreter).toMatch(/^cpython 3\.\d+\.\d+$/);
    expect(env.packages).toEqual({ "scikit-learn": "1.3.2", "zope-interface": "6.1" });
    // Once per process and interpreter: the same promise.
    expect(pythonEnvironment(python)).toBe(pythonEnvironment(python));
  });

  it("is the same for the same content at another path, and differs by a version", async () => {
    const a = await pythonEnvironment(await venv("one", ["tinypkg-1.0.dist-info"]));
    const b = await pythonEnvironment(await venv("elsewhere/two", ["tinypkg-1.0.dist-info"]));
    const c = await pythonEnvironment(await venv("three", ["tinypkg-2.0.dist-info"]));
    expect(b).toEqual(a);
    expect(c.packages).toEqual({ tinypkg: "2.0" });
    expect(c).not.toEqual(a);
  });

  it("of a Python that cannot start is `python: not found (<path>)`, without rejecting", async () => {
    const missing = join(dir, "no-such/bin/python");
    expect(await pythonEnvironment(missing)).toEqual({ noun: "Python environment", interpreter: `python: not found (${missing})`, packages: {} });
  });
});
