//! The brainkey transform next to the bare BLS12-381 pairing (arkworks), on 1 and 2 threads, in
//! one run; then where a single-threaded transform spends its time.
//!
//! `cargo run --release -p sealkit-pythia --example bench_brainkey -- [SECONDS]`
//!
//! SECONDS (default 6) is the time per rate; each rate is measured in rounds interleaved with
//! the others, so a burst of load from elsewhere on a shared machine hits all of them alike.
//! Rows:
//! * `bare pairing`: `Bls12_381::pairing(P, Q)` of fixed points, the reference of the target;
//! * `pairing, G2 prepared`: the same pairing with Q's Miller-loop lines precomputed and
//!   copied in, which is what the transform's pairing costs for a recently seen user;
//! * `transform, repeat user`: `BrainkeyServer::transform` for one identity again and again
//!   (its tweak point is cached, as for a user making a few requests in a row);
//! * `transform, new user`: a never-seen identity on every call (hash to G2 and line
//!   preparation every time: a user's first request).
//!
//! The HTTP rate of `POST /pythia/v1/brainkey` adds JWT verification, JSON and the rate-limit
//! write on top: see `crates/server/examples/load_backup.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ark_bls12_381::{Bls12_381, G1Affine, G1Projective, G2Projective};
use ark_ec::pairing::Pairing;
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup};
use rand_core::OsRng;
use sealkit_pythia::{BrainkeyServer, G1Point};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type G2Prepared = <Bls12_381 as Pairing>::G2Prepared;

/// Calls of `f` and seconds taken, on `threads` threads for about `budget`.
fn run(threads: usize, budget: Duration, f: &(dyn Fn() + Sync)) -> (u64, f64) {
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
    (total, start.elapsed().as_secs_f64())
}

/// Rates (calls per second) of each of `cases`, measured in `rounds` interleaved rounds.
fn rates(threads: usize, total: Duration, rounds: u32, cases: &[&(dyn Fn() + Sync)]) -> Vec<f64> {
    let mut sums = vec![(0u64, 0f64); cases.len()];
    for _ in 0..rounds {
        for (sum, case) in sums.iter_mut().zip(cases) {
            let (n, secs) = run(threads, total / rounds, *case);
            sum.0 += n;
            sum.1 += secs;
        }
    }
    sums.into_iter().map(|(n, s)| n as f64 / s).collect()
}

/// Microseconds per call of `f` on one thread, for about `budget`.
fn micros(budget: Duration, f: &(dyn Fn() + Sync)) -> f64 {
    let (n, secs) = run(1, budget, f);
    secs * 1e6 / n as f64
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map_or(6.0, |s| s.parse().expect("SECONDS must be a number"));
    let budget = Duration::from_secs_f64(seconds);
    let rounds = 6;
    let load_before = loadavg();

    let p = (G1Projective::generator() * ark_bls12_381::Fr::from(12345u64)).into_affine();
    let q = (G2Projective::generator() * ark_bls12_381::Fr::from(67890u64)).into_affine();
    let q_prepared = G2Prepared::from(q);
    let server = BrainkeyServer::new(&[7u8; 32]).unwrap();
    let (blinded, _) = sealkit_pythia::blind(b"correct horse battery staple", &mut OsRng).unwrap();
    let fresh = AtomicU64::new(0);

    let bare = || {
        let _ = black_box(Bls12_381::pairing(black_box(p), black_box(q)));
    };
    let prepared = || {
        let ml = Bls12_381::multi_miller_loop([black_box(p)], [black_box(&q_prepared).clone()]);
        black_box(Bls12_381::final_exponentiation(ml));
    };
    let repeat_user = || {
        black_box(
            server
                .transform(black_box(&blinded), "app", "alice")
                .unwrap(),
        );
    };
    let new_user = || {
        let identity = format!("user-{}", fresh.fetch_add(1, Ordering::Relaxed));
        black_box(
            server
                .transform(black_box(&blinded), "app", &identity)
                .unwrap(),
        );
    };

    println!(
        "| threads | bare pairing/s | pairing, G2 prepared/s | transform, repeat user/s | ratio | transform, new user/s | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for threads in [1usize, 2] {
        let r = rates(
            threads,
            budget,
            rounds,
            &[&bare, &prepared, &repeat_user, &new_user],
        );
        println!(
            "| {threads} | {:.0} | {:.0} | {:.0} | **{:.2}x** | {:.0} | {:.2}x |",
            r[0],
            r[1],
            r[2],
            r[2] / r[0],
            r[3],
            r[3] / r[0]
        );
    }

    // Where a transform's time goes (one thread). The pieces that are not public (the HMAC for
    // kw, the constant-time kw·X, the cache lookup and the output encoding) are the remainder.
    let part = budget / 3;
    let x_affine = G1Affine::generator();
    let miller = Bls12_381::multi_miller_loop([p], [q_prepared.clone()]);
    let t_bare = micros(part, &bare);
    let t_decode = micros(part, &|| {
        black_box(G1Point::from_relic(black_box(&blinded)).unwrap());
    });
    let t_prepare = micros(part, &|| {
        black_box(G2Prepared::from(black_box(q)));
    });
    let t_miller = micros(part, &|| {
        let _ = black_box(Bls12_381::multi_miller_loop(
            [black_box(x_affine)],
            [black_box(&q_prepared).clone()],
        ));
    });
    let t_final = micros(part, &|| {
        black_box(Bls12_381::final_exponentiation(black_box(miller)));
    });
    let t_hash = micros(part, &|| {
        black_box(sealkit_pythia::transformed_tweak(black_box(b"tweak")).unwrap());
    });
    let t_repeat = micros(part, &repeat_user);
    let rest = t_repeat - t_decode - t_miller - t_final;
    println!();
    println!("| one thread | us |");
    println!("|---|---:|");
    println!("| bare pairing | {t_bare:.0} |");
    println!("| of which G2 line preparation (`G2Prepared::from`) | {t_prepare:.0} |");
    println!("| of which Miller loop on prepared lines (incl. the 20 KB copy) | {t_miller:.0} |");
    println!("| of which final exponentiation | {t_final:.0} |");
    println!("| transform, repeat user | {t_repeat:.0} |");
    println!("| of which decoding X (square root in Fp, subgroup check) | {t_decode:.0} |");
    println!(
        "| of which HMAC for kw, constant-time kw·X, cache, encoding (remainder) | {rest:.0} |"
    );
    println!("| a new user adds: hash to G2 | {t_hash:.0} |");
    println!("| a new user adds: line preparation | {t_prepare:.0} |");
    println!();
    println!(
        "release build; load average before {load_before}, after {}; {} s per rate in {rounds} interleaved rounds",
        loadavg(),
        seconds
    );
}
