/**
 * The Python environment a Python task runs in, by content, for its cache key: the interpreter's
 * implementation and full version, and the distributions installed where it finds packages, as
 * name == version. A task run by another Python, or after `pip install -U scikit-learn`, may
 * compute something else: its key differs. Locations do not count (two checkouts, or two
 * machines, with the same packages share entries), nor do the installers (pip, setuptools,
 * wheel), which differ between virtualenvs made alike and change no result.
 *
 * One short `python -c` says the version and `sys.path`; the site folders on it are listed here,
 * their `*.dist-info` and `*.egg-info` names read as name and version (nothing is imported, no
 * metadata file is opened). Asked once per process and interpreter, when a Python task's key is
 * first made: a flow without Python tasks never starts one.
 */
import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
import { basename } from "node:path";
import type { TaskEnvironment } from "@cairn/core";

/** What {@link pythonEnvironment} calls the environment in `explain`'s words. */
export const PYTHON_ENVIRONMENT = "Python environment";

/** Prints what the key needs of the interpreter, as one line of JSON. */
const PROBE = "import json, sys; print(json.dumps({'implementation': sys.implementation.name, 'version': list(sys.version_info), 'path': sys.path}))";

/** A Python that has not answered by then is taken as one that cannot start (the run then says why). */
const PROBE_TIMEOUT_MS = 60_000;

/** Installers: a fresh virtualenv's versions of them differ from an older one's, and they change no result. */
const INSTALLERS = new Set(["pip", "setuptools", "wheel"]);

/** Folders of `sys.path` that hold installed distributions. */
const SITE_FOLDER = /^(site|dist)-packages$/;

/** `*.dist-info` / `*.egg-info`: `name-version[-pyX.Y].…-info`, name and version escaped with `_` (PEP 427, setuptools). */
const DISTRIBUTION = /^([^-]+)(?:-([^-]+))?(?:-[^-]*)*\.(?:dist|egg)-info$/;

/** `sys.version_info.releaselevel` as a version writes it: 3.13.0rc1. */
const RELEASE_LEVEL: Readonly<Record<string, string>> = { alpha: "a", beta: "b", candidate: "rc" };

// Per process, not per run: the environment is the interpreter's, which a run does not change;
// a long-lived process (a worker) sees a package installed while it runs from its next start.
const environments = new Map<string, Promise<TaskEnvironment>>();

/**
 * The environment of the Python `python` (a path or a name on PATH), found once per process.
 * Never rejects: a Python that cannot start, or answers nonsense, is `python: not found (<path>)`,
 * a key no entry has (the run then fails with its own words for it).
 */
export function pythonEnvironment(python: string): Promise<TaskEnvironment> {
  let found = environments.get(python);
  if (!found) {
    found = readEnvironment(python);
    environments.set(python, found);
  }
  return found;
}

async function readEnvironment(python: string): Promise<TaskEnvironment> {
  const answer = await probe(python);
  if (!answer) return { noun: PYTHON_ENVIRONMENT, interpreter: `python: not found (${python})`, packages: {} };
  return { noun: PYTHON_ENVIRONMENT, interpreter: interpreterName(answer), packages: await installedPackages(answer.path) };
}

interface ProbeAnswer {
  implementation: string;
  version: unknown[];
  path: string[];
}

/** What the interpreter says of itself, or undefined when it cannot start or its answer is not the probe's. */
function probe(python: string): Promise<ProbeAnswer | undefined> {
  return new Promise((resolve) => {
    execFile(python, ["-c", PROBE], { timeout: PROBE_TIMEOUT_MS, windowsHide: true, maxBuffer: 4 * 1024 * 1024 }, (error, stdout) => {
      if (error) return resolve(undefined);
      try {
        const answer = JSON.parse(stdout) as Partial<ProbeAnswer>;
        const ok = typeof answer.implementation === "string" && Array.isArray(answer.version) && Array.isArray(answer.path);
        resolve(ok ? (answer as ProbeAnswer) : undefined);
      } catch {
        resolve(undefined);
      }
    });
  });
}

/** `cpython 3.12.1`, `cpython 3.13.0rc1`, `pypy 3.10.14`. */
function interpreterName({ implementation, version }: ProbeAnswer): string {
  const [major, minor, micro, level, serial] = version;
  const release = typeof level === "string" && level !== "final" ? `${RELEASE_LEVEL[level] ?? level}${String(serial)}` : "";
  return `${implementation} ${String(major)}.${String(minor)}.${String(micro)}${release}`;
}

/**
 * The distributions in the site folders of `sysPath`: normalised name -> version. A name found in
 * two folders counts as Python imports it, from the first on the path.
 */
async function installedPackages(sysPath: readonly string[]): Promise<Record<string, string>> {
  const folders = sysPath.filter((p) => typeof p === "string" && SITE_FOLDER.test(basename(p)));
  // A folder on the path that does not exist (the user site of a fresh account) holds nothing.
  const listings = await Promise.all(folders.map((folder) => readdir(folder).catch(() => [] as string[])));
  const packages: Record<string, string> = {};
  for (const names of listings) {
    for (const entry of names.sort()) {
      const m = DISTRIBUTION.exec(entry);
      if (!m) continue;
      const name = normalisedName(m[1]!);
      if (INSTALLERS.has(name) || Object.hasOwn(packages, name)) continue;
      packages[name] = m[2] ?? "unknown";
    }
  }
  return Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** PEP 503: `Scikit_Learn` and `scikit.learn` are `scikit-learn`. */
function normalisedName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}
