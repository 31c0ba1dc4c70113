//! Key-transparency load measurement on the real store (SQLite or PostgreSQL): how long it takes
//! to get N identities into the directory, and then lookup proof generation, proof size,
//! verification and the publish time of an epoch rotating 1% of the identities. Results and how
//! to read them: the Performance section of `docs/key-transparency.md`.
//!
//! ```text
//! cargo build --release -p sealkit-server --example kt_load
//! target/release/examples/kt_load --backend sqlite --identities 100000
//! target/release/examples/kt_load --backend postgres --identities 100000 \
//!     --database-url postgres://postgres@127.0.0.1:5432/test
//! target/release/examples/kt_load --backend sqlite --identities 1000000 \
//!     --node-cache 2500000 --data-dir kt-1m
//! ```
//!
//! `--node-cache N` sets every service's node cache (`kt_node_cache_nodes`; default 200,000).
//! `--data-dir DIR` (SQLite) keeps the database in DIR: a second run on the same DIR skips
//! seeding and the initial directory (it continues from where the first left off, its 1%
//! rotation included).
//!
//! Steps:
//! 1. Seeding: real cards inserted straight into `cards` (as `load.rs` does; every tenth identity
//!    has rotated once), then every identity queued in `kt_pending`, which is what the card's
//!    publish transaction does (and what migration 0005 does for cards older than KT).
//! 2. Initial directory: `KtService::publish_pending` until the queue is empty (epochs of at most
//!    `MAX_EPOCH_CHANGES` identities), timed per epoch.
//! 3. Lookups: `KtService::lookup` by a second service over the same store (it did not publish,
//!    so its node cache starts empty): `--lookups` random identities, then as many others (the
//!    node cache now filled), then others with two tasks, then the first ones again (answered
//!    from the proof cache); last, the first ones by the publishing service. A third service,
//!    its VRF memo off (every label and proof computed when AKD asks, as before the memo),
//!    answers the same lookups as the second, one call each in turn, for the memo's ratio.
//!    Then a fourth service fills its node cache from the database (`fill_node_cache`, what
//!    `sealkit serve` does at start) and answers identities nobody looked up before.
//! 4. Proof size (protobuf bytes, JSON answer bytes) and `sealkit_kt::verify_lookup` time.
//! 5. Rotation: 1% of the identities publish a new card through `Store::publish_card`
//!    (untimed), then the epoch that takes them in is timed. Then identities looked up before
//!    are looked up again in this next epoch (the proof cache cannot answer, the VRF memo can),
//!    by the services with and without the memo in turn, and by the publishing service.

#[path = "shared/seed.rs"]
mod seed;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand_core::{OsRng, RngCore as _};
use sealkit_proto::kt::LookupResponse;
use sealkit_proto::{AppId, Identity};
use sealkit_server::service::kt::{KtKeys, KtService};
use sealkit_server::service::Caller;
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::sqlite::SqliteStore;
use sealkit_server::store::{NewCard, Store};
use seed::{fail, identity, plan, seed, stored_card, Backend, Res, Rng, Seeder};
use sqlx::{ConnectOptions, Connection, Executor};

const USAGE: &str = "\
usage: kt_load [--backend sqlite|postgres] [--identities N] [--database-url URL]
               [--lookups N] [--gen-threads N] [--keep] [--node-cache N] [--data-dir DIR]
