-- A reply's insert wrote two entries in the outbound customer indexes: the pending
-- replies' (0006, with the state as its predicate) and the history's (0008). One index
-- with the state ahead of the id serves both, as SQLite's 0006 does: a customer's
-- pending replies are one short range of it, and the history reads (which sort by time)
-- take every state. Each reply writes one B-tree entry fewer when it is queued; when it
-- is marked sent it writes one either way (the state is in the key; the history index
-- took a copy of the unchanged key before).
--
-- Built first, under another name, while the table stays readable (CREATE INDEX holds
-- off writes only); the drops, which lock the table outright until the migration
-- commits, come after it.
CREATE INDEX outbound_messages_customer_state
    ON outbound_messages (tenant_id, channel, customer_id, state, id);
DROP INDEX outbound_messages_customer;
DROP INDEX outbound_messages_history;
ALTER INDEX outbound_messages_customer_state RENAME TO outbound_messages_customer;
