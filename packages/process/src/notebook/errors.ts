/** Errors of the notebook kind. */
import { CairnError, shellQuote } from "@cairn/core";

/** papermill / nbconvert (or a Jupyter kernel) is missing from the Python that runs notebooks. */
export class NotebookDependencyError extends CairnError {
  static override readonly code: string = "CAIRN_NOTEBOOK_DEPENDENCY";
  override name = "NotebookDependencyError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    readonly python: string,
    readonly missing: readonly string[],
    /** Where that Python came from, as a clause ("it is the value of the environment variable CAIRN_PYTHON"). */
    origin?: string,
  ) {
    // The command names the user's own Python: the fix happens in their project, not in Cairn's repository.
    // Quoted, so that it runs as shown from a venv under "My Projects".
    const py = shellQuote(python);
    super(
      `Task "${nodeId}" runs a notebook, but ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not installed ` +
        `for ${python}${origin ? ` (${origin})` : ""}. Install them into that Python: \`${py} -m pip install papermill nbconvert ipykernel\` ` +
        `(or your project's own tool, e.g. \`uv pip install --python ${py} papermill nbconvert ipykernel\`), ` +
        `or point the notebook's \`python\` option or CAIRN_PYTHON at a Python that has them.`,
    );
  }
}

/** Where the kernel a notebook runs under was named: the task's `kernel` option, or the notebook's own metadata. */
export type KernelOrigin = "option" | "notebook";

/** The Jupyter kernel a notebook is to run under is not installed for the Python that runs it. */
export class NotebookKernelError extends CairnError {
  static override readonly code: string = "CAIRN_NOTEBOOK_KERNEL";
  override name = "NotebookKernelError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    /** The notebook's file name. */
    readonly notebook: string,
    /** The kernel asked for. */
    readonly kernel: string,
    readonly origin: KernelOrigin,
    readonly python: string,
    /** The kernels installed for that Python, as `jupyter kernelspec list` names them. */
    readonly installed: readonly string[],
  ) {
    const py = shellQuote(python);
    const from = origin === "option" ? "the task's `kernel` option" : `the kernelspec in ${notebook}'s metadata, as Jupyter saved it`;
    const list = installed.length ? `the kernels installed for it: ${installed.join(", ")}` : "it has no kernel installed";
    const pick = installed.length ? `\`kernel: ${JSON.stringify(installed.includes("python3") ? "python3" : installed[0])}\`` : undefined;
    super(
      `Task "${nodeId}" runs ${notebook} under the Jupyter kernel "${kernel}" (${from}), but no kernel of that name is installed ` +
        `for ${python} (${list}). ` +
        (origin === "option"
          ? `Give the task's \`kernel\` option one of those${pick ? ` (${pick})` : ""}, or install the kernel "${kernel}": ` +
            `\`${py} -m ipykernel install --user --name ${shellQuote(kernel)}\` (run it with the Python the kernel is to run).`
          : `Give the task a \`kernel\` option naming one of those${pick ? ` (${pick})` : ""}, or install a kernel named "${kernel}": ` +
            `\`${py} -m ipykernel install --user --name ${shellQuote(kernel)}\` (run it with the Python the kernel is to run, e.g. that environment's own).`),
    );
  }
}

/** A notebook task's input whose name papermill cannot inject as a Python variable. */
export class NotebookInputError extends CairnError {
  static override readonly code: string = "CAIRN_NOTEBOOK_INPUT";
  override name = "NotebookInputError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    /** The notebook's file name. */
    readonly notebook: string,
    /** The input's name. */
    readonly input: string,
    /** Why it cannot be a variable: "it is a Python keyword", "it is not a Python identifier". */
    readonly why: string,
  ) {
    const suggestion = input.replace(/[^\p{L}\p{N}_]/gu, "_").replace(/^(?=\p{N})/u, "_");
    super(
      `Task "${nodeId}" got the input "${input}", but papermill injects each input into ${notebook} as a Python variable of its name, ` +
        `and ${why}, so the injected parameters cell could not run. Name the input as a Python variable ` +
        `(letters, digits and _, not starting with a digit, not a keyword${/^[\p{L}_][\p{L}\p{N}_]*$/u.test(suggestion) && suggestion !== input ? `: "${suggestion}"` : ""}) ` +
        `where the flow passes it, and in the notebook's parameters cell.`,
    );
  }
}
