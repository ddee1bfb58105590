-- The admin API: tenant API keys (hashed, with a visible prefix and a role), platform
-- operator keys (a separate table: never valid on a tenant's routes), and the audit
-- log of every admin write.

CREATE TABLE api_keys (
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            UUID NOT NULL,
    prefix        TEXT NOT NULL,
    hash          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'staff', 'viewer')),
    name          TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
-- Authentication finds a key by its prefix before it knows the tenant.
CREATE UNIQUE INDEX api_keys_prefix ON api_keys (prefix);

CREATE TABLE operator_keys (
    id            UUID PRIMARY KEY,
    prefix        TEXT NOT NULL UNIQUE,
    hash          TEXT NOT NULL,
    name          TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ
);

CREATE TABLE audit_log (
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          UUID NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    before      JSONB,
    after       JSONB,
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_log_time ON audit_log (tenant_id, at);

-- Every change to a tenant (each write bumps its revision) is announced, so every
-- running instance drops its cached context at once (LISTEN parley_tenant_changed).
CREATE FUNCTION parley_notify_tenant_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('parley_tenant_changed', COALESCE(NEW.id, OLD.id)::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER tenants_notify_change AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION parley_notify_tenant_change();
