-- The admin API: tenant API keys (hashed, with a visible prefix and a role), platform
-- operator keys (a separate table: never valid on a tenant's routes), and the audit
-- log of every admin write.

CREATE TABLE api_keys (
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            BLOB NOT NULL,
    prefix        TEXT NOT NULL,
    hash          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'staff', 'viewer')),
    name          TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    last_used_at  TEXT,
    PRIMARY KEY (tenant_id, id)
);
-- Authentication finds a key by its prefix before it knows the tenant.
CREATE UNIQUE INDEX api_keys_prefix ON api_keys (prefix);

CREATE TABLE operator_keys (
    id            BLOB PRIMARY KEY,
    prefix        TEXT NOT NULL UNIQUE,
    hash          TEXT NOT NULL,
    name          TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    last_used_at  TEXT
);

CREATE TABLE audit_log (
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    before      TEXT,
    after       TEXT,
    at          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_log_time ON audit_log (tenant_id, at);
