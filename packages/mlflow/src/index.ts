/**
 * @cairn/mlflow: Cairn and an MLflow server — the `mlflowProject()` and `mlflowModel()` kinds
 * and their errors here; the REST client and the tracker at "@cairn/mlflow/tracker", loaded
 * only when a run records on a server. Importing this package (as "cairn-dag" does) registers
 * the tracker for http(s) tracking URIs (./register.ts).
 */
import { registerOwnDir } from "@cairn/dsl/kind";
import "./register.ts";

registerOwnDir(import.meta.url);

export { mlflowProject, type MlflowProjectOptions, type MlflowProjectOutputs } from "./project/mlflow-project.ts";
export { mlflowModel, type MlflowModelOptions, type MlflowModelInputs, type MlflowModelOutputs } from "./model/mlflow-model.ts";
export { MlflowProjectError, MlflowProjectParameterError } from "./project/run-project.ts";
export { MlflowModelError, ModelInputError } from "./model/run-model.ts";
