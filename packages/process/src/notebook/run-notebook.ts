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
import { NotebookDependencyError, NotebookInputError, NotebookKernelError } from "./errors.ts";
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

/** The process executor's time from SIGTERM to SIGKILL when the task sets none. */
const DEFAULT_KILL_GRACE_MS = 5000;

/** Exit code of the driver when papermill / nbconvert / the kernel is missing, or an input cannot be injected: a mark line on stderr says which. */
const MISSING_EXIT = 97;
const MISSING_MARK = "CAIRN_MISSING_MODULES";
/** Followed by JSON: `{ kernel, installed }`. */
const NO_KERNEL_MARK = "CAIRN_NO_SUCH_KERNEL";
/** Followed by JSON: `{ input, why }`. */
const BAD_INPUT_MARK = "CAIRN_BAD_INPUT";

/**
 * The driver: one Python process runs papermill and then nbconvert (one interpreter
 * start-up instead of two), and says precisely what is missing.
 * argv: source, output notebook, html path ("" for none), kernel ("" for default), cwd, grace (s).
 *
 * jupyter_client starts the kernel in a session of its own, out of the process group Cairn
 * ends: the driver ends the kernel's group itself (SIGTERM, then SIGKILL after the grace) when it
 * is told to stop and when it exits, so nothing a cell started outlives the task. A cell is
 * named as the user counts it: its place in the source notebook, the injected parameters cell
 * left out; the injected cell is named as papermill's, never as one of the user's.
 *
 * Inputs whose names papermill cannot inject as Python variables (\`learning-rate\`, \`class\`) are
 * refused before the kernel starts, when the notebook's parameters are written in Python.
 */
