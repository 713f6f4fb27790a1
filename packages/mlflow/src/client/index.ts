/** The MLflow REST client and its configuration, loaded on demand by the kinds that need it. */
export { MlflowClient } from "./client.ts";
export { mlflowOptionsFromEnv, type MlflowClientOptions } from "./mlflow-config.ts";
