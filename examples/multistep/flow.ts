/**
 * The multistep workflow (download -> process -> train x2 -> evaluate x2 -> pick -> report,
 * then register -> score with an MLflow server) with script() tasks. See README.md.
 *
 *   npx cairn run flow.ts                                              # embedded store in .cairn/
 *   MLFLOW_TRACKING_URI=http://127.0.0.1:5000 npx cairn run flow.ts    # + register and score
 */
import { flow } from "cairn-dag";
import { afterPipeline, paramsSchema, pipeline, scriptSteps } from "./steps.ts";

export default flow("multistep")
  .params(paramsSchema)
  .build(({ params }) => afterPipeline(pipeline(scriptSteps, params), params));