const DRIVER = String.raw`
import atexit, json, logging, os, signal, sys, threading, time
src, out, html, kernel, cwd, grace = sys.argv[1:7]
grace = float(grace)
missing = []
for mod in ("papermill", "nbconvert", "nbformat"):
    try:
        __import__(mod)
    except ImportError:
        missing.append(mod)
if missing:
    sys.stderr.write("${MISSING_MARK} " + " ".join(missing) + "\n")
    sys.exit(${MISSING_EXIT})
import nbformat
import papermill as pm
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
import jupyter_client.provisioning.local_provisioner as local_provisioner
from nbclient.exceptions import DeadKernelError
from papermill.engines import NotebookExecutionManager

kernels = []
launch = local_provisioner.launch_kernel
def launch_kernel(cmd, **kwargs):
    proc = launch(cmd, **kwargs)
    kernels.append(proc)
    return proc
local_provisioner.launch_kernel = launch_kernel

def group_alive(proc):
    proc.poll()  # reaps the kernel, or its zombie keeps the group alive
    try:
        os.killpg(proc.pid, 0)
        return True
    except OSError:
        return False

def end_kernels():
    # The kernel leads its session, so its process group's id is its pid.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in kernels:
            try:
                os.killpg(proc.pid, sig)
            except OSError:
                pass
        end = time.monotonic() + grace
        while sig == signal.SIGTERM and time.monotonic() < end and any(group_alive(p) for p in kernels):
            time.sleep(0.05)
atexit.register(end_kernels)

# nbconvert's lab template, without the scripts it loads from a CDN (require.js, MathJax, mermaid,
# widgets): the page shows the same offline and in MLflow's sandboxed view; math stays TeX source.
HTML_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

if html:
    # Loaded before the notebook runs, its template compiled while the kernel starts, so that a stop
    # can render the partial notebook within the kill grace. The imports stay in this thread: two
    # threads importing at once can meet in a circular import.
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(extra_loaders=[DictLoader({"cairn-notebook.html.j2": HTML_TEMPLATE})], template_file="cairn-notebook.html.j2")
    compiling = threading.Thread(target=lambda: exporter.from_notebook_node(nbformat.v4.new_notebook()), daemon=True)
    compiling.start()

def write_file(path, text):
    # Whole or not at all: a stop may end the process while it writes.
    try:
        with open(path + ".partial", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".partial", path)
    except BaseException:
        try:
            os.unlink(path + ".partial")
        except OSError:
            pass
        raise

def write_html(nb):
    compiling.join()
    # The page's title: the notebook's stem (nbconvert's default is "Notebook"), unless its metadata has a title.
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": os.path.splitext(os.path.basename(src))[0]}})
    write_file(html, body)

managers = []
manager_init = NotebookExecutionManager.__init__
def keep_manager(self, *args, **kwargs):
    manager_init(self, *args, **kwargs)
    managers.append(self)
NotebookExecutionManager.__init__ = keep_manager

def keep_partial():
    # The notebook as the kernel left it, with what the running cell printed (papermill saves a
    # running cell's output only every 30 s), and its HTML.
    nb = managers[-1].nb
    write_file(out, nbformat.writes(nb))
    if html:
        write_html(nb)

def stop(signum, frame):
    # The partial notebook is kept while the kernel ends, until shortly before Cairn's SIGKILL,
    # which follows its SIGTERM by twice the grace.
    deadline = time.monotonic() + 1.8 * grace
    keeping = threading.Thread(target=keep_partial, daemon=True)
    if managers:
        keeping.start()
    end_kernels()
    if keeping.is_alive():
        keeping.join(max(0, deadline - time.monotonic()))
    for path in filter(None, (out, html)):
        try:
            os.unlink(path + ".partial")
        except OSError:
            pass
    os._exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

running = {}
cell_start = NotebookExecutionManager.cell_start
def track_cell(self, cell, cell_index=None, **kwargs):
    # A copy: papermill inserts its error cells into the notebook once a cell fails.
    running.update(cells=list(self.nb.cells), index=cell_index)
    return cell_start(self, cell, cell_index=cell_index, **kwargs)
NotebookExecutionManager.cell_start = track_cell

def user_cell(index):
    """Cell 'index' of the executed notebook as the user counts it in the source: 'cell 3 of x.ipynb ("first line")'."""
    cells = running.get("cells")
    if cells is None or index is None or index >= len(cells):
        return "a cell of %s" % os.path.basename(src)
    injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    if index in injected:
        # papermill's cell, not the user's: what it holds comes from the task's inputs.
        before = index - len([i for i in injected if i < index])
        where = ("after cell %d of %s" % (before, os.path.basename(src))) if before else ("at the top of %s" % os.path.basename(src))
        return "the parameters cell papermill injected %s (it sets the task's inputs)" % where
    number = index + 1 - len([i for i in injected if i < index])
    first = next((l.strip() for l in cells[index].source.splitlines() if l.strip()), "")
    return "cell %d of %s%s" % (number, os.path.basename(src), ' ("%s")' % (first[:60] + ("..." if len(first) > 60 else "")) if first else "")

logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
with open(os.environ["CAIRN_INPUTS"]) as f:
    params = json.load(f)
nb = json.load(open(src))
if not kernel and not nb.get("metadata", {}).get("kernelspec", {}).get("name"):
    kernel = "python3"
meta = nb.get("metadata", {})
try:
    from papermill.translators import PythonTranslator, papermill_translators
    language = meta.get("kernelspec", {}).get("language") or meta.get("language_info", {}).get("name")
    translator = papermill_translators.find_translator(kernel or meta["kernelspec"]["name"], language)
except Exception:
    translator = None  # papermill fails on its own, in its words
if translator is not None and issubclass(translator, PythonTranslator):
    import keyword
    for name in params:
        why = None
        if keyword.iskeyword(name):
            why = "%s is a Python keyword" % json.dumps(name)
        elif not name.isidentifier():
            why = "%s is not a Python identifier" % json.dumps(name)
        else:
            try:
                compile("%s = None" % name, "<parameters>", "exec")
            except SyntaxError:
                why = "%s is a name Python does not let a program assign" % json.dumps(name)
        if why:
            sys.stderr.write("${BAD_INPUT_MARK} " + json.dumps({"input": name, "why": why}) + "\n")
            sys.exit(${MISSING_EXIT})
failure = None
dead = False
try:
    pm.execute_notebook(src, out, parameters=params, kernel_name=kernel or None, log_output=True,
                        progress_bar=False, cwd=cwd or None)
except NoSuchKernel as e:
    name = kernel or meta.get("kernelspec", {}).get("name") or getattr(e, "name", "")
    try:
        installed = sorted(KernelSpecManager().find_kernel_specs())
    except Exception:
        installed = []
    sys.stderr.write("Jupyter kernel not found: %s\n${NO_KERNEL_MARK} %s\n" % (e, json.dumps({"kernel": name, "installed": installed})))
    sys.exit(${MISSING_EXIT})
except pm.PapermillExecutionError as e:
    failure = e
except DeadKernelError:
    dead = True
finally:
    if html and os.path.exists(out):
        write_html(nbformat.read(out, as_version=4))
if failure is not None:
    import re
    # The cell's traceback as the kernel gave it, without the terminal's colour codes.
    tb = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", "\n".join(getattr(failure, "traceback", None) or []))
    if tb.strip():
        sys.stderr.write(tb.rstrip("\n") + "\n")
    where = user_cell(failure.cell_index)
    sys.stderr.write("%s raised %s: %s (In[%s] of the executed notebook)\n" % (where[:1].upper() + where[1:], failure.ename, failure.evalue, failure.exec_count))
    sys.exit(1)
if dead:
    code = next((p.poll() for p in kernels if p.poll() is not None), None)
    how = "" if code is None else " (it exited with code %d)" % code if code >= 0 else " (it was killed by %s)" % signal.Signals(-code).name
    sys.stderr.write("The kernel died while running %s%s: it may have run out of memory or crashed.\n" % (user_cell(running.get("index")), how))
    sys.exit(1)
`;

