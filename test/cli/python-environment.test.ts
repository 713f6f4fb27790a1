/**
 * With CAIRN_PYTHON_ENV_KEY on, a Python task's key holds the Python environment it runs in, by
 * content: the interpreter's version and the installed distributions. Real virtualenvs (made from the project's .venv
 * Python, `--without-pip`) with a tiny fake distribution dropped in as a .dist-info folder;
 * `cairn` as a user runs it, one process per command (the environment is read once per process).
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairn, fixture, repo, tmp } from "./helpers.ts";

const file = fixture("python-env.flow.ts");
const VENV_PYTHON = join(repo, ".venv/bin/python");
/** A second interpreter, of another version than the .venv's, when the machine has one. */
const SYSTEM_PYTHON = "/usr/bin/python3";

/** The version of `python`, or undefined when it cannot start. */
function versionOf(python: string): string | undefined {
  try {
    return execFileSync(python, ["-c", "import sys; print(sys.version)"], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

/** A virtualenv at `dir` made by `base`, holding `tinypkg` at `version`; its python. */
async function venvWith(dir: string, version: string, base = VENV_PYTHON): Promise<string> {
  execFileSync(base, ["-m", "venv", "--without-pip", dir]);
  const site = await sitePackages(dir);
  await mkdir(join(site, `tinypkg-${version}.dist-info`));
  await writeFile(join(site, `tinypkg-${version}.dist-info`, "METADATA"), `Metadata-Version: 2.1\nName: tinypkg\nVersion: ${version}\n`);
  return join(dir, "bin/python");
}

async function sitePackages(venv: string): Promise<string> {
  const [lib] = (await readdir(join(venv, "lib"))).filter((n) => n.startsWith("python"));
  return join(venv, "lib", lib!, "site-packages");
}

type Plan = Array<{ task: string; action: string; reason?: string }>;
const planOf = async (cwd: string, python: string) => {
  const planned = await cairn(["plan", file, "--json"], { cwd, env: { CAIRN_PYTHON_ENV_KEY: "1", CAIRN_PYTHON: python } });
  expect(planned.code, planned.stderr).toBe(0);
  return (JSON.parse(planned.stdout) as Plan).find((p) => p.task === "step")!;
};
const statusOf = async (cwd: string, python: string) => {
  const run = await cairn(["run", file, "--json"], { cwd, env: { CAIRN_PYTHON_ENV_KEY: "1", CAIRN_PYTHON: python } });
  expect(run.code, run.stderr).toBe(0);
  const events = run.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  return events.filter((e) => e.type === "task" && e.task === "step").at(-1)?.status;
};

describe.skipIf(!existsSync(VENV_PYTHON))("with CAIRN_PYTHON_ENV_KEY on, a Python task's key holds its Python environment", () => {
  it("another venv path with the same content hits; an upgraded package misses and explain names it", async () => {
    const venvs = await tmp("cairn-pyenv-");
    const cwd = await tmp("cairn-pyenv-cwd-");
    const a = await venvWith(join(venvs, "a"), "1.0");
    const b = await venvWith(join(venvs, "elsewhere", "b"), "1.0");

    expect(await statusOf(cwd, a)).toBe("succeeded");
    // Same interpreter, same packages, another folder: the same key.
    expect(await planOf(cwd, b)).toMatchObject({ action: "hit" });
    expect(await statusOf(cwd, b)).toBe("cached");

    // `pip install -U tinypkg` in a: a miss, named.
    const site = await sitePackages(join(venvs, "a"));
    await rename(join(site, "tinypkg-1.0.dist-info"), join(site, "tinypkg-2.0.dist-info"));
    expect(await planOf(cwd, a)).toMatchObject({ action: "run" });
    const explained = await cairn(["explain", file, "step"], { cwd, env: { CAIRN_PYTHON_ENV_KEY: "1", CAIRN_PYTHON: a } });
    expect(explained.code, explained.stderr).toBe(0);
    expect(explained.stdout).toContain("Python environment changed: tinypkg 1.0 → 2.0");
    expect(await statusOf(cwd, a)).toBe("succeeded");
    // The run's miss reason, which its report shows, says it too.
    const records = await readdir(join(cwd, ".cairn/runs"));
    const texts = await Promise.all(records.map((name) => readFile(join(cwd, ".cairn/runs", name), "utf8")));
    expect(texts.some((t) => t.includes("Python environment changed: tinypkg 1.0 → 2.0"))).toBe(true);
    expect(await statusOf(cwd, a)).toBe("cached");
  }, 120_000);

  it.skipIf(!versionOf(SYSTEM_PYTHON) || versionOf(SYSTEM_PYTHON) === versionOf(VENV_PYTHON))("another interpreter with the same packages misses, and explain names both versions", async () => {
    const venvs = await tmp("cairn-pyenv-");
    const cwd = await tmp("cairn-pyenv-cwd-");
    const mine = await venvWith(join(venvs, "mine"), "1.0");
    const other = await venvWith(join(venvs, "other"), "1.0", SYSTEM_PYTHON);
    expect(await statusOf(cwd, mine)).toBe("succeeded");
    expect(await planOf(cwd, other)).toMatchObject({ action: "run" });
    const explained = await cairn(["explain", file, "step"], { cwd, env: { CAIRN_PYTHON_ENV_KEY: "1", CAIRN_PYTHON: other } });
    expect(explained.stdout).toMatch(/Python environment changed: interpreter cpython 3\.\d+\.\d+\S* → cpython 3\.\d+\.\d+/);
  }, 120_000);

  it("a Python that cannot start: plan says the step would run, and the run fails saying where the Python came from", async () => {
    const cwd = await tmp("cairn-pyenv-cwd-");
    const missing = join(cwd, "no-such-venv/bin/python");
    expect(await planOf(cwd, missing)).toMatchObject({ action: "run" });
    const run = await cairn(["run", file], { cwd, env: { CAIRN_PYTHON_ENV_KEY: "1", CAIRN_PYTHON: missing } });
    expect(run.code).not.toBe(0);
    expect(run.stdout + run.stderr).toContain("CAIRN_PYTHON");
  }, 120_000);

  it("CAIRN_PYTHON_ENV_KEY=maybe is refused before anything runs, naming the variable (exit 2)", async () => {
    const cwd = await tmp("cairn-pyenv-cwd-");
    const planned = await cairn(["plan", file], { cwd, env: { CAIRN_PYTHON_ENV_KEY: "maybe" } });
    expect(planned.code).toBe(2);
    expect(planned.stderr).toContain("CAIRN_PYTHON_ENV_KEY");
  }, 60_000);
});
