#!/usr/bin/env bash
# What the PostgreSQL server does for parley's messages: one fixed-rate run of
# ../shared/bench/run.sh through benches/pg-wrap.sh, and over WINDOW seconds in its
# middle the server's processes' CPU (from /proc), its commits and buffer hits
# (pg_stat_database) and each table's inserted, updated (HOT among them) and deleted
# rows (pg_stat_user_tables), all per message stored; and the CPU a message of parley
# and of the harness (load generator and mock Graph API) beside the server's, with the
# rate the three together allow on this machine's cores.
#   benches/pg-server.sh RATE BIN [ENV=VALUE...]
#   e.g. benches/pg-server.sh 3000 target/release/parley
# WINDOW (default 10) sets the measured part, SETTLE (default 12) the seconds between
# the load's first 2 s of rows and the window (parley's upkeep analyzes the hot tables
# 1, 3, 7 and 15 s after it starts, for a young database's statistics: about a tenth
# of the server's CPU in a window that holds one), SECS (default SETTLE + WINDOW + 8)
# the run's length;
# PG_SQL, if set, is run on the bench database once a tenant is stored, before the
# load (an experiment on that database only). The CPU is that of every process named
# postgres on this machine and the WAL figures are the cluster's: run it on a server
# that serves nothing else. The statistics views lag by up to a second, a few per cent
# of a 10 s window.
set -euo pipefail
RATE=${1:?RATE}; BIN=${2:?BIN}; shift 2
WINDOW=${WINDOW:-10} SETTLE=${SETTLE:-12}
SECS=${SECS:-$((SETTLE + WINDOW + 8))}
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=${PARLEY_BENCH_DIR:-$HERE/../../shared/bench}
PG=${PARLEY_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
OUT=$(mktemp -d /tmp/pg-server.XXXXXX)
env "$@" "$BENCH/run.sh" --label pg --rate "$RATE" --secs "$SECS" --out "$OUT/run.json" \
    --sut "$HERE/pg-wrap.sh $BIN serve" \
    --provision "$HERE/pg-wrap.sh $HERE/fast-number.sh $BIN tenant apply {bundle}" \
    -- --noise-retries 0 >"$OUT/run.log" 2>&1 &
run=$!
# Waits for the run's database to hold more than $2 rows in table $1, and names it in db.
db=""
await_rows() {
    for _ in $(seq 1200); do
        db=$(psql "$PG/postgres" -qtAc "SELECT datname FROM pg_stat_activity WHERE datname LIKE 'parley_bench_%' LIMIT 1" || true)
        if [[ -n "$db" ]] && [[ $(psql "$PG/$db" -qtAc "SELECT count(*) FROM $1" 2>/dev/null || echo 0) -gt $2 ]]; then return 0; fi
        sleep 0.25
    done
    echo "pg-server.sh: the run never reached the database; see $OUT/run.log" >&2
    exit 1
}
if [[ -n "${PG_SQL:-}" ]]; then
    await_rows tenants 0
    psql "$PG/$db" -qc "$PG_SQL"
fi
await_rows inbound_messages $((RATE * 2))
sleep "$SETTLE"
# CPU ticks of the processes named $1 (every thread: utime + stime of the process).
ticks() { local t=0; for p in $(pgrep -x "$1"); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
sut=$(basename "$BIN" | cut -c1-15)
all_ticks() { echo "$(ticks postgres) $(ticks "$sut") $(( $(ticks loadgen) + $(ticks mock-graph) ))"; }
snap() { psql "$PG/$db" -qtAF' ' -c "SELECT 'db', xact_commit, blks_hit, blks_read, tup_inserted, tup_updated, 0, tup_deleted FROM pg_stat_database WHERE datname = current_database() UNION ALL SELECT relname, 0, 0, 0, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables UNION ALL SELECT 'wal', wal_records, wal_fpi, wal_bytes, 0, 0, 0, 0 FROM pg_stat_wal UNION ALL SELECT 'messages', (SELECT count(*) FROM inbound_messages), 0, 0, 0, 0, 0, 0"; }
s0=$(snap); t0=$(all_ticks); sleep "$WINDOW"; t1=$(all_ticks); s1=$(snap)
wait "$run" || echo "pg-server.sh: the run failed; see $OUT/run.log" >&2
python3 - "$t0" "$t1" "$WINDOW" "$(getconf CLK_TCK)" "$(nproc)" <<PY
import sys
t0, t1 = [list(map(int, a.split())) for a in sys.argv[1:3]]
win, hz, cores = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def parse(s):
    return {l.split()[0]: list(map(int, l.split()[1:])) for l in s.strip().splitlines()}
a, b = parse("""$s0"""), parse("""$s1""")
d = {k: [y - x for x, y in zip(a[k], b[k])] for k in b if k in a}
n = d["messages"][0]
print(f"messages stored in {win:.0f} s: {n} ({n / win:.0f}/s)")
if n == 0: sys.exit(1)
us = [(b - a) / hz / n * 1e6 for a, b in zip(t0, t1)]
print(f"server CPU: {us[0] * n / win / 1e4:.0f} % of a core, {us[0]:.0f} µs a message")
print(f"CPU a message: server {us[0]:.0f}, parley {us[1]:.0f}, harness {us[2]:.0f} µs; "
      f"together {sum(us):.0f} µs, at most ~{cores * 1e6 / sum(us):.0f} msg/s on {cores} cores")
db = d["db"]
print(f"commits {db[0] / n:.3f}, buffer hits {db[1] / n:.1f}, reads {db[2] / n:.2f} a message")
w = d["wal"]
print(f"WAL: {w[0] / n:.1f} records, {w[1] / n:.2f} full-page images, {w[2] / n:.0f} bytes a message")
print(f"{'table':<24}{'ins':>8}{'upd':>8}{'hot':>8}{'del':>8}   (a message)")
for k, v in sorted(d.items()):
    if k in ("db", "messages", "wal") or not any(v[3:]): continue
    print(f"{k:<24}{v[3] / n:8.3f}{v[4] / n:8.3f}{v[5] / n:8.3f}{v[6] / n:8.3f}")
PY
grep -E "^(delivered|result|FAIL|ok)|duplicate" "$OUT/run.log" | tail -3 || true
echo "run log: $OUT/run.log"
