/**
 * `notebook(name, "report.ipynb")`: a task that executes a Jupyter notebook with
 * papermill, the inputs injected as parameters. The executed notebook and its HTML
 * rendering are artifacts; outputs are what the notebook passes to
 * `cairn_task.set_outputs()`, plus `{ notebook, html }`.
 */
import { NO_RETRY, OptionError, type Artifact, type TaskDefinition } from "@cairn/core";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { notebookCodeCells, notebookCodeDigest, runNotebook } from "./run-notebook.ts";
import { dirname, resolve } from "node:path";
import { notebookDependencies } from "../python/python-deps.ts";
import { pythonEnvironment } from "../python/python-environment.ts";
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

/** Outputs every notebook task has. */
export type NotebookOutputs = {
  /** The executed notebook. */
  notebook: Artifact;
  /** Its HTML rendering. */
  html: Artifact;
};

/**
 * Declares a task that executes a notebook.
 * @example
 * const report = notebook("report", "report.ipynb").input<{ data: Artifact; title: string }>();
 */
export function notebook(name: string, file: string | URL, options: NotebookOptions = {}): KindTask<Record<string, unknown>, NotebookOutputs, NotebookOutputs> {
  checkName(name);
  checkProcessOptions(name, options, { kind: "notebook", keys: ["kernel", "python", "html"] });
  if (options.kernel !== undefined && (typeof options.kernel !== "string" || !options.kernel)) {
    throw new OptionError(`task "${name}" option \`kernel\``, "a Jupyter kernel name", options.kernel);
  }
  const path = resolveTaskFile(name, file);
  let digest: string;
  try {
    digest = notebookCodeDigest(path);
  } catch (error) {
    throw new OptionError(`task "${name}" notebook file`, "a Jupyter notebook (.ipynb JSON)", `${path}: ${(error as Error).message}`);
  }
  const extras = [
    ...(options.kernel ? [`kernel=${options.kernel}`] : []),
    ...(options.html === false ? ["html=false"] : []),
    // The folder it runs in is part of what it computes (`wc -l < data.txt`): inside the project by its path from the project's root, so checkouts at other places share keys.
    ...(options.cwd ? [cwdFingerprint(options.cwd)] : []),
    ...(options.python ? [`python=${JSON.stringify(options.python)}`] : []),
    ...(options.env && Object.keys(options.env).length ? [`env=${configDigest(Object.entries(options.env).sort())}`] : []),
  ];
  const run = (schema: StandardSchemaV1 | undefined): TaskDefinition["run"] => async (inputs, ctx) => {
    if (notebookCodeDigest(path) !== digest) {
      ctx.logger.warn(`${path} changed since the flow was loaded; its cache key still uses the old code. Reload the flow to pick up the change.`);
    }
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
      code: [`sha256:${digest}`, ...extras].join(";"),
      writesOutputs: "with cairn_task.set_outputs({...}) in a cell",
      // The project's files its cells load (imports, `%run`, shell lines and cells), from the kernel's working directory.
      codeDependencies: async (scope) => {
        let cells: string[];
        try {
          cells = notebookCodeCells(path);
        } catch {
          return {}; // gone or broken since it was declared: the run says so
        }
        return notebookDependencies(cells, resolve(options.cwd ?? dirname(path)), scope);
      },
      // The kernel's interpreter and the packages installed for it, by content.
      environment: () => pythonEnvironment(pythonFor(options.python).python),
      retry: NO_RETRY,
      cache: {},
      env: [],
      run: run(undefined),
    },
  });
}
