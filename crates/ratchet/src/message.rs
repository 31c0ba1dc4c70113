//! Ratchet messages (`vscr_Message` of `vscr_RatchetMessage.proto`, version 2):
//!
//! ```text
//! Message        { 1: version uint32, 2: regular_message RegularMessage, 3: prekey_message PrekeyMessage? }
//! RegularMessage { 1: header bytes (a serialized RegularMessageHeader), 2: cipher_text bytes }
//! RegularMessageHeader { 1: counter uint32, 2: prev_chain_count uint32, 3: public_key bytes(32),
//!                        4: pqc_info? (refused) }
//! PrekeyMessage  { 1: sender_identity_key_id bytes(8), 2: sender_ephemeral_key bytes(32),
//!                  3: receiver_identity_key_id bytes(8), 4: receiver_long_term_key_id bytes(8),
//!                  5: receiver_one_time_key_id bytes(8)?, 6: pqc_info? (refused) }
//! ```
//!
//! The cipher text is AES-256-GCM output (ciphertext ‖ 16-byte tag) whose associated data is the
//! header exactly as serialized in the message, so a decoded message keeps those bytes.

use prost::Message as _;

use crate::error::{malformed_message, Error, Result};
use crate::keys::KeyId;
use crate::proto;

/// The message version libvsc_ratchet writes (`vscr_ratchet_common_hidden_MESSAGE_VERSION`).
pub const MESSAGE_VERSION: u32 = 2;
/// The longest serialized message the C library accepts (`vscr_ratchet_common_MAX_MESSAGE_LEN`).
pub const MAX_MESSAGE_LEN: usize = 35_583;
/// The longest cipher text the C library can decrypt (`MAX_CIPHER_TEXT_LEN`); longer ones are
/// refused when parsing.
pub const MAX_CIPHER_TEXT_LEN: usize = 32_768;

/// Whether a message starts a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// A message of an established session.
    Regular,
    /// A message of the initiator sent before it received any answer: it carries what the
    /// responder needs to start the session ([`PrekeyInfo`]).
    Prekey,
}

/// The header of every message: the sender's current ratchet public key and the positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Index of this message in the sender's current chain.
    pub counter: u32,
    /// Number of messages in the sender's previous chain.
    pub prev_chain_count: u32,
    /// The sender's current ratchet public key (X25519).
    pub public_key: [u8; 32],
}

/// What a prekey message adds: the ids of the keys the initiator used and its ephemeral key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrekeyInfo {
    /// Id of the initiator's identity key.
    pub sender_identity_key_id: KeyId,
    /// The initiator's ephemeral X25519 public key.
    pub sender_ephemeral_key: [u8; 32],
    /// Id of the responder's identity key.
    pub receiver_identity_key_id: KeyId,
    /// Id of the responder's long-term key.
    pub receiver_long_term_key_id: KeyId,
    /// Id of the responder's one-time key, if one was used.
    pub receiver_one_time_key_id: Option<KeyId>,
}

/// A ratchet message, parsed or about to be sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    version: u32,
    header: Header,
    header_bytes: Vec<u8>,
    cipher_text: Vec<u8>,
    prekey: Option<PrekeyInfo>,
}

impl core::fmt::Debug for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Message")
            .field("version", &self.version)
            .field("header", &self.header)
            .field("cipher_text_len", &self.cipher_text.len())
            .field("prekey", &self.prekey)
            .finish()
    }
}

fn fixed<const N: usize>(bytes: Option<&Vec<u8>>, field: &'static str) -> Result<[u8; N]> {
    bytes
        .and_then(|b| <[u8; N]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| malformed_message(field))
}

