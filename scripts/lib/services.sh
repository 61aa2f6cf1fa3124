# scripts/lib/services.sh: install Debian packages when missing and start
# throwaway servers on free loopback ports. Sourced by scripts/test and the
# benchmark scripts; every server started here is stopped by `stop_services`.

SPIKE_TMP="${SPIKE_TMP:-$(mktemp -d /tmp/spike.XXXXXX)}"
SPIKE_PIDS=()

# ensure_command COMMAND PACKAGE: apt-get install PACKAGE unless COMMAND exists.
ensure_command() {
  local command="$1" package="$2"
  if command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ]; then return 0; fi
  echo "== installing $package (for $command) from Debian's packages"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  if [ -z "${SPIKE_APT_UPDATED:-}" ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    SPIKE_APT_UPDATED=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
  command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] \
    || { echo "could not install $package" >&2; return 1; }
}

# free_port: prints a TCP port nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_redis: starts redis-server on a free port; sets REDIS_PORT and REDIS_URL.
start_redis() {
  ensure_command redis-server redis-server
  REDIS_PORT="$(free_port)"
  local dir="$SPIKE_TMP/redis-$REDIS_PORT"
  mkdir -p "$dir"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --protected-mode no --dir "$dir" --logfile "$dir/redis.log" --daemonize no &
  SPIKE_PIDS+=("$!")
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then
      echo "== redis-server $(redis-server --version | awk '{print $3}') on $REDIS_URL"
      return 0
    fi
    sleep 0.05
  done
  echo "redis-server did not start; see $dir/redis.log" >&2
  return 1
}

# stop_services: stops every server started above and removes their files.
stop_services() {
  local pid
  for pid in "${SPIKE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SPIKE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SPIKE_PIDS=()
  rm -rf "$SPIKE_TMP"
}