--keep leaves the PostgreSQL schema (and prints its name) instead of dropping it.
--node-cache N: tree nodes each service caches (default: the server's default).
--data-dir DIR (SQLite): keep the database there; a later run on DIR reuses its directory.";

/// What a run with `--data-dir` leaves beside the database for the next run.
const REUSE_FILE: &str = "kt-load.json";

/// The statement that queues every seeded identity for the directory (the same as migration
/// 0005's backfill; a card publish queues its identity in its own transaction).
const QUEUE_ALL: &str =
    "INSERT INTO kt_pending (app_id, identity) SELECT DISTINCT app_id, identity FROM cards";

struct Args {
    backend: Backend,
    identities: usize,
    database_url: String,
    lookups: usize,
    gen_threads: usize,
    keep: bool,
    node_cache: Option<usize>,
    data_dir: Option<std::path::PathBuf>,
}

fn parse_args() -> Res<Args> {
    let mut args = Args {
        backend: Backend::Sqlite,
        identities: 100_000,
        database_url: "postgres://postgres@127.0.0.1:5432/test".to_owned(),
        lookups: 1000,
        gen_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        keep: false,
        node_cache: None,
        data_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| fail(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--backend" => args.backend = Backend::parse(&value()?)?,
            "--identities" => args.identities = value()?.replace('_', "").parse()?,
            "--database-url" => args.database_url = value()?,
            "--lookups" => args.lookups = value()?.parse()?,
            "--gen-threads" => args.gen_threads = value()?.parse()?,
            "--keep" => args.keep = true,
            "--node-cache" => args.node_cache = Some(value()?.replace('_', "").parse()?),
            "--data-dir" => args.data_dir = Some(value()?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(fail(format!("unknown option {other}\n{USAGE}"))),
        }
    }
    if args.identities < 100 || args.lookups < 2 {
        return Err(fail("need --identities >= 100 and --lookups >= 2"));
    }
    Ok(args)
}

/// The seeded store and what the measurements need from the setup.
struct Env {
    store: Arc<dyn Store>,
    app_id: String,
    identities: usize,
    service_key: sealkit_crypto::PrivateKey,
    seed_secs: f64,
    /// The KT key seed of a directory reused from `--data-dir`, if any.
    reused_seed: Option<[u8; 32]>,
    /// PostgreSQL: the URL and schema to drop at the end.
    cleanup: Option<(String, String, PostgresStore)>,
    _tempdir: Option<tempfile::TempDir>,
}

fn setup(rt: &tokio::runtime::Runtime, args: &Args) -> Res<Env> {
    // plan() gives every tenth identity two cards: ask for exactly `identities` identities.
    let counts = plan(args.identities + args.identities.div_ceil(10));
    let identities = counts.len();
    match args.backend {
        Backend::Sqlite => {
            let (tempdir, dir) = match &args.data_dir {
                Some(dir) => {
                    std::fs::create_dir_all(dir)?;
                    (None, dir.clone())
                }
                None => {
                    let tempdir = tempfile::Builder::new()
                        .prefix("sealkit-kt-load")
                        .tempdir()?;
                    let dir = tempdir.path().to_owned();
                    (Some(tempdir), dir)
                }
            };
            let db = dir.join("sealkit.db");
            if let Ok(text) = std::fs::read_to_string(dir.join(REUSE_FILE)) {
                let saved: serde_json::Value = serde_json::from_str(&text)?;
                let field = |name: &str| {
                    saved[name]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| fail(format!("{REUSE_FILE}: no {name}")))
                };
                let mut kt_seed = [0u8; 32];
                hex::decode_to_slice(field("kt_seed")?, &mut kt_seed)?;
                let store = rt.block_on(SqliteStore::open(&db))?;
                let keys = rt.block_on(sealkit_server::service_keys(&store))?;
                return Ok(Env {
                    store: Arc::new(store),
                    app_id: field("app_id")?,
                    identities: saved["identities"]
                        .as_u64()
                        .ok_or_else(|| fail(format!("{REUSE_FILE}: no identities")))?
                        as usize,
                    service_key: keys.card_signer,
                    seed_secs: 0.0,
                    reused_seed: Some(kt_seed),
                    cleanup: None,
                    _tempdir: tempdir,
                });
            }
            let store = rt.block_on(SqliteStore::open(&db))?;
            let creds = rt.block_on(sealkit_server::admin::create_app(
                &store,
                "kt-load",
                sealkit_server::now(),
            ))?;
            let keys = rt.block_on(sealkit_server::service_keys(&store))?;
            rt.block_on(store.close());
            let (seed_secs, _) = seed(
                rt,
                Seeder::Sqlite(rt.block_on(sqlite_bulk(&db).connect())?),
                &creds.app_id,
                &counts,
                &keys.card_signer,
                args.gen_threads,
            )?;
            rt.block_on(async {
                let mut conn = sqlite_bulk(&db).connect().await?;
                conn.execute(QUEUE_ALL).await?;
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
                conn.close().await
            })?;
            let store: Arc<dyn Store> = Arc::new(rt.block_on(SqliteStore::open(&db))?);
            Ok(Env {
                store,
                app_id: creds.app_id,
                identities,
                service_key: keys.card_signer,
                seed_secs,
                reused_seed: None,
                cleanup: None,
                _tempdir: tempdir,
            })
        }
        Backend::Postgres => {
            let schema = format!(
                "sealkit_kt_load_{}_{}",
                std::process::id(),
                sealkit_server::now()
            );
            let url = args.database_url.clone();
            let store = rt.block_on(PostgresStore::connect_fresh_schema(&url, &schema))?;
            let creds = rt.block_on(sealkit_server::admin::create_app(
                &store,
                "kt-load",
                sealkit_server::now(),
            ))?;
            let keys = rt.block_on(sealkit_server::service_keys(&store))?;
            let connect = || async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                conn.execute(format!("SET search_path TO \"{schema}\"").as_str())
                    .await?;
                Ok::<_, sqlx::Error>(conn)
            };
            let (seed_secs, _) = seed(
                rt,
                Seeder::Postgres(rt.block_on(connect())?),
                &creds.app_id,
                &counts,
                &keys.card_signer,
                args.gen_threads,
            )?;
            rt.block_on(async {
                let mut conn = connect().await?;
                conn.execute(QUEUE_ALL).await?;
                conn.execute("ANALYZE kt_pending").await?;
                conn.close().await
            })?;
            if args.keep {
                eprintln!("  schema {schema} (kept)");
            }
            Ok(Env {
                store: Arc::new(store.clone()),
                app_id: creds.app_id,
                identities,
                service_key: keys.card_signer,
                seed_secs,
                reused_seed: None,
                cleanup: (!args.keep).then_some((url, schema, store)),
                _tempdir: None,
            })
        }
    }
}

