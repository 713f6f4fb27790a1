"""The multistep workflow orchestrated the way MLflow's multistep example does it
(mlflow/examples/multistep_workflow/main.py): one mlflow.projects.run per entry point of
examples/multistep/MLproject, each step handing the next its artifact URIs, and before
each step a scan of the experiment's runs for an earlier one with the same entry point,
parameters and git commit (`_already_ran`), whose results are then reused.

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 PATH=.venv/bin:$PATH \
      .venv/bin/python bench/multistep/main.py --experiment multistep-mlflow

Prints one JSON line: the best model, its ROC AUC, and the seconds spent in workflow().
"""
import argparse
import json
import os
import time

T0 = time.perf_counter()

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from mlflow.utils import mlflow_tags  # noqa: E402

PROJECT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "multistep"))


def _already_ran(entry_point_name, parameters, git_commit, experiment_id):
    """Best-effort detection of an earlier run of this entry point with these parameters and this git commit."""
    client = MlflowClient()
    for run in reversed(client.search_runs([experiment_id], max_results=1000)):
        tags = run.data.tags
        if tags.get(mlflow_tags.MLFLOW_PROJECT_ENTRY_POINT) != entry_point_name:
            continue
        if any(run.data.params.get(k) != v for k, v in parameters.items()):
            continue
        if run.info.status != "FINISHED":
            continue
        if tags.get(mlflow_tags.MLFLOW_GIT_COMMIT) != git_commit:
            continue
        return client.get_run(run.info.run_id)
    return None


def _get_or_run(entry_point, parameters, git_commit, experiment_id, use_cache=True):
    existing = _already_ran(entry_point, parameters, git_commit, experiment_id) if use_cache else None
    if existing:
        print("Found existing run for entry point %s and parameters %s" % (entry_point, parameters), flush=True)
        return existing
    print("Launching new run for entry point %s and parameters %s" % (entry_point, parameters), flush=True)
    submitted = mlflow.projects.run(PROJECT, entry_point, parameters=parameters, env_manager="local", experiment_id=experiment_id)
    return MlflowClient().get_run(submitted.run_id)


def workflow(args):
    mlflow.set_experiment(args.experiment)
    with mlflow.start_run() as active_run:
        exp = active_run.info.experiment_id
        git_commit = active_run.data.tags.get(mlflow_tags.MLFLOW_GIT_COMMIT)
        step = lambda ep, params: _get_or_run(ep, params, git_commit, exp, not args.no_cache)  # noqa: E731

        download = step("download", {"dataset": args.dataset})
        process = step(
            "process",
            {"file_path": download.info.artifact_uri + "/raw.csv", "test_size": str(args.test_size), "seed": str(args.seed), "score_rows": "20"},
        )
        train_uri = process.info.artifact_uri + "/train.csv"
        test_uri = process.info.artifact_uri + "/test.csv"
        results = {}
        for kind in ("logreg", "forest"):
            train = step("train", {"train_path": train_uri, "model": kind, "c": str(args.c), "n_estimators": str(args.trees), "seed": str(args.seed)})
            evaluate = step("evaluate", {"model_path": train.info.artifact_uri + "/model.joblib", "test_path": test_uri})
            results[kind] = evaluate.data.metrics
        best = max(results, key=lambda k: results[k]["roc_auc"])
        mlflow.log_metric("best_roc_auc", results[best]["roc_auc"])
        return best, results[best]["roc_auc"]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default="multistep-mlflow")
    p.add_argument("--dataset", default="breast_cancer")
    p.add_argument("--test-size", type=float, default=0.25)
    p.add_argument("--c", type=float, default=1.0)
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-cache", action="store_true", help="run every step, ignoring earlier runs")
    a = p.parse_args()
    t = time.perf_counter()
    best, roc_auc = workflow(a)
    print(json.dumps({"best": best, "roc_auc": roc_auc, "workflow_seconds": time.perf_counter() - t, "process_seconds": time.perf_counter() - T0}))
