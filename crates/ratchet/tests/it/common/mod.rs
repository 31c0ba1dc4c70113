//! Shared helpers: key material, a party abstraction over a Rust session and a C session, and the
//! client of the C oracle.

pub mod oracle;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealkit_ratchet::x25519_dalek::{PublicKey, StaticSecret};
use sealkit_ratchet::{
    Error, IdentityPrivateKey, IdentityPublicKey, KeyId, Message, ResponderKeys, Session,
};
use sha2::{Digest, Sha512};

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The keys of one user, as e3kit has them: an Ed25519 card key, a long-term and a one-time
/// X25519 key.
pub struct UserKeys {
    pub identity_seed: [u8; 32],
    pub long_term: [u8; 32],
    pub one_time: [u8; 32],
}

impl UserKeys {
    pub fn new(tag: u8) -> Self {
        Self {
            identity_seed: [tag; 32],
            long_term: [tag.wrapping_add(100); 32],
            one_time: [tag.wrapping_add(200); 32],
        }
    }

    /// The Ed25519 public key of the identity seed.
    pub fn identity_public(&self) -> [u8; 32] {
        let digest = Sha512::digest(self.identity_seed);
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&digest[..32]);
        curve25519_dalek::EdwardsPoint::mul_base_clamped(scalar)
            .compress()
            .to_bytes()
    }

    pub fn identity_private(&self) -> IdentityPrivateKey {
        IdentityPrivateKey::from_ed25519_seed(&self.identity_seed)
    }

    pub fn identity_public_key(&self) -> IdentityPublicKey {
        IdentityPublicKey::from_ed25519_bytes(&self.identity_public()).unwrap()
    }

    pub fn long_term_public(&self) -> [u8; 32] {
        PublicKey::from(&StaticSecret::from(self.long_term)).to_bytes()
    }

    pub fn one_time_public(&self) -> [u8; 32] {
        PublicKey::from(&StaticSecret::from(self.one_time)).to_bytes()
    }

    pub fn identity_key_id(&self) -> KeyId {
        KeyId::of_public_key(&self.identity_public())
    }

    pub fn long_term_key_id(&self) -> KeyId {
        KeyId::of_public_key(&self.long_term_public())
    }

    pub fn one_time_key_id(&self) -> KeyId {
        KeyId::of_public_key(&self.one_time_public())
    }

    /// What the key service hands out for this user.
    pub fn bundle(&self, with_one_time: bool) -> ResponderKeys {
        ResponderKeys {
            identity: self.identity_public_key(),
            identity_key_id: self.identity_key_id(),
            long_term: PublicKey::from(self.long_term_public()),
            long_term_key_id: self.long_term_key_id(),
            one_time: with_one_time.then(|| {
                (
                    PublicKey::from(self.one_time_public()),
                    self.one_time_key_id(),
                )
            }),
        }
    }
}

/// The `vscr_status_t` code the C library reports for the same failure, so that outcomes of
/// both implementations can be compared.
pub fn status_of(error: &Error) -> i64 {
    match error {
        Error::Malformed { .. } => -1,
        Error::WrongMessageType => -2,
        Error::DecryptionFailed => -3,
        Error::InvalidKey => -5,
        Error::MessageAlreadyDecrypted => -10,
        Error::TooManyLostMessages => -11,
        Error::SenderChainMissing => -12,
        Error::SkippedMessageMissing => -13,
        Error::SessionNotReady => -14,
        Error::PlaintextTooLong => -15,
        Error::ChainExhausted => -17,
        other => panic!("no C status for {other:?}"),
    }
}

/// One side of a conversation, run by this crate or by the C library.
pub trait Party {
    fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8>;
    /// The plaintext, or the C status code of the failure.
    fn decrypt(&mut self, message: &[u8]) -> Result<Vec<u8>, i64>;
    fn serialize(&mut self) -> Vec<u8>;
    fn name(&self) -> &'static str;
}

