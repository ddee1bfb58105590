-- SQLite's 0009 rewrites its hot tables' CHECK constraints without IN lists (which
-- SQLite runs as a temporary b-tree per statement); PostgreSQL compares an IN list
-- directly, so nothing changes here.
SELECT 1;
