//! The protobuf (proto2) messages of libvsc_ratchet, field for field
//! (`library/ratchet/protobuf/vscr_RatchetMessage.proto` and `vscr_RatchetSession.proto`).
//!
//! Every field is an `Option` (or a `Vec` for repeated fields), `required` ones included: prost
//! does not check proto2 presence, so [`crate::message`] and [`crate::session`] check it and
//! turn these wire structs into typed ones. Fields are declared in tag order, which is also the
//! order nanopb writes them in, so encoding a decoded canonical message gives the same bytes.
//! The post-quantum submessages are declared only so that their presence can be detected and
//! refused.

#![allow(missing_docs)]

/// `vscr_RegularMessageHeaderPqcInfo`: only detected, never used.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RegularMessageHeaderPqcInfo {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub public_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub encapsulated_key: Option<Vec<u8>>,
}

/// `vscr_RegularMessageHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RegularMessageHeader {
    #[prost(uint32, optional, tag = "1")]
    pub counter: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub prev_chain_count: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub public_key: Option<Vec<u8>>,
    #[prost(message, optional, tag = "4")]
    pub pqc_info: Option<RegularMessageHeaderPqcInfo>,
}

/// `vscr_RegularMessage`: the header travels serialized, as the AEAD's associated data.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RegularMessage {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub header: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub cipher_text: Option<Vec<u8>>,
}

/// `vscr_PrekeyMessagePqcInfo`: only detected, never used.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PrekeyMessagePqcInfo {
    #[prost(bytes = "vec", optional, tag = "6")]
    pub encapsulated_key1: Option<Vec<u8>>,
}

/// `vscr_PrekeyMessage`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PrekeyMessage {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub sender_identity_key_id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub sender_ephemeral_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub receiver_identity_key_id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub receiver_long_term_key_id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub receiver_one_time_key_id: Option<Vec<u8>>,
    #[prost(message, optional, tag = "6")]
    pub pqc_info: Option<PrekeyMessagePqcInfo>,
}

/// `vscr_Message`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    #[prost(uint32, optional, tag = "1")]
    pub version: Option<u32>,
    #[prost(message, optional, tag = "2")]
    pub regular_message: Option<RegularMessage>,
    #[prost(message, optional, tag = "3")]
    pub prekey_message: Option<PrekeyMessage>,
}

/// `vscr_ChainKey` and `vscr_MessageKey` (same shape).
#[derive(Clone, PartialEq, prost::Message)]
pub struct IndexedKey {
    #[prost(uint32, optional, tag = "1")]
    pub index: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub key: Option<Vec<u8>>,
}

/// `vscr_SenderChain`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SenderChain {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub private_key_first: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub public_key_first: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub private_key_second: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub public_key_second: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub encapsulated_key: Option<Vec<u8>>,
    #[prost(message, optional, tag = "6")]
    pub chain_key: Option<IndexedKey>,
}

/// `vscr_ReceiverChain`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReceiverChain {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub public_key_id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub public_key_first: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub public_key_second: Option<Vec<u8>>,
    #[prost(message, optional, tag = "4")]
    pub chain_key: Option<IndexedKey>,
}

/// `vscr_SkippedMessageKey`: the skipped message keys of one receiving chain, newest first.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SkippedMessageKey {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub public_key_id: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "2")]
    pub message_keys: Vec<IndexedKey>,
}

/// `vscr_SkippedMessages`: newest chain first.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SkippedMessages {
    #[prost(message, repeated, tag = "1")]
    pub keys: Vec<SkippedMessageKey>,
}

/// `vscr_Ratchet`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ratchet {
    #[prost(message, optional, tag = "1")]
    pub sender_chain: Option<SenderChain>,
    #[prost(uint32, optional, tag = "2")]
    pub prev_sender_chain_count: Option<u32>,
    #[prost(message, optional, tag = "3")]
    pub receiver_chain: Option<ReceiverChain>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub root_key: Option<Vec<u8>>,
    #[prost(message, optional, tag = "5")]
    pub skipped_messages: Option<SkippedMessages>,
    #[prost(bool, optional, tag = "6")]
    pub enable_post_quantum: Option<bool>,
}

/// `vscr_SessionPqcInfo`: only detected, never used.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionPqcInfo {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub encapsulated_key1: Option<Vec<u8>>,
}

/// `vscr_Session`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Session {
    #[prost(uint32, optional, tag = "1")]
    pub version: Option<u32>,
    #[prost(bool, optional, tag = "2")]
    pub received_first_response: Option<bool>,
    #[prost(bool, optional, tag = "3")]
    pub is_initiator: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub enable_post_quantum: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    pub receiver_has_one_time_public_key: Option<bool>,
    #[prost(bytes = "vec", optional, tag = "6")]
    pub sender_identity_key_id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "7")]
    pub sender_ephemeral_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "8")]
    pub receiver_identity_key_id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "9")]
    pub receiver_long_term_key_id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "10")]
    pub receiver_one_time_key_id: Option<Vec<u8>>,
    #[prost(message, optional, tag = "11")]
    pub pqc_info: Option<SessionPqcInfo>,
    #[prost(message, optional, tag = "12")]
    pub ratchet: Option<Ratchet>,
}
