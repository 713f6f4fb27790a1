/**
 * The multistep workflow's steps, declared twice over the same Python scripts:
 * as script() tasks (flow.ts) and as MLflow project entry points (project-flow.ts, see
 * MLproject). Both take the MLproject parameter names as inputs, so one `pipeline()`
 * wires either: download -> process -> train x2 (logreg, forest) -> evaluate x2 -> pick.
 */
import { mlflowModel, mlflowProject, notebook, script, task, type Artifact, type ParamRefs, type Task } from "cairn-dag";
import * as v from "valibot";

/** The registered model's name; the score step reads models:/<MODEL_NAME>@champion. */
export const MODEL_NAME = "cairn-multistep";
export const MODEL_KINDS = ["logreg", "forest"] as const;

/** The flow's params (`-p dataset=wine -p trees=300`). */
// valibot, not zod: any Standard Schema does, and valibot loads in ~15 ms where zod takes
// ~90 ms, a third of a cached re-run's start (BENCHMARKS.md).
export const paramsSchema = v.object({
  dataset: v.optional(v.picklist(["breast_cancer", "wine"]), "breast_cancer"),
  testSize: v.optional(v.pipe(v.number(), v.gtValue(0), v.ltValue(1)), 0.25),
  c: v.optional(v.pipe(v.number(), v.gtValue(0)), 1.0),
  trees: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 100),
  seed: v.optional(v.pipe(v.number(), v.integer()), 42),
});
export type Params = v.InferOutput<typeof paramsSchema>;

type DownloadIn = { dataset: string };
type DownloadOut = { data: Artifact; rows: number; columns: number };
type ProcessIn = { file_path: Artifact; test_size: number; seed: number; score_rows: number };
type ProcessOut = { train: Artifact; test: Artifact; score: Artifact; train_rows: number; test_rows: number };
type TrainIn = { train_path: Artifact; model: string; c: number; n_estimators: number; seed: number };
type TrainOut = { model: Artifact; train_accuracy: number; model_kind: string };
type EvaluateIn = { model_path: Artifact; test_path: Artifact };
type EvaluateOut = { accuracy: number; f1: number; roc_auc: number; metrics: Artifact };

/** The four steps, whatever runs them. */
export interface Steps {
  download: Task<DownloadIn, DownloadOut>;
  process: Task<ProcessIn, ProcessOut>;
  train: Task<TrainIn, TrainOut>;
  evaluate: Task<EvaluateIn, EvaluateOut>;
}

/** True when the flow is tracked by an MLflow server, which the register and score steps need. */
export const hasRegistry = /^https?:\/\//.test(process.env.MLFLOW_TRACKING_URI ?? "");

/**
 * What the steps import, loaded once in a warm Python that every step forks from (script()'s
 * `preload`): each step then starts in milliseconds instead of seconds of imports. mlflow only
 * when the flow is tracked by an MLflow server: that is when the steps log to it.
 */
export const PRELOAD = [
  "pandas",
  "joblib",
  ...["datasets", "model_selection", "ensemble", "linear_model", "pipeline", "preprocessing", "metrics"].map((m) => `sklearn.${m}`),
  ...(hasRegistry ? ["mlflow"] : []),
];

/** The steps as script() tasks: the same command lines as the MLproject entry points. */
export const scriptSteps: Steps = {
  download: script("download", { file: "download.py", args: ["--dataset", "{dataset}"], preload: PRELOAD }).input<DownloadIn>().output<DownloadOut>(),
  process: script("process", {
    file: "process.py",
    preload: PRELOAD,
    args: ["--file-path", "{file_path}", "--test-size", "{test_size}", "--seed", "{seed}", "--score-rows", "{score_rows}"],
  })
    .input<ProcessIn>()
    .output<ProcessOut>(),
  train: script("train", {
    file: "train.py",
    preload: PRELOAD,
    args: ["--train-path", "{train_path}", "--model", "{model}", "--c", "{c}", "--n-estimators", "{n_estimators}", "--seed", "{seed}"],
  })
    .input<TrainIn>()
    .output<TrainOut>(),
  evaluate: script("evaluate", { file: "evaluate.py", args: ["--model-path", "{model_path}", "--test-path", "{test_path}"], preload: PRELOAD })
    .input<EvaluateIn>()
    .output<EvaluateOut>(),
};

