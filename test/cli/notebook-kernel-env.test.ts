/**
 * With CAIRN_PYTHON_ENV_KEY on, a notebook task's key holds the environment of the Python its cells
 * run in: the interpreter its Jupyter kernelspec starts (here a kernel `altpy` of another
 * virtualenv, found through JUPYTER_PATH), not the Python that runs papermill. Upgrading a package
 * in the kernel's virtualenv is a miss. Real virtualenvs, real papermill and kernel, `cairn` as a
 * user runs it.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cairn, repo, tmp } from "./helpers.ts";

const VENV_PYTHON = join(repo, ".venv/bin/python");

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

const FLOW = `import { flow, notebook } from "cairn-dag";

const t = notebook("t", "./step.ipynb", { kernel: "altpy" }).output<{ ok: number }>();

export default flow("kernel-env").build(() => ({ ok: t({}).ok }));
`;

const NOTEBOOK = JSON.stringify({
  cells: [{ cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: ["import cairn_task\ncairn_task.set_outputs(ok=1)\n"] }],
  metadata: { kernelspec: { display_name: "python3", language: "python", name: "python3" }, language_info: { name: "python" } },
  nbformat: 4,
  nbformat_minor: 4,
});

async function sitePackages(venv: string): Promise<string> {
  const [lib] = (await readdir(join(venv, "lib"))).filter((n) => n.startsWith("python"));
  return join(venv, "lib", lib!, "site-packages");
}

/**
 * A virtualenv at `dir` that sees the project's .venv packages (ipykernel, to run as a kernel) through
 * a .pth file, and holds `tinypkg` 1.0 of its own; its kernelspec `altpy` under `jupyter`; its site folder.
 */
async function kernelVenv(dir: string, jupyter: string): Promise<string> {
  execFileSync(VENV_PYTHON, ["-m", "venv", "--without-pip", dir]);
  const site = await sitePackages(dir);
  await writeFile(join(site, "project-venv.pth"), `${await sitePackages(join(repo, ".venv"))}\n`);
  await mkdir(join(site, "tinypkg-1.0.dist-info"));
  await writeFile(join(site, "tinypkg-1.0.dist-info", "METADATA"), "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n");
  await mkdir(join(jupyter, "kernels", "altpy"), { recursive: true });
  const argv = [join(dir, "bin", "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"];
  await writeFile(join(jupyter, "kernels", "altpy", "kernel.json"), JSON.stringify({ argv, display_name: "altpy", language: "python" }));
  return site;
}

describe.skipIf(!existsSync(VENV_PYTHON))("with CAIRN_PYTHON_ENV_KEY on, a notebook's key", () => {
  it("holds its kernel's Python environment: a package upgraded in the kernel's virtualenv is a miss", async () => {
    const cwd = await mkdtemp(join(repo, "test", ".x-kernel-env-"));
    made.push(cwd);
    const jupyter = join(await tmp("cairn-kernel-env-"), "jupyter");
    made.push(jupyter);
    const site = await kernelVenv(join(jupyter, "..", "altpy"), jupyter);
    await writeFile(join(cwd, "flow.ts"), FLOW);
    await writeFile(join(cwd, "step.ipynb"), NOTEBOOK);
    const env = { CAIRN_PYTHON_ENV_KEY: "1", CAIRN_PYTHON: VENV_PYTHON, JUPYTER_PATH: jupyter };
    const statusOf = async () => {
      const run = await cairn(["run", "flow.ts", "--json"], { cwd, env });
      expect(run.code, run.stderr).toBe(0);
      return run.json.filter((e) => e.type === "task" && e.task === "t").at(-1)?.status;
    };

    expect(await statusOf()).toBe("succeeded");
    expect(await statusOf()).toBe("cached");

    // `pip install -U tinypkg` in the kernel's virtualenv: papermill's Python is the same, the cells' is not.
    await rename(join(site, "tinypkg-1.0.dist-info"), join(site, "tinypkg-2.0.dist-info"));
    const explained = await cairn(["explain", "flow.ts", "t"], { cwd, env });
    expect(explained.code, explained.stderr).toBe(0);
    expect(explained.stdout).toContain("Python environment changed: tinypkg 1.0 → 2.0");
    expect(await statusOf()).toBe("succeeded");
    expect(await statusOf()).toBe("cached");
  }, 240_000);
});
