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
 * metadata file is opened). Asked when a Python task's key is first made, and only when
 * CAIRN_PYTHON_ENV_KEY is on (see TaskCache): a flow without Python tasks, or a run with it off,
 * never starts one. Then kept for the process, but checked at each use by the stamps (inode and
 * modification time) of the interpreter and the site folders: `pip install`, an upgrade or an
 * uninstall adds or removes entries in a site folder, which changes its time, so a long-lived
 * process (a worker, an app that runs flows for days) reads the environment again, rather than
 * key a task by packages that are no longer there. A check is a few stat calls; no Python starts.
 */
import { execFile } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename } from "node:path";
import type { TaskEnvironment } from "@cairn/core";
import { PythonEnvironmentError } from "../spawn/errors.ts";

/** What {@link pythonEnvironment} calls the environment in `explain`'s words. */
export const PYTHON_ENVIRONMENT = "Python environment";

/** Starts the probe's answer line: a Python that prints at start (a sitecustomize.py) prints other lines around it. */
const MARKER = "cairn-python-environment-7c1e:";

/**
 * Prints what the key needs of the interpreter, as one line of JSON after {@link MARKER}. The
 * current folder leaves `sys.path` first, so that a `json.py` there cannot stand for the standard
 * library's (it runs from a neutral folder too).
 */
const PROBE =
  `import sys; sys.path[:1] = [] if sys.path and sys.path[0] in ("", ".") else sys.path[:1]; import json; s = sys.modules.get('site'); ` +
  `print(${JSON.stringify(MARKER)} + json.dumps({'implementation': sys.implementation.name, 'version': list(sys.version_info), 'path': sys.path, ` +
  `'executable': sys.executable, 'userSite': s.getusersitepackages() if s and s.ENABLE_USER_SITE else None}))`;

/** A Python that has not answered by then fails the task's key (PythonEnvironmentError says so). */
const PROBE_TIMEOUT_MS = 60_000;

/** Characters of what the Python printed that a PythonEnvironmentError quotes. */
const QUOTED_CHARS = 200;

/** Errors of a Python that could not be started at all: its path is wrong, or not a program. */
export const NOT_STARTED = new Set(["ENOENT", "EACCES", "ENOTDIR", "EISDIR"]);

/** Installers: a fresh virtualenv's versions of them differ from an older one's, and they change no result. */
const INSTALLERS = new Set(["pip", "setuptools", "wheel"]);

/** Folders of `sys.path` that hold installed distributions. */
const SITE_FOLDER = /^(site|dist)-packages$/;

/** `*.dist-info` / `*.egg-info`: `name-version[-pyX.Y].…-info`, name and version escaped with `_` (PEP 427, setuptools). */
const DISTRIBUTION = /^([^-]+)(?:-([^-]+))?(?:-[^-]*)*\.(?:dist|egg)-info$/;

/** Joins the versions of one name found in several distributions (a stale one left beside the new one). */
const VERSIONS_JOINER = " | ";

/** `sys.version_info.releaselevel` as a version writes it: 3.13.0rc1. */
const RELEASE_LEVEL: Readonly<Record<string, string>> = { alpha: "a", beta: "b", candidate: "rc" };

/**
 * A stamp younger than this is not trusted: a folder changed this recently may change again
 * within the same tick of its file system's clock (2 s on FAT, 1 s on HFS+), its time left as it
 * was. The environment is then read again at the next use, until its folders have settled.
 */
const SETTLE_MS = 2_000;

/** An environment as read, with what may change it: the paths watched and their stamps then. */
interface Reading {
  readonly environment: TaskEnvironment;
  readonly watched: readonly string[];
  /** Undefined when one was too fresh to trust ({@link SETTLE_MS}): the next use reads again. */
  readonly stamps: string | undefined;
}

// Per process, not per run, and checked at each use: a run rarely changes the interpreter's
// packages, while a long-lived process (a worker) must see the ones installed since it started.
const readings = new Map<string, Promise<Reading>>();

