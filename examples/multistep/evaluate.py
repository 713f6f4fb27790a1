"""Step 4, evaluate: accuracy, macro F1 and ROC AUC of a trained model on the test set."""
import argparse
import json

from common import finish, log_metrics, out_path, scores

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--model-path", required=True)
p.add_argument("--test-path", required=True)
a = p.parse_args()

import joblib  # noqa: E402

metrics = scores(joblib.load(a.model_path), a.test_path)
with open(out_path("metrics.json"), "w") as f:
    json.dump(metrics, f, indent=2)
log_metrics(metrics)
finish(metrics, {"metrics": "metrics.json"})
