//! Key transparency against a lying server, through the `sealkit` binary: a proxy in front of
//! `sealkit serve` that swaps alice's card in search answers is caught by `user find` and
//! `msg encrypt`; a card published for alice by someone else holding a token for her is
//! reported by her `user monitor` (and refused with "changed" by bob, who verified her); two
//! copies of one deployment that diverge are reported by `kt audit`, which passes honest growth.

use crate::common::{self, bin, create_app, free_port, Server};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use sealkit::PrivateKey;
use sealkit_proto::{CardContent, RawSignedModel};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A user of one server: `--app-credentials`, `--identity` and a home of their own.
struct User {
    url: String,
    creds: PathBuf,
    identity: &'static str,
    home: PathBuf,
}

impl User {
    fn new(url: &str, creds: &Path, identity: &'static str, home: PathBuf) -> Self {
        Self {
            url: url.to_owned(),
            creds: creds.to_owned(),
            identity,
            home,
        }
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = assert_cmd::Command::new(bin());
        for var in common::SEALKIT_ENV {
            cmd.env_remove(var);
        }
        cmd.args(args)
            .args(["--server", &self.url, "--identity", self.identity])
            .arg("--app-credentials")
            .arg(&self.creds)
            .arg("--home")
            .arg(&self.home)
            .write_stdin(stdin.as_bytes().to_vec())
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "{} sealkit {args:?} failed: {}",
            self.identity,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and requires exit 1 with one line on stderr; returns stderr.
    fn fails(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{} sealkit {args:?}: {err}",
            self.identity
        );
        assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
        err
    }
}

fn sealkit(args: &[&str]) -> Output {
    let mut cmd = assert_cmd::Command::new(bin());
    for var in common::SEALKIT_ENV {
        cmd.env_remove(var);
    }
    cmd.args(args)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap()
}

fn app_id(creds: &Path) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(creds).unwrap()).unwrap();
    json["app_id"].as_str().unwrap().to_owned()
}

// ------------------------------------------------------------------------------ the proxy

/// Rewrites an answer: (path, status, body) to (status, body).
type Rewrite = Arc<dyn Fn(&str, u16, Vec<u8>) -> (u16, Vec<u8>) + Send + Sync>;

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    rewrite: Rewrite,
}

/// A reverse proxy on its own runtime; dropped, it stops (also from async tests).
struct Proxy {
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Proxy {
    fn start(upstream: &str, rewrite: Rewrite) -> Self {
        // Built on a thread of its own: async tests may not block on another runtime.
        let upstream = upstream.to_owned();
        std::thread::spawn(move || Self::start_here(&upstream, rewrite))
            .join()
            .unwrap()
    }

    fn start_here(upstream: &str, rewrite: Rewrite) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = ProxyState {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            rewrite,
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state(state);
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            runtime: Some(runtime),
        }
    }
}

async fn forward(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
    let mut request = state
        .http
        .request(method, format!("{}{path}", state.upstream))
        .body(body.to_vec());
    for name in ["authorization", "content-type", "virgil-agent"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.as_bytes());
        }
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let mut out_headers = HeaderMap::new();
    out_headers.insert("content-type", "application/json".parse().unwrap());
    let body = response.bytes().await.unwrap().to_vec();
    let (status, body) = (state.rewrite)(uri.path(), status, body);
    (StatusCode::from_u16(status).unwrap(), out_headers, body)
}

/// Replaces every card of `identity` in a search answer with one for the attacker's key,
/// correctly self-signed: only the directory can tell.
fn swap_cards_of(identity: &'static str, attacker: PrivateKey) -> Rewrite {
    let attacker = Arc::new(attacker);
    Arc::new(move |path, status, body| {
        if path != "/card/v5/actions/search" || status != 200 {
            return (status, body);
        }
        let cards: Vec<RawSignedModel> = serde_json::from_slice(&body).unwrap();
        let swapped: Vec<RawSignedModel> = cards
            .into_iter()
            .map(|card| {
                let content = card.content().unwrap();
                if content.identity != identity {
                    return card;
                }
                let forged = CardContent {
                    identity: content.identity,
                    previous_card_id: content.previous_card_id,
                    created_at: content.created_at,
                    version: content.version,
                    public_key: attacker.public_key().to_base64(),
                };
                RawSignedModel::from_content(&forged, &attacker).unwrap()
            })
            .collect();
        (status, serde_json::to_vec(&swapped).unwrap())
    })
}

