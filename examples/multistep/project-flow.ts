/**
 * The same workflow, each step an entry point of the MLflow project in this folder
 * (MLproject): run by `mlflow run ... --run-id <task run>` when tracked by an MLflow
 * server, else the entry point's command directly. See README.md.
 *
 *   npx tsx project-flow.ts
 *   MLFLOW_TRACKING_URI=http://127.0.0.1:5000 npx tsx project-flow.ts
 */
import { flow } from "cairn-dag";
import { afterPipeline, paramsSchema, pipeline, projectSteps } from "./steps.ts";

export default flow("multistep-project")
  .params(paramsSchema)
  .build(({ params }) => afterPipeline(pipeline(projectSteps(), params), params));
