//! Load generator for the key-backup endpoints: the Pythia brainkey (`POST /pythia/v1/brainkey`),
//! brainkey v3 (`POST /brainkey/v3/harden`) and Keyknox v1/v2 push and pull, at `--connections`
//! HTTP/1.1 keep-alive connections, with req/s and p50/p99 next to a trivial axum handler
//! measured in the same run, on SQLite or PostgreSQL. Results: `docs/backup-and-brainkey.md`.
//!
//! ```text
//! cargo run --release --locked -p sealkit-server --example load_backup -- --backend sqlite
//! cargo run --release --locked -p sealkit-server --example load_backup -- --backend postgres \
//!     --database-url postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! The real router (`sealkit_server::app`) is served in-process by `axum::serve` on a loopback
//! port, on its own tokio runtime ("server" threads; the transforms run on its blocking pool);
//! the load generator is a second runtime in the same process (hyper's low-level client, one
//! request in flight per connection, closed loop). Each connection is one user with its own
//! token, so the server's token cache hits, except where a phase says otherwise.
//!
//! Phases (`--phases` selects, comma-separated, in this order):
//! * `trivial`: `GET /trivial` on a separate bare axum router (small JSON), same process;
//! * `brainkey`: `POST /pythia/v1/brainkey`, one user per connection asking again and again
//!   (the brainkey rate limit is raised for the run so that nobody is throttled; every request
//!   still takes a token from its bucket in the database);
//! * `brainkey-new`: the same with a never-seen user and token on every request (full JWT
//!   verification, the hash to G2 of a new tweak, a new rate-limit row): a user's first request;
//! * `harden-v3`: `POST /brainkey/v3/harden` (P-256 OPRF with a DLEQ proof), one user per
//!   connection, rate limit raised as for `brainkey`;
//! * `kk-v1-push` / `kk-v1-pull`: `PUT` / `GET /keyknox/v1`, one user per connection; each push
//!   sends the hash its previous answer carried (a compare-and-swap write, as e3kit does);
//! * `kk-v2-push` / `kk-v2-pull`: `POST /keyknox/v2/push` / `pull` of the entry
//!   `e3kit/backup/<key>` for the user itself (what `backupPrivateKey(password, keyName)` writes);
//! * `ratelimit`: `Store::rate_limit_take` alone, `--connections` tasks, no HTTP: the database
//!   write every brainkey request makes.
//!
//! The blobs are `--blob-bytes` (default 1024) random bytes in base64, about what an encrypted
//! Ed25519 private key backup is.

#[path = "shared/cpu.rs"]
mod cpu;
#[path = "shared/measure.rs"]
#[allow(dead_code)]
mod measure;
#[path = "shared/seed.rs"]
#[allow(dead_code)]
mod seed;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use cpu::{cpu_watch, loadavg};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use measure::{connect, run_inproc, Phase};
use rand_core::{OsRng, RngCore};
use sealkit_proto::brainkey::HARDEN_PATH;
use sealkit_proto::jwt::JwtGenerator;
use sealkit_proto::keyknox::paths as keyknox;
use sealkit_proto::pythia::BRAINKEY_PATH;
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::sqlite::SqliteStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use seed::{fail, parallel, Backend, Res};

const ALL_PHASES: &[&str] = &[
    "trivial",
    "brainkey",
    "brainkey-new",
    "harden-v3",
    "kk-v1-push",
    "kk-v1-pull",
    "kk-v2-push",
    "kk-v2-pull",
    "ratelimit",
];

const USAGE: &str = "\
usage: load_backup [--backend sqlite|postgres] [--database-url URL] [--seconds S] [--warmup S]
                   [--connections C] [--server-threads N] [--client-threads N]
                   [--blob-bytes N] [--phases a,b,...]
phases: trivial,brainkey,brainkey-new,harden-v3,kk-v1-push,kk-v1-pull,kk-v2-push,kk-v2-pull,
        ratelimit (default: all)";

#[derive(Clone, Debug)]
struct Args {
    backend: Backend,
    database_url: String,
    seconds: f64,
    warmup: f64,
    connections: usize,
    server_threads: usize,
    client_threads: usize,
    blob_bytes: usize,
    phases: Vec<String>,
}

