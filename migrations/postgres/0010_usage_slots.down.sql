-- Folds each day's slots into its lowest one, then goes back to one row a tenant and day.
-- Every tenant's rows: the table's policies bind its owner too (0005).
SELECT set_config('parley.tenant_id', '*', true);
UPDATE usage_daily AS u SET inbound = s.inbound, outbound = s.outbound,
    faq_answers = s.faq_answers, llm_calls = s.llm_calls, tokens_in = s.tokens_in,
    tokens_out = s.tokens_out
FROM (SELECT tenant_id, day, min(slot) AS slot, sum(inbound) AS inbound,
             sum(outbound) AS outbound, sum(faq_answers) AS faq_answers,
             sum(llm_calls) AS llm_calls, sum(tokens_in) AS tokens_in,
             sum(tokens_out) AS tokens_out
      FROM usage_daily GROUP BY tenant_id, day) AS s
WHERE u.tenant_id = s.tenant_id AND u.day = s.day AND u.slot = s.slot;
DELETE FROM usage_daily AS u WHERE u.slot > (SELECT min(m.slot) FROM usage_daily AS m
    WHERE m.tenant_id = u.tenant_id AND m.day = u.day);
ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey;
ALTER TABLE usage_daily ADD PRIMARY KEY (tenant_id, day);
ALTER TABLE usage_daily DROP COLUMN slot;
