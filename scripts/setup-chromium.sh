#!/usr/bin/env bash
# Makes sure Debian's headless-capable `chromium` is installed (the report tests render HTML
# reports in it through playwright-core), installing it with apt-get when missing (needs root or
# sudo), as scripts/start-redis.sh does for redis. Prints the browser's path on stdout.
#
#   bash scripts/setup-chromium.sh
set -euo pipefail

log() { echo "setup-chromium: $*" >&2; }
# shellcheck source=lib/apt-install.sh
source "$(dirname "$0")/lib/apt-install.sh"

find_chromium() {
  for candidate in /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  command -v chromium 2>/dev/null || return 1
}

if path="$(find_chromium)"; then echo "$path"; exit 0; fi

apt_install chromium chromium fonts-dejavu-core
path="$(find_chromium)" || { log "apt-get finished but chromium is still missing"; exit 1; }
echo "$path"
