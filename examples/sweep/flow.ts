/**
 * A hyper-parameter sweep and a map over files found at run time, on examples/multistep's
 * steps. See README.md.
 *
 *   npx cairn run flow.ts                                              # embedded store in .cairn/
 *   MLFLOW_TRACKING_URI=http://127.0.0.1:5000 npx cairn run flow.ts    # + the sweep as nested runs, register the best
 */
import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { flow, grid, map, max, script, sweep, task, type Artifact } from "cairn-dag";
import { MODEL_NAME, PRELOAD, hasRegistry, paramsSchema, register, scriptSteps } from "../multistep/steps.ts";

/** examples/multistep's train and evaluate in one step (trial.py): a trial's metric comes from the task the sweep runs. */
const trial = script("trial", {
  file: "trial.py",
  preload: PRELOAD,
  args: ["--train-path", "{train_path}", "--test-path", "{test_path}", "--model", "{model}", "--c", "{c}", "--n-estimators", "{n_estimators}", "--seed", "{seed}"],
})
  .input<{ train_path: Artifact; test_path: Artifact; model: string; c: number; n_estimators: number; seed: number }>()
  .output<{ model: Artifact; accuracy: number; f1: number; roc_auc: number; model_kind: string }>();

/** The CSV files the process step wrote, found when the flow runs (their number is not known before). */
const listSplits = task("listSplits")
  .input<{ train: Artifact }>()
  .run(async ({ train }) => {
    const dir = dirname(train.path);
    return { paths: (await readdir(dir)).filter((f) => f.endsWith(".csv")).sort().map((f) => join(dir, f)) };
  });

/** Rows and columns of one CSV file. */
const profile = task("profile")
  .input<{ path: string }>()
  .run(async ({ path }) => {
    const lines = (await readFile(path, "utf8")).trim().split("\n");
    return { file: path.split("/").pop()!, rows: lines.length - 1, columns: lines[0]!.split(",").length };
  });

export default flow("sweep")
  .params(paramsSchema)
  .build(({ params }) => {
    const d = scriptSteps.download({ dataset: params.dataset });
    const p = scriptSteps.process({ file_path: d.data, test_size: params.testSize, seed: params.seed, score_rows: 20 });
    const splits = map(profile, { over: listSplits({ train: p.train }).paths, as: "path" });
    const best = sweep(trial, {
      with: { train_path: p.train, test_path: p.test, seed: params.seed },
      over: grid({ model: ["logreg", "forest"], c: [0.1, 1.0], n_estimators: [50, 100] }),
      select: max("roc_auc"),
      concurrency: 2,
    });
    const outputs = { splits: splits.outputs, best: best.params, trial: best.trial, rocAuc: best.metric };
    if (!hasRegistry) return outputs;
    const reg = register({ model: best.best.model, train: p.train, name: MODEL_NAME, alias: "champion" });
    return { ...outputs, modelUri: reg.model_uri };
  });
