"""Step 1, download: loads a data set scikit-learn ships (no network needed) and writes it as raw.csv."""
import argparse

from common import finish, log_metrics, out_path

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--dataset", default="breast_cancer", choices=["breast_cancer", "wine"])
a = p.parse_args()

from sklearn import datasets  # noqa: E402

load = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}[a.dataset]
frame = load(as_frame=True).frame  # the features, then "target"
frame.to_csv(out_path("raw.csv"), index=False)
log_metrics({"rows": len(frame)})
finish({"rows": len(frame), "columns": frame.shape[1] - 1}, {"data": "raw.csv"})
