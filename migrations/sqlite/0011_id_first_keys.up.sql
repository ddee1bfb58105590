-- The hot tables' keys id first. `PRIMARY KEY (tenant_id, id)` kept one index whose
-- entries were sorted by tenant, so every batch of new messages wrote into as many
-- index leaves as it had tenants (one per tenant's end of the index), in four
-- tables, plus the decisions' message index and the replies' idempotency keys. The
-- ids are UUIDv7 (time-ordered) and the idempotency keys end in one ("reply:<id>"),
-- so with the id first every new entry lands at the end of its index: one leaf a
-- batch, whatever the number of tenants. Decisions are keyed by their message first,
-- which serves the lookups by message, so their separate message index goes. Lookups
-- name the key's columns (equalities) and use it as before; a tenant's rows are found
-- through the tenant-led indexes (customer, provider id, UNIQUE (tenant_id, channel,
-- customer_id)). SQLite cannot change a key in place, so the four tables are rebuilt
-- (nothing references them; their other indexes are made again as they were).

CREATE TABLE inbound_messages_new (
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
    merged_into          BLOB,
    PRIMARY KEY (id, tenant_id),
    UNIQUE (tenant_id, channel, provider_message_id)
);
INSERT INTO inbound_messages_new (tenant_id, id, channel, provider_message_id, provider_account_id, customer_id, customer_phone, customer_user_id, customer_name, kind, body, reply_id, media, context_message_id, raw, provider_timestamp, received_at, state, claimed_until, attempts, conversation_id, processed_at, merged_into)
SELECT tenant_id, id, channel, provider_message_id, provider_account_id, customer_id, customer_phone, customer_user_id, customer_name, kind, body, reply_id, media, context_message_id, raw, provider_timestamp, received_at, state, claimed_until, attempts, conversation_id, processed_at, merged_into FROM inbound_messages;
DROP TABLE inbound_messages;
ALTER TABLE inbound_messages_new RENAME TO inbound_messages;
CREATE INDEX inbound_messages_customer
    ON inbound_messages (tenant_id, channel, customer_id, state, id);
CREATE INDEX inbound_messages_pending ON inbound_messages (state, id) WHERE state = 'pending';

CREATE TABLE decisions_new (
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                   BLOB NOT NULL,
    inbound_message_id   BLOB NOT NULL,
    conversation_id      BLOB,
    reason               TEXT NOT NULL,
    faq_id               BLOB,
    score                REAL,
    detail               TEXT,
    created_at           TEXT NOT NULL,
    PRIMARY KEY (inbound_message_id, tenant_id, id)
);
INSERT INTO decisions_new (tenant_id, id, inbound_message_id, conversation_id, reason, faq_id, score, detail, created_at)
SELECT tenant_id, id, inbound_message_id, conversation_id, reason, faq_id, score, detail, created_at FROM decisions;
DROP TABLE decisions;
ALTER TABLE decisions_new RENAME TO decisions;

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
    state                  TEXT NOT NULL DEFAULT 'pending' CHECK (state = 'pending' OR state = 'sent' OR state = 'failed' OR state = 'dead' OR state = 'cancelled' OR state = 'unsendable'),
    delivery_status        TEXT NOT NULL DEFAULT 'queued' CHECK (delivery_status = 'queued' OR delivery_status = 'sent' OR delivery_status = 'delivered' OR delivery_status = 'read' OR delivery_status = 'failed'),
    provider_message_id    TEXT,
    attempts               INTEGER NOT NULL DEFAULT 0,
    next_attempt_at        TEXT NOT NULL,
    claimed_until          TEXT,
    error_code             INTEGER,
    error_message          TEXT,
    created_at             TEXT NOT NULL,
    sent_at                TEXT,
    updated_at             TEXT NOT NULL,
    purpose                TEXT NOT NULL DEFAULT 'reply' CHECK (purpose = 'reply' OR purpose = 'ack' OR purpose = 'notice' OR purpose = 'notification' OR purpose = 'human'),
    customer_id            TEXT,
    window_closes_at       TEXT,
    template               TEXT,
    PRIMARY KEY (id, tenant_id),
    UNIQUE (idempotency_key, tenant_id)
);
INSERT INTO outbound_messages_new (tenant_id, id, idempotency_key, conversation_id, inbound_message_id, channel, provider_account_id, recipient, recipient_is_user_id, body, faq_id, mark_read_message_id, state, delivery_status, provider_message_id, attempts, next_attempt_at, claimed_until, error_code, error_message, created_at, sent_at, updated_at, purpose, customer_id, window_closes_at, template)
SELECT tenant_id, id, idempotency_key, conversation_id, inbound_message_id, channel, provider_account_id, recipient, recipient_is_user_id, body, faq_id, mark_read_message_id, state, delivery_status, provider_message_id, attempts, next_attempt_at, claimed_until, error_code, error_message, created_at, sent_at, updated_at, purpose, customer_id, window_closes_at, template FROM outbound_messages;
DROP TABLE outbound_messages;
ALTER TABLE outbound_messages_new RENAME TO outbound_messages;
CREATE INDEX outbound_messages_customer
    ON outbound_messages (tenant_id, channel, customer_id, state, id);
CREATE INDEX outbound_messages_pending ON outbound_messages (state, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX outbound_messages_provider_id ON outbound_messages (tenant_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

CREATE TABLE conversations_new (
    tenant_id                 BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                        BLOB NOT NULL,
    channel                   TEXT NOT NULL,
    customer_id               TEXT NOT NULL,
    status                    TEXT NOT NULL DEFAULT 'bot' CHECK (status = 'bot' OR status = 'human' OR status = 'closed'),
    started_at                TEXT NOT NULL,
    last_message_at           TEXT NOT NULL,
    human_since               TEXT,
    human_activity_at         TEXT,
    handoff_reason            TEXT,
    after_hours_notice_night  TEXT,
    PRIMARY KEY (id, tenant_id),
    UNIQUE (tenant_id, channel, customer_id),
    FOREIGN KEY (tenant_id, channel, customer_id) REFERENCES contacts (tenant_id, channel, customer_id) ON DELETE CASCADE
);
INSERT INTO conversations_new (tenant_id, id, channel, customer_id, status, started_at, last_message_at, human_since, human_activity_at, handoff_reason, after_hours_notice_night)
SELECT tenant_id, id, channel, customer_id, status, started_at, last_message_at, human_since, human_activity_at, handoff_reason, after_hours_notice_night FROM conversations;
DROP TABLE conversations;
ALTER TABLE conversations_new RENAME TO conversations;
