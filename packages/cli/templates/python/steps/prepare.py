"""Step 1: `rows` noisy points around y = 3x + 1, seeded, written as points.csv."""
import csv
import random

import cairn_task

args = cairn_task.inputs()
rng = random.Random(args["seed"])
rows = args["rows"]
with open(cairn_task.artifact_path("points.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["x", "y"])
    for i in range(rows):
        x = i / rows
        w.writerow([x, 3 * x + 1 + (rng.random() - 0.5) * 0.4])
cairn_task.set_outputs(data=cairn_task.artifact("points.csv"), rows=rows)