impl Header {
    fn decode(bytes: &[u8]) -> Result<Self> {
        let pb = proto::RegularMessageHeader::decode(bytes)
            .map_err(|_| malformed_message("regular_message.header"))?;
        if pb.pqc_info.is_some() {
            return Err(Error::PostQuantumUnsupported);
        }
        Ok(Self {
            counter: pb
                .counter
                .ok_or_else(|| malformed_message("regular_message.header.counter"))?,
            prev_chain_count: pb
                .prev_chain_count
                .ok_or_else(|| malformed_message("regular_message.header.prev_chain_count"))?,
            public_key: fixed(pb.public_key.as_ref(), "regular_message.header.public_key")?,
        })
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        proto::RegularMessageHeader {
            counter: Some(self.counter),
            prev_chain_count: Some(self.prev_chain_count),
            public_key: Some(self.public_key.to_vec()),
            pqc_info: None,
        }
        .encode_to_vec()
    }
}

impl PrekeyInfo {
    fn from_pb(pb: &proto::PrekeyMessage) -> Result<Self> {
        if pb.pqc_info.is_some() {
            return Err(Error::PostQuantumUnsupported);
        }
        Ok(Self {
            sender_identity_key_id: KeyId(fixed(
                pb.sender_identity_key_id.as_ref(),
                "prekey_message.sender_identity_key_id",
            )?),
            sender_ephemeral_key: fixed(
                pb.sender_ephemeral_key.as_ref(),
                "prekey_message.sender_ephemeral_key",
            )?,
            receiver_identity_key_id: KeyId(fixed(
                pb.receiver_identity_key_id.as_ref(),
                "prekey_message.receiver_identity_key_id",
            )?),
            receiver_long_term_key_id: KeyId(fixed(
                pb.receiver_long_term_key_id.as_ref(),
                "prekey_message.receiver_long_term_key_id",
            )?),
            receiver_one_time_key_id: match &pb.receiver_one_time_key_id {
                None => None,
                Some(id) => Some(KeyId(fixed(
                    Some(id),
                    "prekey_message.receiver_one_time_key_id",
                )?)),
            },
        })
    }

    fn to_pb(self) -> proto::PrekeyMessage {
        proto::PrekeyMessage {
            sender_identity_key_id: Some(self.sender_identity_key_id.0.to_vec()),
            sender_ephemeral_key: Some(self.sender_ephemeral_key.to_vec()),
            receiver_identity_key_id: Some(self.receiver_identity_key_id.0.to_vec()),
            receiver_long_term_key_id: Some(self.receiver_long_term_key_id.0.to_vec()),
            receiver_one_time_key_id: self.receiver_one_time_key_id.map(|id| id.0.to_vec()),
            pqc_info: None,
        }
    }
}

impl Message {
    pub(crate) fn new(
        header: Header,
        header_bytes: Vec<u8>,
        cipher_text: Vec<u8>,
        prekey: Option<PrekeyInfo>,
    ) -> Self {
        Self {
            version: MESSAGE_VERSION,
            header,
            header_bytes,
            cipher_text,
            prekey,
        }
    }

