/**
 * The Python a notebook's cells run in, for its key's environment (`CAIRN_PYTHON_ENV_KEY`): the
 * interpreter of the Jupyter kernel it runs under, not the Python that runs papermill. A kernelspec
 * (`python -m ipykernel install --name altpy` from another virtualenv) names its interpreter in its
 * `argv[0]`; jupyter_client starts a bare `python`, `python3` or `python3.X` as its own Python
 * (papermill's). The kernelspecs are those papermill's Python finds (`jupyter kernelspec list
 * --json`: JUPYTER_PATH, the venv's and the user's data folders), asked once for a while per Python.
 */
import { execFile } from "node:child_process";
import { basename, isAbsolute } from "node:path";
import { PYTHON_PROGRAM } from "../python/python-program.ts";

/** A list older than this is asked again: a long-lived process (a worker) sees a kernel installed since. */
const FRESH_MS = 60_000;

/** A Python that has not listed its kernelspecs by then is taken to have none. */
const LIST_TIMEOUT_MS = 60_000;

/** Each kernel's argv, by name, as papermill's Python lists them; undefined when it cannot list them. */
type KernelArgvs = Readonly<Record<string, readonly string[]>> | undefined;

// Per process (a key's environment is asked without a run's scope), and asked again once stale.
const lists = new Map<string, { at: number; argvs: Promise<KernelArgvs> }>();

/**
 * The interpreter of kernel `kernel` as papermill's `python` starts it: its kernelspec's `argv[0]`
 * when that is a Python at a path; else `python` itself (a bare `python`, which jupyter_client
 * starts as papermill's Python; a kernel that is no Python, as an R one; no such kernelspec; a
 * Python that cannot list them, whose run then says why).
 */
export async function kernelPython(python: string, kernel: string): Promise<string> {
  const first = (await kernelArgvs(python))?.[kernel]?.[0];
  return first !== undefined && isAbsolute(first) && PYTHON_PROGRAM.test(basename(first)) ? first : python;
}

function kernelArgvs(python: string): Promise<KernelArgvs> {
  const known = lists.get(python);
  if (known && Date.now() - known.at < FRESH_MS) return known.argvs;
  const argvs = listKernels(python);
  lists.set(python, { at: Date.now(), argvs });
  return argvs;
}

function listKernels(python: string): Promise<KernelArgvs> {
  return new Promise((resolve) => {
    execFile(python, ["-m", "jupyter", "kernelspec", "list", "--json"], { timeout: LIST_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => {
      if (error) return resolve(undefined);
      try {
        const listed = (JSON.parse(stdout) as { kernelspecs?: Record<string, { spec?: { argv?: unknown } }> }).kernelspecs ?? {};
        const argvs: Record<string, readonly string[]> = Object.create(null);
        for (const [name, { spec }] of Object.entries(listed)) {
          if (Array.isArray(spec?.argv) && spec.argv.every((word) => typeof word === "string")) argvs[name] = spec.argv as string[];
        }
        resolve(argvs);
      } catch {
        resolve(undefined);
      }
    });
  });
}
