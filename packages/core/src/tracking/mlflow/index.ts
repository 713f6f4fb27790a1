/** `@cairn/core/mlflow`: the MLflow tracker and its REST client, kept apart so local runs never load them. */
export { MlflowTracker } from "./mlflow-tracker.ts";
export { MlflowClient } from "./client.ts";
export { mlflowOptionsFromEnv, type MlflowClientOptions } from "./mlflow-config.ts";
export { MLFLOW_LIMITS, toMlflowKey } from "./mlflow-limits.ts";
