DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenant_secrets', 'channel_accounts', 'ai_configs', 'control_settings',
        'templates', 'training_items', 'contacts', 'conversations', 'inbound_messages', 'decisions',
        'outbound_messages', 'message_statuses', 'rate_counters', 'prompt_versions',
        'prompt_publications', 'notifications', 'usage_daily', 'api_keys', 'audit_log', 'tenants']
    LOOP
        EXECUTE format('DROP POLICY tenant_isolation ON %I', t);
        EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
    END LOOP;
END
$$;
DROP POLICY platform_only ON operator_keys;
ALTER TABLE operator_keys NO FORCE ROW LEVEL SECURITY;
ALTER TABLE operator_keys DISABLE ROW LEVEL SECURITY;
DROP FUNCTION parley_find_tenant_key(text);
DROP FUNCTION parley_route_webhook(text, text, text);
DROP FUNCTION parley_current_tenant();
DROP FUNCTION parley_all_tenants();
