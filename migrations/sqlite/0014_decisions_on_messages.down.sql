-- The decisions table again, as 0011 left it, filled from the messages' columns with
-- new decision ids.
CREATE TABLE decisions (
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                   BLOB NOT NULL,
    inbound_message_id   BLOB NOT NULL,
    conversation_id      BLOB,
    reason               TEXT NOT NULL,
    faq_id               BLOB,
    score                REAL,
    detail               TEXT,
    created_at           TEXT NOT NULL,
    PRIMARY KEY (inbound_message_id, tenant_id, id)
);
INSERT INTO decisions (tenant_id, id, inbound_message_id, conversation_id, reason, faq_id,
    score, detail, created_at)
SELECT tenant_id, randomblob(16), id, conversation_id, decision_reason, decision_faq_id,
    decision_score, decision_detail, decided_at
FROM inbound_messages WHERE decision_reason IS NOT NULL;
ALTER TABLE inbound_messages DROP COLUMN decision_reason;
ALTER TABLE inbound_messages DROP COLUMN decision_faq_id;
ALTER TABLE inbound_messages DROP COLUMN decision_score;
ALTER TABLE inbound_messages DROP COLUMN decision_detail;
ALTER TABLE inbound_messages DROP COLUMN decided_at;
