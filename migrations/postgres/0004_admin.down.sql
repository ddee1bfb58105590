DROP TRIGGER tenants_notify_change ON tenants;
DROP FUNCTION parley_notify_tenant_change();
DROP TABLE audit_log;
DROP TABLE operator_keys;
DROP TABLE api_keys;
