//! What key transparency adds to `find_users` of one identity (issue 12): against a running
//! Sealkit server, registers users, then times `find_users(&[one of them])` with `KtMode::Off`
//! (search only) and with checks (search and lookup proof, fetched together; the proof
//! verified and the head accepted).
//!
//! * Cold: the first `find_users` of a fresh client (one per call; it fetches and pins the KT
//!   key and stores its first head) for an identity nobody looked up before (so the server
//!   generates the proof), `KtMode::Required` then `KtMode::Off` for each of `COLD` identities.
//! * Warm: `REPS` calls of one client for one identity after one untimed call, per mode:
//!   `Off`, `Auto` and `Required` with the default proof reuse (a card checked less than a
//!   second ago is not checked again), and `Required` with `kt_proof_reuse(0)` (every call
//!   fetches and verifies a proof; the server answers it from its proof cache, the epoch being
//!   unchanged).
//!
//! Results: the Performance section of `docs/key-transparency.md`.
//!
//! ```text
//! sealkit app create --name kt-bench --json --data-dir DATA > app.json
//! sealkit serve --listen 127.0.0.1:8080 --data-dir DATA &
//! cargo run --release -p sealkit --example kt_find_users -- http://127.0.0.1:8080 app.json DIR [REPS [COLD]]
//! ```
//!
//! Prints a Markdown table: p50 / p90 / max milliseconds per mode and the ratio of the p50s to
//! `Off`'s.

use sealkit::{EThree, EThreeOptions, KtMode};
use sealkit_proto::{AppCredentials, JwtGenerator};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A token provider for `identity`.
fn tokens(
    backend: &JwtGenerator,
    identity: String,
) -> impl Fn() -> std::future::Ready<Result<String, sealkit::JwtError>> + Send + Sync + 'static {
    let backend = backend.clone();
    move || {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        std::future::ready(backend.generate(&identity, now).map(|jwt| jwt.to_string()))
    }
}

async fn client(
    url: &str,
    backend: &JwtGenerator,
    storage: &Path,
    identity: &str,
    mode: KtMode,
    reuse: Option<Duration>,
) -> BoxResult<EThree> {
    let mut options = EThreeOptions::new(url, storage.join(identity)).key_transparency(mode);
    if let Some(window) = reuse {
        options = options.kt_proof_reuse(window);
    }
    Ok(EThree::initialize(tokens(backend, identity.to_owned()), options).await?)
}

/// `q`-quantile of sorted `values` in milliseconds (nearest rank).
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: kt_find_users API_URL APP_CREDENTIALS_JSON STORAGE_DIR [REPS]");
        std::process::exit(2);
    }
    let url = args[0].trim_end_matches('/').to_owned();
    let backend =
        AppCredentials::from_json(&std::fs::read_to_string(&args[1])?)?.generator(3600)?;
    let storage = PathBuf::from(&args[2]);
    let reps: usize = args.get(3).map_or(Ok(200), |r| r.parse())?;
    let cold: usize = args.get(4).map_or(Ok(20), |r| r.parse())?;
    std::fs::create_dir_all(&storage)?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();

    let targets: Vec<String> = (0..=cold)
        .map(|i| format!("kt-bench-target-{run}-{i}"))
        .collect();
    for target in &targets {
        client(&url, &backend, &storage, target, KtMode::Off, None)
            .await?
            .register(None)
            .await?;
    }
    // Every target in the directory before the cold calls (they would otherwise wait for it).
    client(
        &url,
        &backend,
        &storage,
        &format!("kt-bench-wait-{run}"),
        KtMode::Required,
        None,
    )
    .await?
    .find_users(&targets.iter().map(String::as_str).collect::<Vec<_>>())
    .await?;

    let mut cold_results: Vec<(&str, Vec<Duration>)> =
        vec![("Required", Vec::new()), ("Off", Vec::new())];
    for (i, target) in targets[1..].iter().enumerate() {
        for (name, mode) in [("Required", KtMode::Required), ("Off", KtMode::Off)] {
            let searcher = client(
                &url,
                &backend,
                &storage,
                &format!("kt-bench-cold-{name}-{run}-{i}"),
                mode,
                None,
            )
            .await?;
            let start = Instant::now();
            searcher.find_users(&[target.as_str()]).await?;
            let took = start.elapsed();
            if let Some((_, times)) = cold_results.iter_mut().find(|(n, _)| *n == name) {
                times.push(took);
            }
        }
    }

    let target = &targets[0];
    let modes = [
        ("Off", KtMode::Off, None),
        ("Auto", KtMode::Auto, None),
        ("Required", KtMode::Required, None),
        ("Required, no reuse", KtMode::Required, Some(Duration::ZERO)),
    ];
    let mut results = Vec::new();
    for (name, mode, reuse) in modes {
        let searcher = client(
            &url,
            &backend,
            &storage,
            &format!("kt-bench-{}-{run}", name.replace([' ', ','], "")),
            mode,
            reuse,
        )
        .await?;
        searcher.find_users(&[target.as_str()]).await?;
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let start = Instant::now();
            searcher.find_users(&[target.as_str()]).await?;
            times.push(start.elapsed());
        }
        times.sort_unstable();
        results.push((name, times));
    }

    println!("| find_users of 1 identity | calls | p50 | p90 | max | p50 / Off p50 |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (kind, rows) in [("cold", &mut cold_results), ("warm", &mut results)] {
        for (_, times) in rows.iter_mut() {
            times.sort_unstable();
        }
        let off_p50 = rows
            .iter()
            .find(|(name, times)| *name == "Off" && !times.is_empty())
            .map_or(f64::NAN, |(_, times)| quantile_ms(times, 0.5));
        for (name, times) in rows.iter().filter(|(_, times)| !times.is_empty()) {
            let p50 = quantile_ms(times, 0.5);
            println!(
                "| {kind}, KtMode::{name} | {} | {p50:.2} ms | {:.2} ms | {:.2} ms | {:.2}× |",
                times.len(),
                quantile_ms(times, 0.9),
                quantile_ms(times, 1.0),
                p50 / off_p50
            );
        }
    }
    Ok(())
}
