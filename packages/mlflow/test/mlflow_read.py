"""Reads what Cairn wrote, with MLflow's own Python client, for Cairn's tests.

Reads a JSON list of queries on stdin and prints a JSON list of answers, so a
test pays Python's start-up once. The server is MLFLOW_TRACKING_URI.

  [{"op": "get_run", "run_id": "..."},
   {"op": "search_runs", "experiment_ids": ["1"], "filter": "...", "order_by": ["metrics.loss ASC"]},
   {"op": "search_runs", "experiment_of_run": "...", "filter": "..."},  (that run's experiment)
   {"op": "metric_history", "run_id": "...", "key": "loss"},
   {"op": "list_artifacts", "run_id": "...", "path": null},
   {"op": "list_artifacts_tree", "run_id": "...", "path": null},
   {"op": "download_artifacts_under", "run_id": "...", "path": "logs", "dst": "/tmp/x"},
   {"op": "download_artifact", "run_id": "...", "path": "a/b.txt", "dst": "/tmp/x"},
   {"op": "experiment_by_name", "name": "..."},
   {"op": "model_versions", "name": "..."}]
"""

import base64
import json
import math
import os
import sys

from mlflow.tracking import MlflowClient


def number(value):
    # JSON has no NaN or Infinity.
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return value


def run_to_dict(run):
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "artifact_uri": run.info.artifact_uri,
        "params": run.data.params,
        "metrics": {k: number(v) for k, v in run.data.metrics.items()},
        "tags": run.data.tags,
    }


def walk(client, run_id, path):
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            yield from walk(client, run_id, f.path)
        else:
            yield f.path


def download(client, run_id, path, dst):
    local = client.download_artifacts(run_id, path, dst)
    result = {"local_path": local}
    if os.path.isfile(local):
        with open(local, "rb") as f:
            result["base64"] = base64.b64encode(f.read()).decode("ascii")
    return result


def answer(client, q):
    op = q["op"]
    if op == "get_run":
        return run_to_dict(client.get_run(q["run_id"]))
    if op == "search_runs":
        # experiment_of_run: the experiment get_run gives that run, asked in this process
        # rather than by the test in one reader process before another.
        ids = [client.get_run(q["experiment_of_run"]).info.experiment_id] if "experiment_of_run" in q else q["experiment_ids"]
        runs = client.search_runs(ids, filter_string=q.get("filter", ""), max_results=q.get("max_results", 1000), order_by=q.get("order_by"))
        return [run_to_dict(r) for r in runs]
    if op == "metric_history":
        return [
            {"key": m.key, "value": number(m.value), "step": m.step, "timestamp": m.timestamp}
            for m in client.get_metric_history(q["run_id"], q["key"])
        ]
    if op == "list_artifacts":
        return [
            {"path": f.path, "is_dir": f.is_dir, "file_size": f.file_size}
            for f in client.list_artifacts(q["run_id"], q.get("path"))
        ]
    if op == "list_artifacts_tree":
        # Every file's path under `path`, sorted, folders walked with list_artifacts: one process
        # for what took one per folder.
        return sorted(walk(client, q["run_id"], q.get("path")))
    if op == "download_artifact":
        return download(client, q["run_id"], q["path"], q["dst"])
    if op == "download_artifacts_under":
        # Each artifact list_artifacts lists under `path` (no deeper), downloaded: path -> base64.
        return {
            f.path: download(client, q["run_id"], f.path, q["dst"]).get("base64")
            for f in client.list_artifacts(q["run_id"], q.get("path"))
        }
    if op == "experiment_by_name":
        e = client.get_experiment_by_name(q["name"])
        return None if e is None else {"experiment_id": e.experiment_id, "name": e.name}
    if op == "model_versions":
        return [
            {"name": v.name, "version": v.version, "run_id": v.run_id, "source": v.source, "aliases": list(v.aliases or [])}
            for v in client.search_model_versions(f"name='{q['name']}'")
        ]
    raise ValueError(f"unknown op {op!r}")


def main():
    client = MlflowClient()
    out = []
    for q in json.load(sys.stdin):
        try:
            out.append({"ok": answer(client, q)})
        except Exception as e:  # noqa: BLE001 - reported to the test as data
            out.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
