-- Back to one row a tenant and day, each day's slots summed.
CREATE TABLE usage_daily_old (
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day           TEXT NOT NULL,
    inbound       INTEGER NOT NULL DEFAULT 0,
    outbound      INTEGER NOT NULL DEFAULT 0,
    faq_answers   INTEGER NOT NULL DEFAULT 0,
    llm_calls     INTEGER NOT NULL DEFAULT 0,
    tokens_in     INTEGER NOT NULL DEFAULT 0,
    tokens_out    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);
INSERT INTO usage_daily_old (tenant_id, day, inbound, outbound, faq_answers, llm_calls, tokens_in, tokens_out)
SELECT tenant_id, day, sum(inbound), sum(outbound), sum(faq_answers), sum(llm_calls), sum(tokens_in), sum(tokens_out)
FROM usage_daily GROUP BY tenant_id, day;
DROP TABLE usage_daily;
ALTER TABLE usage_daily_old RENAME TO usage_daily;
