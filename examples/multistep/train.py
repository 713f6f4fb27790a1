"""Step 3, train: fits a scaled logistic regression (--model logreg) or a random forest (--model forest) and saves it with joblib."""
import argparse

from common import add_model_args, finish, fit_model, log_metrics, out_path

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--train-path", required=True)
add_model_args(p)
a = p.parse_args()

import joblib  # noqa: E402

model, accuracy = fit_model(a.train_path, a.model, a.c, a.n_estimators, a.seed)
joblib.dump(model, out_path("model.joblib"))
log_metrics({"train_accuracy": accuracy})
finish({"train_accuracy": accuracy, "model_kind": a.model}, {"model": "model.joblib"})
