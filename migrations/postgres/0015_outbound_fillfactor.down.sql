ALTER TABLE outbound_messages RESET (fillfactor);
