-- The conversation loop: contacts, conversations, the inbound log that doubles as the
-- durable inbox, decisions, the outbound log that doubles as the outbox, delivery
-- statuses and shared rate-limit counters. tenant_id leads every key; the two
-- work-queue indexes are global on purpose: workers claim across tenants.

CREATE TABLE contacts (
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel          TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    phone            TEXT,
    user_id          TEXT,
    name             TEXT,
    first_seen_at    TEXT NOT NULL,
    last_inbound_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, channel, customer_id)
);

CREATE TABLE conversations (
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               BLOB NOT NULL,
    channel          TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'bot' CHECK (status IN ('bot', 'human', 'closed')),
    started_at       TEXT NOT NULL,
    last_message_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, channel, customer_id),
    FOREIGN KEY (tenant_id, channel, customer_id) REFERENCES contacts (tenant_id, channel, customer_id) ON DELETE CASCADE
);

CREATE TABLE inbound_messages (
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                   BLOB NOT NULL,
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
    media                TEXT,
    context_message_id   TEXT,
    -- The provider's JSON, when it says more than the columns above (NULL otherwise).
    raw                  TEXT,
    provider_timestamp   INTEGER NOT NULL,
    received_at          TEXT NOT NULL,
    state                TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    claimed_until        TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    conversation_id      BLOB,
    processed_at         TEXT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, channel, provider_message_id)
);
CREATE INDEX inbound_messages_customer ON inbound_messages (tenant_id, channel, customer_id, id);
-- Not partial indexes as on PostgreSQL: SQLite (with STAT4) re-prepares a statement
-- on every new parameter value when it must check a partial index against it.
CREATE INDEX inbound_messages_pending ON inbound_messages (state, id);

CREATE TABLE decisions (
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                   BLOB NOT NULL,
    inbound_message_id   BLOB NOT NULL,
    conversation_id      BLOB,
    reason               TEXT NOT NULL,
    faq_id               BLOB,
    score                REAL,
    detail               TEXT,
    created_at           TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX decisions_message ON decisions (tenant_id, inbound_message_id);

CREATE TABLE outbound_messages (
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
    state                  TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'dead')),
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
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX outbound_messages_recipient ON outbound_messages (tenant_id, recipient, id);
CREATE INDEX outbound_messages_provider_id ON outbound_messages (tenant_id, provider_message_id);
CREATE INDEX outbound_messages_pending ON outbound_messages (state, next_attempt_at);

-- Every status Meta reported, once per (message, status), in arrival order.
CREATE TABLE message_statuses (
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider_message_id  TEXT NOT NULL,
    status               TEXT NOT NULL,
    provider_timestamp   INTEGER NOT NULL,
    error_code           INTEGER,
    errors               TEXT,
    received_at          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, provider_message_id, status)
);

-- Reply counts per window, shared by every instance on this database.
CREATE TABLE rate_counters (
    tenant_id      BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    scope          TEXT NOT NULL,
    window_start   TEXT NOT NULL,
    count          INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, scope, window_start)
);

ALTER TABLE channel_accounts ADD COLUMN token_status TEXT NOT NULL DEFAULT 'ok'
    CHECK (token_status IN ('ok', 'expired'));
