-- Read state (sealkit_proto::chat::MarkRead), SQLite flavour. Keep in step with
-- ../postgres/0008_read_state.sql. Each member's read horizon: the highest seq it has read. It
-- lives on the member row, so it goes when the member leaves and a member added again starts
-- afresh. Existing members start at the channel's last seq: nothing they had is counted unread.
ALTER TABLE chat_members ADD COLUMN read_seq INTEGER NOT NULL DEFAULT 0;
UPDATE chat_members SET read_seq = (
    SELECT c.last_seq FROM chat_channels AS c
    WHERE c.app_id = chat_members.app_id AND c.id = chat_members.channel_id
);
