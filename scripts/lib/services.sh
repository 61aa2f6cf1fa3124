# scripts/lib/services.sh: install Debian packages when missing and start
# throwaway servers on free loopback ports. Sourced by scripts/test and the
# benchmark scripts; every server started here is stopped by `stop_services`.

SPIKE_TMP="${SPIKE_TMP:-$(mktemp -d /tmp/spike.XXXXXX)}"
chmod 755 "$SPIKE_TMP" # PostgreSQL runs as its own user and must reach its data
SPIKE_PIDS=()
SPIKE_PG_DIRS=()

# apt_install PACKAGE: installs a Debian package (apt-get update once per run).
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  if [ -z "${SPIKE_APT_UPDATED:-}" ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    SPIKE_APT_UPDATED=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

# ensure_command COMMAND PACKAGE: apt-get install PACKAGE unless COMMAND exists.
ensure_command() {
  local command="$1" package="$2"
  if command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ]; then return 0; fi
  echo "== installing $package (for $command) from Debian's packages"
  apt_install "$package"
  command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] \
    || { echo "could not install $package" >&2; return 1; }
}

# free_port: prints a TCP port nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT: waits up to 10 s until something listens on 127.0.0.1:PORT.
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
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
  if wait_port "$REDIS_PORT"; then
    echo "== redis-server $(redis-server --version | awk '{print $3}') on $REDIS_URL"
    return 0
  fi
  echo "redis-server did not start; see $dir/redis.log" >&2
  return 1
}

# start_redis_cluster: starts six redis-server --cluster-enabled yes on free
# ports and joins them into three primaries with one replica each
# (redis-cli --cluster create); sets REDIS_CLUSTER_URL
# (redis+cluster://127.0.0.1:P1,…) once every slot is served.
start_redis_cluster() {
  ensure_command redis-server redis-server
  ensure_command redis-cli redis-tools
  local addresses=() port bus dir
  for _ in 1 2 3 4 5 6; do
    port="$(free_port)"; bus="$(free_port)"
    dir="$SPIKE_TMP/redis-cluster-$port"
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --protected-mode no \
      --cluster-enabled yes --cluster-port "$bus" --cluster-node-timeout 1000 \
      --dir "$dir" --logfile "$dir/redis.log" --daemonize no &
    SPIKE_PIDS+=("$!")
    wait_port "$port" || { echo "redis-server did not start; see $dir/redis.log" >&2; return 1; }
    addresses+=("127.0.0.1:$port")
  done
  redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes >"$SPIKE_TMP/cluster-create.log" 2>&1 \
    || { cat "$SPIKE_TMP/cluster-create.log" >&2; return 1; }
  local address ok
  for _ in $(seq 1 200); do
    ok=1
    for address in "${addresses[@]}"; do
      redis-cli -p "${address##*:}" CLUSTER INFO | grep -q '^cluster_state:ok' || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  [ "$ok" = 1 ] || { echo "the Redis Cluster did not become healthy" >&2; return 1; }
  REDIS_CLUSTER_URL="redis+cluster://$(IFS=,; echo "${addresses[*]}")"
  echo "== Redis Cluster (3 primaries, 3 replicas) on $REDIS_CLUSTER_URL"
}

# as_postgres_user COMMAND...: PostgreSQL refuses to run as root; as root,
# run its tools as the `postgres` user the Debian package creates.
as_postgres_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# start_postgres [SETTING...]: initdb in a temp dir and start PostgreSQL on a
# free port (trust auth, loopback only); sets DATABASE_URL. Extra arguments
# are `-c name=value` server settings.
start_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    ensure_command psql postgresql-client
    echo "== installing postgresql from Debian's packages"
    apt_install postgresql
  fi
  ensure_command psql postgresql-client
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  PG_PORT="$(free_port)"
  local dir="$SPIKE_TMP/postgres-$PG_PORT"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
  as_postgres_user "$bin/initdb" -D "$dir/data" -U spike --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  local options="-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 $*"
  as_postgres_user "$bin/pg_ctl" -D "$dir/data" -o "$options" -l "$dir/postgres.log" -w -t 30 start >/dev/null \
    || { cat "$dir/postgres.log" >&2; return 1; }
  SPIKE_PG_DIRS+=("$bin|$dir/data")
  DATABASE_URL="postgres://spike@127.0.0.1:$PG_PORT/postgres"
  echo "== $("$bin/postgres" --version) on $DATABASE_URL"
}

# stop_services: stops every server started above and removes their files.
stop_services() {
  local pid entry
  for pid in "${SPIKE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SPIKE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SPIKE_PIDS=()
  for entry in "${SPIKE_PG_DIRS[@]}"; do
    as_postgres_user "${entry%%|*}/pg_ctl" -D "${entry#*|}" -m immediate stop >/dev/null 2>&1 || true
  done
  SPIKE_PG_DIRS=()
  rm -rf "$SPIKE_TMP"
}
