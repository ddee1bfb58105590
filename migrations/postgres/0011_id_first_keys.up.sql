-- SQLite's 0011 keys the message loop's tables id first, so that new rows' entries
-- append instead of landing at one place per tenant. PostgreSQL keeps its keys tenant
-- first (DESIGN.md, Scale: every table keyed by tenant first, so that a PostgreSQL
-- sharded by tenant_id takes the schema as it is); nothing changes here. SQLite serves
-- one process and is never sharded.
SELECT 1;
