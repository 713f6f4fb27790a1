"""Step 2, process: a stratified train/test split, plus score.csv (test features without the label) to score with the registered model."""
import argparse

from common import finish, log_metrics, out_path

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--file-path", required=True)
p.add_argument("--test-size", type=float, default=0.25)
p.add_argument("--seed", type=int, default=42)
p.add_argument("--score-rows", type=int, default=20)
a = p.parse_args()

import pandas as pd  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

df = pd.read_csv(a.file_path)
train, test = train_test_split(df, test_size=a.test_size, random_state=a.seed, stratify=df["target"])
train.to_csv(out_path("train.csv"), index=False)
test.to_csv(out_path("test.csv"), index=False)
test.drop(columns="target").head(a.score_rows).to_csv(out_path("score.csv"), index=False)
log_metrics({"train_rows": len(train), "test_rows": len(test)})
finish({"train_rows": len(train), "test_rows": len(test)}, {"train": "train.csv", "test": "test.csv", "score": "score.csv"})
