/**
 * `script(name, { file })`: a task that runs a file as a child process.
 * .py with Python, .ts/.mts/.cts/.tsx with tsx, .js/.mjs/.cjs with Node, .sh with bash,
 * anything else as an executable. See the process executor for the I/O conventions.
 */
import { createRequire } from "node:module";
import { readFile } from "node:fs/promises";
import { basename, dirname, extname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { NO_RETRY, OptionError, devInstallCommand, knownKeys, type RunScope, type TaskContext } from "@cairn/core";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { digestFile, editedSince, readStampedSync } from "@cairn/cache";
import { runProcess } from "./spawn/spawn.ts";
import { parseTemplate, renderArg, shellQuote, type CommandTemplate } from "./spawn/template.ts";
import { ProcessStartError, UnknownPlaceholderError } from "./spawn/errors.ts";
import {
  CHILD_CONDITION_ARGS,
  checkName,
  configDigest,
  cwdFingerprint,
  fileDigest,
  kindTask,
  moduleDependencies,
  projectRelativeName,
  resolveTaskFile,
  type KindCall,
  type KindTask,
} from "@cairn/dsl/kind";
import { checkProcessOptions, findPython, optionOrigin, processEnv, pythonPath, type CommandOrigin, type ProcessOptions } from "./spawn/options.ts";
import { editedDependencies, projectPath, pythonDependencies, shellDependencies } from "./python/python-deps.ts";
import { pythonEnvironment } from "./python/python-environment.ts";
import { PYTHON_PROGRAM } from "./python/python-program.ts";
import { checkPreload, launchArgs, preloadServer, preloadSupported, type PreloadServer } from "./python/preload.ts";

/** Options of `script()`. */
export interface ScriptOptions extends ProcessOptions {
  /** The file to run: absolute, a file: URL, or relative to the declaring module's folder (else the working directory). */
  file: string | URL;
  /**
   * The program that runs the file, with its own arguments before the file: `"python3.12"`, `["uv", "run"]`.
   * @default by extension: .py `$CAIRN_PYTHON` / the project's .venv / python3; .ts tsx; .js node; .sh bash; else the file itself
   */
  interpreter?: string | readonly string[] | undefined;
  /** Arguments after the file; `{input}` placeholders are replaced by input values (artifacts by their path). */
  args?: readonly string[] | undefined;
  /**
   * Python scripts: modules to import once in a warm Python that this flow process's tasks with
   * the same list fork from, so each task starts with them already imported (seconds saved per
   * task for pandas, scikit-learn, mlflow). Not part of the cache key. POSIX only; elsewhere,
   * or if the warm Python cannot start, the task runs in a new interpreter as usual.
   * @example preload: ["pandas", "sklearn.ensemble", "mlflow"]
   */
  preload?: readonly string[] | undefined;
}

const TS = new Set([".ts", ".mts", ".cts", ".tsx"]);
const JS = new Set([".js", ".mjs", ".cjs"]);
/** Shell scripts, read for the project's files their words name (the JavaScript analyser finds nothing in them). */
const SHELL = new Set([".sh", ".bash"]);

let tsxLoader: string | undefined;
/**
 * file: URL of tsx's loader, for `node --import <loader> file.ts` (one Node process, no tsx CLI
 * wrapper). tsx is a peer dependency, which npm leaves out with --legacy-peer-deps: without
 * it, the task fails saying what to install.
 */
function tsxImport(nodeId: string, file: string): string {
  if (tsxLoader) return tsxLoader;
  let loader: string;
  try {
    loader = createRequire(import.meta.url).resolve("tsx");
  } catch (error) {
    throw new ProcessStartError(
      nodeId,
      ["tsx", file].map((word) => shellQuote(word)).join(" "),
      undefined,
      `A .ts script runs with tsx, a peer dependency of cairn-dag, and tsx is not installed (Node did not find it from ${dirname(fileURLToPath(import.meta.url))}). ` +
        `Install it in the project: ${devInstallCommand("tsx")}; or give the task an \`interpreter\`.`,
      { cause: error },
    );
  }
  return (tsxLoader = pathToFileURL(loader).href);
}

/** The command line (program and arguments before the file) for a file. */
function launcher(nodeId: string, file: string, interpreter: ScriptOptions["interpreter"]): { command: string; pre: string[]; label: string[]; origin?: CommandOrigin } {
  const ext = extname(file).toLowerCase();
  if (interpreter !== undefined) {
    const [command, ...pre] = typeof interpreter === "string" ? [interpreter] : [...interpreter];
    return { command: command!, pre, label: [command!, ...pre], origin: optionOrigin("interpreter") };
  }
  if (ext === ".py") {
    const { python, origin } = findPython();
    return { command: python, pre: [], label: [python], origin };
  }
  // With this process's conditions, which its key resolved the file's imports with (moduleDependencies).
  if (TS.has(ext)) return { command: process.execPath, pre: [...CHILD_CONDITION_ARGS, "--import", tsxImport(nodeId, file)], label: ["tsx"] };
  if (JS.has(ext)) return { command: process.execPath, pre: [...CHILD_CONDITION_ARGS], label: ["node"] };
  if (ext === ".sh") return { command: "bash", pre: [], label: ["bash"] };
  return { command: file, pre: [], label: [] };
}

/**
 * The Python that runs the script, for its environment: the `interpreter` option when it names a
 * Python, else a .py file's (see findPython, asked when the key is made); undefined when no Python
 * runs it (a .sh file, `["uv", "run"]`, whose environment Cairn cannot see).
 */
function scriptPython(file: string, interpreter: ScriptOptions["interpreter"]): (() => string) | undefined {
  if (interpreter !== undefined) {
    const command = typeof interpreter === "string" ? interpreter : interpreter[0]!;
    return PYTHON_PROGRAM.test(basename(command)) ? () => command : undefined;
  }
  return extname(file).toLowerCase() === ".py" ? () => findPython().python : undefined;
}

/**
 * Declares a task that runs a script file in a child process.
 * @example
 * const train = script("train", { file: "train.py" })
 *   .input<{ data: Artifact; lr: number }>()
 *   .output<{ model: Artifact; accuracy: number }>();
 */
export function script(name: string, options: ScriptOptions): KindTask<Record<string, unknown>, Record<string, unknown>> {
  checkName(name);
  if (typeof options !== "object" || options === null) throw new OptionError(`script "${name}" options`, "{ file, interpreter?, args?, env?, preload? }", options);
  checkProcessOptions(name, options, { kind: "script", keys: ["file", "interpreter", "args", "preload"] });
  const interp = options.interpreter;
  if (interp !== undefined && !(typeof interp === "string" ? interp : interp.length && interp.every((s) => typeof s === "string" && s))) {
    throw new OptionError(`task "${name}" option \`interpreter\``, "a program name or a non-empty array of strings", interp);
  }
  const args = options.args ?? [];
  if (!Array.isArray(args) || args.some((a) => typeof a !== "string")) throw new OptionError(`task "${name}" option \`args\``, "an array of strings", args);

  const file = resolveTaskFile(name, options.file);
  const preload = options.preload === undefined ? undefined : checkPreload(name, options.preload, file, interp);
  // With its stat around the read: a task's start and the end of each attempt ask cheaply whether it is still this file (codeEdited).
  const read = readStampedSync(file, fileDigest);
  const { digest } = read;
  const templates: CommandTemplate[] = args.map((a) => parseTemplate(a, name, { shell: false }));
  const placeholders = [...new Set(templates.flatMap((t) => t.placeholders))];
  // Each option's part of the fingerprint, by name, so that explain can name the one that changed.
  const keyed: Record<string, string> = {
    // An arg that is a path inside the project (`join(import.meta.dirname, "data/rows.csv")`) counts by its path from the project's root, as `cwd` does.
    ...(args.length ? { args: `args=${JSON.stringify(args.map(keyedArg))}` } : {}),
    ...(interp !== undefined ? { interpreter: `interpreter=${JSON.stringify(interp)}` } : {}),
    // The folder it runs in is part of what it computes (`wc -l < data.txt`): inside the project by its path from the project's root, so checkouts at other places share keys.
    ...(options.cwd ? { cwd: cwdFingerprint(options.cwd) } : {}),
    ...(options.env && Object.keys(options.env).length ? { env: `env=${configDigest(Object.entries(options.env).sort())}` } : {}),
  };
  const extras = Object.values(keyed);
  const python = scriptPython(file, interp);
  // The project's files a Python or shell script loads, by path from its folder.
  const projectFiles =
    extname(file) === ".py"
      ? async (scope: RunScope) => pythonDependencies(await readFile(file, "utf8").catch(() => ""), dirname(file), scope, file)
      : SHELL.has(extname(file).toLowerCase())
        ? (scope: RunScope) => shellDependencies(file, scope)
        : undefined;

  return kindTask({
    definition: {
      name,
      kind: "script",
      code: [`sha256:${digest}`, ...extras].join(";"),
      codeName: `script \`${basename(file)}\``,
      codeOptions: { content: `sha256:${digest}`, options: keyed },
      writesOutputs: "with cairn_task.set_outputs({...}) in Python, currentTask().setOutputs({...}) in TypeScript, or as JSON written to $CAIRN_OUTPUTS, before it exits",
      // The project's files it loads: Python's modules from its folder (its sys.path[0]), the files a shell script's words name, or a TypeScript/JavaScript script's modules.
      codeDependencies: async (scope) => (projectFiles ? projectFiles(scope) : moduleDependencies(file, scope)),
      // The file and the project files it loads, as its key read them (the same reads, kept on the
      // run's scope). A TypeScript or JavaScript script's modules are not asked again: their
      // record holds digests of their parsed text, not of their files.
      codeEdited: async (scope) => {
        const own = (await editedSince(file, read, digestFile)) ? [file] : [];
        const found = projectFiles ? await projectFiles(scope).catch(() => ({})) : {};
        return [...own, ...(await editedDependencies(found, dirname(file), scope))].map((path) => projectPath(path, dirname(file)));
      },
      // The interpreter and the packages installed for it, by content.
      ...(python ? { environment: () => pythonEnvironment(python()) } : {}),
      retry: NO_RETRY,
      cache: {},
      env: [],
      run: async (inputs, ctx) => {
        const argv = templates.map((t) => renderArg(t, inputs, name));
        const { command, pre, label, origin } = launcher(ctx.nodeId, file, interp);
        const { env } = processEnv(options, ctx, { PYTHONPATH: pythonPath() });
        const server = preload?.length && preloadSupported ? await warmPython(command, preload, ctx) : undefined;
        const r = await runProcess(
          {
            command,
            args: server ? launchArgs(server, file, argv) : [...pre, file, ...argv],
            inputs,
            env,
            keepFilesOnFailure: true,
            ...(options.cwd ? { cwd: options.cwd } : {}),
            ...(options.killGraceMs !== undefined ? { killGraceMs: options.killGraceMs } : {}),
            display: [...label, file, ...argv].map((word) => shellQuote(word)).join(" "),
            ...(origin ? { origin } : {}),
          },
          ctx,
        );
        return r.outputs; // undefined when it wrote none: its output schema's message says so
      },
    },
    ...(placeholders.length ? { checkCall: (inputs: Record<string, unknown>, schema: StandardSchemaV1 | undefined, call: KindCall) => checkCallPlaceholders(name, placeholders, inputs, schema, call) } : {}),
  });
}

/**
 * How one arg enters the key: an absolute path inside the project as `{ project: "data/rows.csv" }`
 * (an object, which no arg as written is), so that checkouts at other places share entries; any
 * other as written. The process still gets the arg as written.
 */
function keyedArg(arg: string): string | { project: string } {
  const inProject = projectRelativeName(arg);
  return inProject === undefined ? arg : { project: inProject };
}

/** The warm Python for a task, or undefined (with a warning) when it cannot start. */
async function warmPython(python: string, modules: readonly string[], ctx: TaskContext): Promise<PreloadServer | undefined> {
  try {
    const server = await preloadServer(python, modules);
    const failed = Object.entries(server.failed);
    if (failed.length && !server.warned) {
      server.warned = true;
      ctx.logger.warn(`preload: could not import ${failed.map(([m, e]) => `${m} (${e})`).join(", ")}; tasks import what they need themselves`);
    }
    return server;
  } catch (error) {
    ctx.logger.warn(`preload: the warm Python did not start (${(error as Error).message}); running in a new interpreter`);
    return undefined;
  }
}

/** At build(): every placeholder must name an input of the call, of a map's item or `with` (or a key the input schema may default). */
export function checkCallPlaceholders(name: string, placeholders: readonly string[], inputs: Record<string, unknown>, schema?: StandardSchemaV1, call?: KindCall): void {
  const known = schema ? knownKeys(schema) : [];
  if (schema && !known) return; // the schema may supply defaults we cannot see; checked at run time
  const available = [...new Set([...Object.keys(inputs), ...(known ?? [])])];
  const via = call && call.via !== "call" ? call.via : undefined;
  for (const p of placeholders) if (!available.includes(p)) throw new UnknownPlaceholderError(name, p, Object.keys(inputs), via);
}
