#!/usr/bin/env bash
# Creates the project-local Python venv (.venv) with the pinned packages in
# scripts/python-requirements.txt. Idempotent: a venv whose requirements stamp
# matches is left as it is, so re-runs cost a second. Other venvs of the project
# (scripts/setup-peers-venv.sh) reuse it with CAIRN_VENV, CAIRN_VENV_REQUIREMENTS and
# CAIRN_VENV_PURPOSE.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CAIRN_VENV:-$root/.venv}"
req="${CAIRN_VENV_REQUIREMENTS:-$root/scripts/python-requirements.txt}"
stamp="$venv/.cairn-requirements"
python="${PYTHON:-python3}"

if [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  exit 0
fi
echo "cairn: setting up Python venv in $venv (${CAIRN_VENV_PURPOSE:-mlflow and friends}; a few minutes the first time)" >&2
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$req"
cp "$req" "$stamp"
