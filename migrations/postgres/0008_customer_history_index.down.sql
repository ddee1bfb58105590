DROP INDEX outbound_messages_history;
