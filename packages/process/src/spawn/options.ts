/**
 * What the kinds that run a process (script, shell, notebook, and @cairn/mlflow's project and
 * model kinds) share: their common options, the environment a child gets, and the Python
 * that runs Python children, with Cairn's helper module on its path.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { OptionError, type TaskContext } from "@cairn/core";

/** Common settings of the process kinds. */
export interface ProcessOptions {
  /** Extra environment variables for the process (values enter the code fingerprint as a digest). */
  env?: Readonly<Record<string, string>>;
  /** Secrets (read with ctx.secret at run time) passed to the process as environment variables of the same name. */
  secrets?: readonly string[];
  /** Working directory. @default the working directory of the flow's process (notebooks: the notebook's folder) */
  cwd?: string;
  /** Time between SIGTERM and SIGKILL when the task is cancelled or times out, in ms. @default 5000 */
  killGraceMs?: number;
}

/** Checks the shared process options. */
export function checkProcessOptions(name: string, o: ProcessOptions): void {
  const where = (k: string) => `task "${name}" option \`${k}\``;
  if (o.env !== undefined) {
    if (typeof o.env !== "object" || o.env === null) throw new OptionError(where("env"), "an object of strings", o.env);
    for (const [k, v] of Object.entries(o.env)) if (typeof v !== "string") throw new OptionError(where(`env.${k}`), "a string", v);
  }
  if (o.secrets !== undefined && (!Array.isArray(o.secrets) || o.secrets.some((s) => typeof s !== "string" || !s))) {
    throw new OptionError(where("secrets"), "an array of secret names", o.secrets);
  }
  if (o.cwd !== undefined && (typeof o.cwd !== "string" || !o.cwd)) throw new OptionError(where("cwd"), "a folder path", o.cwd);
  if (o.killGraceMs !== undefined && !(o.killGraceMs >= 0)) throw new OptionError(where("killGraceMs"), "a number of milliseconds >= 0", o.killGraceMs);
}

/** The process environment for a run: static env, plus the secrets the task asked for (masked in its logs by ctx.mask, as every known secret). */
export function processEnv(o: ProcessOptions, ctx: TaskContext, extra: Record<string, string | undefined> = {}) {
  const env: Record<string, string | undefined> = { ...extra, ...o.env };
  for (const s of o.secrets ?? []) env[s] = ctx.secret(s);
  return { env };
}

const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The folder of the dependency-free Python helper `cairn_task.py`, put on PYTHONPATH of Python children. */
export const PYTHON_HELPER_DIR = join(PACKAGE_DIR, "python");

/**
 * The Python for scripts and notebooks: `$CAIRN_PYTHON`, else the active virtualenv
 * (`$VIRTUAL_ENV`), else the nearest `.venv` from the working directory up, else `python3`.
 */
export function defaultPython(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CAIRN_PYTHON) return env.CAIRN_PYTHON;
  const inVenv = (root: string) => [join(root, "bin", "python"), join(root, "Scripts", "python.exe")].find((p) => existsSync(p));
  if (env.VIRTUAL_ENV) {
    const p = inVenv(env.VIRTUAL_ENV);
    if (p) return p;
  }
  for (let d = process.cwd(); ; d = dirname(d)) {
    const p = inVenv(join(d, ".venv"));
    if (p) return p;
    if (dirname(d) === d) break;
  }
  return "python3";
}

/** PYTHONPATH with the Cairn helper folder first. */
export function pythonPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PYTHONPATH ? `${PYTHON_HELPER_DIR}${process.platform === "win32" ? ";" : ":"}${env.PYTHONPATH}` : PYTHON_HELPER_DIR;
}