    /// Parses a serialized message. Never panics; any defect is [`Error::Malformed`] (or
    /// [`Error::PostQuantumUnsupported`]). Like the C library, the version number is kept but not
    /// checked, and unknown fields are skipped.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(malformed_message("length"));
        }
        let pb = proto::Message::decode(bytes).map_err(|_| malformed_message("protobuf"))?;
        let version = pb.version.ok_or_else(|| malformed_message("version"))?;
        let regular = pb
            .regular_message
            .ok_or_else(|| malformed_message("regular_message"))?;
        let header_bytes = regular
            .header
            .ok_or_else(|| malformed_message("regular_message.header"))?;
        let cipher_text = regular
            .cipher_text
            .ok_or_else(|| malformed_message("regular_message.cipher_text"))?;
        if cipher_text.len() > MAX_CIPHER_TEXT_LEN {
            return Err(malformed_message("regular_message.cipher_text"));
        }
        let header = Header::decode(&header_bytes)?;
        let prekey = pb
            .prekey_message
            .as_ref()
            .map(PrekeyInfo::from_pb)
            .transpose()?;
        Ok(Self {
            version,
            header,
            header_bytes,
            cipher_text,
            prekey,
        })
    }

    /// Serializes the message as libvsc_ratchet does (`vscr_ratchet_message_serialize`); for a
    /// message parsed from canonical protobuf, the bytes it was parsed from.
    pub fn encode(&self) -> Vec<u8> {
        proto::Message {
            version: Some(self.version),
            regular_message: Some(proto::RegularMessage {
                header: Some(self.header_bytes.clone()),
                cipher_text: Some(self.cipher_text.clone()),
            }),
            prekey_message: self.prekey.map(PrekeyInfo::to_pb),
        }
        .encode_to_vec()
    }

    /// Prekey or regular.
    pub fn message_type(&self) -> MessageType {
        if self.prekey.is_some() {
            MessageType::Prekey
        } else {
            MessageType::Regular
        }
    }

    /// The version field (2 for everything libvsc_ratchet writes).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The parsed header. (`vscr_ratchet_message_get_counter` of the C library reports 0 for
    /// every prekey message; [`Header::counter`] is the real counter.)
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The prekey part, for a prekey message.
    pub fn prekey(&self) -> Option<&PrekeyInfo> {
        self.prekey.as_ref()
    }

    pub(crate) fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    pub(crate) fn cipher_text(&self) -> &[u8] {
        &self.cipher_text
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn sample(prekey: bool) -> Message {
        let header = Header {
            counter: 3,
            prev_chain_count: 0,
            public_key: [7; 32],
        };
        let prekey = prekey.then_some(PrekeyInfo {
            sender_identity_key_id: KeyId([1; 8]),
            sender_ephemeral_key: [2; 32],
            receiver_identity_key_id: KeyId([3; 8]),
            receiver_long_term_key_id: KeyId([4; 8]),
            receiver_one_time_key_id: Some(KeyId([5; 8])),
        });
        Message::new(header, header.encode(), vec![9; 176], prekey)
    }

    #[test]
    fn round_trip() {
        for prekey in [false, true] {
            let message = sample(prekey);
            let bytes = message.encode();
            let back = Message::decode(&bytes).unwrap();
            assert_eq!(back, message);
            assert_eq!(back.encode(), bytes);
        }
    }

    #[test]
    fn header_layout_is_nanopb_order() {
        let header = Header {
            counter: 1,
            prev_chain_count: 0,
            public_key: [0xaa; 32],
        };
        let bytes = header.encode();
        assert_eq!(&bytes[..6], &[0x08, 0x01, 0x10, 0x00, 0x1a, 0x20]);
        assert_eq!(bytes.len(), 6 + 32);
    }

    #[test]
    fn truncations_and_bad_lengths_are_errors() {
        let bytes = sample(true).encode();
        // The prekey part comes last: the only proper prefix that parses is the regular message.
        let regular_len = sample(false).encode().len();
        for cut in 0..bytes.len() {
            match Message::decode(&bytes[..cut]) {
                Ok(m) => assert!(cut == regular_len && m.prekey().is_none(), "cut at {cut}"),
                Err(e) => assert!(matches!(e, Error::Malformed { .. }), "{e:?}"),
            }
        }
        let mut header = Header::decode(&sample(false).header_bytes)
            .unwrap()
            .encode();
        header.truncate(header.len() - 1);
        header[5] = 31;
        let message = proto::Message {
            version: Some(2),
            regular_message: Some(proto::RegularMessage {
                header: Some(header),
                cipher_text: Some(vec![0; 32]),
            }),
            prekey_message: None,
        }
        .encode_to_vec();
        assert_eq!(
            Message::decode(&message).unwrap_err(),
            malformed_message("regular_message.header.public_key")
        );
        assert!(Message::decode(&vec![0u8; MAX_MESSAGE_LEN + 1]).is_err());
    }
}
