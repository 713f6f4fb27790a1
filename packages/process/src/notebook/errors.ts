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
