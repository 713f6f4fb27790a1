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
# shellcheck source=lib/apt-install.sh
source "$(dirname "$0")/lib/apt-install.sh"

# Debian starts a system-wide redis on 6379 after install; we never use it, so leave it as it is.
ensure_redis_server() { apt_install redis-server redis-server; }

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
