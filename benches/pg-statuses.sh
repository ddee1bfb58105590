#!/usr/bin/env bash
# How many of the outbox's delivery-status updates PostgreSQL writes as HOT updates
# (no index entries): one fixed-rate run of benches/pg-server.sh (its replies all sent),
# then a `delivered` and a `read` status for every reply, in reply order, 200 to a
# transaction, through the update parley makes for a status (`advance_delivery` in
# src/store/messages.rs, written out here), and the outbox's updates, HOT updates and
# size after them.
#   benches/pg-statuses.sh BIN [RATE]
#   PG_SQL="ALTER TABLE outbound_messages RESET (fillfactor)" benches/pg-statuses.sh BIN
# (the second: as before migration 0015; PG_SQL runs on the bench database before the
# load). The harness sends no statuses itself; the mock Graph API answers sends only.
set -euo pipefail
BIN=${1:?BIN}; RATE=${2:-4000}
HERE=$(cd "$(dirname "$0")" && pwd)
PG=${PARLEY_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
SECS=30 WINDOW=10 "$HERE/pg-server.sh" "$RATE" "$BIN" | grep -E "^(messages stored|CPU a message)"
db=$(psql "$PG/postgres" -qtAc "SELECT datname FROM pg_database WHERE datname LIKE 'parley_bench_%' ORDER BY oid DESC LIMIT 1")
psql "$PG/$db" -qtAc "SELECT 'outbox options: ' || COALESCE(array_to_string(reloptions, ', '), 'none') FROM pg_class WHERE relname = 'outbound_messages'"
updates() { psql "$PG/$db" -qtAF' ' -c "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'outbound_messages'"; }
sleep 2 # the statistics views lag by up to a second
before=$(updates)
psql "$PG/$db" -q <<'SQL'
CREATE PROCEDURE pg_statuses_bench(st text, rank int) LANGUAGE plpgsql AS $$
DECLARE r record; n int := 0;
BEGIN
  FOR r IN SELECT tenant_id, provider_message_id FROM outbound_messages
           WHERE provider_message_id IS NOT NULL ORDER BY id LOOP
    UPDATE outbound_messages SET delivery_status = st, updated_at = now(),
      state = CASE WHEN false THEN 'failed' ELSE state END, error_code = COALESCE(NULL, error_code)
      WHERE tenant_id = r.tenant_id AND provider_message_id = r.provider_message_id
      AND (CASE delivery_status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2
           WHEN 'read' THEN 3 ELSE 4 END) < rank;
    n := n + 1;
    IF n % 200 = 0 THEN COMMIT; END IF;
  END LOOP;
  COMMIT;
END $$;
CALL pg_statuses_bench('delivered', 2);
CALL pg_statuses_bench('read', 3);
DROP PROCEDURE pg_statuses_bench;
SQL
sleep 2
after=$(updates)
replies=$(psql "$PG/$db" -qtAc "SELECT count(*) FROM outbound_messages")
size=$(psql "$PG/$db" -qtAc "SELECT pg_relation_size('outbound_messages')")
echo "$before $after $replies $size" | awk '{ s = $3 - $1; h = $4 - $2;
    printf "replies %d: %d status updates, %d HOT (%.0f %%); outbox %.0f MB\n", $5, s, h, s ? 100 * h / s : 0, $6 / 1048576 }'
