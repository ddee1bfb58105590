-- The decisions table again, as 0012 left it (keyed by message, row-level security as
-- 0005 set it, granted to parley_app when that role exists), filled from the messages'
-- columns with new decision ids.
CREATE TABLE decisions (
    tenant_id            UUID NOT NULL,
    id                   UUID NOT NULL,
    inbound_message_id   UUID NOT NULL,
    conversation_id      UUID,
    reason               TEXT NOT NULL,
    faq_id               UUID,
    score                DOUBLE PRECISION,
    detail               JSONB,
    created_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, inbound_message_id, id)
);
ALTER TABLE decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE decisions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON decisions
    USING (parley_all_tenants() OR tenant_id = parley_current_tenant())
    WITH CHECK (parley_all_tenants() OR tenant_id = parley_current_tenant());
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'parley_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON decisions TO parley_app;
    END IF;
END
$$;
INSERT INTO decisions (tenant_id, id, inbound_message_id, conversation_id, reason, faq_id,
    score, detail, created_at)
SELECT tenant_id, gen_random_uuid(), id, conversation_id, decision_reason, decision_faq_id,
    decision_score, decision_detail, decided_at
FROM inbound_messages WHERE decision_reason IS NOT NULL;
ALTER TABLE inbound_messages
    DROP COLUMN decision_reason,
    DROP COLUMN decision_faq_id,
    DROP COLUMN decision_score,
    DROP COLUMN decision_detail,
    DROP COLUMN decided_at;
