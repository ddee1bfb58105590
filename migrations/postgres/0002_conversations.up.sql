-- The conversation loop: contacts, conversations, the inbound log that doubles as the
-- durable inbox, decisions, the outbound log that doubles as the outbox, delivery
-- statuses and shared rate-limit counters. tenant_id leads every key; the two
-- work-queue indexes are global on purpose: workers claim across tenants.

CREATE TABLE contacts (
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel          TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    phone            TEXT,
    user_id          TEXT,
    name             TEXT,
    first_seen_at    TIMESTAMPTZ NOT NULL,
    last_inbound_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, channel, customer_id)
);

CREATE TABLE conversations (
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               UUID NOT NULL,
    channel          TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'bot' CHECK (status IN ('bot', 'human', 'closed')),
    started_at       TIMESTAMPTZ NOT NULL,
    last_message_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, channel, customer_id),
    FOREIGN KEY (tenant_id, channel, customer_id) REFERENCES contacts (tenant_id, channel, customer_id) ON DELETE CASCADE
);

CREATE TABLE inbound_messages (
    tenant_id            UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                   UUID NOT NULL,
    channel              TEXT NOT NULL,
    provider_message_id  TEXT NOT NULL,
    provider_account_id  TEXT NOT NULL,
    customer_id          TEXT NOT NULL,
    customer_phone       TEXT,
    customer_user_id     TEXT,
    customer_name        TEXT,
    kind                 TEXT NOT NULL,
    body                 TEXT,
    reply_id             TEXT,
    media                JSONB,
    context_message_id   TEXT,
    -- The provider's JSON, when it says more than the columns above (NULL otherwise).
    raw                  JSONB,
    provider_timestamp   BIGINT NOT NULL,
    received_at          TIMESTAMPTZ NOT NULL,
    state                TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    claimed_until        TIMESTAMPTZ,
    attempts             BIGINT NOT NULL DEFAULT 0,
    conversation_id      UUID,
    processed_at         TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, channel, provider_message_id)
);
CREATE INDEX inbound_messages_customer ON inbound_messages (tenant_id, channel, customer_id, id);
CREATE INDEX inbound_messages_pending ON inbound_messages (id) WHERE state = 'pending';

CREATE TABLE decisions (
    tenant_id            UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                   UUID NOT NULL,
    inbound_message_id   UUID NOT NULL,
    conversation_id      UUID,
    reason               TEXT NOT NULL,
    faq_id               UUID,
    score                DOUBLE PRECISION,
    detail               JSONB,
    created_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX decisions_message ON decisions (tenant_id, inbound_message_id);

CREATE TABLE outbound_messages (
    tenant_id              UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                     UUID NOT NULL,
    idempotency_key        TEXT NOT NULL,
    conversation_id        UUID,
    inbound_message_id     UUID,
    channel                TEXT NOT NULL,
    provider_account_id    TEXT NOT NULL,
    recipient              TEXT NOT NULL,
    recipient_is_user_id   BOOLEAN NOT NULL DEFAULT FALSE,
    body                   TEXT NOT NULL,
    faq_id                 UUID,
    mark_read_message_id   TEXT,
    state                  TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'dead')),
    delivery_status        TEXT NOT NULL DEFAULT 'queued' CHECK (delivery_status IN ('queued', 'sent', 'delivered', 'read', 'failed')),
    provider_message_id    TEXT,
    attempts               BIGINT NOT NULL DEFAULT 0,
    next_attempt_at        TIMESTAMPTZ NOT NULL,
    claimed_until          TIMESTAMPTZ,
    error_code             BIGINT,
    error_message          TEXT,
    created_at             TIMESTAMPTZ NOT NULL,
    sent_at                TIMESTAMPTZ,
    updated_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX outbound_messages_recipient ON outbound_messages (tenant_id, recipient, id);
CREATE INDEX outbound_messages_provider_id ON outbound_messages (tenant_id, provider_message_id);
CREATE INDEX outbound_messages_pending ON outbound_messages (next_attempt_at) WHERE state = 'pending';

-- Every status Meta reported, once per (message, status), in arrival order.
CREATE TABLE message_statuses (
    tenant_id            UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider_message_id  TEXT NOT NULL,
    status               TEXT NOT NULL,
    provider_timestamp   BIGINT NOT NULL,
    error_code           BIGINT,
    errors               JSONB,
    received_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, provider_message_id, status)
);

-- Reply counts per window, shared by every instance on this database.
CREATE TABLE rate_counters (
    tenant_id      UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    scope          TEXT NOT NULL,
    window_start   TIMESTAMPTZ NOT NULL,
    count          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, scope, window_start)
);

ALTER TABLE channel_accounts ADD COLUMN token_status TEXT NOT NULL DEFAULT 'ok'
    CHECK (token_status IN ('ok', 'expired'));
