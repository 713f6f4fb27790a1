#!/usr/bin/env bash
# Creates the bench-only Python venv (.venv-peers) with the peer engines that
# `pnpm bench:peers` times against Cairn (scripts/peers-requirements.txt). Kept apart
# from the test venv (.venv) so Prefect's dependencies never touch the tests' mlflow.
# Idempotent, like the script it runs: a venv whose requirements stamp matches is left as it is.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
CAIRN_VENV="${CAIRN_PEERS_VENV:-$root/.venv-peers}" \
  CAIRN_VENV_REQUIREMENTS="$root/scripts/peers-requirements.txt" \
  CAIRN_VENV_PURPOSE="Prefect, Apache Hamilton" \
  exec bash "$root/scripts/setup-python.sh"
