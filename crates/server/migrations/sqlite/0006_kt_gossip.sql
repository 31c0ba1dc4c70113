-- Key-transparency gossip (docs/key-transparency.md, "Gossip"): the sender's newest signed
-- directory head, as the JSON of sealkit_proto::kt::SignedHead, stored with its chat message so
-- receivers can compare it with their own view. NULL for messages without one.
ALTER TABLE chat_messages ADD COLUMN kt_head TEXT;
