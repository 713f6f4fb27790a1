/** Errors of the notebook kind. */
import { CairnError } from "@cairn/core";

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
  ) {
    super(
      `Task "${nodeId}" runs a notebook, but ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not installed ` +
        `for ${python}. Run scripts/setup-python.sh (it installs papermill, nbconvert and ipykernel into .venv), ` +
        `or \`${python} -m pip install papermill nbconvert ipykernel\`, or point CAIRN_PYTHON at a Python that has them.`,
    );
  }
}
