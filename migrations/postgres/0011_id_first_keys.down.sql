-- 0011 changed nothing on PostgreSQL.
SELECT 1;
