//! Load generator for the Sealkit server: card search (1 and 50 identities per request) and
//! publish throughput with p50/p99 latency, next to a trivial axum handler measured in the same
//! run, on SQLite or PostgreSQL. See `docs/server-benchmark.md` for results and how to read them.
//!
//! The real router (`sealkit_server::app`) is served in-process by `axum::serve` on a loopback
//! port, on its own tokio runtime; the load generator is a second runtime in the same process
//! with `--connections` HTTP/1.1 keep-alive connections (hyper's low-level client, one request in
//! flight per connection, closed loop). The store is seeded directly in the database (batched
//! inserts of real cards: an Ed25519 key per identity, the self signature and the service's
//! `"virgil"` signature, exactly what `POST /card/v5` would have stored).
//!
//! ```text
//! cargo build --release -p sealkit-server --example load
//! target/release/examples/load --backend sqlite --cards 100000 --seconds 10
//! target/release/examples/load --backend postgres --cards 100000 \
//!     --database-url postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! Phases (`--phases` selects, comma-separated, in this order):
//! * `trivial`: `GET /trivial` on a separate bare axum router (small JSON), same process;
//! * `warm`: searches every seeded identity once (500 per request, 4 connections), so the
//!   server's search cache (`card_cache_ms`, `card_cache_entries`) holds the whole directory,
//!   and reports the time and the growth of the process's resident memory;
//! * `search1` / `search50`: `POST /card/v5/actions/search` of 1 / 50 random seeded identities,
//!   one pre-minted token per connection (the server's token cache hits);
//! * `search1-fresh`: as `search1` with a never-seen token on every request (full JWT
//!   verification: key lookup + Ed25519);
//! * `router-search1`: `search1` through `Router::oneshot`, no TCP and no hyper;
//! * `store-search1` / `store-search50`: `Store::search_cards` called directly, no HTTP at all,
//!   with `--connections` tasks; `store-search1-c1`: the same with one task (pure latency);
//! * `publish`: `POST /card/v5` of pre-generated cards of fresh identities, each with its own
//!   fresh token (as a new user's first publish);
//! * `micro`: single-task timings of the pieces (token verification hit/miss, Ed25519, key
//!   lookup, publish crypto).

#[path = "shared/cpu.rs"]
mod cpu;
#[path = "shared/measure.rs"]
#[allow(dead_code)]
mod measure;
#[path = "shared/seed.rs"]
mod seed;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use axum::http::{HeaderValue, Method, Request};
use axum::routing::get;
use axum::Router;
use cpu::{cpu_watch, loadavg};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use measure::{connect, run_inproc, Phase};
use sealkit_crypto::PrivateKey;
use sealkit_proto::cards::{paths, RawSignedModel, VIRGIL_SIGNER};
use sealkit_proto::jwt::{AppCredentials, Jwt, JwtGenerator};
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::sqlite::SqliteStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use seed::{
    client_card, fail, identity, parallel, plan, seed, Backend, BoxError, Res, Rng, Seeder,
};
use serde::{Deserialize, Serialize};
use sqlx::{ConnectOptions, Connection, Executor};
use tower::ServiceExt;

const ALL_PHASES: &[&str] = &[
    "trivial",
    "warm",
    "search1",
    "search50",
    "search1-fresh",
    "router-search1",
    "store-search1",
    "store-search50",
    "store-search1-c1",
    "publish",
    "micro",
];

const USAGE: &str = "\
usage: load [--backend sqlite|postgres] [--cards N] [--seconds S] [--warmup S]
            [--connections C] [--database-url URL] [--data-dir DIR] [--keep]
            [--server-threads N] [--client-threads N] [--gen-threads N]
            [--token-pool N] [--publish-pool N] [--server-nodelay] [--phases a,b,...]
            [--card-cache-ms MS] [--card-cache-entries N]
phases: trivial,warm,search1,search50,search1-fresh,router-search1,store-search1,
        store-search50,store-search1-c1,publish,micro (default: all)
--card-cache-ms and --card-cache-entries set the server's options of those names (default:
the server's defaults; --card-cache-ms 0 measures without the search cache).
--data-dir with SQLite keeps the seeded database; a later run with the same directory and
--cards reuses it (bench-state.json) instead of seeding again.";

