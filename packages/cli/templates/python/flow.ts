/**
 * A Cairn flow of Python steps, the shape of MLflow's multi-step workflow:
 * prepare -> train -> evaluate, each step a script in steps/.
 *
 *   npx cairn run flow.ts                 # run it; runs are recorded in .cairn/
 *   npx cairn run flow.ts                 # again: every step comes from the cache
 *   npx cairn run flow.ts -p ridge=0.5    # only train and evaluate run again
 *
 * Each step reads its inputs and writes its outputs with `cairn_task` (Cairn puts it on the
 * step's PYTHONPATH). Python: $CAIRN_PYTHON, else the nearest .venv, else python3. A step's
 * cache key covers its file and the project's modules it imports (steps/common.py).
 * Set MLFLOW_TRACKING_URI=http://127.0.0.1:5000 to record into an MLflow server; a step's own
 * `mlflow.log_*` calls then land in its task's run.
 */
import { flow, script, type Artifact } from "cairn-dag";
import { z } from "zod";

const prepare = script("prepare", { file: "steps/prepare.py" })
  .input<{ rows: number; seed: number }>()
  .output<{ data: Artifact; rows: number }>();

const train = script("train", { file: "steps/train.py" })
  .input<{ data: Artifact; ridge: number }>()
  .output<{ model: Artifact; slope: number; intercept: number }>();

const evaluate = script("evaluate", { file: "steps/evaluate.py" })
  .input<{ data: Artifact; model: Artifact }>()
  .output<{ rmse: number }>();

export default flow("python-steps")
  .params(z.object({ rows: z.number().int().positive().default(200), seed: z.number().int().default(7), ridge: z.number().min(0).default(0) }))
  .build(({ params }) => {
    const data = prepare({ rows: params.rows, seed: params.seed });
    const model = train({ data: data.data, ridge: params.ridge });
    const score = evaluate({ data: data.data, model: model.model });
    return { slope: model.slope, rmse: score.rmse };
  });
