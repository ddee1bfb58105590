-- A message's decision becomes columns of its row: it was a row of its own in
-- `decisions`, one heap tuple and one B-tree entry more a message. The storing
-- transaction that decides a message as it stores it writes the decision with the
-- row; the pipeline writes it in the update that marks the message done. A message
-- decided twice (two workers, the first one's lease run out) keeps its first decision,
-- as it keeps its first reply (the reply's idempotency key).
--
-- Every decided message's row is rewritten once here (the columns are added without a
-- default, which needs no rewrite; the copy does), under the lock the migration holds.
ALTER TABLE inbound_messages
    ADD COLUMN decision_reason TEXT,
    ADD COLUMN decision_faq_id UUID,
    ADD COLUMN decision_score DOUBLE PRECISION,
    ADD COLUMN decision_detail JSONB,
    ADD COLUMN decided_at TIMESTAMPTZ;
UPDATE inbound_messages AS m SET decision_reason = d.reason, decision_faq_id = d.faq_id,
    decision_score = d.score, decision_detail = d.detail, decided_at = d.created_at
FROM (SELECT DISTINCT ON (tenant_id, inbound_message_id) tenant_id, inbound_message_id,
        reason, faq_id, score, detail, created_at
    FROM decisions ORDER BY tenant_id, inbound_message_id, created_at, id) AS d
WHERE m.tenant_id = d.tenant_id AND m.id = d.inbound_message_id;
DROP TABLE decisions;
