//! Brainkey v3 (`sealkit_pythia::v3`): the server's work per `POST /brainkey/v3/harden`
//! (identity-secret derivation, harden, public key, DLEQ proof) and the client's side
//! (blind, verify, deblind). `cargo bench -p sealkit-pythia --bench brainkey_v3`.
//! Side by side with Virgil's C library, in one run: `interop/python/bench_mobile_v3.py`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use rand_core::OsRng;
use sealkit_pythia::v3::{self, IdentitySecret};
use std::hint::black_box;

fn server(c: &mut Criterion) {
    let master = [7u8; 32];
    let (_, blinded) = v3::blind(b"correct horse battery staple", &mut OsRng).unwrap();
    c.bench_function("v3 server: derive + harden + public key + prove", |b| {
        b.iter(|| {
            let secret = IdentitySecret::derive(&master, "app", "alice@example.com").unwrap();
            let hardened = v3::harden(&secret, black_box(&blinded)).unwrap();
            let public_key = secret.public_key();
            v3::prove(&blinded, &hardened, &secret, &public_key, &mut OsRng).unwrap()
        })
    });
    let secret = IdentitySecret::derive(&master, "app", "alice@example.com").unwrap();
    c.bench_function("v3 server: harden + prove", |b| {
        b.iter(|| {
            let hardened = v3::harden(&secret, black_box(&blinded)).unwrap();
            let public_key = secret.public_key();
            v3::prove(&blinded, &hardened, &secret, &public_key, &mut OsRng).unwrap()
        })
    });
}

fn client(c: &mut Criterion) {
    let secret = IdentitySecret::random(&mut OsRng);
    let public_key = secret.public_key();
    let password = b"correct horse battery staple";
    c.bench_function("v3 client: blind", |b| {
        b.iter(|| v3::blind(black_box(password), &mut OsRng).unwrap())
    });
    let (factor, blinded) = v3::blind(password, &mut OsRng).unwrap();
    let hardened = v3::harden(&secret, &blinded).unwrap();
    let proof = v3::prove(&blinded, &hardened, &secret, &public_key, &mut OsRng).unwrap();
    c.bench_function("v3 client: verify + deblind", |b| {
        b.iter(|| {
            v3::verify(&blinded, &hardened, &public_key, &proof.c, &proof.s).unwrap();
            v3::deblind(password, &hardened, &factor, v3::E3KIT_BACKUP_KEY_NAME).unwrap()
        })
    });
}

criterion_group!(benches, server, client);
criterion_main!(benches);
