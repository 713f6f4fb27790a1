/**
 * A Python's environment as a task's key holds it: read from real virtualenvs (made by the
 * project's .venv Python, `--without-pip`) with distributions dropped in as folders, or
 * installed into them by that Python's pip while the process runs.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
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

/** The site-packages folder of the virtualenv whose python is `python`. */
async function sitePackages(python: string): Promise<string> {
  const lib = join(python, "../../lib");
  const [version] = (await readdir(lib)).filter((n) => n.startsWith("python"));
  return join(lib, version!, "site-packages");
}

/** A wheel of an empty package `name` at `version` (what pip installs offline), its path. */
async function wheel(name: string, version: string): Promise<string> {
  const info = `${name}-${version}.dist-info`;
  const path = join(dir, `${name}-${version}-py3-none-any.whl`);
  const files = {
    [`${name}/__init__.py`]: "",
    [`${info}/METADATA`]: `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n`,
    [`${info}/WHEEL`]: "Wheel-Version: 1.0\nGenerator: cairn-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    [`${info}/RECORD`]: "",
  };
  const write = "import json, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n    for k, v in json.loads(sys.argv[2]).items(): z.writestr(k, v)\n";
  execFileSync(VENV_PYTHON, ["-c", write, path, JSON.stringify(files)]);
  return path;
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
  });

  it("asks an unchanged Python once per process: later uses stat it and its site folders, and start no Python", async () => {
    const python = await venv("quiet", ["tinypkg-1.0.dist-info"]);
    // Older than a stamp must be to be trusted (a folder changed this second may change again unseen).
    await utimes(await sitePackages(python), new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    const trace = join(dir, "quiet-started");
    const traced = await fakePython("quiet-python", `echo started >> ${trace}\nexec ${python} "$@"`);
    const first = await pythonEnvironment(traced);
    expect(await pythonEnvironment(traced)).toBe(first);
    expect(await pythonEnvironment(traced)).toBe(first);
    expect(await readFile(trace, "utf8")).toBe("started\n");
  });

  it("asks Python once for a site folder whose modification time is in the future (clock skew, an extracted image), not at every use", async () => {
    const python = await venv("future", ["tinypkg-1.0.dist-info"]);
    // As `touch -d "+1 hour"` leaves it: before, too fresh to trust until the clock passed it.
    await utimes(await sitePackages(python), new Date(Date.now() + 3_600_000), new Date(Date.now() + 3_600_000));
    const trace = join(dir, "future-started");
    const traced = await fakePython("future-python", `echo started >> ${trace}\nexec ${python} "$@"`);
    const first = await pythonEnvironment(traced);
    for (let i = 0; i < 4; i++) expect(await pythonEnvironment(traced)).toBe(first);
    expect(await readFile(trace, "utf8")).toBe("started\n");
    // A change made now is still seen: its time differs from the future one.
    await mkdir(join(await sitePackages(python), "otherpkg-2.0.dist-info"));
    expect((await pythonEnvironment(traced)).packages).toEqual({ tinypkg: "1.0", otherpkg: "2.0" });
  });

  it("sees a package pip installs, upgrades or uninstalls while the process runs, at its next use", async () => {
    const python = await venv("pipped", []);
    const pip = (...args: string[]) => execFileSync(VENV_PYTHON, ["-m", "pip", "--python", python, "--disable-pip-version-check", "-q", ...args]);
    expect((await pythonEnvironment(python)).packages).toEqual({});
    pip("install", "--no-index", await wheel("tinypkg", "1.0"));
    expect((await pythonEnvironment(python)).packages).toEqual({ tinypkg: "1.0" });
    pip("install", "--no-index", await wheel("tinypkg", "2.0"));
    expect((await pythonEnvironment(python)).packages).toEqual({ tinypkg: "2.0" });
    pip("uninstall", "-y", "tinypkg");
    expect((await pythonEnvironment(python)).packages).toEqual({});
  });

  it("sees the user's site folder once `pip install --user` makes it (it was not on sys.path before)", async () => {
    // A virtualenv turns the user's site off: its base Python has it on.
    const base = execFileSync(VENV_PYTHON, ["-c", "import sys; print(sys._base_executable)"], { encoding: "utf8" }).trim();
    const saved = process.env.PYTHONUSERBASE;
    process.env.PYTHONUSERBASE = join(dir, "user-base");
    try {
      const before = await pythonEnvironment(base);
      expect(before.packages).not.toHaveProperty("cairn-user-pkg");
      const userSite = execFileSync(base, ["-c", "import site; print(site.getusersitepackages())"], { encoding: "utf8" }).trim();
      await mkdir(join(userSite, "cairn_user_pkg-0.1.dist-info"), { recursive: true });
      expect((await pythonEnvironment(base)).packages).toMatchObject({ "cairn-user-pkg": "0.1" });
    } finally {
      if (saved === undefined) delete process.env.PYTHONUSERBASE;
      else process.env.PYTHONUSERBASE = saved;
    }
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

  it("asks a Python whose answer could not be read again at the next use: a failure is not remembered", async () => {
    const flaky = await fakePython("flaky-python", "exit 3");
    await expect(pythonEnvironment(flaky)).rejects.toThrow(/it exited with code 3/);
    await fakePython("flaky-python", `exec ${await venv("mended", ["tinypkg-4.0.dist-info"])} "$@"`);
    expect((await pythonEnvironment(flaky)).packages).toEqual({ tinypkg: "4.0" });
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
