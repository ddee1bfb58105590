-- A tenant's usage of a day may be counted in several rows (slot), summed when read:
-- on PostgreSQL concurrent transactions spread their counts over eight slots instead
-- of waiting for one row (see postgres/0010). SQLite has one writer and uses slot 0
-- only; the schema is the same on both. SQLite cannot change a primary key in place,
-- so the table is rebuilt (nothing references it).
CREATE TABLE usage_daily_new (
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day           TEXT NOT NULL,
    inbound       INTEGER NOT NULL DEFAULT 0,
    outbound      INTEGER NOT NULL DEFAULT 0,
    faq_answers   INTEGER NOT NULL DEFAULT 0,
    llm_calls     INTEGER NOT NULL DEFAULT 0,
    tokens_in     INTEGER NOT NULL DEFAULT 0,
    tokens_out    INTEGER NOT NULL DEFAULT 0,
    slot          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, slot)
);
INSERT INTO usage_daily_new (tenant_id, day, inbound, outbound, faq_answers, llm_calls, tokens_in, tokens_out, slot)
SELECT tenant_id, day, inbound, outbound, faq_answers, llm_calls, tokens_in, tokens_out, 0 FROM usage_daily;
DROP TABLE usage_daily;
ALTER TABLE usage_daily_new RENAME TO usage_daily;
