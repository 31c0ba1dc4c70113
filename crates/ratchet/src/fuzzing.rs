//! Entry points for the `cargo fuzz` targets in `fuzz/` (`ratchet_message`, `ratchet_session`,
//! `ratchet_decrypt`). Each takes untrusted bytes and must never panic; where parsing succeeds
//! it also checks that encoding is stable (encode → decode → encode gives the same bytes).
//! Compiled only with the `fuzzing` feature.

use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::{IdentityPrivateKey, IdentityPublicKey, KeyId, Message, ResponderKeys, Session};

/// Message parser: `Message::decode`, and the encoding round trip.
pub fn message(data: &[u8]) {
    if let Ok(message) = Message::decode(data) {
        let encoded = message.encode();
        let again = Message::decode(&encoded).map(|m| m.encode());
        assert_eq!(again.ok(), Some(encoded));
    }
}

/// Session parser: `Session::deserialize`, the serialization round trip, and one encryption
/// (which must not panic whatever state was read).
pub fn session(data: &[u8]) {
    if let Ok(mut session) = Session::deserialize(data) {
        let serialized = session.serialize();
        let again = Session::deserialize(&serialized).map(|s| s.serialize());
        assert_eq!(
            again.ok().as_deref().map(Vec::as_slice),
            Some(serialized.as_slice())
        );
        let _ = session.encrypt(&mut CounterRng(0), b"fuzz");
    }
}

/// The input as a message to a fixed pair of sessions: to the responder of a fresh session (as
/// its first message, then as a later one) and to the initiator after one exchange.
pub fn decrypt(data: &[u8]) {
    let Ok(message) = Message::decode(data) else {
        return;
    };
    let mut rng = CounterRng(1);
    let (alice_identity, bob_identity) = (
        IdentityPrivateKey::from_ed25519_seed(&[1; 32]),
        IdentityPrivateKey::from_ed25519_seed(&[2; 32]),
    );
    let bob_long_term = StaticSecret::from([3; 32]);
    let bob_one_time = StaticSecret::from([4; 32]);
    let keys = ResponderKeys {
        identity: IdentityPublicKey::from_x25519_bytes(bob_identity.x25519_public_key().to_bytes()),
        identity_key_id: KeyId([2; 8]),
        long_term: PublicKey::from(&bob_long_term),
        long_term_key_id: KeyId([3; 8]),
        one_time: Some((PublicKey::from(&bob_one_time), KeyId([4; 8]))),
    };
    let alice_public =
        IdentityPublicKey::from_x25519_bytes(alice_identity.x25519_public_key().to_bytes());
    let _ = Session::respond(
        &alice_public,
        &bob_identity,
        &bob_long_term,
        Some(&bob_one_time),
        &message,
    );

    let Ok(mut alice) = Session::initiate(&mut rng, &alice_identity, KeyId([1; 8]), &keys) else {
        return;
    };
    let Ok(first) = alice.encrypt(&mut rng, b"first") else {
        return;
    };
    let Ok(mut bob) = Session::respond(
        &alice_public,
        &bob_identity,
        &bob_long_term,
        Some(&bob_one_time),
        &first,
    ) else {
        return;
    };
    let _ = bob.decrypt(&first);
    let _ = bob.decrypt(&message);
    if let Ok(reply) = bob.encrypt(&mut rng, b"reply") {
        let _ = alice.decrypt(&reply);
    }
    let _ = alice.decrypt(&message);
}

/// A deterministic generator for the fuzz entry points (SHA-512 of a counter): the fuzzer must
/// see the same behaviour for the same input.
struct CounterRng(u64);

impl RngCore for CounterRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(64) {
            self.0 += 1;
            let block = Sha512::digest(self.0.to_le_bytes());
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for CounterRng {}
