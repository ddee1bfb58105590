-- 0012 changed nothing on SQLite.
SELECT 1;
