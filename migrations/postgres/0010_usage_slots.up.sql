-- A tenant's usage of a day is counted in up to eight rows (slot 0-7) and summed when
-- read. Every transaction that stores messages or records sends adds to its tenants'
-- usage rows and holds their row locks until it commits; with one row a tenant and
-- day, concurrent transactions of the same tenants waited for each other there (the
-- usage upserts led the statements' time under load, README, Benchmark, run 34). Each
-- transaction now picks a slot, so concurrent ones mostly update different rows.
ALTER TABLE usage_daily ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey;
ALTER TABLE usage_daily ADD PRIMARY KEY (tenant_id, day, slot);
