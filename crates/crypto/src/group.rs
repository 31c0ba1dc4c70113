//! Group sessions, as e3kit groups use them (spec §8).
//!
//! A session is a set of epoch tickets; each epoch has a fresh random 32-byte key. A message is
//! encrypted with AES-256-GCM under a key and nonce derived per message with HKDF-SHA-512 from the
//! newest epoch key and a random salt, with the header as AAD, and the ciphertext is signed with
//! the sender's Ed25519 key.

use crate::error::{Error, Result};
use crate::format::group::{GroupMessage, Header, Regular, Ticket, MAX_CIPHER_TEXT};
use crate::gcm::AesGcmStream;
use crate::keys::{PrivateKey, PublicKey};
use rand_core::CryptoRngCore;
use sha2::Digest;
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const KDF_INFO: &[u8] = b"VIRGIL_GROUP_SESSION_KDF_CIPHER_INFO\0";
/// The reference keeps at most this many epochs; older ones are forgotten.
pub const MAX_EPOCHS: usize = 50;
/// Shortest group id the reference accepts.
pub const MIN_GROUP_ID_LEN: usize = 10;
/// Largest plaintext whose message stays within the reference's 30032-byte `cipher_text` limit.
pub const MAX_PLAINTEXT: usize = 29915;
const FRAME: usize = 160;

/// A group session: its id and epoch keys. Zeroized on drop; `Debug` shows no keys.
pub struct GroupSession {
    session_id: [u8; 32],
    epochs: BTreeMap<u32, Zeroizing<[u8; 32]>>,
}

