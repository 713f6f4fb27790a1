"""Registers the chosen model in the MLflow model registry (needs an MLflow tracking server) and points an alias at it.

Inputs (cairn_task): model (Artifact of model.joblib), train (Artifact of train.csv, for the signature), name, alias.
Outputs: model_uri (models:/name/version), version.
"""
import os
import sys

import cairn_task

i = cairn_task.inputs()
if not os.environ.get("MLFLOW_TRACKING_URI", "").startswith(("http://", "https://")):
    sys.exit(
        "register needs an MLflow tracking server with a model registry: start `mlflow server --port 5000` "
        "and set MLFLOW_TRACKING_URI=http://127.0.0.1:5000"
    )

import joblib  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402

model = joblib.load(i["model"]["path"])
X = pd.read_csv(i["train"]["path"]).drop(columns="target")
# The model is logged in the task's run (MLFLOW_RUN_ID), so that the registered version links to
# the run that logged it; MLflow 3 links a model to a run only when told which.
info = mlflow.sklearn.log_model(
    model,
    name="model",
    signature=infer_signature(X, model.predict(X)),
    registered_model_name=i["name"],
    run_id=os.environ.get("MLFLOW_RUN_ID"),
)
version = str(info.registered_model_version)
mlflow.MlflowClient().set_registered_model_alias(i["name"], i["alias"], version)
cairn_task.set_outputs(model_uri="models:/%s/%s" % (i["name"], version), version=version)
