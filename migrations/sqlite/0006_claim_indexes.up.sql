-- The claims take a customer's (inbound) or a recipient's (outbound) oldest pending
-- message only. They used to check "no older pending message" by walking that
-- customer's or recipient's whole history in the plain indexes (or, on PostgreSQL, by
-- hashing every pending row on each claim). These partial indexes hold pending rows
-- only, so the check is one index probe whatever the history.
CREATE INDEX inbound_messages_customer_pending
    ON inbound_messages (tenant_id, channel, customer_id, id) WHERE state = 'pending';
CREATE INDEX outbound_messages_recipient_pending
    ON outbound_messages (tenant_id, recipient, id) WHERE state = 'pending';
