CREATE INDEX outbound_messages_recipient ON outbound_messages (tenant_id, recipient, id);
DROP INDEX outbound_messages_customer;
CREATE INDEX outbound_messages_customer ON outbound_messages (tenant_id, channel, customer_id) WHERE state = 'pending';
DROP INDEX inbound_messages_customer;
CREATE INDEX inbound_messages_customer ON inbound_messages (tenant_id, channel, customer_id, id);
