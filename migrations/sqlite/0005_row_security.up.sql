-- Row-level security is PostgreSQL's (see migrations/postgres/0005_row_security.up.sql).
-- SQLite keeps this file so that both folders hold the same migrations.
SELECT 1;
