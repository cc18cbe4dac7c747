#!/usr/bin/env bash
# A PostgreSQL server for the tests of `kaggle-kit tune --storage postgresql://...`, on loopback only.
# Installs Debian's postgresql when missing, starts a server as the postgres user (initdb refuses root) with a
# random password, creates the test database, and prints its URL on stdout (everything else goes to stderr):
#   export KAGGLE_KIT_TEST_POSTGRES="$(bash scripts/start-postgres.sh)"
# A server this script started before is reused. Stop it with: bash scripts/start-postgres.sh stop
set -euo pipefail
STATE="${KAGGLE_KIT_POSTGRES_DIR:-/tmp/kaggle-kit-postgres}"
PORT="${KAGGLE_KIT_POSTGRES_PORT:-55432}"
DB=kaggle_kit_test

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing Debian's postgresql" >&2
    apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
fi
BIN="$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"

as_owner() {  # the server's commands run as postgres when we are root, as ourselves otherwise
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = stop ]; then
    as_owner "$BIN/pg_ctl" -D "$STATE/data" stop -m fast >&2 || true
    exit 0
fi

mkdir -p "$STATE"
[ "$(id -u)" = 0 ] && chown postgres "$STATE"
if [ ! -f "$STATE/password" ]; then
    as_owner sh -c "umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > '$STATE/password'"
fi
PASSWORD="$(cat "$STATE/password")"
if [ ! -f "$STATE/data/PG_VERSION" ]; then
    as_owner "$BIN/initdb" -D "$STATE/data" -U postgres --pwfile="$STATE/password" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 >&2
fi
if ! as_owner "$BIN/pg_ctl" -D "$STATE/data" status >/dev/null 2>&1; then
    as_owner "$BIN/pg_ctl" -D "$STATE/data" -l "$STATE/server.log" -w start \
        -o "-p $PORT -k $STATE -c listen_addresses=127.0.0.1 -c max_connections=200" >&2
fi
export PGPASSWORD="$PASSWORD"
if ! "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
    "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB" >&2
fi
echo "postgresql://postgres:$PASSWORD@127.0.0.1:$PORT/$DB"