#[derive(Clone, Debug)]
struct Args {
    backend: Backend,
    cards: usize,
    database_url: String,
    seconds: f64,
    warmup: f64,
    connections: usize,
    data_dir: Option<PathBuf>,
    keep: bool,
    server_threads: usize,
    client_threads: usize,
    gen_threads: usize,
    token_pool: usize,
    publish_pool: usize,
    server_nodelay: bool,
    phases: Vec<String>,
    card_cache_ms: Option<u64>,
    card_cache_entries: Option<usize>,
}

fn parse_args() -> Res<Args> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut args = Args {
        backend: Backend::Sqlite,
        cards: 100_000,
        database_url: "postgres://postgres@127.0.0.1:5432/test".to_owned(),
        seconds: 10.0,
        warmup: 1.0,
        connections: 64,
        data_dir: None,
        keep: false,
        server_threads: cores,
        client_threads: 1,
        gen_threads: cores,
        token_pool: 0,
        publish_pool: 0,
        server_nodelay: false,
        phases: ALL_PHASES.iter().map(|p| (*p).to_owned()).collect(),
        card_cache_ms: None,
        card_cache_entries: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| fail(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--backend" => args.backend = Backend::parse(&value()?)?,
            "--cards" => args.cards = value()?.replace('_', "").parse()?,
            "--database-url" => args.database_url = value()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--warmup" => args.warmup = value()?.parse()?,
            "--connections" => args.connections = value()?.parse()?,
            "--data-dir" => args.data_dir = Some(PathBuf::from(value()?)),
            "--keep" => args.keep = true,
            "--server-threads" => args.server_threads = value()?.parse()?,
            "--client-threads" => args.client_threads = value()?.parse()?,
            "--gen-threads" => args.gen_threads = value()?.parse()?,
            "--token-pool" => args.token_pool = value()?.parse()?,
            "--publish-pool" => args.publish_pool = value()?.parse()?,
            "--server-nodelay" => args.server_nodelay = true,
            "--card-cache-ms" => args.card_cache_ms = Some(value()?.parse()?),
            "--card-cache-entries" => {
                args.card_cache_entries = Some(value()?.replace('_', "").parse()?)
            }
            "--phases" => {
                let list = value()?;
                args.phases = list.split(',').map(|p| p.trim().to_owned()).collect();
                if let Some(bad) = args
                    .phases
                    .iter()
                    .find(|p| !ALL_PHASES.contains(&p.as_str()))
                {
                    return Err(fail(format!("unknown phase {bad}\n{USAGE}")));
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(fail(format!("unknown option {other}\n{USAGE}"))),
        }
    }
    if args.cards < 100 || args.connections == 0 || args.seconds <= 0.0 {
        return Err(fail(
            "need --cards >= 100, --connections >= 1, --seconds > 0",
        ));
    }
    // Pools of never-seen tokens / fresh cards: enough for a generous rate over warmup + run; a
    // phase that exhausts its pool ends early and says so.
    let span = args.seconds + args.warmup;
    if args.token_pool == 0 {
        args.token_pool = (span * 10_000.0) as usize;
    }
    if args.publish_pool == 0 {
        args.publish_pool = (span * 5_000.0) as usize;
    }
    Ok(args)
}

/// What a later run with the same `--data-dir` needs to reuse a seeded SQLite database.
#[derive(Serialize, Deserialize)]
struct BenchState {
    #[serde(flatten)]
    creds: AppCredentials,
    cards: usize,
    identities: usize,
}

// ---------------------------------------------------------------------------------------------
// Setup

struct Env {
    store: Arc<dyn Store>,
    generator: JwtGenerator,
    app_id: String,
    identities: usize,
    service_key: PrivateKey,
    seed_note: String,
    /// The server's `data_dir` (files the server keeps next to its database).
    data_dir: PathBuf,
    cleanup: Option<(String, String, PostgresStore)>,
    _tempdir: Option<tempfile::TempDir>,
}

fn setup(rt: &tokio::runtime::Runtime, args: &Args) -> Res<Env> {
    let counts = plan(args.cards);
    let identities = counts.len();
    match args.backend {
        Backend::Sqlite => {
            let (dir, tempdir) = match &args.data_dir {
                Some(d) => (d.clone(), None),
                None => {
                    let t = tempfile::Builder::new().prefix("sealkit-load").tempdir()?;
                    (t.path().to_owned(), Some(t))
                }
            };
            std::fs::create_dir_all(&dir)?;
            let db = dir.join("sealkit.db");
            let state_file = dir.join("bench-state.json");
            let reuse = match std::fs::read(&state_file) {
                Ok(bytes) => {
                    let state: BenchState = serde_json::from_slice(&bytes)?;
                    if state.cards != args.cards {
                        return Err(fail(format!(
                            "{} holds {} cards, not {}: use another --data-dir",
                            dir.display(),
                            state.cards,
                            args.cards
                        )));
                    }
                    Some(state)
                }
                Err(_) if db.exists() => {
                    return Err(fail(format!(
                        "{} exists without bench-state.json: remove it",
                        db.display()
                    )))
                }
                Err(_) => None,
            };
            let (state, seed_note) = match reuse {
                Some(state) => (state, "reused from an earlier run".to_owned()),
                None => {
                    let store = rt.block_on(SqliteStore::open(&db))?;
                    let creds = rt.block_on(sealkit_server::admin::create_app(
                        &store,
                        "load",
                        sealkit_server::now(),
                    ))?;
                    let keys = rt.block_on(sealkit_server::service_keys(&store))?;
                    rt.block_on(store.close());
                    let options = sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(&db)
                        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sqlx::sqlite::SqliteSynchronous::Off)
                        .foreign_keys(false)
                        .pragma("cache_size", "-1048576");
                    let conn = rt.block_on(options.connect())?;
                    let (secs, gen) = seed(
                        rt,
                        Seeder::Sqlite(conn),
                        &creds.app_id,
                        &counts,
                        &keys.card_signer,
                        args.gen_threads,
                    )?;
                    let state = BenchState {
                        creds,
                        cards: args.cards,
                        identities,
                    };
                    if args.data_dir.is_some() {
                        std::fs::write(&state_file, serde_json::to_vec_pretty(&state)?)?;
                    }
                    let size = std::fs::metadata(&db).map_or(0, |m| m.len());
                    let note = format!(
                        "{secs:.1} s ({gen:.1} s of it making and signing cards on {} threads), \
                         database file {:.0} MiB",
                        args.gen_threads,
                        size as f64 / (1 << 20) as f64
                    );
                    (state, note)
                }
            };
            let store: Arc<dyn Store> = Arc::new(rt.block_on(SqliteStore::open(&db))?);
            let service_key = rt.block_on(sealkit_server::service_keys(store.as_ref()))?;
            Ok(Env {
                store,
                generator: state.creds.generator(3600)?,
                app_id: state.creds.app_id,
                identities: state.identities,
                service_key: service_key.card_signer,
                seed_note,
                data_dir: dir,
                cleanup: None,
                _tempdir: tempdir,
            })
        }
        Backend::Postgres => {
            let schema = format!(
                "sealkit_load_{}_{}",
                std::process::id(),
                sealkit_server::now()
            );
            let url = args.database_url.clone();
            let store = rt.block_on(PostgresStore::connect_fresh_schema(&url, &schema))?;
            let creds = rt.block_on(sealkit_server::admin::create_app(
                &store,
                "load",
                sealkit_server::now(),
            ))?;
            let keys = rt.block_on(sealkit_server::service_keys(&store))?;
            let conn = rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                conn.execute(format!("SET search_path TO \"{schema}\"").as_str())
                    .await?;
                Ok::<_, sqlx::Error>(conn)
            })?;
            let (secs, gen) = seed(
                rt,
                Seeder::Postgres(conn),
                &creds.app_id,
                &counts,
                &keys.card_signer,
                args.gen_threads,
            )?;
            let seed_note = format!(
                "{secs:.1} s ({gen:.1} s of it making and signing cards on {} threads), schema {schema}",
                args.gen_threads
            );
            let tempdir = tempfile::Builder::new().prefix("sealkit-load").tempdir()?;
            Ok(Env {
                store: Arc::new(store.clone()),
                generator: creds.generator(3600)?,
                app_id: creds.app_id,
                identities,
                service_key: keys.card_signer,
                seed_note,
                data_dir: tempdir.path().to_owned(),
                cleanup: (!args.keep).then(|| (url, schema, store.clone())),
                _tempdir: Some(tempdir),
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement

const TABLE_HEADER: &str =
    "| phase | via | conc. | requests | errors | req/s | p50 ms | p99 ms | max ms \
                            | CPU us/req: server / db / client | other load (cores) | note |\n\
                            |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|";

/// One HTTP request of a phase.
struct Req {
    method: Method,
    path: &'static str,
    auth: Option<HeaderValue>,
    body: Option<Bytes>,
}

/// Makes request number `seq` of connection `conn`, or `None` when its pool is used up.
type ReqFn = Arc<dyn Fn(usize, u64) -> Option<Req> + Send + Sync>;

struct ConnResult {
    samples: Vec<u64>,
    errors: usize,
    last: Instant,
    exhausted: bool,
}

async fn conn_loop(
    index: usize,
    mut sender: http1::SendRequest<Full<Bytes>>,
    make: ReqFn,
    warm_end: Instant,
    end: Instant,
) -> Res<ConnResult> {
    let mut result = ConnResult {
        samples: Vec::with_capacity(16_384),
        errors: 0,
        last: warm_end,
        exhausted: false,
    };
    let mut seq = 0u64;
    while Instant::now() < end {
        let Some(req) = make(index, seq) else {
            result.exhausted = true;
            break;
        };
        seq += 1;
        let mut builder = Request::builder()
            .method(req.method)
            .uri(req.path)
            .header(HOST, "127.0.0.1");
        if let Some(auth) = req.auth {
            builder = builder.header(AUTHORIZATION, auth);
        }
        let body = match req.body {
            Some(b) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                b
            }
            None => Bytes::new(),
        };
        let request = builder.body(Full::new(body))?;
        sender.ready().await?;
        let t0 = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let t1 = Instant::now();
        if t0 >= warm_end {
            result.samples.push((t1 - t0).as_nanos() as u64);
            result.last = t1;
            if !status.is_success() {
                result.errors += 1;
                if result.errors <= 2 {
                    eprintln!(
                        "  HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    );
                }
            }
        }
    }
    Ok(result)
}

async fn run_http(
    name: &str,
    addr: SocketAddr,
    connections: usize,
    make: ReqFn,
    warmup: Duration,
    seconds: Duration,
) -> Res<Phase> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(addr).await?);
    }
    let start = Instant::now();
    let warm_end = start + warmup;
    let end = warm_end + seconds;
    let watch = cpu_watch(warm_end, end);
    let handles: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, s)| tokio::spawn(conn_loop(i, s, make.clone(), warm_end, end)))
        .collect();
    let mut samples = Vec::new();
    let mut errors = 0;
    let mut last = warm_end;
    let mut exhausted = false;
    for h in handles {
        let r = h.await.map_err(|e| fail(e.to_string()))??;
        samples.extend(r.samples);
        errors += r.errors;
        last = last.max(r.last);
        exhausted |= r.exhausted;
    }
    let secs = (last - warm_end).as_secs_f64();
    let note = if exhausted {
        format!("pool used up after {secs:.1} s")
    } else {
        String::new()
    };
    let mut phase = Phase::from_samples(name, "HTTP", connections, samples, errors, secs, note);
    phase.cpu = watch.join().unwrap_or_default();
    Ok(phase)
}

