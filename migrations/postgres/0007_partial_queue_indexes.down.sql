DROP INDEX outbound_messages_provider_id;
CREATE INDEX outbound_messages_provider_id ON outbound_messages (tenant_id, provider_message_id);
