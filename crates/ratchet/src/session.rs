//! A double-ratchet session between two parties, step for step as libvsc_ratchet
//! (`vscr_ratchet_session.c`, `vscr_ratchet.c`, `vscr_ratchet_xxdh.c`) runs it.

use prost::Message as _;
use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{malformed_session, Error, Result};
use crate::kdf::{self, ChainKey, MessageKey, SymmetricKey};
use crate::keys::{agree, IdentityPrivateKey, IdentityPublicKey, KeyId};
use crate::message::{Header, Message, PrekeyInfo};
use crate::proto;
use crate::skipped::{SkippedChain, SkippedKeys, MAX_SKIPPED_CHAINS, MAX_SKIPPED_MESSAGES};

/// The most bytes one message may carry (`vscr_ratchet_common_MAX_PLAIN_TEXT_LEN`).
pub const MAX_PLAIN_TEXT_LEN: usize = 30_000;
/// How far ahead of its chain a message may be (`MAX_MESSAGE_GAP`): a message more than this many
/// positions past the next expected one is refused with [`Error::TooManyLostMessages`].
pub const MAX_MESSAGE_GAP: u32 = 2_000;
/// The session format version libvsc_ratchet writes and this crate writes.
pub const SESSION_VERSION: u32 = 2;
/// The longest serialized session the C library accepts (`MAX_SESSION_LEN`).
pub const MAX_SESSION_LEN: usize = 46_622;

/// The responder's public keys as the initiator gets them (from the key service: identity card
/// key, long-term key, optionally a one-time key), each with the id the messages will name it by.
#[derive(Clone, Debug)]
pub struct ResponderKeys {
    /// The responder's identity key (its card's Ed25519 key, converted).
    pub identity: IdentityPublicKey,
    /// Id of [`ResponderKeys::identity`].
    pub identity_key_id: KeyId,
    /// The responder's long-term X25519 key.
    pub long_term: PublicKey,
    /// Id of [`ResponderKeys::long_term`].
    pub long_term_key_id: KeyId,
    /// The responder's one-time X25519 key and its id, if the key service had one.
    pub one_time: Option<(PublicKey, KeyId)>,
}

#[derive(Clone)]
struct SenderChain {
    private: StaticSecret,
    public: [u8; 32],
    chain_key: ChainKey,
}

#[derive(Clone)]
struct ReceiverChain {
    key_id: KeyId,
    public: [u8; 32],
    chain_key: ChainKey,
}

/// A ratchet session: the state one side keeps. Secrets are zeroized when it is dropped. Not
/// `Clone` on purpose: two copies of a session would reuse message keys.
pub struct Session {
    is_initiator: bool,
    received_first_response: bool,
    receiver_has_one_time_key: bool,
    /// What the initiator repeats in every message until it hears back.
    prekey: Option<PrekeyInfo>,
    sender_chain: Option<SenderChain>,
    prev_sender_chain_count: u32,
    receiver_chain: Option<ReceiverChain>,
    root_key: SymmetricKey,
    skipped: SkippedKeys,
}

