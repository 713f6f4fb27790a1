"""One sweep trial: examples/multistep's train and evaluate steps in one process (a trial's
metric must come from the task the sweep runs): fits --model with --c / --n-estimators on the
train split, then scores it on the test split (accuracy, macro F1, ROC AUC)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "multistep"))
from common import add_model_args, finish, fit_model, log_metrics, out_path, scores  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--train-path", required=True)
p.add_argument("--test-path", required=True)
add_model_args(p)
a = p.parse_args()

import joblib  # noqa: E402

model, _ = fit_model(a.train_path, a.model, a.c, a.n_estimators, a.seed)
joblib.dump(model, out_path("model.joblib"))
metrics = scores(model, a.test_path)
log_metrics(metrics)
finish({**metrics, "model_kind": a.model}, {"model": "model.joblib"})
