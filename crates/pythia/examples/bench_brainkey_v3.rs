//! Brainkey v3 operations, in microseconds per operation, as one JSON line: the Rust half of
//! `interop/python/bench_mobile_v3.py`, which times Virgil's C library the same way and prints
//! both. The server's transform is what `POST /brainkey/v3/harden` computes once the identity
//! secret is known (harden, public key, DLEQ proof).
//!
//! `cargo run --release -p sealkit-pythia --example bench_brainkey_v3 -- [SECONDS]`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rand_core::OsRng;
use sealkit_pythia::v3::{self, IdentitySecret};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Microseconds per call of `f`, run for about `budget` after one warm-up call.
fn per_op(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < budget {
        f();
        count += 1;
    }
    (start.elapsed().as_secs_f64() / count as f64 * 1e7).round() / 10.0
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("SECONDS is a number"))
        .unwrap_or(2.0);
    let budget = Duration::from_secs_f64(seconds);
    let password = b"correct horse battery staple";
    let secret = IdentitySecret::random(&mut OsRng);
    let public_key = secret.public_key();
    let (factor, blinded) = v3::blind(password, &mut OsRng).unwrap();
    let server = per_op(budget, || {
        let hardened = v3::harden(&secret, black_box(&blinded)).unwrap();
        let public_key = secret.public_key();
        black_box(v3::prove(&blinded, &hardened, &secret, &public_key, &mut OsRng).unwrap());
    });
    let blind = per_op(budget, || {
        black_box(v3::blind(black_box(password), &mut OsRng).unwrap());
    });
    let hardened = v3::harden(&secret, &blinded).unwrap();
    let proof = v3::prove(&blinded, &hardened, &secret, &public_key, &mut OsRng).unwrap();
    let finish = per_op(budget, || {
        v3::verify(&blinded, &hardened, &public_key, &proof.c, &proof.s).unwrap();
        black_box(v3::deblind(password, &hardened, &factor, v3::E3KIT_BACKUP_KEY_NAME).unwrap());
    });
    println!(
        "{{\"library\": \"sealkit-pythia\", \"server_transform_us\": {server}, \
         \"client_blind_us\": {blind}, \"client_verify_deblind_us\": {finish}}}"
    );
}