/// A single bulk-loading connection to the SQLite file (as `load.rs` seeds).
fn sqlite_bulk(db: &Path) -> sqlx::sqlite::SqliteConnectOptions {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Off)
        .foreign_keys(false)
        .pragma("cache_size", "-1048576")
}

/// `q`-quantile of sorted `values` (nearest rank).
fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// p50 / p99 / max of `samples`, in milliseconds.
fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    format!(
        "{} / {} / {}",
        ms(quantile(&samples, 0.5)),
        ms(quantile(&samples, 0.99)),
        ms(quantile(&samples, 1.0))
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `count` distinct random identity indices below `identities`.
fn pick(identities: usize, count: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::seeded(seed);
    let mut picked = std::collections::BTreeSet::new();
    while picked.len() < count.min(identities) {
        picked.insert(rng.below(identities));
    }
    let mut out: Vec<usize> = picked.into_iter().collect();
    // Random order, so neighbouring lookups do not share tree paths more than chance says.
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i + 1));
    }
    out
}

fn caller(app_id: &str, who: &str) -> Res<Caller> {
    Ok(Caller {
        app_id: AppId::new(app_id)?,
        identity: Identity::new(who)?,
    })
}

/// Publishes epochs until nothing is queued; returns each epoch's wall time.
async fn drain(kt: &KtService, store: &dyn Store) -> Res<Vec<Duration>> {
    let mut epochs = Vec::new();
    while !store.kt_pending(1).await?.is_empty() {
        let start = Instant::now();
        let published = kt.publish_pending().await?;
        epochs.push(start.elapsed());
        if published.is_empty() && !store.kt_pending(1).await?.is_empty() {
            return Err(fail("publish_pending made no progress (not the leader?)"));
        }
        eprint!(
            "\r  epoch {} published in {} (load {})   ",
            epochs.len(),
            ms(start.elapsed()),
            loadavg()
        );
    }
    eprintln!();
    Ok(epochs)
}

/// Times `KtService::lookup` of `indices` split across `tasks` tasks; returns the responses,
/// the per-call latencies and the wall time.
async fn lookups(
    kt: &Arc<KtService>,
    app_id: &str,
    indices: &[usize],
    tasks: usize,
) -> Res<(Vec<(String, LookupResponse)>, Vec<Duration>, Duration)> {
    let start = Instant::now();
    let mut handles = Vec::new();
    for part in indices.chunks(indices.len().div_ceil(tasks)) {
        let kt = kt.clone();
        let app_id = app_id.to_owned();
        let part = part.to_vec();
        handles.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(part.len());
            for i in part {
                let who = identity(i);
                let caller = caller(&app_id, &who)?;
                let t = Instant::now();
                let response = kt.lookup(&caller, &who).await?;
                out.push((who, response, t.elapsed()));
            }
            Ok::<_, seed::BoxError>(out)
        }));
    }
    let mut responses = Vec::new();
    let mut times = Vec::new();
    for handle in handles {
        for (who, response, took) in handle.await?? {
            responses.push((who, response));
            times.push(took);
        }
    }
    Ok((responses, times, start.elapsed()))
}

