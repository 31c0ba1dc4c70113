//! Brainkey transform rate next to the pure pairing rate, on 1 and 2 threads, in one run.
//! `cargo run --release -p sealkit-pythia --example bench_brainkey`. The HTTP rate of
//! `POST /pythia/v1/brainkey` adds JWT verification, JSON and the rate-limit write on top.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ark_bls12_381::{Bls12_381, G1Projective, G2Projective};
use ark_ec::pairing::Pairing;
use ark_ec::PrimeGroup;
use rand_core::OsRng;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Operations per second of `f` on `threads` threads for about `budget`.
fn rate(threads: usize, budget: Duration, f: impl Fn() + Sync) -> f64 {
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while start.elapsed() < budget {
                        f();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let budget = Duration::from_secs(3);
    let p = G1Projective::generator() * ark_bls12_381::Fr::from(12345u64);
    let q = G2Projective::generator() * ark_bls12_381::Fr::from(67890u64);
    let server = sealkit_pythia::BrainkeyServer::new(&[7u8; 32]).unwrap();
    let (blinded, _) = sealkit_pythia::blind(b"correct horse battery staple", &mut OsRng).unwrap();
    println!("| threads | pairing/s | brainkey transform/s | transform / pairing |");
    println!("|---:|---:|---:|---:|");
    for threads in [1usize, 2] {
        let pairing = rate(threads, budget, || {
            let _ = black_box(Bls12_381::pairing(black_box(p), black_box(q)));
        });
        let transform = rate(threads, budget, || {
            let _ = black_box(
                server
                    .transform(black_box(&blinded), "app", "alice")
                    .unwrap(),
            );
        });
        println!(
            "| {threads} | {pairing:.0} | {transform:.0} | {:.2}x |",
            transform / pairing
        );
    }
}
