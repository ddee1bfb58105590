DROP TABLE training_items;
DROP TABLE templates;
DROP TABLE control_settings;
DROP TABLE ai_configs;
DROP TABLE channel_accounts;
DROP TABLE tenant_secrets;
DROP TABLE tenants;
