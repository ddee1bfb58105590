-- The second wall: row-level security on every tenant table. Each connection says
-- whose rows it may touch in the setting parley.tenant_id: a tenant's id (admin API
-- requests run so), '*' for parley's own cross-tenant work (queue workers, webhook
-- ingestion, the CLI), and nothing at all for anyone else. FORCE makes the policies
-- bind the tables' owner too; only superusers and BYPASSRLS roles are exempt, so run
-- parley as a role that is neither (see README, "Row-level security").

CREATE FUNCTION parley_all_tenants() RETURNS boolean
    LANGUAGE sql STABLE AS $$ SELECT current_setting('parley.tenant_id', true) = '*' $$;

CREATE FUNCTION parley_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s ~ '^[0-9a-fA-F-]{36}$' THEN s::uuid END
    FROM (SELECT current_setting('parley.tenant_id', true) AS s) AS setting $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenant_secrets', 'channel_accounts', 'ai_configs', 'control_settings',
        'templates', 'training_items', 'contacts', 'conversations', 'inbound_messages', 'decisions',
        'outbound_messages', 'message_statuses', 'rate_counters', 'prompt_versions',
        'prompt_publications', 'notifications', 'usage_daily', 'api_keys', 'audit_log']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (parley_all_tenants() OR tenant_id = parley_current_tenant()) '
            'WITH CHECK (parley_all_tenants() OR tenant_id = parley_current_tenant())', t);
    END LOOP;
END
$$;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (parley_all_tenants() OR id = parley_current_tenant())
    WITH CHECK (parley_all_tenants() OR id = parley_current_tenant());

ALTER TABLE operator_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE operator_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_only ON operator_keys USING (parley_all_tenants()) WITH CHECK (parley_all_tenants());

-- The narrow doors through the wall for lookups that must happen before the tenant is
-- known: webhook routing (by the path's slug, or by Meta's phone_number_id) and
-- API-key authentication (by the key's prefix). Each returns only what it is for.
CREATE FUNCTION parley_route_webhook(p_channel text, p_slug text, p_account text) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    saved text := current_setting('parley.tenant_id', true);
    found uuid;
BEGIN
    PERFORM set_config('parley.tenant_id', '*', true);
    IF p_slug IS NOT NULL THEN
        SELECT id INTO found FROM tenants WHERE slug = p_slug;
    ELSE
        SELECT tenant_id INTO found FROM channel_accounts
            WHERE channel = p_channel AND provider_account_id = p_account;
    END IF;
    PERFORM set_config('parley.tenant_id', COALESCE(saved, ''), true);
    RETURN found;
END
$$;

CREATE FUNCTION parley_find_tenant_key(p_prefix text)
    RETURNS TABLE (tenant_id uuid, role text, id uuid, prefix text, hash text, name text,
                   created_by text, created_at timestamptz, expires_at timestamptz,
                   revoked_at timestamptz, last_used_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    saved text := current_setting('parley.tenant_id', true);
BEGIN
    PERFORM set_config('parley.tenant_id', '*', true);
    RETURN QUERY SELECT k.tenant_id, k.role, k.id, k.prefix, k.hash, k.name, k.created_by,
        k.created_at, k.expires_at, k.revoked_at, k.last_used_at
        FROM api_keys k WHERE k.prefix = p_prefix;
    PERFORM set_config('parley.tenant_id', COALESCE(saved, ''), true);
END
$$;

-- The functions see this schema's tables whatever the caller's search_path is.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION parley_route_webhook(text, text, text) SET search_path = %I', current_schema());
    EXECUTE format('ALTER FUNCTION parley_find_tenant_key(text) SET search_path = %I', current_schema());
END
$$;

-- A role for the application (no login, no BYPASSRLS): grant it to the login role
-- parley connects as. Created when the migrating user may create roles.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
        BEGIN
            CREATE ROLE parley_app NOLOGIN NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO parley_app', current_schema());
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO parley_app', current_schema());
        EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO parley_app', current_schema());
    END IF;
END
$$;
