-- Puts the keys back. Rows of tenants deleted meanwhile (a write that raced the
-- deletion) would fail them, so they go first. Every tenant's rows: the tables'
-- policies bind their owner too (0005).
SELECT set_config('parley.tenant_id', '*', true);
ALTER TABLE decisions DROP CONSTRAINT decisions_pkey;
ALTER TABLE decisions ADD PRIMARY KEY (tenant_id, id);
CREATE INDEX decisions_message ON decisions (tenant_id, inbound_message_id);
DELETE FROM message_statuses x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
DELETE FROM outbound_messages x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
DELETE FROM decisions x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
DELETE FROM inbound_messages x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
DELETE FROM conversations x WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.tenant_id = x.tenant_id
    AND c.channel = x.channel AND c.customer_id = x.customer_id);
DELETE FROM contacts x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
DELETE FROM conversations x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
ALTER TABLE message_statuses ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE outbound_messages ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE decisions ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE inbound_messages ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE contacts ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE conversations ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE conversations ADD FOREIGN KEY (tenant_id, channel, customer_id)
    REFERENCES contacts (tenant_id, channel, customer_id) ON DELETE CASCADE;
