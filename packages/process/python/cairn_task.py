"""Cairn task helper for Python scripts and notebooks run by Cairn. No dependencies.

    import cairn_task
    inputs = cairn_task.inputs()                       # dict; artifacts are dicts with an absolute "path"
    with open(cairn_task.artifact_path("model.pkl"), "wb") as f:
        pickle.dump(model, f)
    cairn_task.set_outputs({"model": cairn_task.artifact("model.pkl"), "accuracy": 0.93})

Cairn puts this folder on PYTHONPATH of the processes it starts. The script's own
mlflow calls log into the task's run: Cairn sets MLFLOW_RUN_ID, MLFLOW_TRACKING_URI
and MLFLOW_EXPERIMENT_ID when the flow is tracked by an MLflow server.
"""

import json
import os
import re

__all__ = ["inputs", "set_outputs", "artifact_path", "artifact", "run_id"]

_inputs = None


def _env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            "%s is not set: this code is meant to run as a Cairn task (script(), shell() or notebook()), which sets it." % name
        )
    return value


def inputs():
    """The task's inputs as a dict (read once). Artifacts are dicts with an absolute "path"."""
    global _inputs
    if _inputs is None:
        with open(_env("CAIRN_INPUTS"), encoding="utf-8") as f:
            _inputs = json.load(f)
    return _inputs


def run_id():
    """The task's run id."""
    return os.environ.get("CAIRN_RUN_ID", "")


def _default(value):
    # numpy / pandas scalars and arrays, without importing them
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(
        "output value of type %s is not JSON data; convert it, or write it to artifact_path() and output artifact(name)"
        % type(value).__name__
    )


def set_outputs(outputs=None, **more):
    """Records outputs (a dict and/or keywords); several calls merge. Values must be JSON data or artifact(name)."""
    merged = {}
    path = _env("CAIRN_OUTPUTS")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            merged = json.load(f)
    merged.update(outputs or {})
    merged.update(more)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        # allow_nan=False: NaN and Infinity are not JSON; fail here, with the Python stack, not later in Cairn.
        json.dump(merged, f, default=_default, allow_nan=False)
    os.replace(tmp, path)


def _unstorable_on_mlflow(name):
    """Why an MLflow server would refuse or rename the artifact path `name` (unstorableOnMlflow in @cairn/core), or None."""
    if re.search("[\x00-\x1f\x7f-\x9f]", name):
        return "holds a control character, which an MLflow server drops, rewrites or refuses"
    if "#" in name:
        return 'holds "#", which an MLflow server refuses'
    if re.search(r"%[0-9A-Fa-f]{2}", name):
        return 'holds "%" and two hex digits, which an MLflow server decodes (storing the file under another name)'
    if re.search(r"[?;]$|;\?", name):
        return 'ends with "?" or ";" (or has ";" before "?"), which an MLflow server drops'
    return None


def _safe(name):
    """Cairn's one rule for a task's artifact names (taskArtifactPath in @cairn/core), returned with "/" between parts."""
    reason = None
    if not isinstance(name, str):
        reason = "is not a string"
    elif name == "":
        reason = "is empty"
    elif "\0" in name:
        reason = "contains a NUL character"
    elif re.match(r"^[\\/]{2}", name):
        reason = "is a UNC path"
    elif re.match(r"^[\\/]", name):
        reason = "is an absolute path"
    elif re.match(r"^[A-Za-z]:", name):
        reason = "starts with a drive"
    else:
        for part in re.split(r"[\\/]", name):
            if part in ("..", ".", ""):
                reason = 'climbs out with ".."' if part == ".." else 'has a "." or empty part'
                break
        if reason is None and re.split(r"[\\/]", name)[0].lower() == "cairn":
            reason = 'is in "cairn/", the folder of Cairn\'s own record of the run, where it would be overwritten'
        if reason is None:
            reason = _unstorable_on_mlflow(name)
    if reason:
        raise ValueError(
            "artifact name %r %s; it must be a relative path inside the artifacts folder, "
            'with "/" between folders and no "..", "." or empty parts, like "data.csv" or "reports/summary.md"' % (name, reason)
        )
    return "/".join(re.split(r"[\\/]", name))


def artifact_path(name):
    """Absolute path for `name` in the task's artifacts folder (parent folders created)."""
    path = os.path.join(_env("CAIRN_ARTIFACTS"), *_safe(name).split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def artifact(name):
    """The output value for a file written at artifact_path(name); Cairn turns it into an Artifact."""
    return {"$artifact": _safe(name)}
