-- The provider-id index skips replies not sent yet (their id is NULL until Meta
-- answers), so queueing a reply no longer writes an entry that its send replaces.
-- Every query on it compares provider_message_id to a value, which implies NOT NULL.
-- (The queue indexes have kept pending rows only since 0002; SQLite's 0007 catches up.)
DROP INDEX outbound_messages_provider_id;
CREATE INDEX outbound_messages_provider_id ON outbound_messages (tenant_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
