//! Soak test (issue 11, results in `docs/reliability.md`): mixed traffic against two `sealkit
//! serve` replicas on one PostgreSQL database while one replica is killed with SIGKILL and
//! restarted on the same port at a fixed interval.
//!
//! Every user works against one replica (users alternate between the two) and loops over: a chat
//! message to a shared group channel (every user is subscribed to it over the WebSocket), a card
//! lookup of everyone, a key rotation (new card), a key backup (Keyknox + Pythia brainkey, with a
//! new password each time) and a restore of that backup on a new device. A failed attempt is
//! repeated until it succeeds; what succeeded is an acknowledged write. At the end it checks:
//!
//! - every subscriber received every stored chat message (so every acknowledged one) exactly
//!   once and in `seq` order, with the sender and client id the server stored, and every
//!   verified one with the text that was sent;
//! - everyone's current card is the last one whose publication was acknowledged;
//! - the last acknowledged backup restores, with the last acknowledged password, to the key
//!   that was backed up.
//!
//! It prints p50/p99 per operation and the counts, and exits with status 1 on any loss,
//! duplication or unexpected error.
//!
//! ```text
//! cargo build -p sealkit-cli
//! cargo run -p sealkit --example soak -- [--seconds 600] [--users 8] [--kill-every SECS]
//!     [--down-ms 2000] [--pause-ms 100] [--bin target/debug/sealkit] [--database-url postgres://...]
//! ```
//!
//! `--kill-every` defaults to 60 s, or 20 s for runs shorter than 5 minutes; a killed replica
//! stays down `--down-ms` before it is started again; each user pauses `--pause-ms` between
//! steps. The database URL
//! (else `SEALKIT_TEST_PG` as for the end-to-end tests, else `DATABASE_URL`, else
//! `postgres://postgres@127.0.0.1:5432/test`) names a server on which a fresh database is
//! created with `psql` (and dropped at the end). The binary defaults to `$SEALKIT_BIN`, else the
//! `sealkit` built with this example. All traffic goes to 127.0.0.1.

use sealkit::chat::{ChannelKind, ChatEvent, ChatStream, Verification};
use sealkit::{Card, Chat, EThree, EThreeOptions, Error};
use sealkit_proto::chat::{paths, MessagePage};
use sealkit_proto::{AppCredentials, JwtGenerator};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const CHANNEL: &str = "soak";
/// How long the work in progress at the deadline may take to finish, and the subscribers to
/// catch up, before the run is declared stuck.
const GRACE: Duration = Duration::from_secs(90);
/// Longest wait for a restarted replica to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------------------------ options

struct Options {
    seconds: u64,
    users: usize,
    kill_every: Duration,
    /// How long a killed replica stays down before it is started again.
    down: Duration,
    pause: Duration,
    bin: PathBuf,
    database_url: String,
}

impl Options {
    fn parse() -> BoxResult<Self> {
        let mut args = std::env::args().skip(1);
        let mut seconds = 600;
        let mut users = 8;
        let mut kill_every = None;
        let mut down_ms = 2000;
        let mut pause_ms = 100;
        let mut bin = None;
        let mut database_url = std::env::var("SEALKIT_TEST_PG")
            .or_else(|_| std::env::var("DATABASE_URL"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--seconds" => seconds = value()?.parse()?,
                "--users" => users = value()?.parse()?,
                "--kill-every" => kill_every = Some(value()?.parse()?),
                "--down-ms" => down_ms = value()?.parse()?,
                "--pause-ms" => pause_ms = value()?.parse()?,
                "--bin" => bin = Some(PathBuf::from(value()?)),
                "--database-url" => database_url = value()?,
                _ => {
                    return Err(
                        format!("unknown argument {flag} (see the example's header)").into(),
                    )
                }
            }
        }
        if users < 2 {
            return Err("--users must be at least 2".into());
        }
        let bin = match bin.or_else(|| std::env::var_os("SEALKIT_BIN").map(PathBuf::from)) {
            Some(bin) => bin,
            None => default_binary()?,
        };
        Ok(Self {
            seconds,
            users,
            kill_every: Duration::from_secs(kill_every.unwrap_or(if seconds < 300 {
                20
            } else {
                60
            })),
            pause: Duration::from_millis(pause_ms),
            down: Duration::from_millis(down_ms),
            bin,
            database_url,
        })
    }
}