/// Random search bodies `{"identities":[...]}` of `k` distinct seeded identities.
fn search_bodies(identities: usize, k: usize, count: usize, seed: u64) -> Res<Arc<Vec<Bytes>>> {
    let mut rng = Rng::seeded(seed);
    let mut bodies = Vec::with_capacity(count);
    for _ in 0..count {
        let mut picked = std::collections::BTreeSet::new();
        while picked.len() < k.min(identities) {
            picked.insert(rng.below(identities));
        }
        let list: Vec<String> = picked.into_iter().map(identity).collect();
        bodies.push(Bytes::from(serde_json::to_vec(
            &serde_json::json!({ "identities": list }),
        )?));
    }
    Ok(Arc::new(bodies))
}

fn auth_header(token: &Jwt) -> Res<HeaderValue> {
    Ok(HeaderValue::from_str(&format!("Virgil {token}"))?)
}

/// Mints tokens for `names` on `threads` threads.
fn mint(generator: &JwtGenerator, names: &[String], threads: usize) -> Res<Vec<HeaderValue>> {
    let now = sealkit_server::now();
    parallel(0..names.len(), threads, |part| {
        part.map(|i| auth_header(&generator.generate(&names[i], now)?))
            .collect()
    })
}

/// Times `n` runs of `op` (single task) and returns microseconds per run.
async fn time_us<F, Fut>(n: usize, mut op: F) -> Res<f64>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Res<()>>,
{
    let start = Instant::now();
    for i in 0..n {
        op(i).await?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// This process's resident memory, MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Searches every seeded identity once, 500 per request on 4 connections; the cards found.
async fn warm(addr: SocketAddr, identities: usize, token: HeaderValue) -> Res<usize> {
    const PER_REQUEST: usize = 500;
    const CONNECTIONS: usize = 4;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let next = next.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut found = 0usize;
            loop {
                let start = next.fetch_add(PER_REQUEST, Ordering::Relaxed);
                if start >= identities {
                    return Ok::<_, BoxError>(found);
                }
                let list: Vec<String> = (start..(start + PER_REQUEST).min(identities))
                    .map(identity)
                    .collect();
                let body = serde_json::to_vec(&serde_json::json!({ "identities": list }))?;
                let request = Request::builder()
                    .method(Method::POST)
                    .uri(paths::SEARCH)
                    .header(HOST, "127.0.0.1")
                    .header(AUTHORIZATION, token.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))?;
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                let bytes = response.into_body().collect().await?.to_bytes();
                let cards: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
                    .map_err(|e| fail(format!("warm-up search answered {status}: {e}")))?;
                found += cards.len();
            }
        }));
    }
    let mut found = 0;
    for task in tasks {
        found += task.await.map_err(|e| fail(e.to_string()))??;
    }
    Ok(found)
}

