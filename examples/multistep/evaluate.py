"""Step 4, evaluate: accuracy, macro F1 and ROC AUC of a trained model on the test set."""
import argparse
import json

from common import finish, log_metrics, out_path

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--model-path", required=True)
p.add_argument("--test-path", required=True)
a = p.parse_args()

import joblib  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score  # noqa: E402

df = pd.read_csv(a.test_path)
X, y = df.drop(columns="target"), df["target"]
model = joblib.load(a.model_path)
proba = model.predict_proba(X)
metrics = {
    "accuracy": float(accuracy_score(y, model.predict(X))),
    "f1": float(f1_score(y, model.predict(X), average="macro")),
    "roc_auc": float(roc_auc_score(y, proba[:, 1]) if proba.shape[1] == 2 else roc_auc_score(y, proba, multi_class="ovr")),
}
with open(out_path("metrics.json"), "w") as f:
    json.dump(metrics, f, indent=2)
log_metrics(metrics)
finish(metrics, {"metrics": "metrics.json"})
