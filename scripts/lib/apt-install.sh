# Sourced by the scripts that need a Debian package on the machine (start-redis.sh,
# setup-chromium.sh). The caller defines `log`.
#
#   apt_install COMMAND PACKAGE...   # installs the packages with apt-get unless COMMAND is on PATH
#
# Needs root or sudo. Parallel test files may install at the same time: apt's lock
# serializes them (waiting up to 10 minutes).
apt_install() {
  local command="$1"
  shift
  if command -v "$command" >/dev/null 2>&1; then return 0; fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      log "$command is not installed and we are not root; install it with: apt-get install -y $*"
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "$command is not installed and apt-get is not available; install $* with your package manager"
    exit 1
  fi
  log "installing $* with apt-get (once per machine)"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "$@" >&2
  command -v "$command" >/dev/null 2>&1 || { log "apt-get finished but $command is still missing"; exit 1; }
}