/// Times `KtService::lookup` of each of `indices` by `with` and by `without`, one call each in
/// turn (who goes first alternates), so that both see the same load; checks that both give the
/// same answer. Returns the answers and the latencies of each.
async fn lookups_in_turn(
    with: &KtService,
    without: &KtService,
    app_id: &str,
    indices: &[usize],
) -> Res<(Vec<(String, LookupResponse)>, Vec<Duration>, Vec<Duration>)> {
    let mut responses = Vec::with_capacity(indices.len());
    let mut with_times = Vec::with_capacity(indices.len());
    let mut without_times = Vec::with_capacity(indices.len());
    for (n, &i) in indices.iter().enumerate() {
        let who = identity(i);
        let caller = caller(app_id, &who)?;
        let mut answers = Vec::with_capacity(2);
        for k in 0..2 {
            let use_with = (n + k) % 2 == 0;
            let kt = if use_with { with } else { without };
            let t = Instant::now();
            answers.push(kt.lookup(&caller, &who).await?);
            let took = t.elapsed();
            if use_with {
                with_times.push(took);
            } else {
                without_times.push(took);
            }
        }
        if answers[0] != answers[1] {
            return Err(fail(format!(
                "{who}: the two services answered differently"
            )));
        }
        responses.push((who, answers.remove(0)));
    }
    Ok((responses, with_times, without_times))
}

/// p50s of the two sides of [`lookups_in_turn`] and their ratio, with p99 / max of each.
fn in_turn_summary(with: Vec<Duration>, without: Vec<Duration>) -> String {
    let p50 = |samples: &[Duration]| {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        quantile(&sorted, 0.5)
    };
    let ratio = p50(&with).as_secs_f64() / p50(&without).as_secs_f64();
    format!(
        "memo {} | no memo {} | p50 ratio {ratio:.2}",
        summary(with),
        summary(without)
    )
}

/// The current card id of `who` (the one not superseded and not revoked).
async fn current_card(store: &dyn Store, app_id: &str, who: &str) -> Res<String> {
    store
        .search_cards(app_id, &[who.to_owned()])
        .await?
        .into_iter()
        .find(|c| c.superseded_by.is_none() && !c.revoked)
        .map(|c| c.id)
        .ok_or_else(|| fail(format!("{who} has no current card")))
}