fn main() -> Res<()> {
    let args = parse_args()?;
    let want = |p: &str| args.phases.iter().any(|x| x == p);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .thread_name("server")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .thread_name("client")
        .enable_all()
        .build()?;
    let warmup = Duration::from_secs_f64(args.warmup);
    let seconds = Duration::from_secs_f64(args.seconds);

    eprintln!(
        "setup: {:?}, {} cards, load average {}",
        args.backend,
        args.cards,
        loadavg()
    );
    let env = setup(&server_rt, &args)?;
    eprintln!("  seeding: {}", env.seed_note);

    // The real server and the trivial one, both on the server runtime.
    let mut config = Config::default();
    config.data_dir = env.data_dir.clone();
    config.card_cache_ms = args.card_cache_ms;
    if let Some(entries) = args.card_cache_entries {
        config.card_cache_entries = entries;
    }
    let router = server_rt.block_on(sealkit_server::app(config, env.store.clone()))?;
    let trivial = Router::new().route(
        "/trivial",
        get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
    );
    let (addr, trivial_addr) = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let trivial_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addrs = (listener.local_addr()?, trivial_listener.local_addr()?);
        let nodelay = args.server_nodelay;
        let app = router.clone();
        if nodelay {
            use axum::serve::ListenerExt;
            let tap = |t: &mut tokio::net::TcpStream| {
                let _ = t.set_nodelay(true);
            };
            tokio::spawn(async move { axum::serve(listener.tap_io(tap), app).await });
            tokio::spawn(async move { axum::serve(trivial_listener.tap_io(tap), trivial).await });
        } else {
            tokio::spawn(async move { axum::serve(listener, app).await });
            tokio::spawn(async move { axum::serve(trivial_listener, trivial).await });
        }
        Ok::<_, std::io::Error>(addrs)
    })?;

    let conns = args.connections;
    let identities = env.identities;
    let bodies1 = search_bodies(identities, 1, 8192, 1)?;
    let bodies50 = search_bodies(identities, 50, 2048, 2)?;
    let searcher_names: Vec<String> = (0..conns).map(|i| format!("searcher-{i}")).collect();
    let searcher_tokens = Arc::new(mint(&env.generator, &searcher_names, args.gen_threads)?);
    let run_tag = format!("{:x}", sealkit_server::now());

    // A sanity check before measuring: one search must find the card(s).
    {
        let body = bodies1[0].clone();
        let token = searcher_tokens[0].clone();
        let found = client_rt.block_on(async {
            let mut sender = connect(addr).await?;
            let request = Request::builder()
                .method(Method::POST)
                .uri(paths::SEARCH)
                .header(HOST, "127.0.0.1")
                .header(AUTHORIZATION, token)
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(body))?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            let cards: Vec<RawSignedModel> = serde_json::from_slice(&bytes)
                .map_err(|e| fail(format!("search answered {status}: {e}")))?;
            Ok::<_, BoxError>(cards.len())
        })?;
        if found == 0 {
            return Err(fail("the sanity search found no card: seeding is broken"));
        }
    }

    let mut phases: Vec<Phase> = Vec::new();
    let mut micro: Vec<(String, f64)> = Vec::new();
    let report = |p: &Phase| eprintln!("{}   [load average {}]", p.row(), loadavg());

    if want("trivial") {
        let make: ReqFn = Arc::new(|_, _| {
            Some(Req {
                method: Method::GET,
                path: "/trivial",
                auth: None,
                body: None,
            })
        });
        let p = client_rt.block_on(run_http(
            "trivial GET (bare axum)",
            trivial_addr,
            conns,
            make,
            warmup,
            seconds,
        ))?;
        report(&p);
        phases.push(p);
    }
    let mut warm_note = None;
    if want("warm") {
        let rss_before = rss_mib();
        let started = Instant::now();
        let found = client_rt.block_on(warm(addr, identities, searcher_tokens[0].clone()))?;
        let secs = started.elapsed().as_secs_f64();
        let rss_after = rss_mib();
        let note = format!(
            "every identity searched once ({identities} identities, {found} cards, 500 per \
             request, 4 connections) in {secs:.1} s; resident memory {rss_before:.0} -> \
             {rss_after:.0} MiB (+{:.0} MiB, {:.0} bytes per card)",
            rss_after - rss_before,
            (rss_after - rss_before) * (1 << 20) as f64 / found.max(1) as f64
        );
        eprintln!("  warm: {note}   [load average {}]", loadavg());
        warm_note = Some(note);
    }
    for (phase, k, bodies) in [("search1", 1, &bodies1), ("search50", 50, &bodies50)] {
        if !want(phase) {
            continue;
        }
        let bodies = bodies.clone();
        let tokens = searcher_tokens.clone();
        let make: ReqFn = Arc::new(move |conn, seq| {
            let mut rng = Rng::seeded((conn as u64) << 32 | seq);
            Some(Req {
                method: Method::POST,
                path: paths::SEARCH,
                auth: Some(tokens[conn].clone()),
                body: Some(bodies[rng.below(bodies.len())].clone()),
            })
        });
        let p = client_rt.block_on(run_http(
            &format!("search {k} (cached token)"),
            addr,
            conns,
            make,
            warmup,
            seconds,
        ))?;
        report(&p);
        phases.push(p);
    }
    if want("search1-fresh") {
        eprintln!("  minting {} fresh tokens", args.token_pool);
        let names: Vec<String> = (0..args.token_pool)
            .map(|i| format!("fresh-{run_tag}-{i}"))
            .collect();
        let pool = Arc::new(mint(&env.generator, &names, args.gen_threads)?);
        let next = Arc::new(AtomicUsize::new(0));
        let bodies = bodies1.clone();
        let make: ReqFn = Arc::new(move |conn, seq| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let auth = pool.get(i)?.clone();
            let mut rng = Rng::seeded((conn as u64) << 32 | seq);
            Some(Req {
                method: Method::POST,
                path: paths::SEARCH,
                auth: Some(auth),
                body: Some(bodies[rng.below(bodies.len())].clone()),
            })
        });
        let p = client_rt.block_on(run_http(
            "search 1 (fresh token each request)",
            addr,
            conns,
            make,
            warmup,
            seconds,
        ))?;
        report(&p);
        phases.push(p);
    }
    if want("router-search1") {
        let router = router.clone();
        let bodies = bodies1.clone();
        let tokens = searcher_tokens.clone();
        let p = server_rt.block_on(run_inproc(
            "search 1 (cached token)",
            "Router::oneshot",
            conns,
            move |task, seq| {
                let mut rng = Rng::seeded((task as u64) << 32 | seq);
                let body = bodies[rng.below(bodies.len())].clone();
                let request = Request::builder()
                    .method(Method::POST)
                    .uri(paths::SEARCH)
                    .header(AUTHORIZATION, tokens[task].clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(axum::body::Body::from(body));
                let router = router.clone();
                async move {
                    let Ok(request) = request else { return false };
                    let Ok(response) = router.oneshot(request).await;
                    let ok = response.status().is_success();
                    ok && response.into_body().collect().await.is_ok()
                }
            },
            warmup,
            seconds,
        ))?;
        report(&p);
        phases.push(p);
    }
    for (phase, k, concurrency) in [
        ("store-search1", 1, conns),
        ("store-search50", 50, conns),
        ("store-search1-c1", 1, 1),
    ] {
        if !want(phase) {
            continue;
        }
        let store = env.store.clone();
        let app_id = Arc::new(env.app_id.clone());
        let p = server_rt.block_on(run_inproc(
            &format!("search {k}"),
            "Store::search_cards",
            concurrency,
            move |task, seq| {
                let mut rng = Rng::seeded((task as u64) << 32 | seq);
                let mut picked = std::collections::BTreeSet::new();
                while picked.len() < k {
                    picked.insert(rng.below(identities));
                }
                let list: Vec<String> = picked.into_iter().map(identity).collect();
                let store = store.clone();
                let app_id = app_id.clone();
                async move {
                    matches!(store.search_cards(&app_id, &list).await, Ok(cards) if !cards.is_empty())
                }
            },
            warmup,
            seconds,
        ))?;
        report(&p);
        phases.push(p);
    }
    if want("publish") {
        eprintln!("  making {} fresh cards and tokens", args.publish_pool);
        let now = sealkit_server::now();
        let generator = &env.generator;
        let pool: Vec<(HeaderValue, Bytes)> =
            parallel(0..args.publish_pool, args.gen_threads, |part| {
                part.map(|i| {
                    let who = format!("new-{run_tag}-{i}@bench.example");
                    let card = client_card(&who, None, now)?;
                    let token = auth_header(&generator.generate(&who, now)?)?;
                    Ok((token, Bytes::from(serde_json::to_vec(&card)?)))
                })
                .collect()
            })?;
        let pool = Arc::new(pool);
        let next = Arc::new(AtomicUsize::new(0));
        let make: ReqFn = Arc::new(move |_, _| {
            let (auth, body) = pool.get(next.fetch_add(1, Ordering::Relaxed))?.clone();
            Some(Req {
                method: Method::POST,
                path: paths::CARDS,
                auth: Some(auth),
                body: Some(body),
            })
        });
        let p = client_rt.block_on(run_http(
            "publish (new identity, fresh token)",
            addr,
            conns,
            make,
            warmup,
            seconds,
        ))?;
        report(&p);
        phases.push(p);
    }
    if want("micro") {
        let store = env.store.clone();
        let generator = env.generator.clone();
        let app_id = env.app_id.clone();
        let service_key = &env.service_key;
        micro = server_rt.block_on(async move {
            let mut out = Vec::new();
            let now = sealkit_server::now();
            let auth = sealkit_server::service::auth::Authenticator::new(store.clone(), 30);
            let token = generator.generate("micro", now)?.to_string();
            auth.verify(&token, now)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let us = time_us(50_000, |_| {
                let auth = &auth;
                let token = &token;
                async move {
                    auth.verify(token, now)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    Ok(())
                }
            })
            .await?;
            out.push((
                "token verification, cache hit (SHA-256 + map lookup)".to_owned(),
                us,
            ));
            let n = 3000;
            let fresh: Vec<String> = (0..n)
                .map(|i| Ok(generator.generate(&format!("micro-{i}"), now)?.to_string()))
                .collect::<Res<_>>()?;
            let us = time_us(n, |i| {
                let auth = &auth;
                let token = &fresh[i];
                async move {
                    auth.verify(token, now)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    Ok(())
                }
            })
            .await?;
            out.push((
                "token verification, cache miss (parse + key lookup + Ed25519)".to_owned(),
                us,
            ));
            let kid = generator.key_id().to_owned();
            let us = time_us(n, |_| {
                let store = &store;
                let kid = &kid;
                async move {
                    store.app_key(kid).await?;
                    Ok(())
                }
            })
            .await?;
            out.push(("  of which API key lookup (Store::app_key)".to_owned(), us));
            let public = generator.public_key().clone();
            let us = time_us(n, |i| {
                let r = Jwt::parse(&fresh[i])
                    .and_then(|jwt| jwt.verify(&public, &app_id, now, 30))
                    .map_err(|e| fail(e.to_string()));
                async move { r }
            })
            .await?;
            out.push(("  of which JWT parse + Ed25519 verify".to_owned(), us));
            let us = time_us(n, |i| {
                let r = generator
                    .generate(&format!("mint-{i}"), now)
                    .map(|_| ())
                    .map_err(|e| fail(e.to_string()));
                async move { r }
            })
            .await?;
            out.push((
                "minting a token (client/app backend side, Ed25519 sign)".to_owned(),
                us,
            ));
            let cards: Vec<RawSignedModel> = (0..1000)
                .map(|i| client_card(&format!("m-{i}"), None, now))
                .collect::<Res<_>>()?;
            let us = time_us(cards.len(), |i| {
                let mut card = cards[i].clone();
                let r = card
                    .verify_self_signature()
                    .and_then(|()| card.add_signature(VIRGIL_SIGNER, service_key))
                    .map_err(|e| fail(e.to_string()));
                async move { r }
            })
            .await?;
            out.push((
                "publish crypto (self-signature verify + service signature)".to_owned(),
                us,
            ));
            Ok::<_, BoxError>(out)
        })?;
        for (what, us) in &micro {
            eprintln!("  {what}: {us:.1} us");
        }
    }

    // Report.
    let backend = args.backend.label();
    println!(
        "\n### {backend}, {} cards ({} identities), {} connections, {} s per phase (+{} s warm-up)\n",
        args.cards, identities, conns, args.seconds, args.warmup
    );
    println!("Seeding: {}.\n", env.seed_note);
    println!(
        "Server search cache: card_cache_ms {}, card_cache_entries {}.\n",
        args.card_cache_ms
            .map_or_else(|| "unset (server default)".to_owned(), |ms| ms.to_string()),
        args.card_cache_entries
            .map_or_else(|| "unset (server default)".to_owned(), |n| n.to_string()),
    );
    if let Some(note) = &warm_note {
        println!("Warm-up: {note}.\n");
    }
    println!("{TABLE_HEADER}");
    for p in &phases {
        println!("{}", p.row());
    }
    let trivial = phases.iter().find(|p| p.name.starts_with("trivial"));
    let search1 = phases
        .iter()
        .find(|p| p.via == "HTTP" && p.name == "search 1 (cached token)");
    if let (Some(t), Some(s)) = (trivial, search1) {
        let ratio = s.rate() / t.rate();
        // Issue 16: 0.5x on SQLite, 0.3x on PostgreSQL.
        let target = match args.backend {
            Backend::Sqlite => 0.5,
            Backend::Postgres => 0.3,
        };
        println!(
            "\nTargets: search 1 / trivial = {ratio:.2}x (target >= {target}x: {}); search 1 p99 = {:.2} ms (target < 5 ms: {}).",
            if ratio >= target { "met" } else { "missed" },
            s.p99_ms,
            if s.p99_ms < 5.0 { "met" } else { "missed" },
        );
    }
    if !micro.is_empty() {
        println!("\n| single-task timing | us per op |\n|---|---:|");
        for (what, us) in &micro {
            println!("| {what} | {us:.1} |");
        }
    }
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    println!(
        "\nMachine: {} x {cpu_model}, shared by server, database and load generator. Server runtime: {} \
         worker threads; load generator: {} thread(s); load average at the end {}.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.server_threads,
        args.client_threads,
        loadavg()
    );

    if let Some((url, schema, store)) = &env.cleanup {
        server_rt.block_on(async {
            store.close().await;
            if let Err(e) = PostgresStore::drop_schema(url, schema).await {
                eprintln!("dropping schema {schema}: {e}");
            }
        });
    }
    server_rt.shutdown_timeout(Duration::from_secs(1));
    client_rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