impl core::fmt::Debug for GroupSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GroupSession")
            .field("session_id", &hex32(&self.session_id))
            .field("epochs", &self.epochs.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn hex32(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Session id and epoch of a group message, readable without any key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupMessageInfo {
    /// The session the message belongs to.
    pub session_id: [u8; 32],
    /// The epoch it was encrypted in.
    pub epoch: u32,
}

impl GroupSession {
    /// `sessionId = SHA-512(groupId)[0..32]`; the group id must be at least 10 bytes.
    pub fn session_id_for(group_id: &[u8]) -> Result<[u8; 32]> {
        if group_id.len() < MIN_GROUP_ID_LEN {
            return Err(Error::InvalidArgument("a group id has at least 10 bytes"));
        }
        let digest = sha2::Sha512::digest(group_id);
        let mut id = [0u8; 32];
        id.copy_from_slice(&digest[..32]);
        Ok(id)
    }

    /// Creates a session for `group_id` with epoch 0.
    pub fn create(group_id: &[u8], rng: &mut impl CryptoRngCore) -> Result<Self> {
        let mut session = Self {
            session_id: Self::session_id_for(group_id)?,
            epochs: BTreeMap::new(),
        };
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        session.epochs.insert(0, key);
        Ok(session)
    }

    /// Rebuilds a session from its epoch tickets (in any order). All must share one session id
    /// and have distinct epochs.
    pub fn from_tickets<T: AsRef<[u8]>>(tickets: &[T]) -> Result<Self> {
        let mut session: Option<Self> = None;
        for ticket in tickets {
            let t = match GroupMessage::decode(ticket.as_ref())? {
                GroupMessage::Ticket(t) => t,
                GroupMessage::Regular(_) => {
                    return Err(Error::InvalidArgument(
                        "an encrypted message is not a ticket",
                    ))
                }
            };
            let s = session.get_or_insert_with(|| Self {
                session_id: t.session_id,
                epochs: BTreeMap::new(),
            });
            if s.session_id != t.session_id {
                return Err(Error::Group("tickets belong to different sessions"));
            }
            if s.epochs.insert(t.epoch, t.key.clone()).is_some() {
                return Err(Error::Group("two tickets for one epoch"));
            }
        }
        let mut session = session.ok_or(Error::InvalidArgument("no tickets"))?;
        session.trim();
        Ok(session)
    }

    fn trim(&mut self) {
        while self.epochs.len() > MAX_EPOCHS {
            self.epochs.pop_first();
        }
    }

    /// Starts a new epoch with a fresh random key and returns its ticket, to be shared with the
    /// participants (encrypted: the ticket holds the key in clear).
    pub fn add_epoch(&mut self, rng: &mut impl CryptoRngCore) -> Result<Zeroizing<Vec<u8>>> {
        let next = self
            .current_epoch()
            .checked_add(1)
            .ok_or(Error::Group("epoch counter exhausted"))?;
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        self.epochs.insert(next, key);
        self.trim();
        self.ticket(next).ok_or(Error::Group("epoch missing"))
    }

    /// The ticket of one epoch.
    pub fn ticket(&self, epoch: u32) -> Option<Zeroizing<Vec<u8>>> {
        let key = self.epochs.get(&epoch)?;
        Some(Zeroizing::new(
            GroupMessage::Ticket(Ticket {
                session_id: self.session_id,
                epoch,
                key: key.clone(),
            })
            .encode(),
        ))
    }

    /// All tickets, oldest first (virgil-crypto's `export`).
    pub fn tickets(&self) -> Vec<Zeroizing<Vec<u8>>> {
        self.epochs.keys().filter_map(|&e| self.ticket(e)).collect()
    }

    /// The session id.
    pub fn session_id(&self) -> [u8; 32] {
        self.session_id
    }

    /// The newest epoch number (the one encryption uses).
    pub fn current_epoch(&self) -> u32 {
        self.epochs.keys().next_back().copied().unwrap_or(0)
    }

    /// Reads the session id and epoch of a message.
    pub fn message_info(message: &[u8]) -> Result<GroupMessageInfo> {
        match GroupMessage::decode(message)? {
            GroupMessage::Regular(r) => Ok(GroupMessageInfo {
                session_id: r.header.session_id,
                epoch: r.header.epoch,
            }),
            GroupMessage::Ticket(_) => Err(Error::InvalidArgument("a ticket is not a message")),
        }
    }

    /// Encrypts and signs a message with the newest epoch (spec §8.3). Only Ed25519 senders.
    pub fn encrypt(
        &self,
        rng: &mut impl CryptoRngCore,
        plaintext: &[u8],
        sender: &PrivateKey,
    ) -> Result<Vec<u8>> {
        let signing = sender.ed25519().ok_or(Error::Unsupported(
            "group messages are signed with Ed25519 keys only",
        ))?;
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(Error::InvalidArgument(
                "group message plaintext is too long",
            ));
        }
        let epoch = self.current_epoch();
        let epoch_key = self.epochs.get(&epoch).ok_or(Error::Group("no epoch"))?;
        let mut salt = [0u8; 32];
        rng.fill_bytes(&mut salt);
        let header = Header {
            session_id: self.session_id,
            epoch,
            salt,
        };
        let header_bytes = header.encode();

        let padded_len = ((plaintext.len() + 4) / FRAME + 1) * FRAME;
        let mut body = Vec::with_capacity(padded_len + 16);
        body.extend_from_slice(plaintext);
        let mut pad = vec![0u8; padded_len - plaintext.len() - 4];
        rng.fill_bytes(&mut pad);
        body.extend_from_slice(&pad);
        body.extend_from_slice(&(plaintext.len() as u32).to_le_bytes());

        let (key, nonce) = derive(epoch_key, &salt);
        let mut gcm = AesGcmStream::new(&key, &nonce);
        gcm.set_aad(&header_bytes)
            .and_then(|()| gcm.encrypt(&mut body))
            .map_err(|_| Error::InvalidArgument("group message too large for AES-GCM"))?;
        body.extend_from_slice(&gcm.finish());

        use ed25519_dalek::Signer as _;
        let signature = signing.sign(&body).to_bytes();
        Ok(GroupMessage::Regular(Regular {
            header_bytes,
            header,
            signature,
            cipher_text: body,
        })
        .encode())
    }

    /// Verifies the sender's signature and decrypts a message.
    pub fn decrypt(&self, message: &[u8], sender: &PublicKey) -> Result<Vec<u8>> {
        let r = match GroupMessage::decode(message)? {
            GroupMessage::Regular(r) => r,
            GroupMessage::Ticket(_) => {
                return Err(Error::InvalidArgument("a ticket is not a message"))
            }
        };
        if r.header.session_id != self.session_id {
            return Err(Error::Group("the message belongs to another session"));
        }
        let epoch_key = self
            .epochs
            .get(&r.header.epoch)
            .ok_or(Error::Group("the message's epoch is not known"))?;
        let verifying = match sender {
            PublicKey::Ed25519(k) => k,
            _ => {
                return Err(Error::Unsupported(
                    "group messages are signed with Ed25519 keys only",
                ))
            }
        };
        use ed25519_dalek::Verifier as _;
        verifying
            .verify(
                &r.cipher_text,
                &ed25519_dalek::Signature::from_bytes(&r.signature),
            )
            .map_err(|_| Error::SignatureInvalid)?;

        let (key, nonce) = derive(epoch_key, &r.header.salt);
        let split = r.cipher_text.len().saturating_sub(16);
        let (ct, tag) = r.cipher_text.split_at(split);
        if ct.len() > MAX_CIPHER_TEXT {
            return Err(Error::DecryptionFailed);
        }
        let mut body = Zeroizing::new(ct.to_vec());
        let mut gcm = AesGcmStream::new(&key, &nonce);
        gcm.set_aad(&r.header_bytes)
            .and_then(|()| gcm.decrypt(&mut body))
            .map_err(|_| Error::DecryptionFailed)?;
        if !bool::from(gcm.finish().as_slice().ct_eq(tag)) {
            return Err(Error::DecryptionFailed);
        }
        let len_start = body.len().checked_sub(4).ok_or(Error::DecryptionFailed)?;
        let len_bytes: [u8; 4] = body[len_start..]
            .try_into()
            .map_err(|_| Error::DecryptionFailed)?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        // The reference requires len < padded − 4; the pad is 1..=160 bytes by construction.
        if len >= len_start || len_start - len > FRAME {
            return Err(Error::DecryptionFailed);
        }
        Ok(body[..len].to_vec())
    }
}

fn derive(epoch_key: &[u8; 32], salt: &[u8; 32]) -> (Zeroizing<[u8; 32]>, [u8; 12]) {
    let mut okm = Zeroizing::new([0u8; 44]);
    // 44 bytes is far below HKDF-SHA-512's output limit, so expansion cannot fail.
    let _ = hkdf::Hkdf::<sha2::Sha512>::new(Some(salt), epoch_key).expand(KDF_INFO, okm.as_mut());
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[..32]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..]);
    (key, nonce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;
    use rand_core::OsRng;

    #[test]
    fn epochs_round_trip_and_old_sessions_cannot_read_new_epochs() {
        let alice = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
        let mut s =
            GroupSession::create(b"a-group-id-123", &mut OsRng).unwrap_or_else(|_| panic!());
        let old = GroupSession::from_tickets(&s.tickets()).unwrap_or_else(|_| panic!());
        let m0 = s
            .encrypt(&mut OsRng, b"epoch 0", &alice)
            .unwrap_or_default();
        assert!(s.add_epoch(&mut OsRng).is_ok());
        let m1 = s.encrypt(&mut OsRng, b"", &alice).unwrap_or_default();
        assert_eq!(
            GroupSession::message_info(&m1).map(|i| i.epoch).ok(),
            Some(1)
        );
        assert_eq!(
            s.decrypt(&m0, alice.public_key()).ok(),
            Some(b"epoch 0".to_vec())
        );
        assert_eq!(s.decrypt(&m1, alice.public_key()).ok(), Some(Vec::new()));
        assert!(matches!(
            old.decrypt(&m1, alice.public_key()),
            Err(Error::Group(_))
        ));
        let bob = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
        assert!(matches!(
            s.decrypt(&m0, bob.public_key()),
            Err(Error::SignatureInvalid)
        ));
    }

    #[test]
    fn size_limits() {
        let alice = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
        let s = GroupSession::create(b"a-group-id-123", &mut OsRng).unwrap_or_else(|_| panic!());
        let max = s
            .encrypt(&mut OsRng, &vec![1; MAX_PLAINTEXT], &alice)
            .unwrap_or_default();
        assert!(max.len() <= 30188);
        assert!(s
            .encrypt(&mut OsRng, &vec![1; MAX_PLAINTEXT + 1], &alice)
            .is_err());
        assert!(GroupSession::create(b"short", &mut OsRng).is_err());
    }
}
