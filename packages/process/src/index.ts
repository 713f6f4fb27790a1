/**
 * @cairn/process: the task kinds that run a child process — `script()` (Python, TypeScript,
 * JavaScript or any command), `shell()` and `notebook()` — and their errors. Users import
 * them from "cairn-dag"; kinds of other packages that spawn use "@cairn/process/spawn".
 */
import { registerOwnDir } from "@cairn/dsl/kind";

registerOwnDir(import.meta.url);

export { script, type ScriptOptions } from "./script.ts";
export { shell, type ShellOptions, type ShellOutputs } from "./shell.ts";
export { notebook, type NotebookOptions, type NotebookOutputs } from "./notebook/notebook.ts";
export { defaultPython, PYTHON_HELPER_DIR, type ProcessOptions } from "./spawn/options.ts";
export { ProcessFailedError, ProcessStartError, ProcessOutputError, PythonEnvironmentError, UnknownPlaceholderError, CommandTemplateError } from "./spawn/errors.ts";
export { NotebookDependencyError, NotebookInputError, NotebookKernelError } from "./notebook/errors.ts";