/**
 * The environment of the Python `python` (a path or a name on PATH): read once, and again when
 * the interpreter or one of its site folders has changed since (their stamps, at each call).
 * A Python that cannot be started is `python: not found (<path>)`, a key no entry has (the run
 * then fails with its own words for it). One that started but whose answer cannot be read (it
 * failed, timed out, or printed no answer) rejects with a PythonEnvironmentError: a key made
 * without its packages would hit after an upgrade. A failure is not remembered.
 */
export async function pythonEnvironment(python: string): Promise<TaskEnvironment> {
  const known = readings.get(python);
  if (known) {
    const reading = await known;
    if (reading.stamps !== undefined && (await stampsOf(reading.watched)) === reading.stamps) return reading.environment;
    // It may have changed: read again, once for every caller that finds it so meanwhile.
    if (readings.get(python) === known) readings.delete(python);
  }
  let fresh = readings.get(python);
  if (!fresh) {
    const started = readEnvironment(python);
    started.catch(() => {
      if (readings.get(python) === started) readings.delete(python);
    });
    readings.set(python, started);
    fresh = started;
  }
  return (await fresh).environment;
}

async function readEnvironment(python: string): Promise<Reading> {
  const answer = await probe(python);
  if (!answer) {
    // Watched at the path given: a Python installed there later is asked then.
    const watched = [python];
    return { environment: { noun: PYTHON_ENVIRONMENT, interpreter: `python: not found (${python})`, packages: {} }, watched, stamps: await stampsOf(watched) };
  }
  const folders = siteFolders(answer.path);
  // The user's site folder is on sys.path only once it exists: `pip install --user` may make it.
  const userSite = typeof answer.userSite === "string" && !folders.includes(answer.userSite) ? [answer.userSite] : [];
  const watched = [typeof answer.executable === "string" && answer.executable ? answer.executable : python, ...folders, ...userSite];
  // Stamped before the listing: a change while it is read shows at the next use.
  const stamps = await stampsOf(watched);
  return { environment: { noun: PYTHON_ENVIRONMENT, interpreter: interpreterName(answer), packages: await installedPackages(folders) }, watched, stamps };
}

/**
 * The stamps of `paths` as one string: each one's inode and modification time (a replaced
 * interpreter or a recreated virtualenv is another inode), `-` for one that is not there;
 * undefined when one changed too recently to be trusted ({@link SETTLE_MS}).
 */
async function stampsOf(paths: readonly string[]): Promise<string | undefined> {
  const now = Date.now();
  const stamps = await Promise.all(
    paths.map((path) =>
      stat(path, { bigint: true }).then(
        (s) => (unsettled(now, Number(s.mtimeNs / 1_000_000n)) ? undefined : `${s.ino}:${s.mtimeNs}`),
        () => "-",
      ),
    ),
  );
  return stamps.includes(undefined) ? undefined : stamps.join("\n");
}

/**
 * A modification time within {@link SETTLE_MS} of `now`, either side (a file server's clock a
 * little ahead). One further ahead (clock skew, an image extracted with its times) is trusted: a
 * change made now would set a time that differs from it. Before, it was too fresh until the clock
 * passed it, and every use started Python again, for hours.
 */
function unsettled(now: number, mtimeMs: number): boolean {
  return Math.abs(now - mtimeMs) < SETTLE_MS;
}

interface ProbeAnswer {
  implementation: string;
  version: unknown[];
  path: string[];
  /** `sys.executable`, which the stamps watch (a name on PATH resolved, a virtualenv's link followed by stat). */
  executable?: unknown;
  /** The user's site folder when Python would use it (not in a virtualenv, nor with -s), else null. */
  userSite?: unknown;
}

