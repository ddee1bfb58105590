-- Tenants and everything a tenant configures. tenant_id leads every key and index.

CREATE TABLE tenants (
    id          BLOB PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE CHECK (length(slug) BETWEEN 1 AND 63),
    name        TEXT NOT NULL CHECK (length(name) > 0),
    timezone    TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    revision    INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Every tenant secret, sealed with AES-256-GCM; associated data = tenant id + name.
CREATE TABLE tenant_secrets (
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    nonce       BLOB NOT NULL CHECK (length(nonce) = 12),
    ciphertext  BLOB NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX tenant_secrets_key ON tenant_secrets (key_id);

CREATE TABLE channel_accounts (
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel              TEXT NOT NULL,
    provider_account_id  TEXT NOT NULL,
    business_account_id  TEXT,
    display_phone_number TEXT,
    token_expires_at     TEXT,
    messages_per_second  INTEGER NOT NULL DEFAULT 80 CHECK (messages_per_second BETWEEN 1 AND 1000),
    updated_at           TEXT NOT NULL,
    PRIMARY KEY (tenant_id, channel)
);
-- Webhook routing finds the tenant from the provider's account id (Meta's
-- phone_number_id), so that id belongs to one tenant only.
CREATE UNIQUE INDEX channel_accounts_route ON channel_accounts (channel, provider_account_id);

CREATE TABLE ai_configs (
    tenant_id   BLOB PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    provider    TEXT NOT NULL CHECK (provider IN ('openai', 'openrouter', 'huggingface', 'compatible')),
    base_url    TEXT NOT NULL,
    model       TEXT NOT NULL CHECK (length(model) > 0),
    updated_at  TEXT NOT NULL
);

CREATE TABLE control_settings (
    tenant_id                      BLOB PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    bot_enabled                    INTEGER NOT NULL,
    auto_reply                     INTEGER NOT NULL,
    ai_responses                   INTEGER NOT NULL,
    confidence_threshold           REAL NOT NULL CHECK (confidence_threshold >= 0 AND confidence_threshold <= 1),
    fallback_text                  TEXT NOT NULL CHECK (length(fallback_text) > 0),
    non_text_reply                 TEXT,
    quiet_hours_start              TEXT,
    quiet_hours_end                TEXT,
    quiet_hours_policy             TEXT CHECK (quiet_hours_policy IN ('defer', 'reply', 'after_hours_message')),
    response_delay_seconds         INTEGER NOT NULL DEFAULT 0 CHECK (response_delay_seconds BETWEEN 0 AND 86400),
    max_messages_per_hour          INTEGER CHECK (max_messages_per_hour >= 1),
    max_messages_per_user_per_day  INTEGER CHECK (max_messages_per_user_per_day >= 1),
    escalation_categories          TEXT NOT NULL,
    escalation_phone               TEXT,
    escalation_email               TEXT,
    log_message_text               INTEGER NOT NULL,
    log_decisions                  INTEGER NOT NULL,
    updated_at                     TEXT NOT NULL,
    CHECK ((quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)
       AND (quiet_hours_start IS NULL) = (quiet_hours_policy IS NULL))
);

CREATE TABLE templates (
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                   BLOB NOT NULL,
    name                 TEXT NOT NULL CHECK (length(name) > 0),
    system_prompt        TEXT NOT NULL,
    tone                 TEXT,
    max_response_length  INTEGER CHECK (max_response_length BETWEEN 1 AND 4096),
    is_default           INTEGER NOT NULL DEFAULT 0,
    position             INTEGER NOT NULL DEFAULT 0,
    updated_at           TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
CREATE UNIQUE INDEX templates_one_default ON templates (tenant_id) WHERE is_default;

CREATE TABLE training_items (
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('faq', 'canned_reply', 'example')),
    question    TEXT NOT NULL CHECK (length(question) > 0),
    answer      TEXT NOT NULL,
    examples    TEXT NOT NULL,
    category    TEXT,
    priority    INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    active      INTEGER NOT NULL DEFAULT 1,
    position    INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, question)
);
