"""What the steps share. Each step is one script that runs three ways:

- as a Cairn script() task (flow.ts) or an MLflow project task (project-flow.ts): its files go
  to the task's artifacts folder and its outputs to CAIRN_OUTPUTS (cairn_task.set_outputs);
- under plain `mlflow run` / mlflow.projects.run (bench/multistep/main.py): its files are logged
  as artifacts of the MLflow run, where the next step finds them.

Metrics go to MLflow whenever the step runs inside an MLflow run (MLFLOW_RUN_ID is set);
without one, mlflow is not even imported.
"""
import os
import sys
import tempfile

try:
    import cairn_task  # on PYTHONPATH when Cairn starts the step
except ImportError:  # plain `mlflow run`: the helper is in this repository
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "process", "python"))
    import cairn_task

UNDER_CAIRN = bool(os.environ.get("CAIRN_OUTPUTS"))
# Read once: mlflow removes MLFLOW_RUN_ID from the environment when it resumes that run.
IN_MLFLOW_RUN = bool(os.environ.get("MLFLOW_RUN_ID"))
_tmp = None


def out_path(name):
    """Where to write the output file `name`."""
    global _tmp
    if UNDER_CAIRN:
        return cairn_task.artifact_path(name)
    _tmp = _tmp or tempfile.mkdtemp(prefix="multistep-")
    return os.path.join(_tmp, name)


def log_metrics(metrics):
    """Logs metrics to the MLflow run the step runs in, if any."""
    if IN_MLFLOW_RUN:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


def finish(values, files):
    """Outputs: `values` (JSON data) and `files` ({output name: file written at out_path(file)})."""
    if UNDER_CAIRN:
        cairn_task.set_outputs({**values, **{k: cairn_task.artifact(f) for k, f in files.items()}})
    elif IN_MLFLOW_RUN:
        import mlflow

        for f in files.values():
            mlflow.log_artifact(out_path(f))
    print({**values, **files})


def add_model_args(parser):
    """The model's arguments, as fit_model takes them: --model, --c, --n-estimators, --seed."""
    parser.add_argument("--model", default="logreg", choices=["logreg", "forest"])
    parser.add_argument("--c", type=float, default=1.0)
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)


def fit_model(train_path, model, c, n_estimators, seed):
    """Fits a scaled logistic regression (`model` "logreg") or a random forest on the CSV at `train_path`; returns it with its training accuracy."""
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = pd.read_csv(train_path)
    X, y = df.drop(columns="target"), df["target"]
    if model == "logreg":
        fitted = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
    else:
        fitted = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)
    fitted.fit(X, y)
    return fitted, float(fitted.score(X, y))


def scores(model, test_path):
    """Accuracy, macro F1 and ROC AUC of `model` on the CSV at `test_path`."""
    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    df = pd.read_csv(test_path)
    X, y = df.drop(columns="target"), df["target"]
    proba = model.predict_proba(X)
    predicted = model.predict(X)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted, average="macro")),
        "roc_auc": float(roc_auc_score(y, proba[:, 1]) if proba.shape[1] == 2 else roc_auc_score(y, proba, multi_class="ovr")),
    }
