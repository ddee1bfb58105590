ALTER TABLE channel_accounts DROP COLUMN token_status;
DROP TABLE rate_counters;
DROP TABLE message_statuses;
DROP TABLE outbound_messages;
DROP TABLE decisions;
DROP TABLE inbound_messages;
DROP TABLE conversations;
DROP TABLE contacts;
