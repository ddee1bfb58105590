CREATE INDEX outbound_messages_pending_customer
    ON outbound_messages (tenant_id, channel, customer_id, id) WHERE state = 'pending';
CREATE INDEX outbound_messages_history
    ON outbound_messages (tenant_id, channel, customer_id, id);
DROP INDEX outbound_messages_customer;
ALTER INDEX outbound_messages_pending_customer RENAME TO outbound_messages_customer;