pub struct RustParty {
    pub session: Session,
    pub rng: ChaCha20Rng,
}

impl Party for RustParty {
    fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.session
            .encrypt(&mut self.rng, plaintext)
            .unwrap()
            .encode()
    }

    fn decrypt(&mut self, message: &[u8]) -> Result<Vec<u8>, i64> {
        let message = Message::decode(message).map_err(|e| status_of(&e))?;
        self.session
            .decrypt(&message)
            .map(|p| p.to_vec())
            .map_err(|e| status_of(&e))
    }

    fn serialize(&mut self) -> Vec<u8> {
        self.session.serialize().to_vec()
    }

    fn name(&self) -> &'static str {
        "rust"
    }
}

/// Sends one message and returns it (not yet delivered).
pub fn send(from: &mut dyn Party, text: &str) -> (Vec<u8>, String) {
    (from.encrypt(text.as_bytes()), text.to_owned())
}

/// Delivers a message and checks its plaintext.
pub fn deliver(to: &mut dyn Party, message: &(Vec<u8>, String)) {
    let plaintext = to.decrypt(&message.0).unwrap_or_else(|status| {
        panic!(
            "{} failed to decrypt {:?}: status {status}",
            to.name(),
            message.1
        )
    });
    assert_eq!(
        String::from_utf8(plaintext).unwrap(),
        message.1,
        "{}",
        to.name()
    );
}

/// A scripted conversation after the session start: both directions, several DH ratchet steps,
/// messages out of order within a chain, messages of an old chain delivered after the peer
/// ratcheted, a replay and a tampered message (both refused, the session still working after).
pub fn converse(a: &mut dyn Party, b: &mut dyn Party) {
    let r: Vec<_> = (0..3).map(|i| send(b, &format!("b{i}"))).collect();
    deliver(a, &r[2]);
    deliver(a, &r[0]);
    let s: Vec<_> = (0..2).map(|i| send(a, &format!("a{i}"))).collect();
    deliver(b, &s[1]);
    deliver(b, &s[0]);
    let t = send(b, "b-new-chain");
    deliver(a, &t);
    deliver(a, &r[1]); // from b's previous chain, after b ratcheted
    let u: Vec<_> = (0..5).map(|i| send(a, &format!("a-second-{i}"))).collect();
    deliver(b, &u[4]);
    deliver(b, &u[2]);
    let v = send(b, "b-third-chain");
    deliver(a, &v);
    deliver(b, &u[0]);
    deliver(b, &u[1]);
    deliver(b, &u[3]);
    assert_eq!(b.decrypt(&u[3].0), Err(-13), "replay to {}", b.name());
    assert_eq!(b.decrypt(&u[4].0), Err(-13), "replay to {}", b.name());
    let w = send(a, "after replay");
    let mut tampered = w.0.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(b.decrypt(&tampered), Err(-3), "tampered to {}", b.name());
    deliver(b, &w);
    for round in 0..3 {
        let x = send(a, &format!("ping {round}"));
        deliver(b, &x);
        let y = send(b, &format!("pong {round}"));
        deliver(a, &y);
    }
    let long = "x".repeat(sealkit_ratchet::MAX_PLAIN_TEXT_LEN);
    let z = send(b, &long);
    deliver(a, &z);
    let empty = send(a, "");
    deliver(b, &empty);
}

/// Session start through three prekey messages delivered out of order (the responder starts
/// from the second one), then [`converse`].
pub fn start_and_converse(
    initiator: &mut dyn Party,
    make_responder: &mut dyn FnMut(&[u8]) -> Box<dyn Party>,
) {
    let m: Vec<_> = (0..3)
        .map(|i| send(initiator, &format!("prekey {i}")))
        .collect();
    let mut responder = make_responder(&m[1].0);
    deliver(responder.as_mut(), &m[1]);
    deliver(responder.as_mut(), &m[2]);
    deliver(responder.as_mut(), &m[0]);
    converse(initiator, responder.as_mut());
}
