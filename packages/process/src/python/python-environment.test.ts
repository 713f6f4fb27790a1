/**
 * A Python's environment as a task's key holds it: read from real virtualenvs (made by the
 * project's .venv Python, `--without-pip`) with distributions dropped in as folders.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PythonEnvironmentError } from "../spawn/errors.ts";
import { pythonEnvironment } from "./python-environment.ts";

const VENV_PYTHON = resolve(import.meta.dirname, "../../../../.venv/bin/python");

let dir: string;

/** A virtualenv at `name` holding `installed` (folder names of its site-packages) and `files` (path in site-packages -> text); its python. */
async function venv(name: string, installed: readonly string[], files: Record<string, string> = {}): Promise<string> {
  const root = join(dir, name);
  execFileSync(VENV_PYTHON, ["-m", "venv", "--without-pip", root]);
  const [lib] = (await readdir(join(root, "lib"))).filter((n) => n.startsWith("python"));
  for (const folder of installed) await mkdir(join(root, "lib", lib!, "site-packages", folder));
  for (const [path, text] of Object.entries(files)) await writeFile(join(root, "lib", lib!, "site-packages", path), text);
  return join(root, "bin/python");
}

/** A program at `name` that is no Python: a shell script of `body`. */
async function fakePython(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
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

  it("of a Python that prints at start (a sitecustomize.py) holds its packages, not `python: not found`", async () => {
    const python = await venv("chatty", ["tinypkg-1.0.dist-info"], { "sitecustomize.py": 'print("hello from sitecustomize")\nprint("{}")\n' });
    const env = await pythonEnvironment(python);
    expect(env.interpreter).toMatch(/^cpython 3\.\d+\.\d+$/);
    expect(env.packages).toEqual({ tinypkg: "1.0" });
  });

  it("keeps every version of one name found twice (a stale dist-info left beside the new one), so an upgrade of either shows", async () => {
    const stale = await pythonEnvironment(await venv("stale", ["Foo_Bar-1.0.dist-info", "foo.bar-2.0.dist-info"]));
    expect(stale.packages).toEqual({ "foo-bar": "1.0 | 2.0" });
    const upgraded = await pythonEnvironment(await venv("upgraded", ["Foo_Bar-1.0.dist-info", "foo.bar-2.1.dist-info"]));
    expect(upgraded.packages).toEqual({ "foo-bar": "1.0 | 2.1" });
  });

  it("of a Python that started but gave no readable answer fails with PythonEnvironmentError naming what it printed, not a silent `python: not found`", async () => {
    const garbled = await fakePython("garbled-python", 'echo "Welcome to the lab Python"; echo "oops" >&2');
    const error = await pythonEnvironment(garbled).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(PythonEnvironmentError);
    expect((error as Error).message).toContain(`The Python environment of ${garbled} could not be read`);
    expect((error as Error).message).toContain('it printed "Welcome to the lab Python\\n" and on stderr: "oops"');
    const failing = await fakePython("failing-python", "echo broken >&2; exit 3");
    await expect(pythonEnvironment(failing)).rejects.toThrow(/it exited with code 3\. .*on stderr: "broken"/);
  });

  it("runs its probe out of the current folder: a json.py there does not stand for the standard library's", async () => {
    const here = process.cwd();
    const shadowed = join(dir, "shadowed");
    await mkdir(shadowed);
    await writeFile(join(shadowed, "json.py"), "raise SystemExit('not the json module')\n");
    const python = await venv("plain", ["tinypkg-3.0.dist-info"]);
    process.chdir(shadowed);
    try {
      expect((await pythonEnvironment(python)).packages).toEqual({ tinypkg: "3.0" });
    } finally {
      process.chdir(here);
    }
  });
});
