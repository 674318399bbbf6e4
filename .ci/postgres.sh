#!/usr/bin/env bash
# A real PostgreSQL server on 127.0.0.1 for the distributed-worker tests, from Debian's packages.
# Idempotent: installs the server only if missing, initialises and starts a private cluster only
# if nothing answers on the port, then makes sure role `hpo` and database `hpo` exist.
# The SQLAlchemy URL is the last line of stdout; everything else goes to stderr.
#
#   bash .ci/postgres.sh          # start (or reuse) and print the URL
#   bash .ci/postgres.sh stop     # stop the server on HPO_PG_PORT
#
# Env: HPO_PG_PORT (55432: not 5432, never collides with a system server), HPO_PG_PASSWORD
# (hpo-test-secret), HPO_PG_DATA (data dir, /var/tmp/hpo-pg-PORT, owned by postgres when root).
set -euo pipefail

PORT=${HPO_PG_PORT:-55432}
PASSWORD=${HPO_PG_PASSWORD:-hpo-test-secret}
DATA=${HPO_PG_DATA:-/var/tmp/hpo-pg-$PORT}
SOCKDIR=/tmp
WAIT_S=30

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

case "${1:-start}" in
  start | stop) ;;
  *) die "usage: $0 [start|stop]" ;;
esac

# Server binaries: the newest /usr/lib/postgresql/N/bin that has initdb (the client package alone
# creates that directory with psql but no server).
bin_dir() {
  local d v best="" bestv=0
  for d in /usr/lib/postgresql/*/bin; do
    v=$(basename "$(dirname "$d")")
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ "${v%%.*}" -gt "$bestv" ] 2>/dev/null; then
      best=$d bestv=${v%%.*}
    fi
  done
  echo "$best"
}

# initdb and pg_ctl refuse to run as root: run them as `postgres`, from a directory it can read.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

BIN=$(bin_dir)

if [ "${1:-start}" = stop ]; then
  # The server on PORT names its data dir in its socket lock file (line 2); else use DATA.
  lock="$SOCKDIR/.s.PGSQL.$PORT.lock"
  dir=$DATA
  if [ -f "$lock" ]; then dir=$(sed -n 2p "$lock"); fi
  if [ -z "$BIN" ] || [ ! -f "$dir/postmaster.pid" ]; then
    log "no server running on port $PORT"
    exit 0
  fi
  as_pg "$BIN/pg_ctl" -D "$dir" -m fast -w -t "$WAIT_S" stop >&2
  exit 0
fi

if [ -z "$BIN" ]; then
  log "installing postgresql with apt-get (quiet; log in /tmp/hpo-pg-apt.log)"
  SUDO=""  # a contributor who is not root installs through sudo
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "postgresql is not installed and neither root nor sudo can install it"
    SUDO="sudo"
  fi
  if ! { $SUDO apt-get update -qq &&
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; } \
    >/tmp/hpo-pg-apt.log 2>&1; then
    tail -n 20 /tmp/hpo-pg-apt.log >&2
    die "apt-get install postgresql failed"
  fi
  BIN=$(bin_dir)
  [ -n "$BIN" ] || die "postgresql installed but no initdb under /usr/lib/postgresql/*/bin"
fi

ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; }  # 0 up, 1 starting, 2 no answer

state=0
ready || state=$?
if [ "$state" = 2 ] || [ "$state" = 3 ]; then
  if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initdb $DATA"
    mkdir -p "$DATA"
    chmod 700 "$DATA"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$DATA"; fi
    # Local socket: peer (the OS user that ran initdb is the superuser, no password stored).
    # TCP: scram-sha-256 for everyone.
    as_pg "$BIN/initdb" -D "$DATA" --auth-local=peer --auth-host=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  log "starting server on 127.0.0.1:$PORT (data $DATA, log $DATA/server.log)"
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -W \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCKDIR -c max_connections=200" start >&2
fi

# Bounded wait until it accepts connections.
for _ in $(seq 1 "$WAIT_S"); do
  ready && break
  sleep 1
done
if ! ready; then
  [ -f "$DATA/server.log" ] && tail -n 20 "$DATA/server.log" >&2
  die "PostgreSQL did not accept connections on 127.0.0.1:$PORT within ${WAIT_S}s"
fi

# Superuser over the local socket: the OS user that owns the cluster (postgres when root).
# PGPASSWORD covers clusters made by an older version of this script (password auth locally).
super=postgres
if [ "$(id -u)" != 0 ]; then super=$(id -un); fi
admin() {
  PGPASSWORD=$PASSWORD as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$PORT" \
    -U "$super" -d postgres "$@"
}
# The password goes through a psql variable on stdin: quoted safely, never on a command line.
admin -v pw="$PASSWORD" >/dev/null <<'SQL'
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hpo') AS missing \gset
\if :missing
  CREATE ROLE hpo LOGIN CREATEDB;
\endif
ALTER ROLE hpo WITH LOGIN CREATEDB PASSWORD :'pw';
SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = 'hpo') AS missing \gset
\if :missing
  CREATE DATABASE hpo OWNER hpo;
\endif
SQL

# The password URL-encoded, so any character is safe in the URL.
urlencode() {
  local LC_ALL=C s=$1 out="" c i  # byte by byte
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
      [a-zA-Z0-9.~_-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  echo "$out"
}
echo "postgresql+psycopg2://hpo:$(urlencode "$PASSWORD")@127.0.0.1:$PORT/hpo"