fn parse_args() -> Res<Args> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut args = Args {
        backend: Backend::Sqlite,
        database_url: "postgres://postgres@127.0.0.1:5432/test".to_owned(),
        seconds: 10.0,
        warmup: 1.0,
        connections: 64,
        server_threads: cores,
        client_threads: 1,
        blob_bytes: 1024,
        phases: ALL_PHASES.iter().map(|p| (*p).to_owned()).collect(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| fail(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--backend" => args.backend = Backend::parse(&value()?)?,
            "--database-url" => args.database_url = value()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--warmup" => args.warmup = value()?.parse()?,
            "--connections" => args.connections = value()?.parse()?,
            "--server-threads" => args.server_threads = value()?.parse()?,
            "--client-threads" => args.client_threads = value()?.parse()?,
            "--blob-bytes" => args.blob_bytes = value()?.parse()?,
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
    if args.connections == 0 || args.seconds <= 0.0 || args.blob_bytes == 0 {
        return Err(fail(
            "need --connections >= 1, --seconds > 0, --blob-bytes >= 1",
        ));
    }
    Ok(args)
}

// ---------------------------------------------------------------------------------------------
// Setup

struct Env {
    store: Arc<dyn Store>,
    generator: JwtGenerator,
    data_dir: std::path::PathBuf,
    cleanup: Option<(String, String, PostgresStore)>,
    _tempdir: tempfile::TempDir,
}

fn setup(rt: &tokio::runtime::Runtime, args: &Args) -> Res<Env> {
    let tempdir = tempfile::Builder::new()
        .prefix("sealkit-load-backup")
        .tempdir()?;
    let data_dir = tempdir.path().to_owned();
    let (store, cleanup): (Arc<dyn Store>, _) = match args.backend {
        Backend::Sqlite => {
            let store = rt.block_on(SqliteStore::open(&data_dir.join("sealkit.db")))?;
            (Arc::new(store), None)
        }
        Backend::Postgres => {
            let schema = format!(
                "sealkit_load_backup_{}_{}",
                std::process::id(),
                sealkit_server::now()
            );
            let url = args.database_url.clone();
            let store = rt.block_on(PostgresStore::connect_fresh_schema(&url, &schema))?;
            (Arc::new(store.clone()), Some((url, schema, store)))
        }
    };
    let creds = rt.block_on(sealkit_server::admin::create_app(
        store.as_ref(),
        "load-backup",
        sealkit_server::now(),
    ))?;
    Ok(Env {
        store,
        generator: creds.generator(3600)?,
        data_dir,
        cleanup,
        _tempdir: tempdir,
    })
}

// ---------------------------------------------------------------------------------------------
// Measurement

const TABLE_HEADER: &str =
    "| phase | via | conc. | requests | errors | req/s | / trivial | p50 ms | p99 ms | max ms \
     | CPU us/req: server / db / client | other load (cores) | note |\n\
     |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|";

/// One HTTP request of a phase.
struct Req {
    method: Method,
    path: &'static str,
    auth: HeaderValue,
    body: Option<Bytes>,
    /// Send the `Virgil-Keyknox-Hash` of this connection's previous answer as
    /// `Virgil-Keyknox-Previous-Hash` (a compare-and-swap write).
    chain_hash: bool,
}

/// Makes request number `seq` of connection `conn`, or `None` when its pool is used up.
type ReqFn = Arc<dyn Fn(usize, u64) -> Option<Req> + Send + Sync>;

struct ConnResult {
    samples: Vec<u64>,
    errors: usize,
    last: Instant,
    exhausted: bool,
}

/// Sends one request and reads the whole answer: status, the Keyknox hash header, the body.
async fn send(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    req: Req,
    previous_hash: Option<&HeaderValue>,
) -> Res<(axum::http::StatusCode, Option<HeaderValue>, Bytes)> {
    let mut builder = Request::builder()
        .method(req.method)
        .uri(req.path)
        .header(HOST, "127.0.0.1")
        .header(AUTHORIZATION, req.auth);
    if let (true, Some(hash)) = (req.chain_hash, previous_hash) {
        builder = builder.header(keyknox::PREVIOUS_HASH_HEADER, hash.clone());
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
    let response = sender.send_request(request).await?;
    let status = response.status();
    let hash = response
        .headers()
        .get(HeaderName::from_static("virgil-keyknox-hash"))
        .cloned();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, hash, body))
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
    let mut previous_hash: Option<HeaderValue> = None;
    let mut seq = 0u64;
    while Instant::now() < end {
        let Some(req) = make(index, seq) else {
            result.exhausted = true;
            break;
        };
        seq += 1;
        let t0 = Instant::now();
        let (status, hash, body) = send(&mut sender, req, previous_hash.as_ref()).await?;
        let t1 = Instant::now();
        if hash.is_some() {
            previous_hash = hash;
        }
        if t0 >= warm_end {
            result.samples.push((t1 - t0).as_nanos() as u64);
            result.last = t1;
        }
        if !status.is_success() {
            result.errors += usize::from(t0 >= warm_end);
            if result.errors <= 2 {
                eprintln!(
                    "  HTTP {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                );
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
    let mut phase = Phase::from_samples(
        name,
        "HTTP",
        connections,
        samples,
        errors,
        secs,
        String::new(),
    );
    if exhausted {
        phase.note = format!("pool used up after {secs:.1} s");
    }
    phase.cpu = watch.join().unwrap_or_default();
    Ok(phase)
}

fn auth_header(generator: &JwtGenerator, identity: &str) -> Res<HeaderValue> {
    let token = generator.generate(identity, sealkit_server::now())?;
    Ok(HeaderValue::from_str(&format!("Virgil {token}"))?)
}

/// Tokens for `names`, minted on all cores.
fn mint(generator: &JwtGenerator, names: &[String]) -> Res<Vec<HeaderValue>> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    parallel(0..names.len(), cores, |part| {
        part.map(|i| auth_header(generator, &names[i])).collect()
    })
}

fn json(value: serde_json::Value) -> Res<Bytes> {
    Ok(Bytes::from(serde_json::to_vec(&value)?))
}

/// `n` random bytes in standard base64.
fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------

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
    let load_start = loadavg();
    eprintln!("setup: {:?}, load average {load_start}", args.backend);
    let env = setup(&server_rt, &args)?;

    // The real server (the brainkey limit raised: the repeat-user phases would otherwise be
    // throttled after 10 requests per user) and the trivial one, on the server runtime.
    let mut config = Config::default();
    config.data_dir = env.data_dir.clone();
    config.brainkey_burst = u32::MAX;
    config.brainkey_per_second = 1e9;
    let router = server_rt.block_on(sealkit_server::app(config, env.store.clone()))?;
    let trivial = Router::new().route(
        "/trivial",
        get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
    );
    let (addr, trivial_addr) = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let trivial_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addrs = (listener.local_addr()?, trivial_listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, router).await });
        tokio::spawn(async move { axum::serve(trivial_listener, trivial).await });
        Ok::<_, std::io::Error>(addrs)
    })?;

    let conns = args.connections;
    let run_tag = format!("{:x}", sealkit_server::now());
    let users: Vec<String> = (0..conns)
        .map(|i| format!("backup-{run_tag}-{i}@bench.example"))
        .collect();
    let tokens = Arc::new(mint(&env.generator, &users)?);
    // One blinded password per connection (the client's work, done before the run).
    let brainkey_bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..conns)
            .map(|i| {
                let (blinded, _) =
                    sealkit_pythia::blind(format!("password {i}").as_bytes(), &mut OsRng)?;
                json(serde_json::json!({
                    "blinded_password": base64::engine::general_purpose::STANDARD.encode(blinded)
                }))
            })
            .collect::<Res<_>>()?,
    );
    let harden_bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..conns)
            .map(|i| {
                let (_, blinded) =
                    sealkit_pythia::v3::blind(format!("password {i}").as_bytes(), &mut OsRng)?;
                json(serde_json::json!({
                    "blinded_point": base64::engine::general_purpose::STANDARD.encode(blinded)
                }))
            })
            .collect::<Res<_>>()?,
    );
    let meta = random_b64(64);
    let v1_push = json(serde_json::json!({ "meta": meta, "value": random_b64(args.blob_bytes) }))?;
    let v2_push: Arc<Vec<Bytes>> = Arc::new(
        users
            .iter()
            .map(|user| {
                json(serde_json::json!({
                    "root": "e3kit", "path": "backup", "key": "main",
                    "identities": [user], "meta": meta, "value": random_b64(args.blob_bytes),
                }))
            })
            .collect::<Res<_>>()?,
    );
    let v2_pull = json(serde_json::json!({ "root": "e3kit", "path": "backup", "key": "main" }))?;

    let mut phases: Vec<Phase> = Vec::new();
    let report = |p: &Phase| eprintln!("{}   [load average {}]", p.row_vs(None), loadavg());
    // Every phase with one token per connection and a fixed body per connection.
    let fixed = |method: Method,
                 path: &'static str,
                 bodies: Option<Arc<Vec<Bytes>>>,
                 chain_hash: bool|
     -> ReqFn {
        let tokens = tokens.clone();
        Arc::new(move |conn, _| {
            Some(Req {
                method: method.clone(),
                path,
                auth: tokens[conn].clone(),
                body: bodies.as_ref().map(|b| b[conn % b.len()].clone()),
                chain_hash,
            })
        })
    };

    // One HTTP phase at `at`, reported as soon as it is measured.
    let measure = |name: &str, at: SocketAddr, make: ReqFn| -> Res<Phase> {
        let p = client_rt.block_on(run_http(name, at, conns, make, warmup, seconds))?;
        report(&p);
        Ok(p)
    };
    if want("trivial") {
        let make: ReqFn = fixed(Method::GET, "/trivial", None, false);
        phases.push(measure("trivial GET (bare axum)", trivial_addr, make)?);
    }
    if want("brainkey") {
        let make = fixed(
            Method::POST,
            BRAINKEY_PATH,
            Some(brainkey_bodies.clone()),
            false,
        );
        phases.push(measure("brainkey v1, repeat user", addr, make)?);
    }
    if want("brainkey-new") {
        // A generous pool: the rate is bounded by the pairing (~1000/s on two cores).
        let pool_size = ((args.seconds + args.warmup) * 1500.0) as usize + conns;
        eprintln!("  minting {pool_size} tokens of new users");
        let names: Vec<String> = (0..pool_size)
            .map(|i| format!("new-{run_tag}-{i}@bench.example"))
            .collect();
        let pool = Arc::new(mint(&env.generator, &names)?);
        let next = Arc::new(AtomicUsize::new(0));
        let bodies = brainkey_bodies.clone();
        let make: ReqFn = Arc::new(move |conn, _| {
            Some(Req {
                method: Method::POST,
                path: BRAINKEY_PATH,
                auth: pool.get(next.fetch_add(1, Ordering::Relaxed))?.clone(),
                body: Some(bodies[conn % bodies.len()].clone()),
                chain_hash: false,
            })
        });
        phases.push(measure("brainkey v1, new user + token", addr, make)?);
    }
    if want("harden-v3") {
        let make = fixed(
            Method::POST,
            HARDEN_PATH,
            Some(harden_bodies.clone()),
            false,
        );
        phases.push(measure("brainkey v3 harden, repeat user", addr, make)?);
    }
    let v1_bodies = Arc::new(vec![v1_push]);
    let v2_pull_bodies = Arc::new(vec![v2_pull]);
    let keyknox_phases = [
        (
            "kk-v1-push",
            "Keyknox v1 PUT",
            Method::PUT,
            keyknox::V1,
            Some(v1_bodies),
            true,
        ),
        (
            "kk-v1-pull",
            "Keyknox v1 GET",
            Method::GET,
            keyknox::V1,
            None,
            false,
        ),
        (
            "kk-v2-push",
            "Keyknox v2 push",
            Method::POST,
            keyknox::V2_PUSH,
            Some(v2_push),
            true,
        ),
        (
            "kk-v2-pull",
            "Keyknox v2 pull",
            Method::POST,
            keyknox::V2_PULL,
            Some(v2_pull_bodies),
            false,
        ),
    ];
    for (phase, name, method, path, bodies, chain) in keyknox_phases {
        if !want(phase) {
            continue;
        }
        let make = fixed(method, path, bodies, chain);
        phases.push(measure(name, addr, make)?);
    }
    if want("ratelimit") {
        let store = env.store.clone();
        let keys: Arc<Vec<String>> = Arc::new(
            (0..conns)
                .map(|i| format!("bench\u{1f}{run_tag}\u{1f}{i}"))
                .collect(),
        );
        let p = server_rt.block_on(run_inproc(
            "rate-limit take (the brainkey DB write)",
            "Store::rate_limit_take",
            conns,
            move |task, _| {
                let store = store.clone();
                let keys = keys.clone();
                async move {
                    matches!(
                        store
                            .rate_limit_take(&keys[task], sealkit_server::now_ms(), u32::MAX, 1e9)
                            .await,
                        Ok(true)
                    )
                }
            },
            warmup,
            seconds,
        ))?;
        report(&p);
        phases.push(p);
    }

    // Report.
    let trivial = phases
        .iter()
        .find(|p| p.name.starts_with("trivial"))
        .map(Phase::rate);
    println!(
        "\n### {}, {} connections, {} s per phase (+{} s warm-up), {}-byte blobs\n",
        args.backend.label(),
        conns,
        args.seconds,
        args.warmup,
        args.blob_bytes
    );
    println!("{TABLE_HEADER}");
    for p in &phases {
        println!("{}", p.row_vs(trivial));
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
         worker threads; load generator: {} thread(s); load average at the start {load_start}, at the end {}.",
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
