//! What key transparency adds to `find_users` of one identity (issue 12): against a running
//! Sealkit server, registers one user, then times `find_users(&[that user])` with
//! `KtMode::Off` (search only), `KtMode::Auto` and `KtMode::Required` (search, then the lookup
//! proof fetched and verified, and the head accepted). Each mode uses its own client and storage
//! directory; one untimed call first (it pins the KT key and waits for the card's epoch).
//! Results: the Performance section of `docs/key-transparency.md`.
//!
//! ```text
//! sealkit app create --name kt-bench --json --data-dir DATA > app.json
//! sealkit serve --listen 127.0.0.1:8080 --data-dir DATA &
//! cargo run --release -p sealkit --example kt_find_users -- http://127.0.0.1:8080 app.json DIR [REPS]
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
) -> BoxResult<EThree> {
    let options = EThreeOptions::new(url, storage.join(identity)).key_transparency(mode);
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
    std::fs::create_dir_all(&storage)?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();

    let target = format!("kt-bench-target-{run}");
    client(&url, &backend, &storage, &target, KtMode::Off)
        .await?
        .register(None)
        .await?;

    let modes = [
        ("Off", KtMode::Off),
        ("Auto", KtMode::Auto),
        ("Required", KtMode::Required),
    ];
    let mut results = Vec::new();
    for (name, mode) in modes {
        let searcher = client(
            &url,
            &backend,
            &storage,
            &format!("kt-bench-{name}-{run}"),
            mode,
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

    let off_p50 = quantile_ms(&results[0].1, 0.5);
    println!("| find_users of 1 identity, {reps} calls | p50 | p90 | max | p50 / Off p50 |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, times) in &results {
        let p50 = quantile_ms(times, 0.5);
        println!(
            "| KtMode::{name} | {p50:.2} ms | {:.2} ms | {:.2} ms | {:.2}× |",
            quantile_ms(times, 0.9),
            quantile_ms(times, 1.0),
            p50 / off_p50
        );
    }
    Ok(())
}