// ------------------------------------------------------------------------------ the tests

#[test]
fn swapped_card_in_search_answers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = common::sqlite_deployment(dir.path());
    let alice = User::new(&server.url, &creds, "alice", dir.path().join("alice"));
    let carol = User::new(&server.url, &creds, "carol", dir.path().join("carol"));
    let bob = User::new(&server.url, &creds, "bob", dir.path().join("bob"));
    alice.ok(&["user", "register"], "");
    carol.ok(&["user", "register"], "");
    bob.ok(&["user", "register"], "");

    let attacker = PrivateKey::ed25519_from_seed(&[66; 32]);
    let proxy = Proxy::start(
        &server.url,
        swap_cards_of("alice", PrivateKey::ed25519_from_seed(&[66; 32])),
    );
    let lied_to = User::new(&proxy.url, &creds, "bob", dir.path().join("bob"));

    // Through the proxy, honest answers still pass the check (the proxy works, KT is on).
    let found = lied_to.ok(&["user", "find", "carol"], "");
    assert!(found.contains("\"identity\": \"carol\""), "{found}");

    // The swapped card is self-signed correctly, so only the directory catches it.
    let err = lied_to.fails(&["user", "find", "alice"], "");
    assert!(err.contains("key transparency"), "{err}");
    assert!(err.contains("card not in directory"), "{err}");
    let err = lied_to.fails(&["msg", "encrypt", "--to", "alice"], "secret for alice\n");
    assert!(err.contains("card not in directory"), "{err}");
    // Together with an honest recipient: refused as a whole, nothing encrypted.
    let err = lied_to.fails(&["msg", "encrypt", "--to", "carol", "--to", "alice"], "x\n");
    assert!(err.contains("alice"), "{err}");

    // Without the proxy, bob finds alice's real card.
    let real = bob.ok(&["user", "find", "alice"], "");
    assert!(!real.contains(&attacker.public_key().to_base64()), "{real}");
}

#[test]
fn card_published_by_someone_else_is_reported_and_refused_as_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = common::sqlite_deployment(dir.path());
    let alice = User::new(&server.url, &creds, "alice", dir.path().join("alice"));
    let bob = User::new(&server.url, &creds, "bob", dir.path().join("bob"));
    alice.ok(&["user", "register"], "");
    bob.ok(&["user", "register"], "");

    // Bob verifies alice's safety number (found through the directory check).
    let number = bob.ok(&["user", "safety-number", "alice"], "");
    bob.ok(
        &["user", "verify", "alice", "--safety-number", number.trim()],
        "",
    );

    // Alice's own history: every version made by her device (once her card is published).
    wait_until("alice's card is in the directory", || {
        let out = alice.ok(&["user", "monitor"], "");
        out.contains("version 1") && out.contains("made by this device")
    });

    // Someone holding a token for alice (the backend, or the server) publishes a card for her
    // from another "device" that never had her key.
    let mallory = User::new(&server.url, &creds, "alice", dir.path().join("mallory"));
    let foreign_card = mallory.ok(&["user", "rotate"], "");
    let foreign_card = foreign_card.trim();

    let mut report = None;
    wait_until("alice's monitor reports the foreign card", || {
        let out = alice.run(&["user", "monitor"], "");
        if out.status.code() == Some(1) {
            report = Some(out);
            true
        } else {
            assert!(out.status.success(), "{out:?}");
            false
        }
    });
    let report = report.unwrap();
    let stdout = String::from_utf8(report.stdout).unwrap();
    let stderr = String::from_utf8(report.stderr).unwrap();
    assert!(
        stderr.contains("1 version(s) of alice's key history"),
        "{stderr}"
    );
    assert!(stderr.contains("version 2"), "{stderr}");
    assert!(stderr.contains(foreign_card), "{stderr}");
    assert!(
        stderr.contains(" created 20"),
        "the time is listed: {stderr}"
    );
    assert!(stdout.contains("version 1 (epoch"), "{stdout}");
    assert!(stdout.contains("made by this device"), "{stdout}");

    // Bob verified alice: the new card is in the directory, so the directory check passes,
    // and the pin refuses it.
    let err = bob.fails(&["user", "find", "alice"], "");
    assert!(err.contains("changed"), "{err}");
    let err = bob.fails(&["msg", "encrypt", "--to", "alice"], "for alice\n");
    assert!(err.contains("changed"), "{err}");

    // The rotating "device" made version 2 itself, and does not hold version 1's key.
    let out = mallory.run(&["user", "monitor"], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("version 1"), "{stderr}");
    assert!(!stderr.contains("version 2"), "{stderr}");
}

