-- AI orchestration: settings for handoff, bursts, after-hours notices, LLM budgets and
-- the 24-hour window; conversation hand-off state; versioned prompts; escalation
-- notifications; daily usage. Outbound messages learn their purpose, the end of their
-- customer service window, and two more end states (cancelled, unsendable); SQLite
-- cannot change a CHECK in place, so that table is rebuilt.

ALTER TABLE control_settings ADD COLUMN handoff_idle_minutes INTEGER CHECK (handoff_idle_minutes BETWEEN 1 AND 43200);
ALTER TABLE control_settings ADD COLUMN burst_window_seconds INTEGER NOT NULL DEFAULT 0 CHECK (burst_window_seconds BETWEEN 0 AND 600);
ALTER TABLE control_settings ADD COLUMN after_hours_text TEXT;
ALTER TABLE control_settings ADD COLUMN escalation_ack_text TEXT;
ALTER TABLE control_settings ADD COLUMN llm_monthly_token_budget INTEGER CHECK (llm_monthly_token_budget >= 0);
ALTER TABLE control_settings ADD COLUMN window_template_name TEXT;
ALTER TABLE control_settings ADD COLUMN window_template_language TEXT
    CHECK ((window_template_name IS NULL) = (window_template_language IS NULL));


ALTER TABLE templates ADD COLUMN context_messages INTEGER CHECK (context_messages BETWEEN 0 AND 50);

ALTER TABLE conversations ADD COLUMN human_since TEXT;
ALTER TABLE conversations ADD COLUMN human_activity_at TEXT;
ALTER TABLE conversations ADD COLUMN handoff_reason TEXT;
ALTER TABLE conversations ADD COLUMN after_hours_notice_night TEXT;

ALTER TABLE inbound_messages ADD COLUMN merged_into BLOB;

CREATE TABLE outbound_messages_new (
    tenant_id              BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                     BLOB NOT NULL,
    idempotency_key        TEXT NOT NULL,
    conversation_id        BLOB,
    inbound_message_id     BLOB,
    channel                TEXT NOT NULL,
    provider_account_id    TEXT NOT NULL,
    recipient              TEXT NOT NULL,
    recipient_is_user_id   INTEGER NOT NULL DEFAULT 0,
    body                   TEXT NOT NULL,
    faq_id                 BLOB,
    mark_read_message_id   TEXT,
    state                  TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'dead', 'cancelled', 'unsendable')),
    delivery_status        TEXT NOT NULL DEFAULT 'queued' CHECK (delivery_status IN ('queued', 'sent', 'delivered', 'read', 'failed')),
    provider_message_id    TEXT,
    attempts               INTEGER NOT NULL DEFAULT 0,
    next_attempt_at        TEXT NOT NULL,
    claimed_until          TEXT,
    error_code             INTEGER,
    error_message          TEXT,
    created_at             TEXT NOT NULL,
    sent_at                TEXT,
    updated_at             TEXT NOT NULL,
    purpose                TEXT NOT NULL DEFAULT 'reply' CHECK (purpose IN ('reply', 'ack', 'notice', 'notification', 'human')),
    customer_id            TEXT,
    window_closes_at       TEXT,
    template               TEXT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);
INSERT INTO outbound_messages_new (tenant_id, id, idempotency_key, conversation_id, inbound_message_id,
    channel, provider_account_id, recipient, recipient_is_user_id, body, faq_id, mark_read_message_id,
    state, delivery_status, provider_message_id, attempts, next_attempt_at, claimed_until, error_code,
    error_message, created_at, sent_at, updated_at)
SELECT tenant_id, id, idempotency_key, conversation_id, inbound_message_id,
    channel, provider_account_id, recipient, recipient_is_user_id, body, faq_id, mark_read_message_id,
    state, delivery_status, provider_message_id, attempts, next_attempt_at, claimed_until, error_code,
    error_message, created_at, sent_at, updated_at FROM outbound_messages;
DROP TABLE outbound_messages;
ALTER TABLE outbound_messages_new RENAME TO outbound_messages;
CREATE INDEX outbound_messages_recipient ON outbound_messages (tenant_id, recipient, id);
CREATE INDEX outbound_messages_provider_id ON outbound_messages (tenant_id, provider_message_id);
CREATE INDEX outbound_messages_pending ON outbound_messages (state, next_attempt_at);
CREATE INDEX outbound_messages_customer ON outbound_messages (tenant_id, channel, customer_id, state);

CREATE TABLE prompt_versions (
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('system', 'classifier')),
    version       INTEGER NOT NULL CHECK (version >= 1),
    body          TEXT NOT NULL CHECK (length(body) > 0),
    note          TEXT,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, kind, version)
);

-- Every publication, in order; the newest per (tenant, kind) is live. Rolling back is
-- publishing an older version again.
CREATE TABLE prompt_publications (
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    published_by  TEXT NOT NULL,
    published_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, kind, seq),
    FOREIGN KEY (tenant_id, kind, version) REFERENCES prompt_versions (tenant_id, kind, version) ON DELETE CASCADE
);

CREATE TABLE notifications (
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                   BLOB NOT NULL,
    inbound_message_id   BLOB,
    customer_id          TEXT NOT NULL,
    category             TEXT NOT NULL,
    via                  TEXT NOT NULL CHECK (via IN ('whatsapp', 'email')),
    target               TEXT NOT NULL,
    outbound_message_id  BLOB,
    state                TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    detail               TEXT,
    -- Email only: the message, and its delivery attempts (WhatsApp ones go through
    -- the outbox).
    subject              TEXT,
    body                 TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    next_attempt_at      TEXT,
    claimed_until        TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX notifications_email_queue ON notifications (state, next_attempt_at);

CREATE TABLE usage_daily (
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
