/**
 * `notebook(name, "report.ipynb")`: a task that executes a Jupyter notebook with
 * papermill, the inputs injected as parameters. The executed notebook and its HTML
 * rendering are artifacts; outputs are what the notebook passes to
 * `cairn_task.set_outputs()`, plus `{ notebook, html }`.
 */
import { NO_RETRY, OptionError, type Artifact, type RunScope, type TaskDefinition } from "@cairn/core";
import { editedSince, readStampedSync, type ReadFile } from "@cairn/cache";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { notebookCodeCells, readNotebook, runNotebook, type NotebookCode } from "./run-notebook.ts";
import { basename, dirname, resolve } from "node:path";
import { editedDependencies, projectPath, notebookDependencies } from "../python/python-deps.ts";
import { pythonEnvironment } from "../python/python-environment.ts";
import { kernelPython } from "./kernel-python.ts";
import { checkName, configDigest, cwdFingerprint, kindTask, resolveTaskFile, validateOwnOutputs, type KindTask } from "@cairn/dsl/kind";
import { checkProcessOptions, processEnv, pythonFor, pythonPath, type ProcessOptions } from "../spawn/options.ts";

/** Options of `notebook()`. */
export interface NotebookOptions extends ProcessOptions {
  /** Jupyter kernel name. @default the notebook's kernelspec, else "python3" (the Python that runs papermill) */
  kernel?: string | undefined;
  /** The Python with papermill and nbconvert. @default `$CAIRN_PYTHON`, the active virtualenv, the nearest .venv, python3 */
  python?: string | undefined;
  /** Render the executed notebook as HTML. @default true */
  html?: boolean | undefined;
}

/**
 * The parts of a notebook's key beside its code cells: the kernel it runs under (the `kernel` option,
 * else the notebook's kernelspec, else python3, as the driver picks it) and where papermill injects the
 * parameters. Named in words, so that explain says "the kernel of notebook `fit.ipynb` changed".
 */
function whatRuns(code: NotebookCode, kernel: string | undefined): Record<string, string> {
  return {
    "the kernel": `kernel=${kernel ?? code.kernelspec ?? "python3"}`,
    "the cell tagged `parameters`": `parameters=${code.parameters}`,
  };
}

/** What of a notebook its key counts, as one string: its code cells' digest and {@link whatRuns}. */
function notebookKeyed(code: NotebookCode, kernel: string | undefined): string {
  return `${code.digest}\0${JSON.stringify(whatRuns(code, kernel))}`;
}

/** Outputs a notebook task adds to its own: the executed notebook and, unless it is declared with `html: false`, its HTML. */
export type NotebookOutputs = {
  /** The executed notebook. */
  notebook: Artifact;
  /** Its HTML rendering. */
  html: Artifact;
};

/** A notebook task: its outputs are typed by its `html` option (no `html` output with `html: false`). */
type NotebookTask<Extra> = KindTask<Record<string, unknown>, Extra, Extra>;

/**
 * Declares a task that executes a notebook.
 * @example
 * const report = notebook("report", "report.ipynb").input<{ data: Artifact; title: string }>();
 */
