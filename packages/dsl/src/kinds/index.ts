/** Task kinds beyond functions: scripts, shell commands, notebooks, HTTP endpoints. */
export { script, type ScriptOptions } from "./script.ts";
export { shell, type ShellOptions, type ShellOutputs } from "./shell.ts";
export { notebook, type NotebookOptions, type NotebookOutputs } from "./notebook.ts";
export { http, type HttpOptions } from "./http.ts";
export { currentTask, type CurrentTask, type ArtifactMarker } from "./current-task.ts";
export { defaultPython, PYTHON_HELPER_DIR, type KindTask, type ProcessOptions } from "./kind-task.ts";
export { mlflowProject, type MlflowProjectOptions, type MlflowProjectOutputs } from "./mlflow-project.ts";
export { mlflowModel, type MlflowModelOptions, type MlflowModelInputs, type MlflowModelOutputs } from "./mlflow-model.ts";
