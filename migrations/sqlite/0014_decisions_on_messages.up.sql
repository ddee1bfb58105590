-- A message's decision becomes columns of its row (PostgreSQL's 0014 says why): one
-- row and one B-tree entry fewer a message. A message decided twice keeps its first
-- decision, as it keeps its first reply.
ALTER TABLE inbound_messages ADD COLUMN decision_reason TEXT;
ALTER TABLE inbound_messages ADD COLUMN decision_faq_id BLOB;
ALTER TABLE inbound_messages ADD COLUMN decision_score REAL;
ALTER TABLE inbound_messages ADD COLUMN decision_detail TEXT;
ALTER TABLE inbound_messages ADD COLUMN decided_at TEXT;
UPDATE inbound_messages
SET (decision_reason, decision_faq_id, decision_score, decision_detail, decided_at) = (
    SELECT d.reason, d.faq_id, d.score, d.detail, d.created_at FROM decisions d
    WHERE d.inbound_message_id = inbound_messages.id AND d.tenant_id = inbound_messages.tenant_id
    ORDER BY d.created_at, d.id LIMIT 1)
WHERE EXISTS (SELECT 1 FROM decisions d
    WHERE d.inbound_message_id = inbound_messages.id AND d.tenant_id = inbound_messages.tenant_id);
DROP TABLE decisions;
