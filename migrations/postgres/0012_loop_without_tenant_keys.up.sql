-- The message loop's tables lose their foreign keys to tenants (and conversations
-- theirs to contacts). Each such key made every inserted row look up its tenant's row
-- and lock it (FOR KEY SHARE): six checks a message, all on the one row of a tenant,
-- which concurrent transactions then share through multixacts, ~2.4 row-lock WAL
-- records a message (benches/HISTORY.md, run 44). These tables are
-- written on every message and every status; the tenant's row is not. Deleting a
-- tenant now deletes their rows itself, in the transaction that deletes the tenant
-- (store::common, delete_tenant). usage_daily and rate_counters keep theirs: a row of
-- theirs is inserted once a day or window and then updated in place, which checks no key.
ALTER TABLE contacts DROP CONSTRAINT contacts_tenant_id_fkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_tenant_id_fkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_tenant_id_channel_customer_id_fkey;
ALTER TABLE inbound_messages DROP CONSTRAINT inbound_messages_tenant_id_fkey;
ALTER TABLE decisions DROP CONSTRAINT decisions_tenant_id_fkey;
ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_tenant_id_fkey;
ALTER TABLE message_statuses DROP CONSTRAINT message_statuses_tenant_id_fkey;
-- Decisions are keyed by their message first, which serves every lookup by message, so
-- the separate message index goes: one index entry a message fewer (SQLite's 0011 did
-- the same).
DROP INDEX decisions_message;
ALTER TABLE decisions DROP CONSTRAINT decisions_pkey;
ALTER TABLE decisions ADD PRIMARY KEY (tenant_id, inbound_message_id, id);