#[test]
fn audit_passes_growth_and_reports_diverging_copies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let storage = ["--data-dir", data.to_str().unwrap()];
    let creds = create_app(&storage, dir.path());
    let app = app_id(&creds);
    let port = free_port();
    let mut first = Server::start_at(port, &storage);
    let state = dir.path().join("audit.json");
    let audit = |url: &str| {
        sealkit(&[
            "kt",
            "audit",
            "--server",
            url,
            "--app",
            &app,
            "--state",
            state.to_str().unwrap(),
        ])
    };

    User::new(&first.url, &creds, "alice", dir.path().join("alice")).ok(&["user", "register"], "");
    let mut stdout = String::new();
    wait_until("the first epoch is published", || {
        let out = audit(&first.url);
        stdout = String::from_utf8_lossy(&out.stdout).to_string();
        out.status.success()
    });
    assert!(stdout.starts_with("trusted epoch "), "{stdout}");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let first_epoch = stored["head"]["epoch"].as_u64().unwrap();

    // Honest growth passes, and moves the stored head forward.
    User::new(&first.url, &creds, "bob", dir.path().join("bob")).ok(&["user", "register"], "");
    wait_until("a new epoch extends the stored one", || {
        let out = audit(&first.url);
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if stored_epoch(&state) == first_epoch {
            assert!(stdout.ends_with("unchanged\n"), "{stdout}");
            return false;
        }
        assert!(
            stdout.contains(&format!("extends epoch {first_epoch}")),
            "{stdout}"
        );
        true
    });

    // Two copies of one deployment's data (database and KT key), then different publishes.
    // Copied only once no epoch is pending, so each copy's next epoch is its own: an epoch both
    // copies published from the same queued change would be shared history, not a fork.
    let mut quiet = head_epoch(&first.url, &app);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let now = head_epoch(&first.url, &app);
        if now == quiet {
            break;
        }
        quiet = now;
    }
    first.kill9();
    let copy = dir.path().join("copy");
    copy_dir(&data, &copy);
    let first = Server::start_at(port, &storage);
    let second = Server::start(&["--data-dir", copy.to_str().unwrap()]);
    User::new(&first.url, &creds, "carol", dir.path().join("carol")).ok(&["user", "register"], "");
    User::new(&second.url, &creds, "dave", dir.path().join("dave")).ok(&["user", "register"], "");
    let grown = quiet;
    wait_until("both copies published their own epoch", || {
        head_epoch(&first.url, &app) > grown && head_epoch(&second.url, &app) > grown
    });

    // The auditor follows the first copy; the second one's history is not an extension.
    let out = audit(&first.url);
    assert!(out.status.success(), "{out:?}");
    let before = std::fs::read_to_string(&state).unwrap();
    let out = audit(&second.url);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("key transparency: fork"), "{stderr}");
    // A failed audit leaves the state as it was.
    assert_eq!(std::fs::read_to_string(&state).unwrap(), before);

    // An SDK client that accepted the first copy's head, then meets the other copy at the same
    // address (a restore from a diverged backup, or a server showing it another history).
    let erin = User::new(&first.url, &creds, "erin", dir.path().join("erin"));
    erin.ok(&["user", "find", "carol"], "");
    drop(first);
    drop(second);
    let _copy_at_same_url = Server::start_at(port, &["--data-dir", copy.to_str().unwrap()]);
    let err = erin.fails(&["user", "find", "dave"], "");
    assert!(
        err.contains("key transparency: fork") || err.contains("key transparency: rollback"),
        "{err}"
    );

    // A state file that is not one is an error, not a first run.
    std::fs::write(&state, "{}").unwrap();
    let out = audit(&format!("http://127.0.0.1:{port}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a key-transparency audit state"));
}

