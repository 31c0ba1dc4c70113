//! Per-message encrypt and decrypt times (100-byte messages) in one direction and with
//! alternating senders (a DH ratchet step each message), as one JSON line: the Rust half of
//! `interop/python/bench_mobile_v3.py`, which times the C library the same way and prints both.
//!
//! `cargo run --release -p sealkit-ratchet --example bench_ratchet -- [MESSAGES]`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealkit_ratchet::x25519_dalek::{PublicKey, StaticSecret};
use sealkit_ratchet::{IdentityPrivateKey, IdentityPublicKey, KeyId, ResponderKeys, Session};
use std::time::{Duration, Instant};

/// Two sessions that have exchanged one message each way.
fn pair(rng: &mut ChaCha20Rng) -> (Session, Session) {
    let alice = IdentityPrivateKey::from_x25519_bytes([1; 32]);
    let bob = IdentityPrivateKey::from_x25519_bytes([2; 32]);
    let long_term = StaticSecret::from([3; 32]);
    let keys = ResponderKeys {
        identity: IdentityPublicKey::from_x25519_bytes(bob.x25519_public_key().to_bytes()),
        identity_key_id: KeyId([2; 8]),
        long_term: PublicKey::from(&long_term),
        long_term_key_id: KeyId([3; 8]),
        one_time: None,
    };
    let mut a = Session::initiate(rng, &alice, KeyId([1; 8]), &keys).unwrap();
    let first = a.encrypt(rng, b"hello").unwrap();
    let alice_public = IdentityPublicKey::from_x25519_bytes(alice.x25519_public_key().to_bytes());
    let mut b = Session::respond(&alice_public, &bob, &long_term, None, &first).unwrap();
    b.decrypt(&first).unwrap();
    let reply = b.encrypt(rng, b"hi").unwrap();
    a.decrypt(&reply).unwrap();
    (a, b)
}

fn micros(total: Duration, count: usize) -> f64 {
    (total.as_secs_f64() / count as f64 * 1e7).round() / 10.0
}

fn main() {
    let messages: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("MESSAGES is a number"))
        .unwrap_or(2000);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let plaintext = [0x5a; 100];
    let mut modes = Vec::new();
    for (mode, alternate) in [("same_chain", false), ("alternating", true)] {
        let (mut alice, mut bob) = pair(&mut rng);
        let (mut encrypt, mut decrypt) = (Duration::ZERO, Duration::ZERO);
        for i in 0..messages {
            let (sender, receiver) = if alternate && i % 2 == 1 {
                (&mut bob, &mut alice)
            } else {
                (&mut alice, &mut bob)
            };
            let start = Instant::now();
            let message = sender.encrypt(&mut rng, &plaintext).unwrap();
            let encrypted = Instant::now();
            receiver.decrypt(&message).unwrap();
            decrypt += encrypted.elapsed();
            encrypt += encrypted - start;
        }
        modes.push(format!(
            "\"{mode}\": {{\"encrypt_us\": {}, \"decrypt_us\": {}}}",
            micros(encrypt, messages),
            micros(decrypt, messages)
        ));
    }
    println!(
        "{{\"library\": \"sealkit-ratchet\", \"messages\": {messages}, {}}}",
        modes.join(", ")
    );
}