// Every secret field zeroizes itself on drop: the chain private key (`StaticSecret`), the root,
// chain and skipped-message keys (`SymmetricKey`).
impl zeroize::ZeroizeOnDrop for Session {}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("is_initiator", &self.is_initiator)
            .field("received_first_response", &self.received_first_response)
            .field("skipped_keys", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

fn random_key_pair(rng: &mut dyn CryptoRngCore) -> (StaticSecret, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let private = StaticSecret::from(bytes);
    bytes.zeroize();
    let public = PublicKey::from(&private).to_bytes();
    (private, public)
}

impl Session {
    /// Starts a session as the initiator (`vscr_ratchet_session_initiate`): X3DH-style agreement
    /// of our identity key and a fresh ephemeral key with the responder's identity, long-term and
    /// optional one-time keys, then the first DH ratchet step against the long-term key. Every
    /// message this side sends is a prekey message until it decrypts one from the responder.
    pub fn initiate(
        rng: &mut dyn CryptoRngCore,
        sender_identity: &IdentityPrivateKey,
        sender_identity_key_id: KeyId,
        responder: &ResponderKeys,
    ) -> Result<Self> {
        let (ephemeral, ephemeral_public) = random_key_pair(rng);
        let mut agreements = Zeroizing::new(Vec::with_capacity(128));
        agreements.extend_from_slice(&*agree(sender_identity.secret(), &responder.long_term)?);
        agreements.extend_from_slice(&*agree(&ephemeral, responder.identity.x25519())?);
        agreements.extend_from_slice(&*agree(&ephemeral, &responder.long_term)?);
        if let Some((one_time, _)) = &responder.one_time {
            agreements.extend_from_slice(&*agree(&ephemeral, one_time)?);
        }
        let shared = kdf::session_key(&agreements);

        let (private, public) = random_key_pair(rng);
        let agreement = agree(&private, &responder.long_term)?;
        let (root_key, chain_key) = kdf::ratchet_step(&shared, &*agreement);
        Ok(Self {
            is_initiator: true,
            received_first_response: false,
            receiver_has_one_time_key: responder.one_time.is_some(),
            prekey: Some(PrekeyInfo {
                sender_identity_key_id,
                sender_ephemeral_key: ephemeral_public,
                receiver_identity_key_id: responder.identity_key_id,
                receiver_long_term_key_id: responder.long_term_key_id,
                receiver_one_time_key_id: responder.one_time.as_ref().map(|(_, id)| *id),
            }),
            sender_chain: Some(SenderChain {
                private,
                public,
                chain_key,
            }),
            prev_sender_chain_count: 0,
            receiver_chain: None,
            root_key,
            skipped: SkippedKeys::default(),
        })
    }

    /// Starts a session as the responder from the initiator's first prekey message
    /// (`vscr_ratchet_session_respond`). `receiver_one_time` must be the private key of the
    /// one-time key the message names (see [`PrekeyInfo::receiver_one_time_key_id`]), or `None`
    /// if it names none. As in the C library, the message is decrypted once here to check it, but
    /// not consumed: pass it to [`Session::decrypt`] next to read it. The responder cannot
    /// encrypt until it has decrypted a message.
    pub fn respond(
        sender_identity: &IdentityPublicKey,
        receiver_identity: &IdentityPrivateKey,
        receiver_long_term: &StaticSecret,
        receiver_one_time: Option<&StaticSecret>,
        message: &Message,
    ) -> Result<Self> {
        let prekey = message.prekey().ok_or(Error::WrongMessageType)?;
        let ephemeral = PublicKey::from(prekey.sender_ephemeral_key);
        let mut agreements = Zeroizing::new(Vec::with_capacity(128));
        agreements.extend_from_slice(&*agree(receiver_long_term, sender_identity.x25519())?);
        agreements.extend_from_slice(&*agree(receiver_identity.secret(), &ephemeral)?);
        agreements.extend_from_slice(&*agree(receiver_long_term, &ephemeral)?);
        if let Some(one_time) = receiver_one_time {
            agreements.extend_from_slice(&*agree(one_time, &ephemeral)?);
        }
        let shared = kdf::session_key(&agreements);

        let header = message.header();
        let agreement = agree(receiver_long_term, &PublicKey::from(header.public_key))?;
        let (root_key, chain_key) = kdf::ratchet_step(&shared, &*agreement);
        decrypt_with_chain(&chain_key, message)?;
        let key_id = KeyId::of_public_key(&header.public_key);
        let mut skipped = SkippedKeys::default();
        skipped.add_chain(key_id);
        Ok(Self {
            is_initiator: false,
            received_first_response: false,
            receiver_has_one_time_key: receiver_one_time.is_some(),
            prekey: None,
            sender_chain: None,
            prev_sender_chain_count: 0,
            receiver_chain: Some(ReceiverChain {
                key_id,
                public: header.public_key,
                chain_key,
            }),
            root_key,
            skipped,
        })
    }

    /// Whether this side started the session.
    pub fn is_initiator(&self) -> bool {
        self.is_initiator
    }

    /// Whether this side has decrypted a message of the peer yet.
    pub fn received_first_response(&self) -> bool {
        self.received_first_response
    }

    /// Whether the session was started with a one-time key.
    pub fn receiver_has_one_time_key(&self) -> bool {
        self.receiver_has_one_time_key
    }

    /// How many skipped-message keys the session holds.
    pub fn skipped_key_count(&self) -> usize {
        self.skipped.len()
    }

    /// Encrypts one message (`vscr_ratchet_session_encrypt`): at most [`MAX_PLAIN_TEXT_LEN`]
    /// bytes, padded to a multiple of 160 bytes with random bytes. Starts a new sending chain
    /// (a DH ratchet step with a fresh key) if the last message came from the peer.
    pub fn encrypt(&mut self, rng: &mut dyn CryptoRngCore, plaintext: &[u8]) -> Result<Message> {
        if plaintext.len() > MAX_PLAIN_TEXT_LEN {
            return Err(Error::PlaintextTooLong);
        }
        if !self.is_initiator && !self.received_first_response {
            return Err(Error::SessionNotReady);
        }
        if self.sender_chain.is_none() {
            let receiver = self
                .receiver_chain
                .as_ref()
                .ok_or(Error::SenderChainMissing)?;
            let (private, public) = random_key_pair(rng);
            let agreement = agree(&private, &PublicKey::from(receiver.public))?;
            let (root_key, chain_key) = kdf::ratchet_step(&self.root_key, &*agreement);
            self.root_key = root_key;
            self.sender_chain = Some(SenderChain {
                private,
                public,
                chain_key,
            });
        }
        let chain = self
            .sender_chain
            .as_mut()
            .ok_or(Error::SenderChainMissing)?;
        let message_key = chain.chain_key.message_key();
        chain.chain_key.advance()?;
        let header = Header {
            counter: message_key.index,
            prev_chain_count: self.prev_sender_chain_count,
            public_key: chain.public,
        };
        let header_bytes = header.encode();
        let cipher_text = kdf::seal(rng, &message_key, plaintext, &header_bytes)?;
        let prekey = if self.is_initiator && !self.received_first_response {
            self.prekey
        } else {
            None
        };
        Ok(Message::new(header, header_bytes, cipher_text, prekey))
    }

    /// Decrypts one message (`vscr_ratchet_session_decrypt`), in or out of order: a message of an
    /// earlier position opens with its stored skipped-message key (then deleted), a message ahead
    /// stores the keys of the positions it skips (up to [`MAX_MESSAGE_GAP`]), a message under a
    /// new ratchet key of the peer takes a DH ratchet step. On any error the session is left
    /// exactly as it was (the C library may keep part of the update).
    pub fn decrypt(&mut self, message: &Message) -> Result<Zeroizing<Vec<u8>>> {
        if message.prekey().is_some() && self.is_initiator {
            return Err(Error::WrongMessageType);
        }
        let plaintext = self.ratchet_decrypt(message)?;
        self.received_first_response = true;
        if self.is_initiator {
            self.prekey = None;
        }
        Ok(plaintext)
    }

    fn ratchet_decrypt(&mut self, message: &Message) -> Result<Zeroizing<Vec<u8>>> {
        let header = *message.header();
        let key_id = KeyId::of_public_key(&header.public_key);
        let current = self.receiver_chain.as_mut().filter(|c| c.key_id == key_id);

        if current
            .as_ref()
            .is_none_or(|c| c.chain_key.index > header.counter)
        {
            match self.skipped.find(&key_id, header.counter) {
                Some(message_key) => {
                    let plaintext =
                        kdf::open(message_key, message.cipher_text(), message.header_bytes())?;
                    self.skipped.remove(&key_id, header.counter);
                    return Ok(plaintext);
                }
                None if current.is_some() => return Err(Error::SkippedMessageMissing),
                None => {}
            }
        }

        if let Some(chain) = current {
            let plaintext = decrypt_with_chain(&chain.chain_key, message)?;
            // Infallible from here: counter < u32::MAX was checked by decrypt_with_chain.
            store_skipped_keys(&mut self.skipped, chain, header.counter);
            chain.chain_key.advance()?;
            return Ok(plaintext);
        }

        // A new ratchet key of the peer: one DH ratchet step.
        let sender = self
            .sender_chain
            .as_ref()
            .ok_or(Error::SenderChainMissing)?;
        if header.counter > MAX_MESSAGE_GAP {
            return Err(Error::TooManyLostMessages);
        }
        let agreement = agree(&sender.private, &PublicKey::from(header.public_key))?;
        let (root_key, chain_key) = kdf::ratchet_step(&self.root_key, &*agreement);
        let plaintext = decrypt_with_chain(&chain_key, message)?;
        if self.skipped.contains_chain(&key_id) {
            // Only an authenticated peer that reuses an old ratchet key gets here (the C library
            // aborts on an assertion).
            return Err(Error::InvalidKey);
        }

        let sender_count = sender.chain_key.index;
        let mut new_chain = ReceiverChain {
            key_id,
            public: header.public_key,
            chain_key,
        };
        let old_chain = self.receiver_chain.take();
        self.prev_sender_chain_count = sender_count;
        self.sender_chain = None;
        self.root_key = root_key;
        self.skipped.add_chain(key_id);
        if let Some(mut old) = old_chain {
            // The C library walks the old chain up to any announced length; past
            // MAX_MESSAGE_GAP this crate stores nothing for it instead, to bound the work.
            if header.prev_chain_count.saturating_sub(old.chain_key.index) <= MAX_MESSAGE_GAP {
                store_skipped_keys(&mut self.skipped, &mut old, header.prev_chain_count);
            }
        }
        store_skipped_keys(&mut self.skipped, &mut new_chain, header.counter);
        new_chain.chain_key.advance()?;
        self.receiver_chain = Some(new_chain);
        Ok(plaintext)
    }

    /// Serializes the session in libvsc_ratchet's own format (`vscr_Session` protobuf, version 2,
    /// as `vscr_ratchet_session_serialize` writes it), so either side can continue a session the
    /// other saved. The bytes hold secrets.
    pub fn serialize(&self) -> Zeroizing<Vec<u8>> {
        let pending = self
            .prekey
            .filter(|_| self.is_initiator && !self.received_first_response);
        let mut pb = proto::Session {
            version: Some(SESSION_VERSION),
            received_first_response: Some(self.received_first_response),
            is_initiator: Some(self.is_initiator),
            enable_post_quantum: Some(false),
            receiver_has_one_time_public_key: Some(self.receiver_has_one_time_key),
            sender_identity_key_id: pending.map(|p| p.sender_identity_key_id.0.to_vec()),
            sender_ephemeral_key: pending.map(|p| p.sender_ephemeral_key.to_vec()),
            receiver_identity_key_id: pending.map(|p| p.receiver_identity_key_id.0.to_vec()),
            receiver_long_term_key_id: pending.map(|p| p.receiver_long_term_key_id.0.to_vec()),
            receiver_one_time_key_id: pending
                .and_then(|p| p.receiver_one_time_key_id)
                .map(|id| id.0.to_vec()),
            pqc_info: None,
            ratchet: Some(proto::Ratchet {
                sender_chain: self.sender_chain.as_ref().map(|c| proto::SenderChain {
                    private_key_first: Some(c.private.to_bytes().to_vec()),
                    public_key_first: Some(c.public.to_vec()),
                    private_key_second: None,
                    public_key_second: None,
                    encapsulated_key: None,
                    chain_key: Some(indexed(c.chain_key.index, &c.chain_key.key)),
                }),
                prev_sender_chain_count: Some(self.prev_sender_chain_count),
                receiver_chain: self.receiver_chain.as_ref().map(|c| proto::ReceiverChain {
                    public_key_id: Some(c.key_id.0.to_vec()),
                    public_key_first: Some(c.public.to_vec()),
                    public_key_second: None,
                    chain_key: Some(indexed(c.chain_key.index, &c.chain_key.key)),
                }),
                root_key: Some(self.root_key.0.to_vec()),
                skipped_messages: Some(proto::SkippedMessages {
                    keys: self
                        .skipped
                        .chains
                        .iter()
                        .map(|chain| proto::SkippedMessageKey {
                            public_key_id: Some(chain.key_id.0.to_vec()),
                            message_keys: chain
                                .keys
                                .iter()
                                .map(|k| indexed(k.index, &k.key))
                                .collect(),
                        })
                        .collect(),
                }),
                enable_post_quantum: Some(false),
            }),
        };
        let bytes = Zeroizing::new(pb.encode_to_vec());
        wipe(&mut pb);
        bytes
    }

    /// Restores a session from [`Session::serialize`] output or from
    /// `vscr_ratchet_session_serialize` of the C library. Never panics; a defect is
    /// [`Error::Malformed`], a post-quantum session [`Error::PostQuantumUnsupported`].
    pub fn deserialize(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_SESSION_LEN {
            return Err(malformed_session("length"));
        }
        let mut pb = proto::Session::decode(bytes).map_err(|_| malformed_session("protobuf"))?;
        let session = Self::from_pb(&pb);
        wipe(&mut pb);
        session
    }

    fn from_pb(pb: &proto::Session) -> Result<Self> {
        pb.version.ok_or_else(|| malformed_session("version"))?;
        let received_first_response = pb
            .received_first_response
            .ok_or_else(|| malformed_session("received_first_response"))?;
        let is_initiator = pb
            .is_initiator
            .ok_or_else(|| malformed_session("is_initiator"))?;
        if pb
            .enable_post_quantum
            .ok_or_else(|| malformed_session("enable_post_quantum"))?
            || pb.pqc_info.is_some()
        {
            return Err(Error::PostQuantumUnsupported);
        }
        let receiver_has_one_time_key = pb
            .receiver_has_one_time_public_key
            .ok_or_else(|| malformed_session("receiver_has_one_time_public_key"))?;
        let prekey = if is_initiator && !received_first_response {
            if receiver_has_one_time_key != pb.receiver_one_time_key_id.is_some() {
                return Err(malformed_session("receiver_one_time_key_id"));
            }
            Some(PrekeyInfo {
                sender_identity_key_id: KeyId(fixed(
                    &pb.sender_identity_key_id,
                    "sender_identity_key_id",
                )?),
                sender_ephemeral_key: fixed(&pb.sender_ephemeral_key, "sender_ephemeral_key")?,
                receiver_identity_key_id: KeyId(fixed(
                    &pb.receiver_identity_key_id,
                    "receiver_identity_key_id",
                )?),
                receiver_long_term_key_id: KeyId(fixed(
                    &pb.receiver_long_term_key_id,
                    "receiver_long_term_key_id",
                )?),
                receiver_one_time_key_id: match &pb.receiver_one_time_key_id {
                    None => None,
                    id @ Some(_) => Some(KeyId(fixed(id, "receiver_one_time_key_id")?)),
                },
            })
        } else {
            None
        };

        let ratchet = pb
            .ratchet
            .as_ref()
            .ok_or_else(|| malformed_session("ratchet"))?;
        if ratchet
            .enable_post_quantum
            .ok_or_else(|| malformed_session("ratchet.enable_post_quantum"))?
        {
            return Err(Error::PostQuantumUnsupported);
        }
        let sender_chain = match &ratchet.sender_chain {
            None => None,
            Some(c) => {
                if c.private_key_second.is_some()
                    || c.public_key_second.is_some()
                    || c.encapsulated_key.is_some()
                {
                    return Err(Error::PostQuantumUnsupported);
                }
                let mut private: [u8; 32] = fixed(
                    &c.private_key_first,
                    "ratchet.sender_chain.private_key_first",
                )?;
                let secret = StaticSecret::from(private);
                private.zeroize();
                Some(SenderChain {
                    private: secret,
                    public: fixed(&c.public_key_first, "ratchet.sender_chain.public_key_first")?,
                    chain_key: chain_key_from(&c.chain_key, "ratchet.sender_chain.chain_key")?,
                })
            }
        };
        let receiver_chain = match &ratchet.receiver_chain {
            None => None,
            Some(c) => {
                if c.public_key_second.is_some() {
                    return Err(Error::PostQuantumUnsupported);
                }
                Some(ReceiverChain {
                    key_id: KeyId(fixed(
                        &c.public_key_id,
                        "ratchet.receiver_chain.public_key_id",
                    )?),
                    public: fixed(
                        &c.public_key_first,
                        "ratchet.receiver_chain.public_key_first",
                    )?,
                    chain_key: chain_key_from(&c.chain_key, "ratchet.receiver_chain.chain_key")?,
                })
            }
        };
        let skipped_pb = ratchet
            .skipped_messages
            .as_ref()
            .ok_or_else(|| malformed_session("ratchet.skipped_messages"))?;
        if skipped_pb.keys.len() > MAX_SKIPPED_CHAINS {
            return Err(malformed_session("ratchet.skipped_messages.keys"));
        }
        let mut skipped = SkippedKeys::default();
        for chain in &skipped_pb.keys {
            let key_id = KeyId(fixed(
                &chain.public_key_id,
                "ratchet.skipped_messages.keys.public_key_id",
            )?);
            if skipped.contains_chain(&key_id) || chain.message_keys.len() > MAX_SKIPPED_MESSAGES {
                return Err(malformed_session("ratchet.skipped_messages.keys"));
            }
            let keys = chain
                .message_keys
                .iter()
                .map(|k| {
                    let ck = chain_key_from(
                        &Some(k.clone()),
                        "ratchet.skipped_messages.keys.message_keys",
                    )?;
                    Ok(MessageKey {
                        index: ck.index,
                        key: ck.key.clone(),
                    })
                })
                .collect::<Result<_>>()?;
            skipped.chains.push_back(SkippedChain { key_id, keys });
        }
        // The C library always tracks the current receiving chain among the skipped-key chains.
        if let Some(chain) = &receiver_chain {
            if !skipped.contains_chain(&chain.key_id) {
                return Err(malformed_session("ratchet.skipped_messages.keys"));
            }
        }
        Ok(Self {
            is_initiator,
            received_first_response,
            receiver_has_one_time_key,
            prekey,
            sender_chain,
            prev_sender_chain_count: ratchet
                .prev_sender_chain_count
                .ok_or_else(|| malformed_session("ratchet.prev_sender_chain_count"))?,
            receiver_chain,
            root_key: SymmetricKey(fixed(&ratchet.root_key, "ratchet.root_key")?),
            skipped,
        })
    }
}

/// Decrypts `message` with the key at its counter in the chain starting at `chain_key`, without
/// changing the chain (`vscr_ratchet_decrypt_for_existing_chain`).
fn decrypt_with_chain(chain_key: &ChainKey, message: &Message) -> Result<Zeroizing<Vec<u8>>> {
    let counter = message.header().counter;
    if counter < chain_key.index {
        return Err(Error::MessageAlreadyDecrypted);
    }
    if counter - chain_key.index > MAX_MESSAGE_GAP {
        return Err(Error::TooManyLostMessages);
    }
    if counter == u32::MAX {
        // The chain could not advance past this message afterwards.
        return Err(Error::ChainExhausted);
    }
    let mut key = chain_key.clone();
    while key.index < counter {
        key.advance()?;
    }
    kdf::open(
        &key.message_key(),
        message.cipher_text(),
        message.header_bytes(),
    )
}

/// Stores the keys of the positions of `chain` before `counter` as skipped-message keys and moves
/// the chain to `counter` (`vscr_ratchet_generate_skipped_keys`).
fn store_skipped_keys(skipped: &mut SkippedKeys, chain: &mut ReceiverChain, counter: u32) {
    while chain.chain_key.index < counter {
        let key = chain.chain_key.message_key();
        if chain.chain_key.advance().is_err() {
            break;
        }
        skipped.add_key(&chain.key_id, key);
    }
}

fn indexed(index: u32, key: &SymmetricKey) -> proto::IndexedKey {
    proto::IndexedKey {
        index: Some(index),
        key: Some(key.0.to_vec()),
    }
}

fn fixed<const N: usize>(bytes: &Option<Vec<u8>>, field: &'static str) -> Result<[u8; N]> {
    bytes
        .as_deref()
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| malformed_session(field))
}

fn chain_key_from(pb: &Option<proto::IndexedKey>, field: &'static str) -> Result<ChainKey> {
    let pb = pb.as_ref().ok_or_else(|| malformed_session(field))?;
    Ok(ChainKey {
        index: pb.index.ok_or_else(|| malformed_session(field))?,
        key: SymmetricKey(fixed(&pb.key, field)?),
    })
}

/// Zeroizes the secrets of a protobuf session (prost's structs do not zeroize themselves).
fn wipe(pb: &mut proto::Session) {
    fn wipe_key(key: &mut Option<proto::IndexedKey>) {
        if let Some(k) = key {
            k.key.zeroize();
        }
    }
    if let Some(ratchet) = &mut pb.ratchet {
        ratchet.root_key.zeroize();
        if let Some(c) = &mut ratchet.sender_chain {
            c.private_key_first.zeroize();
            wipe_key(&mut c.chain_key);
        }
        if let Some(c) = &mut ratchet.receiver_chain {
            wipe_key(&mut c.chain_key);
        }
        if let Some(s) = &mut ratchet.skipped_messages {
            for chain in &mut s.keys {
                for key in &mut chain.message_keys {
                    key.key.zeroize();
                }
            }
        }
    }
}
