#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Brings up the local PostgreSQL server for the tests, makes pgvector available,
# and creates the test database with the vector extension. Idempotent.
# Prints nothing for the caller to parse; .ci/run exports TESSERA_TEST_DATABASE_URL itself.
# Env: PG_MAJOR (15), PG_HOST (127.0.0.1), PG_PORT (5432), TESSERA_TEST_DB (tessera_test).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

PG_MAJOR="${PG_MAJOR:-15}"
PG_HOST="${PG_HOST:-127.0.0.1}"
PG_PORT="${PG_PORT:-5432}"
TEST_DB="${TESSERA_TEST_DB:-tessera_test}"
export PG_URL_ADMIN="postgres://postgres@$PG_HOST:$PG_PORT/postgres"
TEST_URL="postgres://postgres@$PG_HOST:$PG_PORT/$TEST_DB"

section "starting PostgreSQL $PG_MAJOR on $PG_HOST:$PG_PORT"
if pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
  info "already accepting connections"
else
  if ! pg_lsclusters -h 2>/dev/null | awk -v v="$PG_MAJOR" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    info "pg_ctlcluster --skip-systemctl-redirect $PG_MAJOR main start"
    pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" main start
  fi
  for _ in $(seq 1 60); do
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break
    sleep 1
  done
  pg_isready -h "$PG_HOST" -p "$PG_PORT" || {
    tail -n 30 "/var/log/postgresql/postgresql-$PG_MAJOR-main.log" >&2 || true
    die "PostgreSQL $PG_MAJOR did not become ready on $PG_HOST:$PG_PORT within 60s"
  }
fi
info "server: $(psql "$PG_URL_ADMIN" -X -v ON_ERROR_STOP=1 -Atc 'SHOW server_version')"

section "installing pgvector"
"$here/pgvector.sh"

section "preparing test database $TEST_DB"
if [[ "$(psql "$PG_URL_ADMIN" -X -v ON_ERROR_STOP=1 -Atc \
  "SELECT 1 FROM pg_database WHERE datname = '$TEST_DB'")" == 1 ]]; then
  info "database $TEST_DB exists"
else
  info "creating database $TEST_DB"
  psql "$PG_URL_ADMIN" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$TEST_DB\""
fi
PGOPTIONS="-c client_min_messages=warning" psql "$TEST_URL" -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION IF NOT EXISTS vector"
info "vector $(psql "$TEST_URL" -X -v ON_ERROR_STOP=1 -Atc \
  "SELECT extversion FROM pg_extension WHERE extname = 'vector'") in $TEST_DB; probe: $(psql "$TEST_URL" -X -v ON_ERROR_STOP=1 -Atc "SELECT '[1,2,3]'::vector")"
