#!/usr/bin/env bash
# For ../shared/bench: runs a parley command against a fresh PostgreSQL database
# instead of the SQLite file the harness names. The database is named after that file,
# so the provisioning commands and the server of one run share it.
#   --sut 'benches/pg-wrap.sh target/release/parley serve'
#   --provision 'benches/pg-wrap.sh target/release/parley tenant apply {bundle}'
set -euo pipefail
PG=${PARLEY_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
name="parley_bench_$(printf %s "${DATABASE_URL:?}" | sha1sum | cut -c1-12)"
if ! psql "$PG/postgres" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    psql "$PG/postgres" -qc "CREATE DATABASE $name" 2>/dev/null || true
fi
# PARLEY_BENCH_PG_QUERY: connection parameters to try, e.g.
#   options=-c%20plan_cache_mode%3Dforce_generic_plan
export DATABASE_URL="$PG/$name${PARLEY_BENCH_PG_QUERY:+?$PARLEY_BENCH_PG_QUERY}"
exec "$@"
