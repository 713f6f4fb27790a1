"""What the steps share: reading the points file (standard library only)."""
import csv


def read_points(path):
    with open(path, newline="") as f:
        return [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
