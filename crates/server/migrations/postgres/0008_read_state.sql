-- Read state (sealkit_proto::chat::MarkRead), PostgreSQL flavour. Keep in step with
-- ../sqlite/0008_read_state.sql. Each member's read horizon: the highest seq it has read. It
-- lives on the member row, so it goes when the member leaves and a member added again starts
-- afresh. Existing members start at the channel's last seq: nothing they had is counted unread.
ALTER TABLE chat_members ADD COLUMN read_seq BIGINT NOT NULL DEFAULT 0;
UPDATE chat_members AS m SET read_seq = c.last_seq
FROM chat_channels AS c
WHERE c.app_id = m.app_id AND c.id = m.channel_id;
