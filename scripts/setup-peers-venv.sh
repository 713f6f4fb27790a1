#!/usr/bin/env bash
# Creates the bench-only Python venv (.venv-peers) with the peer engines that
# `pnpm bench:peers` times against Cairn (scripts/peers-requirements.txt). Kept apart
# from the test venv (.venv) so Prefect's dependencies never touch the tests' mlflow.
# Idempotent: a venv whose requirements stamp matches is left as it is.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CAIRN_PEERS_VENV:-$root/.venv-peers}"
req="$root/scripts/peers-requirements.txt"
stamp="$venv/.cairn-requirements"
python="${PYTHON:-python3}"

if [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  exit 0
fi
echo "cairn: setting up the peer-bench venv in $venv (Prefect, Apache Hamilton; a few minutes the first time)" >&2
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$req"
cp "$req" "$stamp"