fn stored_epoch(state: &Path) -> u64 {
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    stored["head"]["epoch"].as_u64().unwrap()
}

fn head_epoch(url: &str, app: &str) -> u64 {
    match ureq::get(&format!("{url}/kt/v1/apps/{app}/head")).call() {
        Ok(response) => {
            let head: serde_json::Value = response.into_json().unwrap();
            head["epoch"].as_u64().unwrap()
        }
        Err(_) => 0,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Polls `check` every 300 ms for up to 15 s.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

// ------------------------------------------------------------------------------ gossip

async fn sdk_user(
    url: &str,
    backend: &sealkit_proto::JwtGenerator,
    identity: &str,
    storage: &Path,
) -> sealkit::EThree {
    let backend = backend.clone();
    let who = identity.to_owned();
    let provider =
        move || std::future::ready(backend.generate(&who, common::now()).map(|j| j.to_string()));
    sealkit::EThree::initialize(provider, sealkit::EThreeOptions::new(url, storage))
        .await
        .unwrap()
}

/// Polls the async `check` every 300 ms for up to 15 s.
async fn wait_until_async<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A server showing two users two different directories (here: two diverged copies of one
/// deployment) is caught by chat gossip: the message carries the sender's signed head, which is
/// not in the receiver's history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_gossip_reports_a_split_view() {
    use sealkit::chat::{HistoryCursor, Verification};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let storage = ["--data-dir", data.to_str().unwrap()];
    let creds = create_app(&storage, dir.path());
    let backend = common::backend(&creds);
    let port = free_port();
    let mut first = Server::start_at(port, &storage);
    let alice = sdk_user(&first.url, &backend, "alice", &dir.path().join("alice")).await;
    let bob = sdk_user(&first.url, &backend, "bob", &dir.path().join("bob")).await;
    alice.register(None).await.unwrap();
    bob.register(None).await.unwrap();
    let channel = alice.chat().direct_channel("bob").await.unwrap().id;
    alice.chat().send_text(&channel, "one view").await.unwrap();
    let page = bob
        .chat()
        .history(&channel, HistoryCursor::After(0), 50)
        .await
        .unwrap();
    assert_eq!(page.messages[0].status, Verification::Verified);
    assert!(
        page.messages[0].message.kt_head.is_some(),
        "the post gossips its head"
    );

    // Two diverged copies of the deployment, both signing with the same key.
    first.kill9();
    let copy = dir.path().join("copy");
    copy_dir(&data, &copy);
    let first = Server::start_at(port, &storage);
    let second = Server::start(&["--data-dir", copy.to_str().unwrap()]);
    let carol = sdk_user(&first.url, &backend, "carol", &dir.path().join("carol")).await;
    carol.register(None).await.unwrap();
    let dave = sdk_user(&second.url, &backend, "dave", &dir.path().join("dave")).await;
    dave.register(None).await.unwrap();

    // Alice sees the first copy's directory, bob (on another device) the second's.
    wait_until_async("alice sees carol", || async {
        alice.find_user("carol").await.is_ok()
    })
    .await;
    let bob_elsewhere = sdk_user(&second.url, &backend, "bob", &dir.path().join("bob")).await;
    wait_until_async("bob sees dave", || async {
        bob_elsewhere.find_user("dave").await.is_ok()
    })
    .await;
    let sent = alice.chat().send_text(&channel, "split").await.unwrap();
    let gossiped = sent.kt_head.clone().expect("a head is gossiped");

    // On the first copy, bob reads it as usual (the head is in his history there)...
    let page = bob
        .chat()
        .history(&channel, HistoryCursor::After(1), 50)
        .await
        .unwrap();
    assert_eq!(page.messages[0].status, Verification::Verified);
    assert_eq!(page.messages[0].message.kt_head, Some(gossiped));
    // ...while bob's device that was shown the other copy detects the split.
    let opened = bob_elsewhere.chat().open(sent.clone()).await.unwrap();
    assert_eq!(opened.status, Verification::SplitView);
    assert_eq!(opened.body, None);
    // Heads that passed are not checked again; one that failed is checked, and reported,
    // every time it comes back.
    let again = bob_elsewhere.chat().open(sent).await.unwrap();
    assert_eq!(again.status, Verification::SplitView);
    drop(second);
}

// ------------------------------------------------------------------------------ policy

/// What the policy proxy does to `/kt/v1/key` and search answers.
const HONEST: u8 = 0;
const NO_KT: u8 = 1;
const OTHER_KEY: u8 = 2;
const SWAP: u8 = 3;

fn policy_proxy(upstream: &str, mode: Arc<std::sync::atomic::AtomicU8>) -> Proxy {
    let swap = swap_cards_of("alice", PrivateKey::ed25519_from_seed(&[66; 32]));
    Proxy::start(
        upstream,
        Arc::new(
            move |path, status, body| match mode.load(std::sync::atomic::Ordering::SeqCst) {
                NO_KT if path.starts_with("/kt/") => {
                    (404, br#"{"code":0,"message":"no"}"#.to_vec())
                }
                OTHER_KEY if path == "/kt/v1/key" => {
                    let other = base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        ed25519_dalek_key([5; 32]),
                    );
                    let json = format!(r#"{{"signing_public_key":"{other}"}}"#);
                    (200, json.into_bytes())
                }
                SWAP => swap(path, status, body),
                _ => (status, body),
            },
        ),
    )
}

/// The Ed25519 public key of a seed, through the crypto crate (SPKI DER ends with it).
fn ed25519_dalek_key(seed: [u8; 32]) -> [u8; 32] {
    let der = PrivateKey::ed25519_from_seed(&seed).public_key().to_der();
    der[der.len() - 32..].try_into().unwrap()
}

async fn policy_user(
    url: &str,
    backend: &sealkit_proto::JwtGenerator,
    identity: &str,
    storage: &Path,
    mode: sealkit::KtMode,
) -> sealkit::EThree {
    let backend = backend.clone();
    let who = identity.to_owned();
    let provider =
        move || std::future::ready(backend.generate(&who, common::now()).map(|j| j.to_string()));
    let options = sealkit::EThreeOptions::new(url, storage).key_transparency(mode);
    sealkit::EThree::initialize(provider, options)
        .await
        .unwrap()
}

fn failure(result: sealkit::Result<sealkit::Card>) -> sealkit::KtFailure {
    match result {
        Err(sealkit::Error::KeyTransparency(failure)) => failure,
        other => panic!("expected a key-transparency failure, got {other:?}"),
    }
}

/// The SDK's policy for servers without key transparency, and for a changed key: Auto pins on
/// first use and then refuses a server that stops serving KT or serves another key; Required
/// refuses a server without it; Off checks nothing (a swapped card goes through, as in e3kit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_for_servers_without_kt_and_changed_keys() {
    use sealkit::{KtFailure, KtMode};
    use std::sync::atomic::{AtomicU8, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = common::sqlite_deployment(dir.path());
    let backend = common::backend(&creds);
    let alice = sdk_user(&server.url, &backend, "alice", &dir.path().join("alice")).await;
    let alice_card = alice.register(None).await.unwrap();
    let mode = Arc::new(AtomicU8::new(NO_KT));
    let proxy = policy_proxy(&server.url, mode.clone());

    // A server that never served KT: Auto trusts it as e3kit would, Required refuses it.
    let auto = policy_user(
        &proxy.url,
        &backend,
        "bob",
        &dir.path().join("bob"),
        KtMode::Auto,
    )
    .await;
    assert_eq!(auto.find_user("alice").await.unwrap().id(), alice_card.id());
    let required = policy_user(
        &proxy.url,
        &backend,
        "bob",
        &dir.path().join("bob-r"),
        KtMode::Required,
    )
    .await;
    assert!(matches!(
        failure(required.find_user("alice").await),
        KtFailure::NotServed { .. }
    ));

    // Once a server served KT, its key is pinned: a new EThree (a later run) is refused when
    // the server stops serving it, or serves another key.
    mode.store(HONEST, Ordering::SeqCst);
    let pinned = dir.path().join("carol");
    let carol = policy_user(&proxy.url, &backend, "carol", &pinned, KtMode::Auto).await;
    carol.find_user("alice").await.unwrap();
    mode.store(NO_KT, Ordering::SeqCst);
    let carol = policy_user(&proxy.url, &backend, "carol", &pinned, KtMode::Auto).await;
    assert!(matches!(
        failure(carol.find_user("alice").await),
        KtFailure::NotServed { .. }
    ));
    mode.store(OTHER_KEY, Ordering::SeqCst);
    let carol = policy_user(&proxy.url, &backend, "carol", &pinned, KtMode::Auto).await;
    assert!(matches!(
        failure(carol.find_user("alice").await),
        KtFailure::SigningKeyChanged { .. }
    ));

    // A swapped card: refused with the check, accepted (e3kit's behaviour) with KtMode::Off.
    mode.store(SWAP, Ordering::SeqCst);
    let carol = policy_user(&proxy.url, &backend, "carol", &pinned, KtMode::Auto).await;
    assert!(matches!(
        failure(carol.find_user("alice").await),
        KtFailure::CardNotInDirectory { .. }
    ));
    let off = policy_user(
        &proxy.url,
        &backend,
        "dave",
        &dir.path().join("dave"),
        KtMode::Off,
    )
    .await;
    assert_ne!(off.find_user("alice").await.unwrap().id(), alice_card.id());
}

/// The automatic self-check: `initialize` with a stored key checks the own key history in the
/// background and reports a foreign version to `on_foreign_key`; monitor_key_history on demand
/// says the same, and marks the versions of the device's own (also past) keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_reports_a_foreign_key_in_the_background() {
    use sealkit::KeyVersionOrigin;

    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = common::sqlite_deployment(dir.path());
    let backend = common::backend(&creds);
    let home = dir.path().join("alice");
    let alice = sdk_user(&server.url, &backend, "alice", &home).await;
    let first = alice.register(None).await.unwrap();
    // A rotation on this device: both keys are this device's.
    alice.cleanup().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // the new card is a second newer
    let second = alice.rotate_private_key().await.unwrap();
    wait_until_async("both versions are in the directory", || async {
        alice
            .monitor_key_history()
            .await
            .is_ok_and(|h| h.versions.len() == 2)
    })
    .await;
    let history = alice.monitor_key_history().await.unwrap();
    assert!(history.is_clean(), "{history:?}");
    assert!(history
        .versions
        .iter()
        .all(|v| v.origin == KeyVersionOrigin::ThisDevice));
    assert_eq!(
        history.versions[0].cards[0].card_id,
        second.id().to_string()
    );
    assert_eq!(history.versions[1].cards[0].card_id, first.id().to_string());

    // Someone else, holding a token for alice, replaces her card.
    let mallory = sdk_user(&server.url, &backend, "alice", &dir.path().join("mallory")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let foreign = mallory.rotate_private_key().await.unwrap();
    wait_until_async("the foreign version is in the directory", || async {
        alice
            .monitor_key_history()
            .await
            .is_ok_and(|h| h.versions.len() == 3)
    })
    .await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let backend2 = backend.clone();
    let provider = move || {
        std::future::ready(
            backend2
                .generate("alice", common::now())
                .map(|j| j.to_string()),
        )
    };
    let options = sealkit::EThreeOptions::new(&server.url, &home).on_foreign_key(move |history| {
        let _ = tx.send(history.clone());
    });
    let _again = sealkit::EThree::initialize(provider, options)
        .await
        .unwrap();
    let reported = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("the background check reports within 15 s")
        .unwrap();
    let foreign_versions: Vec<_> = reported.foreign().collect();
    assert_eq!(foreign_versions.len(), 1, "{reported:?}");
    assert_eq!(foreign_versions[0].version, 3);
    assert_eq!(
        foreign_versions[0].cards[0].card_id,
        foreign.id().to_string()
    );
    assert!(!foreign_versions[0].cards[0].own);
    assert!(foreign_versions[0].cards[0].created_at.is_some());
}
