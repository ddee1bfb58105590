-- AI orchestration: settings for handoff, bursts, after-hours notices, LLM budgets and
-- the 24-hour window; conversation hand-off state; versioned prompts; escalation
-- notifications; daily usage. Outbound messages learn their purpose, the end of their
-- customer service window, and two more end states (cancelled, unsendable).

ALTER TABLE control_settings
    ADD COLUMN handoff_idle_minutes BIGINT CHECK (handoff_idle_minutes BETWEEN 1 AND 43200),
    ADD COLUMN burst_window_seconds BIGINT NOT NULL DEFAULT 0 CHECK (burst_window_seconds BETWEEN 0 AND 600),
    ADD COLUMN after_hours_text TEXT,
    ADD COLUMN escalation_ack_text TEXT,
    ADD COLUMN llm_monthly_token_budget BIGINT CHECK (llm_monthly_token_budget >= 0),
    ADD COLUMN window_template_name TEXT,
    ADD COLUMN window_template_language TEXT,
    ADD CONSTRAINT control_settings_window_template CHECK ((window_template_name IS NULL) = (window_template_language IS NULL));

ALTER TABLE templates
    ADD COLUMN context_messages BIGINT CHECK (context_messages BETWEEN 0 AND 50);

ALTER TABLE conversations
    ADD COLUMN human_since TIMESTAMPTZ,
    ADD COLUMN human_activity_at TIMESTAMPTZ,
    ADD COLUMN handoff_reason TEXT,
    ADD COLUMN after_hours_notice_night DATE;

ALTER TABLE inbound_messages
    ADD COLUMN merged_into UUID;

ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_state_check;
ALTER TABLE outbound_messages
    ADD CONSTRAINT outbound_messages_state_check
        CHECK (state IN ('pending', 'sent', 'failed', 'dead', 'cancelled', 'unsendable')),
    ADD COLUMN purpose TEXT NOT NULL DEFAULT 'reply'
        CHECK (purpose IN ('reply', 'ack', 'notice', 'notification', 'human')),
    ADD COLUMN customer_id TEXT,
    ADD COLUMN window_closes_at TIMESTAMPTZ,
    ADD COLUMN template TEXT;
CREATE INDEX outbound_messages_customer ON outbound_messages (tenant_id, channel, customer_id) WHERE state = 'pending';

CREATE TABLE prompt_versions (
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('system', 'classifier')),
    version       BIGINT NOT NULL CHECK (version >= 1),
    body          TEXT NOT NULL CHECK (length(body) > 0),
    note          TEXT,
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, kind, version)
);

-- Every publication, in order; the newest per (tenant, kind) is live. Rolling back is
-- publishing an older version again.
CREATE TABLE prompt_publications (
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    version       BIGINT NOT NULL,
    published_by  TEXT NOT NULL,
    published_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, kind, seq),
    FOREIGN KEY (tenant_id, kind, version) REFERENCES prompt_versions (tenant_id, kind, version) ON DELETE CASCADE
);

CREATE TABLE notifications (
    tenant_id            UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                   UUID NOT NULL,
    inbound_message_id   UUID,
    customer_id          TEXT NOT NULL,
    category             TEXT NOT NULL,
    via                  TEXT NOT NULL CHECK (via IN ('whatsapp', 'email')),
    target               TEXT NOT NULL,
    outbound_message_id  UUID,
    state                TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    detail               TEXT,
    -- Email only: the message, and its delivery attempts (WhatsApp ones go through
    -- the outbox).
    subject              TEXT,
    body                 TEXT,
    attempts             BIGINT NOT NULL DEFAULT 0,
    next_attempt_at      TIMESTAMPTZ,
    claimed_until        TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX notifications_email_queue ON notifications (state, next_attempt_at);

CREATE TABLE usage_daily (
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day           DATE NOT NULL,
    inbound       BIGINT NOT NULL DEFAULT 0,
    outbound      BIGINT NOT NULL DEFAULT 0,
    faq_answers   BIGINT NOT NULL DEFAULT 0,
    llm_calls     BIGINT NOT NULL DEFAULT 0,
    tokens_in     BIGINT NOT NULL DEFAULT 0,
    tokens_out    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);
