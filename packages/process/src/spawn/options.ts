/**
 * What the kinds that run a process (script, shell, notebook, and @cairn/mlflow's project and
 * model kinds) share: their common options, the environment a child gets, and the Python
 * that runs Python children, with Cairn's helper module on its path.
 */
import { existsSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { checkKnownKeys, declaredEnv, LONGEST_TIMER, LONGEST_TIMER_MS, OptionError, setOwnProperty, type TaskContext } from "@cairn/core";

/** Common settings of the process kinds. */
export interface ProcessOptions {
  /** Extra environment variables for the process (values enter the code fingerprint as a digest). */
  env?: Readonly<Record<string, string>> | undefined;
  /** Secrets (read with ctx.secret at run time) passed to the process as environment variables of the same name. */
  secrets?: readonly string[] | undefined;
  /** Working directory. @default the working directory of the flow's process (notebooks: the notebook's folder) */
  cwd?: string | undefined;
  /** Time between SIGTERM and SIGKILL when the task is cancelled or times out, in ms. @default 5000 */
  killGraceMs?: number | undefined;
}

/** The keys of {@link ProcessOptions}. */
const PROCESS_OPTIONS = ["env", "secrets", "cwd", "killGraceMs"] as const;

/**
 * Checks the shared process options; with `kind`, also that every key is one of them or of the
 * kind's own `keys` (a misspelt `timout` or `killGrace` was ignored without a word).
 */
export function checkProcessOptions(name: string, o: ProcessOptions, kind?: { kind: string; keys: readonly string[] }): void {
  const where = (k: string) => `task "${name}" option \`${k}\``;
  if (kind && typeof o === "object" && o !== null) checkKnownKeys(o, [...kind.keys, ...PROCESS_OPTIONS], `${kind.kind}("${name}")`);
  if (o.env !== undefined) {
    if (typeof o.env !== "object" || o.env === null) throw new OptionError(where("env"), "an object of strings", o.env);
    for (const [k, v] of Object.entries(o.env)) {
      checkEnvName(name, "env", k);
      if (typeof v !== "string") throw new OptionError(where(`env.${k}`), "a string", v);
    }
  }
  if (o.secrets !== undefined && (!Array.isArray(o.secrets) || o.secrets.some((s) => typeof s !== "string" || !s))) {
    throw new OptionError(where("secrets"), "an array of secret names", o.secrets);
  }
  // A secret reaches the process as a variable of its name.
  for (const s of o.secrets ?? []) checkEnvName(name, "secrets", s);
  if (o.cwd !== undefined && (typeof o.cwd !== "string" || !o.cwd)) throw new OptionError(where("cwd"), "a folder path", o.cwd);
  if (o.killGraceMs !== undefined && !(o.killGraceMs >= 0 && o.killGraceMs <= LONGEST_TIMER_MS)) {
    throw new OptionError(where("killGraceMs"), `a number of milliseconds from 0 to ${LONGEST_TIMER}`, o.killGraceMs);
  }
}

/**
 * Throws OptionError for a variable name the process could not get as written: the environment
 * a child gets is a list of `NAME=value` entries, so `"PATH=/tmp/evil:/bin"` set PATH, and an empty
 * name, a NUL or a line break an entry no program reads back by that name.
 */
function checkEnvName(task: string, option: "env" | "secrets", variable: string): void {
  const why = !variable
    ? "is empty"
    : variable.includes("=")
      ? `holds "=", so the process would get ${JSON.stringify(variable.slice(0, variable.indexOf("=")) || "(no name)")} set instead`
      : variable.includes("\0")
        ? "holds a NUL character"
        : /[\r\n]/.test(variable)
          ? "holds a line break"
          : undefined;
  if (!why) return;
  const what = option === "env" ? "an environment variable" : "a secret, which the process gets as an environment variable of that name,";
  throw new OptionError(
    `task "${task}" option \`${option}\``,
    "variable names that are not empty and hold no \"=\", NUL or line break",
    variable,
    `Task "${task}" option \`${option}\` names ${what} ${JSON.stringify(variable)}, which ${why}. ` +
      `Expected a name that is not empty and holds no "=", NUL or line break, such as MY_VAR: rename it` +
      (option === "env" ? `, and give its value as the value (env: { NAME: "value" }).` : "."),
  );
}

/**
 * The process environment for a run: the variables the task declares with `.env()` as the run's
 * environment gives them (what its cache key holds: `run({ env })` may differ from `process.env`,
 * which the child starts from, and a variable unset there is unset for the child), then its static
 * env, plus the secrets the task asked for (masked in its logs by ctx.mask, as every known
 * secret). A task's own PYTHONPATH comes after Cairn's helper folder (`extra`'s first entry)
 * rather than replacing it, so `import cairn_task` keeps working.
 */
export function processEnv(o: ProcessOptions, ctx: TaskContext, extra: Record<string, string | undefined> = {}) {
  const declared = declaredEnv(ctx);
  const env: Record<string, string | undefined> = { ...extra, ...declared, ...o.env };
  const ownPythonPath = o.env?.PYTHONPATH !== undefined || "PYTHONPATH" in declared;
  if (extra.PYTHONPATH !== undefined && ownPythonPath) {
    const own = o.env?.PYTHONPATH ?? declared.PYTHONPATH;
    env.PYTHONPATH = own ? `${PYTHON_HELPER_DIR}${delimiter}${own}` : PYTHON_HELPER_DIR;
  }
  for (const s of o.secrets ?? []) setOwnProperty(env, s, ctx.secret(s));
  return { env };
}

const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The folder of the dependency-free Python helper `cairn_task.py`, put on PYTHONPATH of Python children. */
export const PYTHON_HELPER_DIR = join(PACKAGE_DIR, "python");

/**
 * Where a process's command came from, for the message when it cannot start: the program named
 * in an error may be a value the user never typed (CAIRN_PYTHON set long ago, a .venv found).
 */
export interface CommandOrigin {
  /** Where it came from, as a clause: "it is the value of CAIRN_PYTHON". */
  readonly what: string;
  /** How to fix it, as an imperative: "set CAIRN_PYTHON to ...". */
  readonly fix: string;
}

/** The origin of a command given by a task's option (`interpreter`, `python`). */
export function optionOrigin(option: string): CommandOrigin {
  return { what: `it is the task's \`${option}\` option`, fix: `install it, put it on PATH, or give its full path in \`${option}\`.` };
}

const USE_ANOTHER = "or set CAIRN_PYTHON to the path of a Python that exists.";

/**
 * The Python for scripts and notebooks, and where it came from: `$CAIRN_PYTHON`, else the active
 * virtualenv (`$VIRTUAL_ENV`), else the nearest `.venv` from the working directory up, else `python3`.
 */
export function findPython(env: NodeJS.ProcessEnv = process.env): { python: string; origin: CommandOrigin } {
  if (env.CAIRN_PYTHON) {
    return {
      python: env.CAIRN_PYTHON,
      origin: {
        what: "it is the value of the environment variable CAIRN_PYTHON",
        fix: "set CAIRN_PYTHON to the path of a Python that exists (e.g. CAIRN_PYTHON=$(command -v python3)), or unset it to use the project's .venv or python3 on PATH.",
      },
    };
  }
  const inVenv = (root: string) => [join(root, "bin", "python"), join(root, "Scripts", "python.exe")].find((p) => existsSync(p));
  if (env.VIRTUAL_ENV) {
    const p = inVenv(env.VIRTUAL_ENV);
    if (p) {
      return { python: p, origin: { what: `it is the Python of the active virtualenv (VIRTUAL_ENV=${env.VIRTUAL_ENV})`, fix: `recreate that virtualenv, deactivate it, ${USE_ANOTHER}` } };
    }
  }
  for (let d = process.cwd(); ; d = dirname(d)) {
    const venv = join(d, ".venv");
    const p = inVenv(venv);
    if (p) return { python: p, origin: { what: `it is the Python of the project's virtualenv ${venv}`, fix: `recreate it (python3 -m venv ${venv}) ${USE_ANOTHER}` } };
    if (dirname(d) === d) break;
  }
  return {
    python: "python3",
    origin: {
      what: `it is the default: CAIRN_PYTHON is not set, no virtualenv is active, and there is no .venv in ${process.cwd()} or a folder above it`,
      fix: `install Python 3 with python3 on PATH, create a .venv in the project (python3 -m venv .venv), ${USE_ANOTHER}`,
    },
  };
}

/** The Python of a task whose `python` option is `option` (else {@link findPython}'s), and where it came from. */
export function pythonFor(option: string | undefined): { python: string; pythonOrigin: CommandOrigin } {
  if (option) return { python: option, pythonOrigin: optionOrigin("python") };
  const { python, origin } = findPython();
  return { python, pythonOrigin: origin };
}

/** The Python for scripts and notebooks (see {@link findPython}). */
export function defaultPython(env: NodeJS.ProcessEnv = process.env): string {
  return findPython(env).python;
}

/** PYTHONPATH with the Cairn helper folder first. */
export function pythonPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PYTHONPATH ? `${PYTHON_HELPER_DIR}${delimiter}${env.PYTHONPATH}` : PYTHON_HELPER_DIR;
}
