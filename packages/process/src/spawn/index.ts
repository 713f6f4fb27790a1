/**
 * `@cairn/process/spawn`: the one way Cairn starts a child process — its process group, its
 * logs, its outputs and artifacts, and its end on cancel, timeout or exit — with command
 * templates and the options every process kind shares. For kinds that run a process
 * (@cairn/mlflow's project and model kinds); not what a flow file imports.
 */
export { runProcess, endProcessGroup, prepareProcessGroup, resolveMarkers, checkWorkingFolder, ARTIFACT_MARKER, type ProcessSpec, type ProcessResult, type ProcessGroupGuard } from "./spawn.ts";
export { parseTemplate, checkPlaceholders, renderShell, renderArg, shellQuote, valueText, type CommandTemplate } from "./template.ts";
export { checkProcessOptions, processEnv, defaultPython, findPython, optionOrigin, pythonFor, pythonPath, PYTHON_HELPER_DIR, type CommandOrigin, type ProcessOptions } from "./options.ts";
export * from "./errors.ts";
export { makeTaskFolder, type TempFolderUse } from "./task-folder.ts";
export { pythonEnvironment, PYTHON_ENVIRONMENT } from "../python/python-environment.ts";
