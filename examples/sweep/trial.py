"""One sweep trial: examples/multistep's train and evaluate steps in one process (a trial's
metric must come from the task the sweep runs): fits --model with --c / --n-estimators on the
train split, then scores it on the test split (accuracy, macro F1, ROC AUC)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "multistep"))
from common import finish, log_metrics, out_path  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--train-path", required=True)
p.add_argument("--test-path", required=True)
p.add_argument("--model", default="logreg", choices=["logreg", "forest"])
p.add_argument("--c", type=float, default=1.0)
p.add_argument("--n-estimators", type=int, default=100)
p.add_argument("--seed", type=int, default=42)
a = p.parse_args()

import joblib  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

train = pd.read_csv(a.train_path)
X, y = train.drop(columns="target"), train["target"]
if a.model == "logreg":
    model = make_pipeline(StandardScaler(), LogisticRegression(C=a.c, max_iter=1000))
else:
    model = RandomForestClassifier(n_estimators=a.n_estimators, random_state=a.seed, n_jobs=1)
model.fit(X, y)
joblib.dump(model, out_path("model.joblib"))

test = pd.read_csv(a.test_path)
Xt, yt = test.drop(columns="target"), test["target"]
proba = model.predict_proba(Xt)
metrics = {
    "accuracy": float(accuracy_score(yt, model.predict(Xt))),
    "f1": float(f1_score(yt, model.predict(Xt), average="macro")),
    "roc_auc": float(roc_auc_score(yt, proba[:, 1]) if proba.shape[1] == 2 else roc_auc_score(yt, proba, multi_class="ovr")),
}
log_metrics(metrics)
finish({**metrics, "model_kind": a.model}, {"model": "model.joblib"})
