-- PostgreSQL's 0013 folds its two outbound customer indexes into one with the state
-- ahead of the id. SQLite's has been that one index since its 0006; nothing changes here.
SELECT 1;
