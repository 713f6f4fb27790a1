/**
 * The bench's Cairn side: examples/multistep's download -> process -> train x2 -> evaluate x2
 * -> pick, as script() tasks (`tsx bench/multistep/cairn-flow.ts`), or as MLflow project
 * tasks with CAIRN_BENCH_STEPS=project. Run by bench/multistep/run.ts.
 */
import { flow } from "@cairn/dsl";
import { paramsSchema, pipeline, projectSteps, scriptSteps } from "../../examples/multistep/steps.ts";

const steps = process.env.CAIRN_BENCH_STEPS === "project" ? projectSteps() : scriptSteps;

export default flow("multistep-bench")
  .params(paramsSchema)
  .build(({ params }) => {
    const { best } = pipeline(steps, params);
    return { best: best.best, rocAuc: best.roc_auc };
  });