/**
 * The steps as entry points of the MLflow project in this folder (`mlflow run` when tracked by
 * an MLflow server). A function, so that only the flows that use them read the MLproject file and
 * fingerprint the folder.
 */
export function projectSteps(): Steps {
  return {
    download: mlflowProject("download", { uri: ".", entryPoint: "download" }).input<DownloadIn>().output<DownloadOut>(),
    process: mlflowProject("process", { uri: ".", entryPoint: "process" }).input<ProcessIn>().output<ProcessOut>(),
    train: mlflowProject("train", { uri: ".", entryPoint: "train" }).input<TrainIn>().output<TrainOut>(),
    evaluate: mlflowProject("evaluate", { uri: ".", entryPoint: "evaluate" }).input<EvaluateIn>().output<EvaluateOut>(),
  };
}

type Candidate = { kind: string; model: Artifact; accuracy: number; f1: number; roc_auc: number };

/** Picks the candidate with the best ROC AUC. */
export const pick = task("pick")
  .input<{ candidates: Candidate[] }>()
  .run(({ candidates }, ctx) => {
    const best = [...candidates].sort((a, b) => b.roc_auc - a.roc_auc)[0]!;
    ctx.log.metric("best_roc_auc", best.roc_auc);
    return { best: best.kind, model: best.model, roc_auc: best.roc_auc, table: candidates.map(({ model: _, ...rest }) => rest) };
  });

/** download -> process -> train and evaluate each model kind -> pick the best. */
export function pipeline(steps: Steps, params: ParamRefs<Params>) {
  const d = steps.download({ dataset: params.dataset });
  const p = steps.process({ file_path: d.data, test_size: params.testSize, seed: params.seed, score_rows: 20 });
  const candidates = MODEL_KINDS.map((kind) => {
    const t = steps.train({ train_path: p.train, model: kind, c: params.c, n_estimators: params.trees, seed: params.seed }, { id: `train-${kind}` });
    const e = steps.evaluate({ model_path: t.model, test_path: p.test }, { id: `evaluate-${kind}` });
    return { kind, model: t.model, accuracy: e.accuracy, f1: e.f1, roc_auc: e.roc_auc };
  });
  const best = pick({ candidates });
  return { download: d, process: p, best };
}

/** A notebook report of the candidates (executed notebook and HTML are artifacts). */
export const report = notebook("report", "report.ipynb").input<{ dataset: string; candidates: unknown[]; best: string }>().output<{ best: string; best_roc_auc: number; models: number }>();

/** Registers the best model and points the alias "champion" at it (needs MLflow tracking). */
export const register = script("register", { file: "register.py" })
  .input<{ model: Artifact; train: Artifact; name: string; alias: string }>()
  .output<{ model_uri: string; version: string }>();

/** Scores the held-out rows (score.csv) with whatever models:/cairn-multistep@champion is when it runs. */
export const score = mlflowModel("score", `models:/${MODEL_NAME}@champion`);

/** The steps after the pipeline: the report, and with a registry, register and score. Call inside build(). */
export function afterPipeline(run: ReturnType<typeof pipeline>, params: ParamRefs<Params>) {
  const { process: p, best } = run;
  const r = report({ dataset: params.dataset, candidates: best.table, best: best.best });
  const outputs = { best: best.best, rocAuc: best.roc_auc, report: r.html };
  if (!hasRegistry) {
    return { ...outputs, registry: "skipped: register and score need an MLflow server (MLFLOW_TRACKING_URI=http://...)" };
  }
  const reg = register({ model: best.model, train: p.train, name: MODEL_NAME, alias: "champion" });
  const s = score({ data: p.score }, { after: [reg] });
  return { ...outputs, modelUri: reg.model_uri, predictions: s.predictions, modelVersion: s.modelVersion };
}
