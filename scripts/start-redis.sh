#!/usr/bin/env bash
# Starts a throwaway redis-server on 127.0.0.1 in the background, with no
# persistence, and prints its port on stdout (messages go to stderr).
#
#   bash scripts/start-redis.sh            # a free port
#   bash scripts/start-redis.sh 6390       # that port
#   bash scripts/start-redis.sh --install  # only make sure redis-server is installed
#
# Stop it with: kill "$(cat /tmp/cairn-redis-PORT.pid)"
# Installs Debian's redis-server with apt-get when missing (needs root or sudo).
set -euo pipefail

log() { echo "start-redis: $*" >&2; }

ensure_redis_server() {
  if command -v redis-server >/dev/null 2>&1; then return 0; fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      log "redis-server is not installed and we are not root; install it with: apt-get install -y redis-server"
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "redis-server is not installed and apt-get is not available; install redis-server with your package manager"
    exit 1
  fi
  log "installing redis-server with apt-get (once per machine)"
  # Other processes (a parallel test file) may install at the same time; apt's lock serializes them.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 redis-server >&2
  # Debian starts a system-wide redis on 6379 after install; we never use it, so leave it as it is.
  command -v redis-server >/dev/null 2>&1 || { log "apt-get finished but redis-server is still missing"; exit 1; }
}

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ "${1:-}" = "--install" ]; then
  ensure_redis_server
  exit 0
fi

ensure_redis_server

port="${1:-}"
if [ -z "$port" ]; then
  for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 40000))
    if port_is_free "$candidate"; then port="$candidate"; break; fi
  done
  [ -n "$port" ] || { log "found no free port"; exit 1; }
elif ! [[ "$port" =~ ^[0-9]+$ ]]; then
  log "expected a port number, got '$port'"
  exit 1
elif ! port_is_free "$port"; then
  log "port $port is already in use; give another or none"
  exit 1
fi

pidfile="/tmp/cairn-redis-$port.pid"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$pidfile" --logfile "/tmp/cairn-redis-$port.log" >&2

for _ in $(seq 1 100); do
  if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
    log "redis-server ready on 127.0.0.1:$port (pid $(cat "$pidfile" 2>/dev/null || echo '?'); stop: kill \$(cat $pidfile))"
    echo "$port"
    exit 0
  fi
  sleep 0.1
done
log "redis-server did not answer on port $port; see /tmp/cairn-redis-$port.log"
exit 1
