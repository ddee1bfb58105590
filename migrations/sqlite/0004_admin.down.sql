DROP TABLE audit_log;
DROP TABLE operator_keys;
DROP TABLE api_keys;
