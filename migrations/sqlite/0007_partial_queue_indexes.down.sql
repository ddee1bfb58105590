DROP INDEX outbound_messages_provider_id;
CREATE INDEX outbound_messages_provider_id ON outbound_messages (tenant_id, provider_message_id);
DROP INDEX outbound_messages_pending;
CREATE INDEX outbound_messages_pending ON outbound_messages (state, next_attempt_at);
DROP INDEX inbound_messages_pending;
CREATE INDEX inbound_messages_pending ON inbound_messages (state, id);
