#!/usr/bin/env bash
# Makes sure Debian's headless-capable `chromium` is installed (the report tests render HTML
# reports in it through playwright-core), installing it with apt-get when missing (needs root or
# sudo), as scripts/start-redis.sh does for redis. Prints the browser's path on stdout.
#
#   bash scripts/setup-chromium.sh
set -euo pipefail

log() { echo "setup-chromium: $*" >&2; }

find_chromium() {
  for candidate in /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  command -v chromium 2>/dev/null || return 1
}

if path="$(find_chromium)"; then echo "$path"; exit 0; fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    log "chromium is not installed and we are not root; install it with: apt-get install -y chromium"
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "chromium is not installed and apt-get is not available; install chromium with your package manager"
  exit 1
fi
log "installing chromium with apt-get (once per machine)"
# Parallel test files may install at the same time; apt's lock serializes them.
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 chromium fonts-dejavu-core >&2
path="$(find_chromium)" || { log "apt-get finished but chromium is still missing"; exit 1; }
echo "$path"
