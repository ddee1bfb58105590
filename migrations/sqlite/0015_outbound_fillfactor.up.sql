-- PostgreSQL's 0015 leaves room on the outbox's pages for HOT updates. SQLite has no
-- fillfactor (a row is rewritten in its B-tree leaf in place); nothing changes here.
SELECT 1;
