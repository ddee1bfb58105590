-- PostgreSQL's 0012 drops the message loop's foreign keys to tenants (their row locks
-- were written to its WAL on every message) and keys decisions by their message. SQLite
-- checks a foreign key with an index probe and no lock, and its 0011 keyed decisions
-- so already; nothing changes here. Deleting a tenant deletes the loop's rows itself on
-- both (store::common, delete_tenant).
SELECT 1;
