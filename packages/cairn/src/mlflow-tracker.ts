/**
 * `cairn-dag/mlflow-tracker`: `MlflowTracker` and `MlflowClient`, for those who build on the
 * MLflow REST client. Its own entry: the client loads only where it is used.
 * @example
 * import { MlflowClient } from "cairn-dag/mlflow-tracker";
 */
export * from "@cairn/mlflow/tracker";
