"""Step 3: the model's root mean squared error on the points."""
import json
import math

import cairn_task
from common import read_points

args = cairn_task.inputs()
points = read_points(args["data"]["path"])
with open(args["model"]["path"]) as f:
    model = json.load(f)
rmse = math.sqrt(sum((y - (model["slope"] * x + model["intercept"])) ** 2 for x, y in points) / len(points))
cairn_task.set_outputs(rmse=rmse)