/// `sealkit` next to this example (`target/<profile>/examples/soak` → `target/<profile>/sealkit`),
/// else the release or debug build under `target/`.
fn default_binary() -> BoxResult<PathBuf> {
    let exe = std::env::current_exe()?;
    let sibling = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("sealkit"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    sibling
        .into_iter()
        .chain([target.join("release/sealkit"), target.join("debug/sealkit")])
        .find(|p| p.is_file())
        .ok_or_else(|| "no sealkit binary: `cargo build -p sealkit-cli`, or pass --bin".into())
}

// ------------------------------------------------------------------------------------ replicas

/// One `sealkit serve` process on a fixed port; killed when dropped.
struct Replica {
    port: u16,
    args: Vec<String>,
    bin: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self, http: &reqwest::Client) -> BoxResult<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(&self.args)
            .env("SEALKIT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let began = Instant::now();
        while began.elapsed() < START_TIMEOUT {
            let health = http.get(format!("{}/healthz", self.url())).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .map(Child::try_wait)
                .transpose()?
                .flatten()
            {
                return Err(format!(
                    "replica :{} exited with {status} (see {})",
                    self.port,
                    self.log.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("replica :{} did not become healthy", self.port).into())
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> BoxResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn psql(server_url: &str, sql: &str) -> BoxResult<()> {
    let status = Command::new("psql")
        .args([server_url, "-q", "-c", sql])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("psql (needed to create the database): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("psql {sql:?} on {server_url} failed").into())
    }
}

// ------------------------------------------------------------------------------------ statistics

#[derive(Default)]
struct OpStats {
    /// From the first attempt to the success, retries included.
    latencies: Vec<Duration>,
    /// Failed attempts that were repeated.
    retries: u64,
}

/// What the run measured and what went wrong, shared by every task.
#[derive(Default)]
struct Report {
    ops: Mutex<BTreeMap<&'static str, OpStats>>,
    /// Losses, duplicates and unexpected errors: each one fails the run.
    failures: Mutex<Vec<String>>,
    kills: AtomicI64,
}

impl Report {
    fn record(&self, op: &'static str, latency: Duration, retries: u64) {
        let mut ops = lock(&self.ops);
        let stats = ops.entry(op).or_default();
        stats.latencies.push(latency);
        stats.retries += retries;
    }

    fn fail(&self, what: String) {
        eprintln!("FAILURE: {what}");
        lock(&self.failures).push(what);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// (p50, p99, max) in milliseconds.
fn percentiles(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples
            .get(i)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    (at(0.50), at(0.99), at(1.0))
}

/// Failures a replica being killed or restarting causes: the operation is repeated.
fn transient(e: &Error) -> bool {
    match e {
        Error::Network(_) => true,
        // 5xx while the database connection or the replica is going away; 429 when the
        // brainkey rate limit of the identity is reached.
        Error::Api { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

/// Runs `attempt` until it succeeds or fails with a non-transient error (or `give_up` passes),
/// and records the latency of the whole.
async fn retry<T, F, Fut>(
    report: &Report,
    op: &'static str,
    give_up: Instant,
    mut attempt: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sealkit::Result<T>>,
{
    let began = Instant::now();
    let mut retries = 0;
    let mut pause = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => {
                report.record(op, began.elapsed(), retries);
                return Ok(value);
            }
            Err(e) if transient(&e) && Instant::now() < give_up => {
                retries += 1;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(format!("{op}: {e}")),
        }
    }
}

// ------------------------------------------------------------------------------------ users

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn device(
    url: &str,
    backend: &JwtGenerator,
    identity: &str,
    dir: &Path,
) -> sealkit::Result<EThree> {
    let minter = backend.clone();
    let who = identity.to_owned();
    let provider =
        move || std::future::ready(minter.generate(&who, now_secs()).map(|j| j.to_string()));
    let options = EThreeOptions::new(url, dir).request_timeout(Duration::from_secs(10));
    EThree::initialize(provider, options).await
}

/// What a user's acknowledged writes left on the server, for the final check.
#[derive(Default)]
struct Acknowledged {
    /// Chat messages: seq → (client id, text).
    sent: BTreeMap<i64, (String, String)>,
    /// The last card whose publication returned Ok.
    card: Option<Card>,
    /// The last backup that returned Ok: its password, a note to self encrypted just before it
    /// with the key it backed up, and the card of that key.
    backup: Option<(String, String, Card)>,
    /// An operation was still failing when the run ended: its outcome is unknown.
    unfinished: bool,
    /// Each acknowledged rotation: when it started and ended (Unix ms) and the new card.
    rotations: Vec<String>,
}

struct User {
    index: usize,
    identity: String,
    url: String,
    ethree: EThree,
    chat: Chat,
}

/// What every user's traffic shares.
struct Context {
    everyone: Vec<String>,
    backend: JwtGenerator,
    /// Where new devices (restores) keep their keys.
    dir: PathBuf,
    deadline: Instant,
    pause: Duration,
    report: Arc<Report>,
    /// When the send of each acknowledged seq started (for the delivery latency).
    send_times: Mutex<HashMap<i64, Instant>>,
}

/// One user's traffic until the deadline: a chat message every step, and every few steps a
/// lookup, a rotation, a backup or a restore.
async fn work(user: &User, card: Card, context: &Context) -> Acknowledged {
    let Context {
        everyone,
        backend,
        dir,
        deadline,
        pause,
        report,
        send_times,
    } = context;
    let (deadline, pause, report) = (*deadline, *pause, &**report);
    let give_up = deadline + GRACE;
    let mut acked = Acknowledged {
        card: Some(card),
        ..Acknowledged::default()
    };
    let others: Vec<&str> = everyone
        .iter()
        .map(String::as_str)
        .filter(|i| *i != user.identity)
        .collect();
    let mut step = user.index; // staggers the users' rotations and backups
    while Instant::now() < deadline {
        step += 1;
        let outcome = async {
            let text = format!("{} step {step}", user.identity);
            let started = Instant::now();
            let message = retry(report, "chat_send", give_up, || {
                user.chat.send_text(CHANNEL, &text)
            })
            .await?;
            lock(send_times).insert(message.seq, started);
            acked.sent.insert(message.seq, (message.client_id, text));
            if step % 4 == 0 {
                retry(report, "find_users", give_up, || {
                    user.ethree.find_users(&others)
                })
                .await?;
            }
            if step % 25 == 0 {
                let started_ms = unix_ms();
                let card = retry(report, "rotate_card", give_up, || async {
                    user.ethree.cleanup().await?;
                    user.ethree.rotate_private_key().await
                })
                .await?;
                acked.rotations.push(format!(
                    "{started_ms}..{} ms: card {} created at {} s",
                    unix_ms(),
                    card.id(),
                    card.created_at_secs()
                ));
                acked.card = Some(card);
            }
            if step % 15 == 0 {
                let password = format!("{} password {step}", user.identity);
                let note = user
                    .ethree
                    .auth_encrypt_text(&format!("note {step}"), &[])
                    .await
                    .map_err(|e| e.to_string())?;
                let card = acked.card.clone().ok_or("no card")?;
                // Reset then back up: a backup whose answer was lost is replaced on the retry.
                retry(report, "backup_key", give_up, || async {
                    user.ethree.reset_private_key_backup().await?;
                    user.ethree.backup_private_key(&password, None).await
                })
                .await?;
                acked.backup = Some((password, note, card));
            }
            if step % 15 == 7 {
                if let Some(backup) = &acked.backup {
                    let restore_dir = dir.join(format!("restore-{}-{step}", user.index));
                    restore(
                        &user.url,
                        &user.identity,
                        backend,
                        &restore_dir,
                        backup,
                        report,
                        give_up,
                    )
                    .await?;
                }
            }
            Ok::<(), String>(())
        }
        .await;
        if let Err(e) = outcome {
            acked.unfinished = Instant::now() >= give_up;
            report.fail(format!("{}: {e}", user.identity));
            return acked;
        }
        tokio::time::sleep(pause).await;
    }
    acked
}

/// Restores `backup` (password, note, card) on a new device in `dir` and reads the note with it.
async fn restore(
    url: &str,
    identity: &str,
    backend: &JwtGenerator,
    dir: &Path,
    (password, note, card): &(String, String, Card),
    report: &Report,
    give_up: Instant,
) -> Result<(), String> {
    let mut attempt = 0;
    let restored = retry(report, "restore_key", give_up, || {
        attempt += 1;
        let dir = dir.join(attempt.to_string());
        async move {
            let fresh = device(url, backend, identity, &dir).await?;
            fresh.restore_private_key(password, None).await?;
            Ok(fresh)
        }
    })
    .await?;
    match restored.auth_decrypt_text(note, card, None).await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "the restored key does not read the note made with the backed-up key: {e}"
        )),
    }
}

// ------------------------------------------------------------------------------------ subscribers

/// One message as a subscriber received it.
struct Delivered {
    seq: i64,
    sender: String,
    client_id: String,
    /// Server time, Unix milliseconds.
    sent_at: i64,
    status: Verification,
    text: Option<String>,
    at: Instant,
}

/// Reads the stream until it has handed out `target` (once set) or `give_up` passes.
async fn listen(
    mut stream: ChatStream,
    target: Arc<AtomicI64>,
    give_up: Instant,
    identity: String,
    report: Arc<Report>,
) -> (Vec<Delivered>, u64, BTreeMap<String, u64>) {
    let mut received: Vec<Delivered> = Vec::new();
    let mut reconnects = 0;
    let mut errors = BTreeMap::new();
    loop {
        let goal = target.load(Ordering::SeqCst);
        if goal > 0 && received.last().map_or(0, |r| r.seq) >= goal {
            break;
        }
        if Instant::now() >= give_up {
            report.fail(format!(
                "{identity}: subscriber stuck at seq {:?}, stored up to {goal}",
                received.last().map(|r| r.seq)
            ));
            break;
        }
        match tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
            Err(_) => {}
            Ok(Some(Ok(ChatEvent::Message(m)))) => {
                received.push(Delivered {
                    text: m.text().map(str::to_owned),
                    seq: m.message.seq,
                    sender: m.message.sender,
                    client_id: m.message.client_id,
                    sent_at: m.message.sent_at,
                    status: m.status,
                    at: Instant::now(),
                });
            }
            Ok(Some(Ok(ChatEvent::Reconnected))) => reconnects += 1,
            Ok(Some(Ok(_))) => {}
            // E.g. the user's own key is being replaced: the stream retries the message.
            Ok(Some(Err(e))) => *errors.entry(error_kind(&e)).or_default() += 1,
            Ok(None) => {
                report.fail(format!("{identity}: the chat stream ended"));
                break;
            }
        }
    }
    stream.close().await;
    (received, reconnects, errors)
}

/// What went wrong with a stream, without the details (counted by kind).
fn error_kind(e: &Error) -> String {
    let text = e.to_string();
    let cut = text.char_indices().nth(60).map_or(text.len(), |(i, _)| i);
    text[..cut].to_owned()
}

/// Every stored message of the channel (seq, sender, client id), read over plain HTTP.
async fn stored_messages(
    http: &reqwest::Client,
    url: &str,
    backend: &JwtGenerator,
    identity: &str,
    give_up: Instant,
) -> BoxResult<Vec<(i64, String, String)>> {
    let mut all: Vec<(i64, String, String)> = Vec::new();
    loop {
        let after = all.last().map_or(0, |m| m.0);
        let request = http
            .get(format!(
                "{url}{}?after={after}&limit=500",
                paths::messages(CHANNEL)
            ))
            .header(
                "Authorization",
                backend.generate(identity, now_secs())?.authorization(),
            );
        let page: MessagePage = match request.send().await {
            Ok(response) if response.status().is_success() => response.json().await?,
            Ok(_) | Err(_) if Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Ok(response) => return Err(format!("history: HTTP {}", response.status()).into()),
            Err(e) => return Err(e.into()),
        };
        all.extend(
            page.messages
                .into_iter()
                .map(|m| (m.seq, m.sender, m.client_id)),
        );
        if !page.more {
            return Ok(all);
        }
    }
}

// ------------------------------------------------------------------------------------ main

#[tokio::main]
async fn main() -> BoxResult<()> {
    let options = Options::parse()?;
    let work_dir = tempfile::tempdir()?;
    let dir = work_dir.path();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    // A fresh database and an app on it; both replicas share it and the brainkey secret.
    let database = format!("sealkit_soak_{}_{}", std::process::id(), now_secs());
    let (server_url, _) = options
        .database_url
        .rsplit_once('/')
        .ok_or("DATABASE_URL has no database name")?;
    let database_url = format!("{server_url}/{database}");
    psql(
        &options.database_url,
        &format!("CREATE DATABASE {database}"),
    )?;
    let outcome = run(&options, &database_url, dir, &http).await;
    if let Err(e) = psql(
        &options.database_url,
        &format!("DROP DATABASE {database} WITH (FORCE)"),
    ) {
        eprintln!("(could not drop the database {database}: {e})");
    }
    let failures = outcome?;
    if failures > 0 {
        eprintln!("SOAK FAILED: {failures} failure(s), listed above");
        std::process::exit(1);
    }
    println!("SOAK PASSED");
    Ok(())
}

/// The whole run; returns the number of failures.
async fn run(
    options: &Options,
    database_url: &str,
    dir: &Path,
    http: &reqwest::Client,
) -> BoxResult<usize> {
    let created = Command::new(&options.bin)
        .args([
            "app",
            "create",
            "--name",
            "soak",
            "--json",
            "--database-url",
            database_url,
        ])
        .output()?;
    if !created.status.success() {
        return Err(format!("app create: {}", String::from_utf8_lossy(&created.stderr)).into());
    }
    let backend =
        AppCredentials::from_json(std::str::from_utf8(&created.stdout)?)?.generator(3600)?;
    let serve = vec![
        "--database-url".to_owned(),
        database_url.to_owned(),
        "--pythia-secret-file".to_owned(),
        dir.join("pythia.secret").display().to_string(),
        "--kt-key-file".to_owned(),
        dir.join("kt.key").display().to_string(),
        "--no-demo-app".to_owned(),
    ];
    let mut replicas = Vec::new();
    for i in 0..2 {
        let mut replica = Replica {
            port: free_port()?,
            args: serve.clone(),
            bin: options.bin.clone(),
            log: dir.join(format!("replica{i}.log")),
            child: None,
        };
        replica.start(http).await?;
        replicas.push(replica);
    }
    let urls: Vec<String> = replicas.iter().map(Replica::url).collect();

    // Users, alternating between the replicas, all in one channel and subscribed to it.
    let everyone: Vec<String> = (0..options.users).map(|i| format!("soak-{i}")).collect();
    let mut users = Vec::new();
    for (index, identity) in everyone.iter().enumerate() {
        let url = urls[index % 2].clone();
        let ethree = device(&url, &backend, identity, &dir.join(identity)).await?;
        let card = ethree.register(None).await?;
        let chat = ethree.chat();
        users.push((
            User {
                index,
                identity: identity.clone(),
                url,
                ethree,
                chat,
            },
            card,
        ));
    }
    let members: Vec<&str> = everyone[1..].iter().map(String::as_str).collect();
    users[0]
        .0
        .chat
        .create_channel(CHANNEL, ChannelKind::Group, &members, false)
        .await?;

    let report = Arc::new(Report::default());
    let target = Arc::new(AtomicI64::new(0));
    let began = Instant::now();
    let deadline = began + Duration::from_secs(options.seconds);
    let give_up = deadline + GRACE;
    let mut listeners = Vec::new();
    for (user, _) in &users {
        let mut stream = user.chat.subscribe().await?;
        stream.subscribe(CHANNEL, 0).await?;
        listeners.push(tokio::spawn(listen(
            stream,
            target.clone(),
            give_up + GRACE,
            user.identity.clone(),
            report.clone(),
        )));
    }
    println!(
        "soak: {} users on 2 replicas ({} and {}), {} s, one replica killed -9 every {} s and \
         started again {:.1} s later",
        options.users,
        urls[0],
        urls[1],
        options.seconds,
        options.kill_every.as_secs(),
        options.down.as_secs_f64()
    );

    // The killer: alternately kills one replica and starts it again on the same port.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        let report = report.clone();
        let http = http.clone();
        let (kill_every, down) = (options.kill_every, options.down);
        tokio::spawn(async move {
            let mut downtimes = Vec::new();
            let mut next = 0;
            loop {
                tokio::time::sleep(kill_every).await;
                if stop.load(Ordering::SeqCst)
                    || Instant::now() + Duration::from_secs(2) >= deadline
                {
                    break;
                }
                let replica: &mut Replica = &mut replicas[next % 2];
                next += 1;
                let killed = Instant::now();
                replica.kill9();
                report.kills.fetch_add(1, Ordering::SeqCst);
                // Like a supervisor that restarts a crashed process after a moment: the
                // replica's clients see refused connections meanwhile.
                tokio::time::sleep(down).await;
                if let Err(e) = replica.start(&http).await {
                    report.fail(format!("restarting a replica: {e}"));
                    break;
                }
                downtimes.push(killed.elapsed());
                println!(
                    "  {:>4} s: replica :{} killed -9, back after {:.2} s",
                    began.elapsed().as_secs(),
                    replica.port,
                    killed.elapsed().as_secs_f64()
                );
            }
            (replicas, downtimes)
        })
    };

    // The traffic.
    let users = Arc::new(users);
    let context = Arc::new(Context {
        everyone,
        backend,
        dir: dir.to_owned(),
        deadline,
        pause: options.pause,
        report: report.clone(),
        send_times: Mutex::default(),
    });
    let mut workers = Vec::new();
    for index in 0..users.len() {
        let (users, context) = (users.clone(), context.clone());
        workers.push(tokio::spawn(async move {
            let (user, card) = &users[index];
            work(user, card.clone(), &context).await
        }));
    }
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.push(worker.await?);
    }
    stop.store(true, Ordering::SeqCst);
    let (replicas, mut downtimes) = killer.await?;
    let traffic = began.elapsed();
    let (everyone, backend) = (&context.everyone, &context.backend);

    // What the database holds, then every subscriber must have exactly that.
    let stored = stored_messages(http, &replicas[0].url(), backend, &everyone[0], give_up).await?;
    target.store(stored.last().map_or(0, |m| m.0).max(1), Ordering::SeqCst);
    let mut all_sent: HashMap<i64, (String, String, String)> = HashMap::new();
    for (acked, identity) in acknowledged.iter().zip(everyone.iter()) {
        for (seq, (client_id, text)) in &acked.sent {
            if all_sent
                .insert(*seq, (identity.clone(), client_id.clone(), text.clone()))
                .is_some()
            {
                report.fail(format!("seq {seq} acknowledged to two sends"));
            }
        }
    }
    let stored_by_seq: HashMap<i64, (String, String)> = stored
        .iter()
        .map(|(s, who, id)| (*s, (who.clone(), id.clone())))
        .collect();
    if stored.iter().map(|m| m.0).ne(1..=stored.len() as i64) {
        report.fail("the stored seqs are not 1..=n".to_owned());
    }
    let mut acked_lost = 0;
    for (seq, (sender, client_id, _)) in &all_sent {
        if stored_by_seq.get(seq) != Some(&(sender.clone(), client_id.clone())) {
            acked_lost += 1;
            report.fail(format!(
                "acknowledged message seq {seq} from {sender} is not stored as such"
            ));
        }
    }

    let mut delivery = Vec::new();
    let mut stream_errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut verified, mut not_for_me, mut reconnects) = (0u64, 0u64, 0u64);
    let (mut lost, mut duplicated) = (0usize, 0usize);
    let times = lock(&context.send_times).clone();
    let mut suspects = std::collections::BTreeSet::new();
    for (listener, identity) in listeners.into_iter().zip(everyone.iter()) {
        let (received, reconnected, errors) = listener.await?;
        reconnects += reconnected;
        for (kind, n) in errors {
            *stream_errors.entry(kind).or_default() += n;
        }
        let mut seen = std::collections::HashSet::new();
        let mut previous = 0;
        for Delivered {
            seq,
            sender,
            client_id,
            sent_at,
            status,
            text,
            at,
        } in &received
        {
            if !seen.insert(*seq) {
                duplicated += 1;
                report.fail(format!("{identity} received seq {seq} twice"));
            } else if *seq <= previous {
                report.fail(format!("{identity} received seq {seq} after {previous}"));
            }
            previous = previous.max(*seq);
            if stored_by_seq.get(seq) != Some(&(sender.clone(), client_id.clone())) {
                report.fail(format!("{identity} received seq {seq} as from {sender} ({client_id}), not what is stored"));
            }
            match status {
                Verification::Verified => {
                    verified += 1;
                    if let Some((_, _, sent_text)) = all_sent.get(seq) {
                        if text.as_deref() != Some(sent_text.as_str()) {
                            report.fail(format!(
                                "{identity} read seq {seq} as {text:?}, sent as {sent_text:?}"
                            ));
                        }
                    }
                }
                // Encrypted for a key this user had just replaced (the sender's card cache).
                Verification::NotForMe => not_for_me += 1,
                other => {
                    suspects.insert(sender.clone());
                    report.fail(format!(
                        "{identity}: seq {seq} from {sender}, sent at {sent_at} ms, is {other:?}"
                    ))
                }
            }
            if let Some(sent) = times.get(seq) {
                delivery.push(at.duration_since(*sent));
            }
        }
        let missing = stored.iter().filter(|m| !seen.contains(&m.0)).count();
        if missing > 0 {
            lost += missing;
            report.fail(format!(
                "{identity} missed {missing} of {} stored messages",
                stored.len()
            ));
        }
    }

    // Cards and backups, read by new devices on the other replica than the user's.
    let checker_dir = dir.join("checker");
    let checker = device(&urls[1], backend, "soak-checker", &checker_dir).await?;
    let names: Vec<&str> = everyone.iter().map(String::as_str).collect();
    let cards = retry(&report, "find_users", give_up, || {
        checker.find_users(&names)
    })
    .await?;
    for suspect in &suspects {
        eprintln!("{suspect}'s card chain now (newest first):");
        for card in cards.get(suspect).into_iter().flat_map(Card::chain) {
            eprintln!("  {} created at {} s", card.id(), card.created_at_secs());
        }
        if let Some(index) = everyone.iter().position(|i| i == suspect) {
            eprintln!("{suspect}'s acknowledged rotations:");
            for line in &acknowledged[index].rotations {
                eprintln!("  {line}");
            }
        }
    }
    let (mut cards_checked, mut backups_checked, mut unfinished) = (0, 0, 0);
    let final_users: Vec<(&User, &Acknowledged)> = users
        .iter()
        .map(|(u, _)| u)
        .zip(acknowledged.iter())
        .collect();
    for (user, acked) in &final_users {
        if acked.unfinished {
            unfinished += 1;
            continue;
        }
        let latest = cards.get(&user.identity).map(|c| c.id().to_string());
        let expected = acked.card.as_ref().map(|c| c.id().to_string());
        if latest != expected {
            report.fail(format!(
                "{}: the server's card is {latest:?}, the last acknowledged {expected:?}",
                user.identity
            ));
        }
        cards_checked += 1;
        if let Some(backup) = &acked.backup {
            let other_replica = &urls[(user.index + 1) % 2];
            if let Err(e) = restore(
                other_replica,
                &user.identity,
                backend,
                &dir.join(format!("final-restore-{}", user.index)),
                backup,
                &report,
                give_up,
            )
            .await
            {
                report.fail(format!(
                    "{}: the last acknowledged backup: {e}",
                    user.identity
                ));
            }
            backups_checked += 1;
        }
    }

    // The summary.
    let ops = std::mem::take(&mut *lock(&report.ops));
    println!("\n| operation | count | p50 ms | p99 ms | max ms | retried attempts |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (op, mut stats) in ops {
        let (p50, p99, max) = percentiles(&mut stats.latencies);
        println!(
            "| {op} | {} | {p50:.1} | {p99:.1} | {max:.0} | {} |",
            stats.latencies.len(),
            stats.retries
        );
    }
    let (p50, p99, max) = percentiles(&mut delivery);
    println!(
        "| chat delivery (send start → subscriber) | {} | {p50:.1} | {p99:.1} | {max:.0} | |",
        delivery.len()
    );
    let (d50, _, dmax) = percentiles(&mut downtimes);
    let acked_sent = all_sent.len();
    println!(
        "\ntraffic {:.0} s; {} users; replicas killed -9: {} (back after p50 {:.2} s, max {:.2} s)",
        traffic.as_secs_f64(),
        everyone.len(),
        report.kills.load(Ordering::SeqCst),
        d50 / 1000.0,
        dmax / 1000.0
    );
    println!(
        "chat: {acked_sent} sends acknowledged, {} stored ({} from sends whose answer was lost), acknowledged but not stored: {acked_lost}",
        stored.len(), stored.len().saturating_sub(acked_sent)
    );
    println!(
        "chat deliveries: {} subscribers x {} stored = {} expected; received {} ({verified} verified, {not_for_me} not-for-me), lost {lost}, duplicated {duplicated}; stream reconnections {reconnects}, stream errors {stream_errors:?}",
        everyone.len(), stored.len(), everyone.len() * stored.len(), verified + not_for_me
    );
    println!(
        "cards: {cards_checked} users' latest card = last acknowledged; backups: {backups_checked} restored with the last acknowledged password; users with an unfinished operation: {unfinished}"
    );
    let failures = lock(&report.failures).len();
    println!("failures: {failures}");
    Ok(failures)
}
