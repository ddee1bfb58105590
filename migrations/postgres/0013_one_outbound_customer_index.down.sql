DROP INDEX outbound_messages_customer;
CREATE INDEX outbound_messages_customer
    ON outbound_messages (tenant_id, channel, customer_id, id) WHERE state = 'pending';
CREATE INDEX outbound_messages_history
    ON outbound_messages (tenant_id, channel, customer_id, id);
