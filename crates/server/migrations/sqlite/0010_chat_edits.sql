-- Edited and deleted chat messages (sealkit_proto::chat::EditMessage), SQLite flavour. Keep in
-- step with ../postgres/0010_chat_edits.sql. An edit replaces the ciphertext in place and
-- records when; a delete empties the ciphertext (a tombstone: the seq stays, so history keeps
-- no gaps) and records when and by whom.
ALTER TABLE chat_messages ADD COLUMN edited_at_ms INTEGER;
ALTER TABLE chat_messages ADD COLUMN deleted_at_ms INTEGER;
ALTER TABLE chat_messages ADD COLUMN deleted_by TEXT;
