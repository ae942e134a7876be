#!/bin/sh
# `make run-postgres`: the API (2 workers) and one runner per read model against a local
# PostgreSQL cluster. Uses the server at OUTCOMES_POSTGRES_HOST/PORT when it answers; else creates
# (once) and starts a development cluster in ./var/postgres on port 5433 (trust auth, loopback).
# Stop with Ctrl-C (or SIGTERM to this script): the API and the runners stop; the cluster keeps
# running (`runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D var/postgres/data stop`
# as root, plain `pg_ctl -D var/postgres/data stop` otherwise).
set -eu
BIN=${BIN:-.venv/bin}
export OUTCOMES_STORE=postgres
export OUTCOMES_POSTGRES_HOST=${OUTCOMES_POSTGRES_HOST:-127.0.0.1}
export OUTCOMES_POSTGRES_PORT=${OUTCOMES_POSTGRES_PORT:-5433}
export OUTCOMES_POSTGRES_USER=${OUTCOMES_POSTGRES_USER:-postgres}
export OUTCOMES_POSTGRES_DBNAME=${OUTCOMES_POSTGRES_DBNAME:-postgres}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
PATH=$PATH:${PGBIN:-/usr/bin}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if ! pg_isready -q -h "$OUTCOMES_POSTGRES_HOST" -p "$OUTCOMES_POSTGRES_PORT"; then
  DIR=$(pwd)/var/postgres
  if [ ! -d "$DIR/data" ]; then
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    as_pg initdb -D "$DIR/data" --auth=trust -U postgres >/dev/null
  fi
  as_pg pg_ctl -D "$DIR/data" -l "$DIR/log" -w -o \
    "-c listen_addresses=127.0.0.1 -p $OUTCOMES_POSTGRES_PORT -c unix_socket_directories=$DIR" start
fi

"$BIN/outcomes" db init
RUNNERS=""
for view in episodes stages audit cohort fold-inputs caseload access-log; do
  "$BIN/outcomes" projections run "$view" & RUNNERS="$RUNNERS $!"
done
"$BIN/outcomes" serve --workers "${WORKERS:-2}" & SERVER=$!
# sh runs a trap only once its foreground command ends: serve runs in the background, so a
# SIGTERM to this script reaches the trap at once and stops the API and the runners
trap 'kill $SERVER $RUNNERS 2>/dev/null; wait' EXIT INT TERM
wait $SERVER
