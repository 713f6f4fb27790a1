/**
 * The Python a notebook's kernel runs, as papermill's Python lists the kernelspecs: a listing that
 * fails is no licence to name papermill's Python in its stead (the key would claim an environment
 * the cells may not run in), and a failure is not remembered. The project's .venv Python through a
 * wrapper that fails `-m jupyter` while a flag file exists (the fault), and a real kernelspec.
 */
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { PythonEnvironmentError } from "../spawn/errors.ts";
import { kernelPython } from "./kernel-python.ts";

const VENV_PYTHON = resolve(import.meta.dirname, "../../../../.venv/bin/python");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-kernel-python-"));
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!existsSync(VENV_PYTHON))("kernelPython", () => {
  it("rejects with a PythonEnvironmentError when the kernelspecs cannot be listed, and asks again next time", async () => {
    const jupyter = join(dir, "jupyter");
    const kernelArgv0 = join(dir, "altpy", "bin", "python3");
    await mkdir(join(jupyter, "kernels", "altpy"), { recursive: true });
    await writeFile(join(jupyter, "kernels", "altpy", "kernel.json"), JSON.stringify({ argv: [kernelArgv0, "-m", "ipykernel_launcher", "-f", "{connection_file}"], display_name: "altpy", language: "python" }));
    vi.stubEnv("JUPYTER_PATH", jupyter);
    const flag = join(dir, "broken");
    const python = join(dir, "python");
    await writeFile(
      python,
      `#!/bin/sh\nif [ "$1" = "-m" ] && [ "$2" = "jupyter" ] && [ -e "${flag}" ]; then echo "jupyter_client: cannot read the kernel folder" >&2; exit 3; fi\nexec "${VENV_PYTHON}" "$@"\n`,
    );
    await chmod(python, 0o755);

    await writeFile(flag, "");
    const error = await kernelPython(python, "altpy").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PythonEnvironmentError);
    const message = (error as Error).message;
    expect(message).toContain(`The Jupyter kernels of ${python} could not be listed for the notebook task's cache key (CAIRN_PYTHON_ENV_KEY is on`);
    expect(message).toContain("it exited with code 3");
    expect(message).toContain(`Expected JSON from \`${python} -m jupyter kernelspec list --json\``);
    expect(message).toContain("jupyter_client: cannot read the kernel folder");
    expect(message).toContain(`Run \`${python} -m jupyter kernelspec list\` to see what fails`);

    // Mended: asked again at once, not after the failure's minute.
    await rm(flag);
    expect(await kernelPython(python, "altpy")).toBe(kernelArgv0);
  }, 60_000);

  it("falls back to papermill's Python when that Python cannot be started (its run says why)", async () => {
    const missing = join(dir, "no-such", "python3");
    expect(await kernelPython(missing, "python3")).toBe(missing);
  });
});
