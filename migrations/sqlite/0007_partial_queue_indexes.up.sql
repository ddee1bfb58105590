-- Index entries only for the rows a query looks for. The queue indexes keep pending
-- rows only (as on PostgreSQL since 0002), so a message that is done or sent leaves
-- them instead of moving to another part of them; the provider-id index skips replies
-- not sent yet (their id is NULL until Meta answers), so queueing a reply no longer
-- writes an entry that its send replaces. Every query on these columns names the
-- state 'pending' as a literal or compares provider_message_id to a value, which
-- implies it is not NULL: SQLite uses a partial index for those without re-preparing
-- the statement per parameter value. The state stays the queue indexes' first column:
-- with it, counting the queue reads the small index alone (without it, SQLite scanned
-- a whole customer index instead).
DROP INDEX inbound_messages_pending;
CREATE INDEX inbound_messages_pending ON inbound_messages (state, id) WHERE state = 'pending';
DROP INDEX outbound_messages_pending;
CREATE INDEX outbound_messages_pending ON outbound_messages (state, next_attempt_at)
    WHERE state = 'pending';
DROP INDEX outbound_messages_provider_id;
CREATE INDEX outbound_messages_provider_id ON outbound_messages (tenant_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
