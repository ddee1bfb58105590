-- A customer's history of replies (the model's context each turn, the admin log) was
-- read through no index of its own: the outbound customer index holds pending replies
-- only (0006), so PostgreSQL walked every reply of the tenant to find one customer's.
-- SQLite's outbound customer index holds every reply with its state (0006) and serves
-- these reads already; its 0008 changes nothing.
CREATE INDEX outbound_messages_history
    ON outbound_messages (tenant_id, channel, customer_id, id);
