/**
 * What of a notebook decides what runs, beside its code cells' text: the cell tagged `parameters`
 * (papermill injects the inputs after it; without it, on top, where the notebook's defaults then
 * override them) and the kernel it runs under. Each is in the key, an entry an older Cairn made
 * (which counted neither) is no hit, and explain says why in words. Also the errors of a kernel
 * that is not installed and of an input papermill cannot inject. Real papermill, real kernels.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { explainTask, openFlowCache, startFlowRun, type FlowDefinition } from "@cairn/core";
import { flow } from "@cairn/dsl";
import { notebook } from "../../packages/process/src/index.ts";
import { notebookCodeDigest } from "../../packages/process/src/notebook/run-notebook.ts";
import { runCollect, statuses } from "../cache/helpers.ts";
import { hasVenv, tempRoot, VENV_PYTHON } from "./helpers.ts";

type Cell = { cell_type: string; metadata: { tags?: string[] }; source: string[]; outputs?: unknown[]; execution_count?: null };

/** What the test notebooks pass to set_outputs(). */
type Out = { y: number; kernel: string };

const code = (source: string, tags?: string[]): Cell => ({ cell_type: "code", execution_count: null, metadata: tags ? { tags } : {}, outputs: [], source: [source] });

/** A notebook of `cells` under the kernel `kernelspec` names. */
async function writeNotebook(file: string, cells: Cell[], kernelspec = "python3"): Promise<void> {
  const nb = { cells, metadata: { kernelspec: { display_name: kernelspec, language: "python", name: kernelspec }, language_info: { name: "python" } }, nbformat: 4, nbformat_minor: 4 };
  await writeFile(file, JSON.stringify(nb));
}

/** y = factor * 2; `tagged`: the cell that sets factor's default carries the `parameters` tag. */
const factorCells = (tagged: boolean) => [
  code("factor = 1\n", tagged ? ["parameters"] : undefined),
  code("import os, cairn_task\ncairn_task.set_outputs(y=factor * 2, kernel=os.environ.get('WHICH_KERNEL', 'python3'))\n"),
];

/** Explain's words for why the task's nearest entry is not a hit. */
async function explained(f: ReturnType<ReturnType<typeof flow>["build"]>, root: string, taskName: string): Promise<string[]> {
  const { tasks } = await openFlowCache(f.definition, { root });
  try {
    const why = await explainTask(f.definition, taskName, { params: {}, cache: tasks });
    return why.nearest?.changes.map((c) => c.message) ?? [];
  } finally {
    await tasks.store.close();
  }
}

