//! Per-message cost of encrypt and decrypt (100-byte messages), in one direction (no DH ratchet
//! step) and alternating directions (a DH ratchet step on every message). The C library's
//! numbers for the same two cases, beside Rust's in one run: `interop/python/bench_mobile_v3.py`
//! (through ctypes, so they include the Python call overhead).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealkit_ratchet::x25519_dalek::{PublicKey, StaticSecret};
use sealkit_ratchet::{IdentityPrivateKey, IdentityPublicKey, KeyId, ResponderKeys, Session};

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

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let plaintext = [0x5a; 100];
    let mut group = c.benchmark_group("ratchet");

    let (mut a, _) = pair(&mut rng);
    group.bench_function("encrypt 100 B, same chain", |bench| {
        bench.iter(|| a.encrypt(&mut rng, &plaintext).unwrap())
    });
    // A fresh pair: the encrypt benchmark left bob far more than MAX_MESSAGE_GAP behind.
    let (mut a, mut b) = pair(&mut rng);
    group.bench_function("decrypt 100 B, same chain", |bench| {
        bench.iter_batched(
            || a.encrypt(&mut rng, &plaintext).unwrap(),
            |message| b.decrypt(&message).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let mut rng2 = ChaCha20Rng::seed_from_u64(2);
    let (mut a, mut b) = pair(&mut rng2);
    let mut turn = false;
    group.bench_function(
        "encrypt + decrypt 100 B, alternating (DH step each)",
        |bench| {
            bench.iter(|| {
                turn = !turn;
                let (sender, receiver) = if turn {
                    (&mut a, &mut b)
                } else {
                    (&mut b, &mut a)
                };
                let message = sender.encrypt(&mut rng2, &plaintext).unwrap();
                receiver.decrypt(&message).unwrap()
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