fn main() -> Res<()> {
    let args = parse_args()?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |what: &str, value: String| {
        println!("  {what}: {value}");
        rows.push((what.to_owned(), value));
    };

    eprintln!(
        "seeding {} identities ({}), load {}",
        args.identities,
        args.backend.label(),
        loadavg()
    );
    let env = setup(&rt, &args)?;
    row(
        "seeding cards (not KT; direct inserts)",
        format!("{:.1} s", env.seed_secs),
    );

    let seed_bytes = env.reused_seed.unwrap_or_else(|| {
        let mut fresh = [0u8; 32];
        OsRng.fill_bytes(&mut fresh);
        fresh
    });
    let service = |keys: KtKeys| {
        let kt = KtService::new(env.store.clone(), keys);
        match args.node_cache {
            Some(capacity) => kt.with_node_cache_capacity(capacity),
            None => kt,
        }
    };
    let keys = KtKeys::from_seed(&seed_bytes);
    let signing_key = keys.public_key();
    let kt = Arc::new(service(keys));
    let app_id = env.app_id.clone();

    // 2. The initial directory.
    let load_start = loadavg();
    let epochs = rt.block_on(drain(&kt, env.store.as_ref()))?;
    let total: Duration = epochs.iter().sum();
    let mut sorted = epochs.clone();
    sorted.sort_unstable();
    match (env.reused_seed, sorted.first(), sorted.last()) {
        (Some(_), _, _) => row(
            "initial directory",
            format!(
                "reused from --data-dir ({} epoch(s) of leftover changes published first)",
                epochs.len()
            ),
        ),
        (None, Some(fastest), Some(slowest)) => row(
            "initial directory: epochs / total / per epoch min–max",
            format!(
                "{} epochs / {:.1} s / {:.1}–{:.1} s (load {} → {})",
                epochs.len(),
                total.as_secs_f64(),
                fastest.as_secs_f64(),
                slowest.as_secs_f64(),
                load_start,
                loadavg()
            ),
        ),
        (None, _, _) => return Err(fail("the initial directory published no epoch")),
    }
    if let (Some(dir), None) = (&args.data_dir, env.reused_seed) {
        std::fs::write(
            dir.join(REUSE_FILE),
            serde_json::json!({
                "app_id": app_id,
                "identities": env.identities,
                "kt_seed": hex::encode(seed_bytes),
            })
            .to_string(),
        )?;
    }

    // 3. Lookups, by a service that did not publish (a replica, or the process after a
    // restart): its node cache starts empty. Disjoint sets of identities, so only the "repeat"
    // row is answered from the proof cache.
    let reader = Arc::new(service(KtKeys::from_seed(&seed_bytes)));
    // The same as `reader` without the VRF memo.
    let plain = Arc::new(service(KtKeys::from_seed(&seed_bytes)).with_vrf_memo_capacity(0));
    let all = pick(env.identities, (args.lookups * 4).min(env.identities), 1);
    let (first, rest) = all.split_at(all.len() / 4);
    let (second, rest) = rest.split_at(rest.len() / 3);
    let (third, fourth) = rest.split_at(rest.len() / 2);
    // The directory handle is opened on the first call (one lookup, untimed).
    rt.block_on(lookups(&reader, &app_id, &all[..1], 1))?;
    rt.block_on(lookups(&plain, &app_id, &all[..1], 1))?;
    let load_before = loadavg();
    let (_, times, _) = rt.block_on(lookups(&reader, &app_id, first, 1))?;
    row(
        "lookup generation, empty node cache, 1 task: p50 / p99 / max",
        format!("{} (load {load_before} → {})", summary(times), loadavg()),
    );
    let cached = |kt: &Arc<KtService>| {
        rt.block_on(kt.node_cache(&app_id))
            .map_or(0, |cache| cache.len())
    };
    row("nodes cached after it", format!("{}", cached(&reader)));
    // The memo-less service's node cache gets the same identities (untimed).
    rt.block_on(lookups(&plain, &app_id, first, 1))?;
    let load_before = loadavg();
    let (responses, with, without) =
        rt.block_on(lookups_in_turn(&reader, &plain, &app_id, second))?;
    row(
        "lookup generation, node cache filled by the row above, new identities, with and without the VRF memo in turn: p50 / p99 / max",
        format!(
            "{} (load {load_before} → {})",
            in_turn_summary(with, without),
            loadavg()
        ),
    );
    let (_, times2, wall2) = rt.block_on(lookups(&reader, &app_id, third, 2))?;
    row(
        "lookup generation, same, new identities, 2 tasks: p50 / p99 / max, throughput",
        format!(
            "{}, {:.0} lookups/s (load {})",
            summary(times2),
            third.len() as f64 / wall2.as_secs_f64(),
            loadavg()
        ),
    );
    let (_, times, _) = rt.block_on(lookups(&reader, &app_id, first, 1))?;
    row(
        "lookup generation, repeated identities (proof cache), 1 task: p50 / p99 / max",
        format!("{} (load {})", summary(times), loadavg()),
    );
    let (_, times, _) = rt.block_on(lookups(&kt, &app_id, first, 1))?;
    row(
        "lookup generation by the publishing service (its epochs written through), 1 task",
        format!(
            "{} ({} nodes cached; load {})",
            summary(times),
            cached(&kt),
            loadavg()
        ),
    );

    // A service that fills its node cache from the database first, as `sealkit serve` does
    // at start, then answers identities nobody looked up before.
    let filled = Arc::new(service(KtKeys::from_seed(&seed_bytes)));
    let load_before = loadavg();
    let t = Instant::now();
    let nodes = rt.block_on(filled.fill_node_cache(&app_id))?;
    row(
        "node cache filled from the database (fill_node_cache): nodes, time",
        format!(
            "{nodes} nodes, {:.1} s (load {load_before} → {})",
            t.elapsed().as_secs_f64(),
            loadavg()
        ),
    );
    let load_before = loadavg();
    let (_, times, _) = rt.block_on(lookups(&filled, &app_id, fourth, 1))?;
    row(
        "lookup generation after the fill, new identities, 1 task: p50 / p99 / max",
        format!("{} (load {load_before} → {})", summary(times), loadavg()),
    );

    // 4. Sizes and verification.
    let mut proof_bytes = Vec::new();
    let mut json_bytes = Vec::new();
    let mut verify_times = Vec::new();
    for (who, response) in &responses {
        proof_bytes.push(
            base64::engine::general_purpose::STANDARD
                .decode(&response.proof)?
                .len(),
        );
        json_bytes.push(serde_json::to_vec(response)?.len());
        let t = Instant::now();
        sealkit_kt::verify_lookup(&signing_key, &app_id, who, response)?;
        verify_times.push(t.elapsed());
    }
    proof_bytes.sort_unstable();
    json_bytes.sort_unstable();
    row(
        "lookup proof: protobuf bytes p50 / max",
        format!(
            "{} / {}",
            quantile(&proof_bytes, 0.5),
            quantile(&proof_bytes, 1.0)
        ),
    );
    row(
        "lookup answer: JSON bytes p50 / max",
        format!(
            "{} / {}",
            quantile(&json_bytes, 0.5),
            quantile(&json_bytes, 1.0)
        ),
    );
    row(
        "lookup verification (verify_lookup): p50 / p99 / max",
        format!("{} (load {})", summary(verify_times), loadavg()),
    );

    // 5. An epoch rotating 1% of the identities.
    let rotated = pick(env.identities, env.identities / 100, 2);
    let now = sealkit_server::now();
    let publish_start = Instant::now();
    rt.block_on(async {
        for &i in &rotated {
            let who = identity(i);
            let previous = current_card(env.store.as_ref(), &app_id, &who).await?;
            let (id, raw) = stored_card(&who, Some(&previous), now, &env.service_key)?;
            env.store
                .publish_card(NewCard {
                    id,
                    app_id: app_id.clone(),
                    identity: Identity::new(who.as_str())?,
                    previous_card_id: Some(previous),
                    raw,
                    created_at: now,
                })
                .await?;
        }
        Ok::<_, seed::BoxError>(())
    })?;
    let card_secs = publish_start.elapsed().as_secs_f64();
    let load_before = loadavg();
    let rotation = rt.block_on(drain(&kt, env.store.as_ref()))?;
    let memo_len = rt.block_on(reader.vrf_memo_len(&app_id)).unwrap_or(0);
    row(
        "epoch rotating 1% (publish_pending)",
        format!(
            "{} identities: {} epoch(s), {:.2} s (load {load_before} → {}; the {} card \
             publishes before it took {card_secs:.1} s, not counted)",
            rotated.len(),
            rotation.len(),
            rotation.iter().sum::<Duration>().as_secs_f64(),
            loadavg(),
            rotated.len()
        ),
    );

    // 6. Identities looked up before, in the next epoch: the VRF memo answers (but for the few
    // rotated ones). The replicas' node caches drop what the epoch wrote (all of it when the
    // epoch wrote too much to follow) when they first read the new epoch (untimed here).
    let cached_before = cached(&reader);
    rt.block_on(reader.head(&app_id))?;
    rt.block_on(plain.head(&app_id))?;
    let kept = cached(&reader);
    let load_before = loadavg();
    let (_, with, without) = rt.block_on(lookups_in_turn(&reader, &plain, &app_id, second))?;
    row(
        "next epoch, repeated identities, node caches as the epoch left them, with and without the VRF memo in turn",
        format!(
            "{} ({kept} of {cached_before} nodes kept across the epoch; {memo_len} VRF proofs \
             remembered before; load {load_before} → {})",
            in_turn_summary(with, without),
            loadavg()
        ),
    );
    let load_before = loadavg();
    let (_, with, without) = rt.block_on(lookups_in_turn(&reader, &plain, &app_id, first))?;
    row(
        "next epoch, other repeated identities, node caches filled by the row above, with and without the VRF memo in turn",
        format!(
            "{} (load {load_before} → {})",
            in_turn_summary(with, without),
            loadavg()
        ),
    );
    let load_before = loadavg();
    let (_, times, _) = rt.block_on(lookups(&kt, &app_id, first, 1))?;
    row(
        "next epoch, repeated identities, by the publishing service (node cache written through, VRF memo filled by its lookups before the epoch), 1 task",
        format!(
            "{} ({} nodes cached; load {load_before} → {})",
            summary(times),
            cached(&kt),
            loadavg()
        ),
    );

    println!();
    println!(
        "| {}, {} identities | result |",
        args.backend.label(),
        env.identities
    );
    println!("| --- | --- |");
    for (what, value) in &rows {
        println!("| {what} | {value} |");
    }

    if let Some((url, schema, store)) = &env.cleanup {
        rt.block_on(async {
            store.close().await;
            if let Err(e) = PostgresStore::drop_schema(url, schema).await {
                eprintln!("dropping schema {schema}: {e}");
            }
        });
    }
    Ok(())
}
