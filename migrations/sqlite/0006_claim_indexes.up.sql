-- The claims take a customer's oldest pending message (inbound) or reply (outbound)
-- only. They used to check "no older pending one" by walking the customer's (or the
-- recipient's) whole history in the plain indexes, or, on PostgreSQL, by hashing every
-- pending row on each claim. With the state in the customer indexes, ahead of the id,
-- that check is one short index probe whatever the history, and a message changing
-- state moves within its customer's part of the index. Outbound claims now group by
-- customer, not recipient, so the recipient index goes.
DROP INDEX inbound_messages_customer;
CREATE INDEX inbound_messages_customer
    ON inbound_messages (tenant_id, channel, customer_id, state, id);
DROP INDEX outbound_messages_customer;
CREATE INDEX outbound_messages_customer
    ON outbound_messages (tenant_id, channel, customer_id, state, id);
DROP INDEX outbound_messages_recipient;
-- Replies queued before customer_id existed (0003) group by their recipient.
UPDATE outbound_messages SET customer_id = ltrim(recipient, '+')
    WHERE customer_id IS NULL AND state = 'pending';