describe.skipIf(!hasVenv)("a notebook's key", () => {
  it("counts the cell tagged `parameters`: removing the tag (the defaults now override the inputs) is a miss, and explain names it", async () => {
    const dir = await tempRoot();
    const root = join(dir, "root");
    const file = join(dir, "fit.ipynb");
    const fit = () => notebook("fit", file, { python: VENV_PYTHON }).output<Out>();
    const f = () => flow("nb-params").build(() => ({ y: fit()({ factor: 10 }).y }));

    await writeNotebook(file, factorCells(true));
    const first = await runCollect(f(), { root });
    expect(first.result.outputs).toEqual({ y: 20 });

    // The same code cells, no tag: papermill injects factor = 10 on top and `factor = 1` then runs.
    await writeNotebook(file, factorCells(false));
    expect(await explained(f(), root, "fit")).toEqual(["the cell tagged `parameters` of notebook `fit.ipynb` changed"]);
    const second = await runCollect(f(), { root });
    // Before, a hit that handed back y: 20, what the notebook no longer computes.
    expect(statuses(second.result)).toEqual({ fit: "succeeded" });
    expect(second.result.outputs).toEqual({ y: 2 });
  }, 120_000);

  it("counts the kernel the notebook's metadata names: another kernelspec is a miss that runs under that kernel", async () => {
    const dir = await tempRoot();
    const root = join(dir, "root");
    const file = join(dir, "fit.ipynb");
    // A second kernel, "other", installed where this Python's Jupyter finds it through JUPYTER_PATH.
    const kernels = join(dir, "jupyter");
    await mkdir(join(kernels, "kernels", "other"), { recursive: true });
    await writeFile(
      join(kernels, "kernels", "other", "kernel.json"),
      JSON.stringify({ argv: [VENV_PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}"], display_name: "Other", language: "python", env: { WHICH_KERNEL: "other" } }),
    );
    const fit = () => notebook("fit", file, { python: VENV_PYTHON, env: { JUPYTER_PATH: kernels } }).output<Out>();
    const f = () => flow("nb-kernel").build(() => ({ kernel: fit()({ factor: 10 }).kernel }));

    await writeNotebook(file, factorCells(true), "python3");
    expect((await runCollect(f(), { root })).result.outputs).toEqual({ kernel: "python3" });

    await writeNotebook(file, factorCells(true), "other");
    expect(await explained(f(), root, "fit")).toEqual(["the kernel of notebook `fit.ipynb` changed"]);
    const second = await runCollect(f(), { root });
    // Before, a hit that said "python3": the result of the other kernel.
    expect(statuses(second.result)).toEqual({ fit: "succeeded" });
    expect(second.result.outputs).toEqual({ kernel: "other" });
    // The option and the metadata naming the same kernel are the same key.
    const byOption = flow("nb-kernel").build(() => ({ kernel: notebook("fit", file, { python: VENV_PYTHON, env: { JUPYTER_PATH: kernels } }).output<Out>()({ factor: 10 }).kernel }));
    expect(byOption.definition.nodes[0]!.task.code).toBe(f().definition.nodes[0]!.task.code);
    expect(notebook("fit", file, { python: VENV_PYTHON, env: { JUPYTER_PATH: kernels }, kernel: "other" }).definition.code).toBe(f().definition.nodes[0]!.task.code);
  }, 120_000);

  it("an entry an older Cairn made (its key counted the code cells only) is no hit, and explain says it is the upgrade, not the notebook", async () => {
    const dir = await tempRoot();
    const root = join(dir, "root");
    const file = join(dir, "fit.ipynb");
    await writeNotebook(file, factorCells(true));
    const f = flow("nb-upgrade").build(() => ({ y: notebook("fit", file, { python: VENV_PYTHON }).output<Out>()({ factor: 10 }).y }));
    // The entry the Cairn before this one made: its `code` was the cells' digest and the options given, no more.
    const task = f.definition.nodes[0]!.task;
    const older: FlowDefinition = {
      ...f.definition,
      nodes: f.definition.nodes.map((n) => ({ ...n, task: { ...task, code: task.codeFormerly!.code, codeFormerly: undefined, codeName: undefined, codeOptions: undefined } })),
    };
    expect(task.codeFormerly!.code).toBe(`sha256:${notebookCodeDigest(file)};python=${JSON.stringify(VENV_PYTHON)}`);
    await (await startFlowRun(older, { root })).wait();

    expect(await explained(f, root, "fit")).toEqual([
      "notebook `fit.ipynb`'s code cells and options are unchanged, but the earlier entry was made by a Cairn whose key counted only those (it may have run under another kernel, or with its parameters elsewhere): " +
        "a notebook's key now also counts the kernel it runs under and the cell tagged `parameters`, so each notebook task runs once after the upgrade and is stored again",
    ]);
    const after = await runCollect(f, { root });
    expect(statuses(after.result)).toEqual({ fit: "succeeded" });
    expect(statuses((await runCollect(f, { root })).result)).toEqual({ fit: "cached" });
  }, 120_000);
});

describe.skipIf(!hasVenv)("a notebook's kernel that is not installed", () => {
  it("given as the `kernel` option: NotebookKernelError names it, the option, the installed kernels and how to install it, not ipykernel", async () => {
    const dir = await tempRoot();
    const file = join(dir, "fit.ipynb");
    await writeNotebook(file, factorCells(true));
    const t = notebook("fit", file, { python: VENV_PYTHON, kernel: "doesnotexist" }).output<Out>();
    const result = await (await flow("nb-nokernel").build(() => ({ y: t({ factor: 10 }).y })).run({ tracker: false, root: join(dir, "root") })).wait();
    const error = result.tasks.fit!.error!;
    expect(error.name).toBe("NotebookKernelError");
    expect(error.message).toBe(
      `Task "fit" runs fit.ipynb under the Jupyter kernel "doesnotexist" (the task's \`kernel\` option), but no kernel of that name is installed ` +
        `for ${VENV_PYTHON} (the kernels installed for it: python3). Give the task's \`kernel\` option one of those (\`kernel: "python3"\`), ` +
        `or install the kernel "doesnotexist": \`${VENV_PYTHON} -m ipykernel install --user --name doesnotexist\` (run it with the Python the kernel is to run).`,
    );
    expect(error.message).not.toContain("ipykernel is not installed");
  }, 120_000);

  it("named by the notebook's metadata (saved under a conda environment's kernel): the message says it came from there", async () => {
    const dir = await tempRoot();
    const file = join(dir, "fit.ipynb");
    await writeNotebook(file, factorCells(true), "conda-env-x-py");
    const t = notebook("fit", file, { python: VENV_PYTHON }).output<Out>();
    const result = await (await flow("nb-nokernel-meta").build(() => ({ y: t({ factor: 10 }).y })).run({ tracker: false, root: join(dir, "root") })).wait();
    const error = result.tasks.fit!.error!;
    expect(error.name).toBe("NotebookKernelError");
    expect(error.message).toContain(
      `Task "fit" runs fit.ipynb under the Jupyter kernel "conda-env-x-py" (the kernelspec in fit.ipynb's metadata, as Jupyter saved it), but no kernel of that name is installed ` +
        `for ${VENV_PYTHON} (the kernels installed for it: python3). Give the task a \`kernel\` option naming one of those (\`kernel: "python3"\`), ` +
        `or install a kernel named "conda-env-x-py": \`${VENV_PYTHON} -m ipykernel install --user --name conda-env-x-py\``,
    );
  }, 120_000);
});

describe.skipIf(!hasVenv)("an input papermill cannot inject as a Python variable", () => {
  it("is refused before the kernel starts, naming the input, why and how to fix it", async () => {
    const dir = await tempRoot();
    const file = join(dir, "fit.ipynb");
    await writeNotebook(file, factorCells(true));
    const t = notebook("fit", file, { python: VENV_PYTHON }).output<Out>();
    for (const [input, why, fix] of [
      ["learning-rate", '"learning-rate" is not a Python identifier', ': "learning_rate"'],
      ["class", '"class" is a Python keyword', ""],
      ["__debug__", '"__debug__" is a name Python does not let a program assign', ""],
    ] as const) {
      const result = await (await flow("nb-badinput").build(() => ({ y: t({ [input]: 0.1 }).y })).run({ tracker: false, root: join(dir, input) })).wait();
      const error = result.tasks.fit!.error!;
      expect(error.name).toBe("NotebookInputError");
      expect(error.message).toBe(
        `Task "fit" got the input "${input}", but papermill injects each input into fit.ipynb as a Python variable of its name, and ${why}, ` +
          `so the injected parameters cell could not run. Name the input as a Python variable (letters, digits and _, not starting with a digit, not a keyword${fix}) ` +
          `where the flow passes it, and in the notebook's parameters cell.`,
      );
      expect(error.message).not.toContain("Cell ");
    }
  }, 120_000);

  it("an error in the injected parameters cell is said as papermill's cell, never as one of the user's", async () => {
    const dir = await tempRoot();
    const file = join(dir, "fit.ipynb");
    // A fault injected into the cell papermill adds: an input transformer turns its text into a raise.
    const breaks = "get_ipython().input_transformers_post.append(lambda lines: ['raise ValueError(\"bad parameters\")\\n'] if lines and lines[0].startswith('# Parameters') else lines)\n";
    await writeNotebook(file, [code("factor = 1\n"), code(breaks, ["parameters"]), code("import cairn_task\ncairn_task.set_outputs(y=factor)\n")]);
    const t = notebook("fit", file, { python: VENV_PYTHON }).output<Out>();
    const result = await (await flow("nb-injected").build(() => ({ y: t({ factor: 10 }).y })).run({ tracker: false, root: join(dir, "root") })).wait();
    const message = result.tasks.fit!.error!.message;
    expect(message).toContain("The parameters cell papermill injected after cell 2 of fit.ipynb (it sets the task's inputs) raised ValueError: bad parameters (In[3] of the executed notebook)");
    expect(message).not.toMatch(/Cell \d of fit\.ipynb/);
  }, 120_000);
});
