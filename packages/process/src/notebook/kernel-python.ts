/**
 * The Python a notebook's cells run in, for its key's environment (`CAIRN_PYTHON_ENV_KEY`): the
 * interpreter of the Jupyter kernel it runs under, not the Python that runs papermill. A kernelspec
 * (`python -m ipykernel install --name altpy` from another virtualenv) names its interpreter in its
 * `argv[0]`; jupyter_client starts a bare `python`, `python3` or `python3.X` as its own Python
 * (papermill's). The kernelspecs are those papermill's Python finds (`jupyter kernelspec list
 * --json`: JUPYTER_PATH, the venv's and the user's data folders), asked once for a while per Python.
 * A listing that fails (it exits non-zero, hangs, prints no JSON) fails the key, as a Python whose
 * environment cannot be read does, and is not remembered: a key that named papermill's Python in
 * its stead would claim an environment the cells may not run in.
 */
import { execFile } from "node:child_process";
import { basename, isAbsolute } from "node:path";
import { PYTHON_PROGRAM } from "../python/python-program.ts";
import { NOT_STARTED, unreadableWhy } from "../python/python-environment.ts";
import { PythonEnvironmentError } from "../spawn/errors.ts";

/** A list older than this is asked again: a long-lived process (a worker) sees a kernel installed since. */
const FRESH_MS = 60_000;

/** A Python that has not listed its kernelspecs by then fails the key (PythonEnvironmentError). */
const LIST_TIMEOUT_MS = 60_000;

/** Characters of what the Python printed that a PythonEnvironmentError quotes. */
const QUOTED_CHARS = 200;

/** Each kernel's argv, by name, as papermill's Python lists them; undefined when it has no Jupyter (it cannot be started, or has no `jupyter` module). */
type KernelArgvs = Readonly<Record<string, readonly string[]>> | undefined;

// Per process (a key's environment is asked without a run's scope), and asked again once stale.
const lists = new Map<string, { at: number; argvs: Promise<KernelArgvs> }>();

/**
 * The interpreter of kernel `kernel` as papermill's `python` starts it: its kernelspec's `argv[0]`
 * when that is a Python at a path; else `python` itself (a bare `python`, which jupyter_client
 * starts as papermill's Python; a kernel that is no Python, as an R one; no such kernelspec; a
 * Python that cannot be started or has no Jupyter, whose run then says why). Rejects with a
 * PythonEnvironmentError when the Python has Jupyter but its listing cannot be read.
 */
export async function kernelPython(python: string, kernel: string): Promise<string> {
  const first = (await kernelArgvs(python))?.[kernel]?.[0];
  return first !== undefined && isAbsolute(first) && PYTHON_PROGRAM.test(basename(first)) ? first : python;
}

function kernelArgvs(python: string): Promise<KernelArgvs> {
  const known = lists.get(python);
  if (known && Date.now() - known.at < FRESH_MS) return known.argvs;
  const argvs = listKernels(python);
  const entry = { at: Date.now(), argvs };
  lists.set(python, entry);
  // A failure is not remembered: the next key asks again.
  argvs.catch(() => {
    if (lists.get(python) === entry) lists.delete(python);
  });
  return argvs;
}

/** `python -m jupyter` found no module: no Jupyter there, so papermill cannot run either, and its run says so. */
const NO_JUPYTER = /No module named jupyter\b/;

function listKernels(python: string): Promise<KernelArgvs> {
  return new Promise((resolve, reject) => {
    execFile(python, ["-m", "jupyter", "kernelspec", "list", "--json"], { timeout: LIST_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, windowsHide: true }, (error, stdout, stderr) => {
      const systemCode = (error as NodeJS.ErrnoException | null)?.code;
      if ((typeof systemCode === "string" && NOT_STARTED.has(systemCode)) || (error && NO_JUPYTER.test(stderr))) return resolve(undefined);
      const fail = (why: string) => reject(new PythonEnvironmentError(python, why, stdout.slice(0, QUOTED_CHARS), stderr.trimEnd().split("\n").slice(-5).join("\n"), "kernelspecs"));
      if (error) return fail(unreadableWhy(error));
      let listed: unknown;
      try {
        listed = (JSON.parse(stdout) as { kernelspecs?: unknown }).kernelspecs;
      } catch {
        return fail("it printed no JSON Cairn could read");
      }
      if (typeof listed !== "object" || listed === null) return fail("its JSON has no `kernelspecs` object");
      const argvs: Record<string, readonly string[]> = Object.create(null);
      for (const [name, entry] of Object.entries(listed as Record<string, { spec?: { argv?: unknown } } | null>)) {
        const argv = entry?.spec?.argv;
        if (Array.isArray(argv) && argv.every((word) => typeof word === "string")) argvs[name] = argv as string[];
      }
      resolve(argvs);
    });
  });
}
