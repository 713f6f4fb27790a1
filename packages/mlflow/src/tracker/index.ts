/**
 * "@cairn/mlflow/tracker": the MLflow tracker and the one REST client Cairn talks to MLflow
 * with (credentials and TLS from MLflow's environment variables, retries, MLflow's limits).
 */
import "../register.ts";

export { MlflowTracker } from "./mlflow-tracker.ts";
export { MlflowClient } from "../client/client.ts";
export { checkMlflowEnv, mlflowOptionsFromEnv, type MlflowClientOptions } from "../client/mlflow-config.ts";
export { MLFLOW_LIMITS, toMlflowKey } from "../client/mlflow-limits.ts";
