-- Tenants and everything a tenant configures. tenant_id leads every key and index.

CREATE TABLE tenants (
    id          UUID PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE CHECK (length(slug) BETWEEN 1 AND 63),
    name        TEXT NOT NULL CHECK (length(name) > 0),
    timezone    TEXT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    revision    BIGINT NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Every tenant secret, sealed with AES-256-GCM; associated data = tenant id + name.
CREATE TABLE tenant_secrets (
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    nonce       BYTEA NOT NULL CHECK (length(nonce) = 12),
    ciphertext  BYTEA NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX tenant_secrets_key ON tenant_secrets (key_id);

CREATE TABLE channel_accounts (
    tenant_id            UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel              TEXT NOT NULL,
    provider_account_id  TEXT NOT NULL,
    business_account_id  TEXT,
    display_phone_number TEXT,
    token_expires_at     TIMESTAMPTZ,
    messages_per_second  BIGINT NOT NULL DEFAULT 80 CHECK (messages_per_second BETWEEN 1 AND 1000),
    updated_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, channel)
);
-- Webhook routing finds the tenant from the provider's account id (Meta's
-- phone_number_id), so that id belongs to one tenant only.
CREATE UNIQUE INDEX channel_accounts_route ON channel_accounts (channel, provider_account_id);

CREATE TABLE ai_configs (
    tenant_id   UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    provider    TEXT NOT NULL CHECK (provider IN ('openai', 'openrouter', 'huggingface', 'compatible')),
    base_url    TEXT NOT NULL,
    model       TEXT NOT NULL CHECK (length(model) > 0),
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE control_settings (
    tenant_id                      UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    bot_enabled                    BOOLEAN NOT NULL,
    auto_reply                     BOOLEAN NOT NULL,
    ai_responses                   BOOLEAN NOT NULL,
    confidence_threshold           DOUBLE PRECISION NOT NULL CHECK (confidence_threshold >= 0 AND confidence_threshold <= 1),
    fallback_text                  TEXT NOT NULL CHECK (length(fallback_text) > 0),
    non_text_reply                 TEXT,
    quiet_hours_start              TIME,
    quiet_hours_end                TIME,
    quiet_hours_policy             TEXT CHECK (quiet_hours_policy IN ('defer', 'reply', 'after_hours_message')),
    response_delay_seconds         BIGINT NOT NULL DEFAULT 0 CHECK (response_delay_seconds BETWEEN 0 AND 86400),
    max_messages_per_hour          BIGINT CHECK (max_messages_per_hour >= 1),
    max_messages_per_user_per_day  BIGINT CHECK (max_messages_per_user_per_day >= 1),
    escalation_categories          JSONB NOT NULL,
    escalation_phone               TEXT,
    escalation_email               TEXT,
    log_message_text               BOOLEAN NOT NULL,
    log_decisions                  BOOLEAN NOT NULL,
    updated_at                     TIMESTAMPTZ NOT NULL,
    CHECK ((quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)
       AND (quiet_hours_start IS NULL) = (quiet_hours_policy IS NULL))
);

CREATE TABLE templates (
    tenant_id            UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                   UUID NOT NULL,
    name                 TEXT NOT NULL CHECK (length(name) > 0),
    system_prompt        TEXT NOT NULL,
    tone                 TEXT,
    max_response_length  BIGINT CHECK (max_response_length BETWEEN 1 AND 4096),
    is_default           BOOLEAN NOT NULL DEFAULT FALSE,
    position             BIGINT NOT NULL DEFAULT 0,
    updated_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
CREATE UNIQUE INDEX templates_one_default ON templates (tenant_id) WHERE is_default;

CREATE TABLE training_items (
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          UUID NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('faq', 'canned_reply', 'example')),
    question    TEXT NOT NULL CHECK (length(question) > 0),
    answer      TEXT NOT NULL,
    examples    JSONB NOT NULL,
    category    TEXT,
    priority    BIGINT NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    position    BIGINT NOT NULL DEFAULT 0,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, question)
);
