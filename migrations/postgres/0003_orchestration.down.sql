DROP TABLE usage_daily;
DROP TABLE notifications;
DROP TABLE prompt_publications;
DROP TABLE prompt_versions;
DROP INDEX outbound_messages_customer;
DELETE FROM outbound_messages WHERE state IN ('cancelled', 'unsendable');
ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_state_check;
ALTER TABLE outbound_messages
    DROP COLUMN purpose,
    DROP COLUMN customer_id,
    DROP COLUMN window_closes_at,
    DROP COLUMN template,
    ADD CONSTRAINT outbound_messages_state_check CHECK (state IN ('pending', 'sent', 'failed', 'dead'));
ALTER TABLE inbound_messages DROP COLUMN merged_into;
ALTER TABLE conversations
    DROP COLUMN human_since,
    DROP COLUMN human_activity_at,
    DROP COLUMN handoff_reason,
    DROP COLUMN after_hours_notice_night;
ALTER TABLE templates DROP COLUMN context_messages;
ALTER TABLE control_settings
    DROP CONSTRAINT control_settings_window_template,
    DROP COLUMN handoff_idle_minutes,
    DROP COLUMN burst_window_seconds,
    DROP COLUMN after_hours_text,
    DROP COLUMN escalation_ack_text,
    DROP COLUMN llm_monthly_token_budget,
    DROP COLUMN window_template_name,
    DROP COLUMN window_template_language;
