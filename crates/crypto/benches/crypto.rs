//! Criterion benchmarks of the hot paths: e3kit's authEncrypt/authDecrypt of 1 KiB for 1 and 100
//! recipients, bulk encryption and decryption of 64 MiB, and key generation.
//! `bench/compare` puts the same operations side by side with the Virgil libraries.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand_core::{OsRng, RngCore};
use sealkit_crypto::{Crypto, KeyType, PrivateKey, PublicKey};
use std::hint::black_box;

fn keys(n: usize) -> (Vec<PrivateKey>, Vec<PublicKey>) {
    let private: Vec<PrivateKey> = (0..n)
        .map(|_| PrivateKey::generate(KeyType::Ed25519, &mut OsRng))
        .collect();
    let public = private.iter().map(|k| k.public_key().clone()).collect();
    (private, public)
}

fn auth(c: &mut Criterion) {
    let crypto = Crypto::new();
    let alice = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let alice_pub = [alice.public_key().clone()];
    let mut data = vec![0u8; 1024];
    OsRng.fill_bytes(&mut data);
    let mut group = c.benchmark_group("auth_1k");
    for n in [1usize, 100] {
        let (private, public) = keys(n);
        group.bench_function(format!("encrypt_{n}r"), |b| {
            b.iter(|| crypto.sign_and_encrypt(&mut OsRng, black_box(&data), &alice, &public, true))
        });
        let message = crypto
            .sign_and_encrypt(&mut OsRng, &data, &alice, &public, true)
            .unwrap();
        let last = &private[n - 1];
        group.bench_function(format!("decrypt_{n}r"), |b| {
            b.iter(|| {
                crypto
                    .decrypt_and_verify(black_box(&message), last, &alice_pub)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn bulk(c: &mut Criterion) {
    let crypto = Crypto::new();
    let (private, public) = keys(1);
    let mut data = vec![0u8; 64 << 20];
    OsRng.fill_bytes(&mut data);
    let mut group = c.benchmark_group("bulk_64m");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("encrypt", |b| {
        b.iter(|| {
            crypto
                .encrypt(&mut OsRng, black_box(&data), &public, false)
                .unwrap()
        })
    });
    let message = crypto.encrypt(&mut OsRng, &data, &public, false).unwrap();
    group.bench_function("decrypt", |b| {
        b.iter_batched(
            || (),
            |()| crypto.decrypt(black_box(&message), &private[0]).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn keygen(c: &mut Criterion) {
    let mut group = c.benchmark_group("keygen");
    for t in [KeyType::Ed25519, KeyType::Curve25519, KeyType::Secp256r1] {
        group.bench_function(t.name(), |b| b.iter(|| PrivateKey::generate(t, &mut OsRng)));
    }
    group.finish();
}

criterion_group!(benches, auth, bulk, keygen);
criterion_main!(benches);
