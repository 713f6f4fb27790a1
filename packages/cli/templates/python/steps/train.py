"""Step 2: a line fitted to the points (least squares, with an optional ridge penalty on the slope)."""
import json

import cairn_task
from common import read_points

args = cairn_task.inputs()
points = read_points(args["data"]["path"])
n = len(points)
mx = sum(x for x, _ in points) / n
my = sum(y for _, y in points) / n
sxy = sum((x - mx) * (y - my) for x, y in points)
sxx = sum((x - mx) ** 2 for x, _ in points)
slope = sxy / (sxx + args["ridge"])
intercept = my - slope * mx
with open(cairn_task.artifact_path("model.json"), "w") as f:
    json.dump({"slope": slope, "intercept": intercept}, f)
print(f"fitted y = {slope:.3f} x + {intercept:.3f}")
cairn_task.set_outputs(model=cairn_task.artifact("model.json"), slope=slope, intercept=intercept)
