"""Step 3, train: fits a scaled logistic regression (--model logreg) or a random forest (--model forest) and saves it with joblib."""
import argparse

from common import finish, log_metrics, out_path

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--train-path", required=True)
p.add_argument("--model", default="logreg", choices=["logreg", "forest"])
p.add_argument("--c", type=float, default=1.0)
p.add_argument("--n-estimators", type=int, default=100)
p.add_argument("--seed", type=int, default=42)
a = p.parse_args()

import joblib  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

df = pd.read_csv(a.train_path)
X, y = df.drop(columns="target"), df["target"]
if a.model == "logreg":
    model = make_pipeline(StandardScaler(), LogisticRegression(C=a.c, max_iter=1000))
else:
    model = RandomForestClassifier(n_estimators=a.n_estimators, random_state=a.seed, n_jobs=1)
model.fit(X, y)
joblib.dump(model, out_path("model.joblib"))
accuracy = float(model.score(X, y))
log_metrics({"train_accuracy": accuracy})
finish({"train_accuracy": accuracy, "model_kind": a.model}, {"model": "model.joblib"})