export function notebook(name: string, file: string | URL, options: NotebookOptions & { html: false }): NotebookTask<Omit<NotebookOutputs, "html">>;
export function notebook(name: string, file: string | URL, options?: NotebookOptions & { html?: true | undefined }): NotebookTask<NotebookOutputs>;
/** `html` known only when it runs (a `boolean`): `html` may be absent. */
export function notebook(name: string, file: string | URL, options?: NotebookOptions): NotebookTask<Omit<NotebookOutputs, "html"> & { html?: Artifact }>;
export function notebook(name: string, file: string | URL, options: NotebookOptions = {}): NotebookTask<Omit<NotebookOutputs, "html"> & { html?: Artifact }> {
  checkName(name);
  checkProcessOptions(name, options, { kind: "notebook", keys: ["kernel", "python", "html"] });
  if (options.kernel !== undefined && (typeof options.kernel !== "string" || !options.kernel)) {
    throw new OptionError(`task "${name}" option \`kernel\``, "a Jupyter kernel name", options.kernel);
  }
  const path = resolveTaskFile(name, file);
  let code: NotebookCode | undefined;
  // What of it counts in the key (see notebookKeyed), with its stat around the read: a task's start and the end of each attempt ask cheaply whether it is still this notebook (codeEdited).
  let read: ReadFile;
  try {
    read = readStampedSync(path, (p) => notebookKeyed((code = readNotebook(p)), options.kernel));
  } catch (error) {
    throw new OptionError(`task "${name}" notebook file`, "a Jupyter notebook (.ipynb JSON)", `${path}: ${(error as Error).message}`);
  }
  const { digest } = code!;
  const keyed: Record<string, string> = {
    ...(options.html === false ? { html: "html=false" } : {}),
    // The folder it runs in is part of what it computes (`wc -l < data.txt`): inside the project by its path from the project's root, so checkouts at other places share keys.
    ...(options.cwd ? { cwd: cwdFingerprint(options.cwd) } : {}),
    ...(options.python ? { python: `python=${JSON.stringify(options.python)}` } : {}),
    ...(options.env && Object.keys(options.env).length ? { env: `env=${configDigest(Object.entries(options.env).sort())}` } : {}),
  };
  // What runs depends on the kernel (another one is another Python, another environment) and on
  // where papermill puts the parameters (after the tagged cell, the inputs override its defaults;
  // on top, the defaults override the inputs), neither of which is in the code cells' text.
  const ran = whatRuns(code!, options.kernel);
  const root = resolve(options.cwd ?? dirname(path));
  const dependencies = async (scope: RunScope): Promise<Record<string, string>> => {
    let cells: string[];
    try {
      cells = notebookCodeCells(path);
    } catch {
      return {}; // gone or broken since it was declared: the run says so
    }
    return notebookDependencies(cells, root, scope);
  };
  const run = (schema: StandardSchemaV1 | undefined): TaskDefinition["run"] => async (inputs, ctx) => {
    const { env } = processEnv(options, ctx, { PYTHONPATH: pythonPath() });
    const r = await runNotebook(
      {
        file: path,
        ...pythonFor(options.python),
        inputs,
        env,
        ...(options.kernel ? { kernel: options.kernel } : {}),
        ...(options.cwd ? { cwd: options.cwd } : {}),
        ...(options.html === false ? { html: false } : {}),
        ...(options.killGraceMs !== undefined ? { killGraceMs: options.killGraceMs } : {}),
      },
      ctx,
    );
    const outputs = await validateOwnOutputs(schema, r.outputs, ctx);
    return { ...outputs, notebook: r.notebook, ...(r.html ? { html: r.html } : {}) };
  };
  return kindTask({
    ownOutputs: run,
    definition: {
      name,
      kind: "notebook",
      // The kernel and the parameters cell come right after the cells' digest: every key differs from
      // an older Cairn's, which counted neither (its entry may have run under another kernel).
      code: [`sha256:${digest}`, ...Object.values(ran), ...Object.values(keyed)].join(";"),
      codeName: `notebook \`${basename(path)}\``,
      codeOptions: { content: `sha256:${digest}`, options: { ...ran, ...keyed } },
      codeFormerly: {
        code: [`sha256:${digest}`, ...(options.kernel ? [`kernel=${options.kernel}`] : []), ...Object.values(keyed)].join(";"),
        why:
          `notebook \`${basename(path)}\`'s code cells and options are unchanged, but the earlier entry was made by a Cairn whose key counted only those (it may have run under another kernel, or with its parameters elsewhere): ` +
          "a notebook's key now also counts the kernel it runs under and the cell tagged `parameters`, " +
          "so each notebook task runs once after the upgrade and is stored again",
      },
      writesOutputs: "with cairn_task.set_outputs({...}) in a cell",
      ...(options.html === false
        ? { absentOutputs: { html: "it is declared with `html: false`, so it renders no HTML; drop `html: false` from its notebook() options to have it" } }
        : {}),
      // The project's files its cells load (imports, `%run`, shell lines and cells), from the kernel's working directory.
      codeDependencies: dependencies,
      // The notebook (its code cells, its `parameters` cell, its kernel) and the project files its
      // cells load, as its key read them: papermill reads the notebook when it starts, after the key.
      codeEdited: async (scope) => {
        const keyed = async (p: string) => notebookKeyed(readNotebook(p), options.kernel);
        const own = (await editedSince(path, read, keyed)) ? [path] : [];
        const found = await dependencies(scope).catch(() => ({}));
        return [...own, ...(await editedDependencies(found, root, scope))].map((file) => projectPath(file, dirname(path)));
      },
      // The kernel's interpreter and the packages installed for it, by content: its kernelspec's
      // Python (another virtualenv's), else papermill's, which starts a bare `python` kernel.
      environment: async () => {
        const { python } = pythonFor(options.python);
        return pythonEnvironment(await kernelPython(python, options.kernel ?? code!.kernelspec ?? "python3"));
      },
      retry: NO_RETRY,
      cache: {},
      env: [],
      run: run(undefined),
    },
  });
}