/** Digest of a notebook's code: the sources of its code cells only (outputs, counts and metadata do not count). */
export function notebookCodeDigest(file: string): string {
  return readNotebook(file).digest;
}

/** The text of each code cell of a notebook, in order. */
export function notebookCodeCells(file: string): string[] {
  return readNotebook(file).cells;
}

/** What of a notebook decides what runs: its code cells, where papermill injects the parameters, the kernel its metadata names. */
export interface NotebookCode {
  /** The text of each code cell, in order. */
  cells: string[];
  /** sha256 of `cells`. */
  digest: string;
  /**
   * Where papermill puts the parameters cell, counted in code cells (markdown cells change nothing):
   * "after code cell 2" (the first cell tagged \`parameters\`), "in place of code cell 3" (a cell tagged
   * \`injected-parameters\`, which papermill replaces), "at the top" (no tagged cell).
   */
  parameters: string;
  /** The notebook's \`metadata.kernelspec.name\`, when it has one. */
  kernelspec: string | undefined;
}

type RawCell = { cell_type?: string; source?: string | string[]; metadata?: { tags?: unknown } };

/** Reads what of a notebook decides what runs (see {@link NotebookCode}). */
export function readNotebook(file: string): NotebookCode {
  const nb = JSON.parse(readFileSync(file, "utf8")) as { cells?: RawCell[]; metadata?: { kernelspec?: { name?: unknown } } };
  const all = nb.cells ?? [];
  const cells = all.filter((c) => c.cell_type === "code").map((c) => (Array.isArray(c.source) ? c.source.join("") : (c.source ?? "")));
  // papermill's own rule (parameterize_notebook): a cell tagged injected-parameters is replaced, else the cell goes after the first tagged parameters, else on top.
  const tagged = (tag: string) => all.findIndex((c) => Array.isArray(c.metadata?.tags) && c.metadata.tags.includes(tag));
  const codeBefore = (index: number) => all.slice(0, index).filter((c) => c.cell_type === "code").length;
  const injected = tagged("injected-parameters");
  const param = tagged("parameters");
  const parameters =
    injected >= 0 ? (all[injected]!.cell_type === "code" ? `in place of code cell ${codeBefore(injected) + 1}` : `after code cell ${codeBefore(injected)}`)
    : param >= 0 ? `after code cell ${codeBefore(param + 1)}`
    : "at the top";
  const name = nb.metadata?.kernelspec?.name;
  return { cells, digest: sha256(JSON.stringify(cells)), parameters, kernelspec: typeof name === "string" && name ? name : undefined };
}


