#!/usr/bin/env bash
# A real PostgreSQL server on 127.0.0.1 for the distributed-worker tests, from Debian's
# packages; idempotent. Prints the SQLAlchemy URL as its last line. `.ci/postgres.sh stop`.
set -euo pipefail
PORT=${HPO_PG_PORT:-55432}          # not 5432: never collides with a system server
PASSWORD=${HPO_PG_PASSWORD:-hpo-test-secret}
DATA=${HPO_PG_DATA:-/var/tmp/hpo-pg}
URL="postgresql+psycopg2://hpo:${PASSWORD}@127.0.0.1:${PORT}/hpo"

bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ -z "$(bin_dir)" ]; then
  echo "installing postgresql (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
BIN=$(bin_dir)

if [ "${1:-}" = "stop" ]; then
  as_pg "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2 || true
  exit 0
fi

if ! as_pg "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
    pwfile=$(mktemp)
    echo "$PASSWORD" >"$pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
    as_pg "$BIN/initdb" -D "$DATA" -A scram-sha-256 -U postgres --pwfile="$pwfile" >&2
    rm -f "$pwfile"
  fi
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k /tmp -c max_connections=200" start >&2
fi
for _ in $(seq 1 30); do  # bounded wait: 30 s
  as_pg "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
  sleep 1
done
as_pg "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || { echo "postgres did not start" >&2; exit 1; }

export PGPASSWORD=$PASSWORD
psql() { command psql -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql -d postgres -c "select 1 from pg_roles where rolname='hpo'")" != 1 ]; then
  psql -d postgres -c "create role hpo login createdb password '${PASSWORD}'" >&2
fi
if [ "$(psql -d postgres -c "select 1 from pg_database where datname='hpo'")" != 1 ]; then
  psql -d postgres -c "create database hpo owner hpo" >&2
fi
echo "$URL"