/** What the interpreter says of itself; undefined when it cannot be started; rejects when it started but said nothing readable. */
function probe(python: string): Promise<ProbeAnswer | undefined> {
  return new Promise((resolve, reject) => {
    const options = { cwd: tmpdir(), timeout: PROBE_TIMEOUT_MS, windowsHide: true, maxBuffer: 4 * 1024 * 1024, encoding: "utf8" as const };
    execFile(python, ["-c", PROBE], options, (error, stdout, stderr) => {
      const systemCode = (error as NodeJS.ErrnoException | null)?.code;
      if (typeof systemCode === "string" && NOT_STARTED.has(systemCode)) return resolve(undefined);
      const answer = error ? undefined : answerIn(stdout);
      if (answer) return resolve(answer);
      reject(new PythonEnvironmentError(python, unreadableWhy(error), stdout.slice(0, QUOTED_CHARS), stderr.trimEnd().split("\n").slice(-5).join("\n")));
    });
  });
}

/** The probe's answer among what the Python printed, found by its marker; undefined when none reads as one. */
function answerIn(stdout: string): ProbeAnswer | undefined {
  const line = stdout.split(/\r?\n/).find((l) => l.startsWith(MARKER));
  if (line === undefined) return undefined;
  try {
    const answer = JSON.parse(line.slice(MARKER.length)) as Partial<ProbeAnswer>;
    return typeof answer.implementation === "string" && Array.isArray(answer.version) && Array.isArray(answer.path) ? (answer as ProbeAnswer) : undefined;
  } catch {
    return undefined;
  }
}

/** Why a started Python's answer could not be read, in words. */
export function unreadableWhy(error: (Error & { killed?: boolean; signal?: NodeJS.Signals | null; code?: unknown }) | null): string {
  if (!error) return "it printed no answer Cairn could read";
  if (error.killed && error.signal === "SIGTERM") return `it did not answer within ${PROBE_TIMEOUT_MS / 1000} s`;
  if (typeof error.code === "number") return `it exited with code ${error.code}`;
  return error.signal ? `it was ended by ${error.signal}` : error.message;
}

/** `cpython 3.12.1`, `cpython 3.13.0rc1`, `pypy 3.10.14`. */
function interpreterName({ implementation, version }: ProbeAnswer): string {
  const [major, minor, micro, level, serial] = version;
  const release = typeof level === "string" && level !== "final" ? `${RELEASE_LEVEL[level] ?? level}${String(serial)}` : "";
  return `${implementation} ${String(major)}.${String(minor)}.${String(micro)}${release}`;
}

/**
 * The distributions in the site `folders`: normalised name -> version. A name found
 * more than once (a stale `Foo_Bar-1.0.dist-info` left beside `foo.bar-2.0.dist-info`, or one in
 * two folders) holds every version found, sorted and joined: which one Python imports cannot be
 * told from the names, and so any change among them shows.
 */
async function installedPackages(folders: readonly string[]): Promise<Record<string, string>> {
  // A folder on the path that does not exist (the user site of a fresh account) holds nothing.
  const listings = await Promise.all(folders.map((folder) => readdir(folder).catch(() => [] as string[])));
  const found = new Map<string, Set<string>>();
  for (const names of listings) {
    for (const entry of names) {
      const m = DISTRIBUTION.exec(entry);
      if (!m) continue;
      const name = normalisedName(m[1]!);
      if (INSTALLERS.has(name)) continue;
      let versions = found.get(name);
      if (!versions) found.set(name, (versions = new Set()));
      versions.add(m[2] ?? "unknown");
    }
  }
  const packages: Record<string, string> = {};
  for (const name of [...found.keys()].sort(byCodePoint)) packages[name] = [...found.get(name)!].sort(byCodePoint).join(VERSIONS_JOINER);
  return packages;
}

/** The folders of `sysPath` that hold installed distributions. */
function siteFolders(sysPath: readonly string[]): string[] {
  return sysPath.filter((p) => typeof p === "string" && SITE_FOLDER.test(basename(p)));
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** PEP 503: `Scikit_Learn` and `scikit.learn` are `scikit-learn`. */
function normalisedName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}
