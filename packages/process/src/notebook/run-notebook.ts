/**
 * The notebook executor: runs a Jupyter notebook with papermill (inputs injected
 * as parameters), keeps the executed notebook and an HTML rendering (nbconvert) as
 * artifacts, and returns what the notebook wrote with `cairn_task.set_outputs()`
 * plus `{ notebook, html }`. Runs through the process executor, so it gets the same
 * environment, logs, cancel and timeout handling as scripts.
 */
import { readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { basename, dirname, extname } from "node:path";
import { sha256 } from "@cairn/cache";
import { type Artifact, holdWork, sendArtifact, type TaskContext } from "@cairn/core";
import { NotebookDependencyError } from "./errors.ts";
import { ProcessFailedError } from "../spawn/errors.ts";
import { checkWorkingFolder, runProcess, type ProcessSpec } from "../spawn/spawn.ts";

/** What to run. */
export interface NotebookSpec {
  /** Absolute path of the .ipynb file. */
  file: string;
  /** The Python that has papermill and nbconvert. */
  python: string;
  /** Where `python` came from (the task's option, CAIRN_PYTHON, a .venv), said when it cannot start. */
  pythonOrigin?: ProcessSpec["origin"];
  /** Jupyter kernel name. @default the notebook's kernelspec, else "python3" */
  kernel?: string;
  /** Working directory of the kernel. @default the notebook's folder */
  cwd?: string;
  /** Also render the executed notebook as HTML. @default true */
  html?: boolean;
  inputs: Readonly<Record<string, unknown>>;
  env?: ProcessSpec["env"];
  killGraceMs?: number;
}

/** Exit code of the driver when papermill / nbconvert / the kernel is missing. */
const MISSING_EXIT = 97;
const MISSING_MARK = "CAIRN_MISSING_MODULES";

/**
 * The driver: one Python process runs papermill and then nbconvert (one interpreter
 * start-up instead of two), and says precisely what is missing.
 * argv: source, output notebook, html path ("" for none), kernel ("" for default), cwd.
 */
const DRIVER = String.raw`
import json, logging, os, sys
src, out, html, kernel, cwd = sys.argv[1:6]
missing = []
for mod in ("papermill", "nbconvert", "nbformat"):
    try:
        __import__(mod)
    except ImportError:
        missing.append(mod)
if missing:
    sys.stderr.write("${MISSING_MARK} " + " ".join(missing) + "\n")
    sys.exit(${MISSING_EXIT})
import papermill as pm
from jupyter_client.kernelspec import NoSuchKernel
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
with open(os.environ["CAIRN_INPUTS"]) as f:
    params = json.load(f)
nb = json.load(open(src))
if not kernel and not nb.get("metadata", {}).get("kernelspec", {}).get("name"):
    kernel = "python3"
failure = None
try:
    pm.execute_notebook(src, out, parameters=params, kernel_name=kernel or None, log_output=True,
                        progress_bar=False, cwd=cwd or None)
except NoSuchKernel as e:
    sys.stderr.write("Jupyter kernel not found: %s\n${MISSING_MARK} ipykernel\n" % e)
    sys.exit(${MISSING_EXIT})
except pm.PapermillExecutionError as e:
    failure = e
finally:
    if html and os.path.exists(out):
        import nbformat
        from nbconvert import HTMLExporter
        body, _ = HTMLExporter().from_notebook_node(nbformat.read(out, as_version=4))
        with open(html, "w", encoding="utf-8") as f:
            f.write(body)
if failure is not None:
    import re
    # The cell's traceback as the kernel gave it, without the terminal's colour codes.
    tb = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", "\n".join(getattr(failure, "traceback", None) or []))
    if tb.strip():
        sys.stderr.write(tb.rstrip("\n") + "\n")
    sys.stderr.write("Cell In[%s] of the executed notebook %s raised %s: %s\n" % (failure.exec_count, os.path.basename(out), failure.ename, failure.evalue))
    sys.exit(1)
`;

/** Digest of a notebook's code: the sources of its code cells only (outputs, counts and metadata do not count). */
export function notebookCodeDigest(file: string): string {
  return sha256(JSON.stringify(notebookCodeCells(file)));
}

/** The text of each code cell of a notebook, in order. */
export function notebookCodeCells(file: string): string[] {
  const nb = JSON.parse(readFileSync(file, "utf8")) as { cells?: Array<{ cell_type?: string; source?: string | string[] }> };
  return (nb.cells ?? []).filter((c) => c.cell_type === "code").map((c) => (Array.isArray(c.source) ? c.source.join("") : (c.source ?? "")));
}

/** Runs one attempt of a notebook task. */
export async function runNotebook(
  spec: NotebookSpec,
  ctx: TaskContext,
): Promise<{ outputs: Record<string, unknown>; notebook: Artifact; html?: Artifact }> {
  // papermill changes into it inside the driver, too late for a clear message.
  if (spec.cwd !== undefined) await checkWorkingFolder(ctx.nodeId, `papermill ${spec.file}`, spec.cwd);
  const stem = basename(spec.file, extname(spec.file));
  const outName = `${stem}.ipynb`;
  const htmlName = `${stem}.html`;
  const outPath = await ctx.artifacts.path(outName);
  const htmlPath = spec.html === false ? "" : await ctx.artifacts.path(htmlName);
  let failed = true;
  // Held until the executed notebook is masked and sent, after the process: an attempt given up on
  // (a timeout) is not followed by the next one, which moves this one's files aside, before then.
  let release!: () => void;
  holdWork(ctx, new Promise<void>((resolve) => (release = resolve)));
  try {
    const r = await runProcess(
      {
        command: spec.python,
        ...(spec.pythonOrigin ? { origin: spec.pythonOrigin } : {}),
        args: ["-c", DRIVER, spec.file, outPath, htmlPath, spec.kernel ?? "", spec.cwd ?? dirname(spec.file)],
        display: `papermill ${spec.file}`,
        inputs: spec.inputs,
        ...(spec.env ? { env: spec.env } : {}),
        ...(spec.killGraceMs !== undefined ? { killGraceMs: spec.killGraceMs } : {}),
      },
      ctx,
    );
    failed = false;
    return {
      outputs: r.outputs ?? {},
      notebook: ctx.artifacts.file(outName),
      ...(htmlPath ? { html: ctx.artifacts.file(htmlName) } : {}),
    };
  } catch (error) {
    if (ProcessFailedError.is(error) && error.exitCode === MISSING_EXIT) {
      const line = error.stderrTail.find((l) => l.startsWith(MISSING_MARK));
      if (line) throw new NotebookDependencyError(ctx.nodeId, spec.python, line.slice(MISSING_MARK.length + 1).split(" ").filter(Boolean));
    }
    throw error;
  } finally {
    try {
      await maskFiles([outPath, htmlPath], ctx);
      // A failed attempt's run gets what its error points to (a succeeded one sends its artifacts as it closes).
      if (failed) {
        await Promise.all(
          [outName, ...(htmlPath ? [htmlName] : [])].map((name) =>
            sendArtifact(ctx, name).catch((error: unknown) => ctx.logger.warn(`could not send ${name} to the task's run: ${(error as Error).message}`)),
          ),
        );
      }
    } finally {
      release();
    }
  }
}

/** The executed notebook and its HTML hold what the cells printed: known secrets are masked in them, as in logs. */
async function maskFiles(paths: string[], ctx: TaskContext): Promise<void> {
  await Promise.all(
    paths.filter(Boolean).map(async (path) => {
      const text = await readFile(path, "utf8").catch(() => undefined);
      if (text === undefined) return;
      const masked = ctx.mask(text);
      if (masked !== text) await writeFile(path, masked);
    }),
  );
}