/**
 * The name a notebook's artifacts share, before `.ipynb` / `.html`: its file's stem, each
 * character an artifact name may not hold (one an MLflow server drops, decodes or refuses, or a
 * separator: `#`, `%`, `?`, `;`, `:`, `\`, a control character) as "_", so that any notebook
 * can run: `results #1.ipynb` gives `results _1.ipynb` and `results _1.html`.
 */
function notebookArtifactStem(file: string): string {
  return basename(file, extname(file)).replace(/[\u0000-\u001f\u007f-\u009f#%?;:\\]/g, "_");
}

/** Runs one attempt of a notebook task. */
export async function runNotebook(
  spec: NotebookSpec,
  ctx: TaskContext,
): Promise<{ outputs: Record<string, unknown>; notebook: Artifact; html?: Artifact }> {
  // papermill changes into it inside the driver, too late for a clear message.
  if (spec.cwd !== undefined) await checkWorkingFolder(ctx.nodeId, `papermill ${spec.file}`, spec.cwd);
  const stem = notebookArtifactStem(spec.file);
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
        // The driver ends the kernel's process group within half the task's grace, before Cairn's SIGKILL ends the driver.
        args: ["-c", DRIVER, spec.file, outPath, htmlPath, spec.kernel ?? "", spec.cwd ?? dirname(spec.file), String((spec.killGraceMs ?? DEFAULT_KILL_GRACE_MS) / 2000)],
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
      const marked = (mark: string) => error.stderrTail.find((l) => l.startsWith(`${mark} `))?.slice(mark.length + 1);
      const missing = marked(MISSING_MARK);
      if (missing !== undefined) throw new NotebookDependencyError(ctx.nodeId, spec.python, missing.split(" ").filter(Boolean), spec.pythonOrigin?.what);
      const kernel = marked(NO_KERNEL_MARK);
      if (kernel !== undefined) {
        const { kernel: name, installed } = JSON.parse(kernel) as { kernel: string; installed: string[] };
        throw new NotebookKernelError(ctx.nodeId, basename(spec.file), name, spec.kernel ? "option" : "notebook", spec.python, installed);
      }
      const bad = marked(BAD_INPUT_MARK);
      if (bad !== undefined) {
        const { input, why } = JSON.parse(bad) as { input: string; why: string };
        throw new NotebookInputError(ctx.nodeId, basename(spec.file), input, why);
      }
    }
    throw error;
  } finally {
    let sent: Promise<unknown> = Promise.resolve();
    try {
      await maskFiles([outPath, htmlPath], ctx);
      // A failed attempt's run gets what its error points to (a succeeded one sends its artifacts as it
      // closes). Sent once the attempt has settled, as held work, as a process's logs are: a stalled
      // upload neither runs out the task's timeout nor counts in its duration.
      if (failed) {
        sent = Promise.all(
          [outName, ...(htmlPath ? [htmlName] : [])].map((name) =>
            sendArtifact(ctx, name).catch((error: unknown) => ctx.logger.warn(`could not send ${name} to the task's run: ${(error as Error).message}`)),
          ),
        );
      }
    } finally {
      void sent.finally(release);
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
