//! The demo web chat (`web/`, served by `sealkit backend` at `/`) in headless Chromium, driven
//! through `web/test/browser_peer.mjs` (puppeteer-core), against `sealkit serve`: web ↔
//! `sealkit chat` (terminal) both ways, web ↔ the Rust SDK, two browsers in one channel, history
//! after a reload, a removed member who stops receiving, direct messages, a server restart in
//! the middle of a session (the page reconnects and misses nothing), no plaintext in the
//! server's files, and no error in any page's console.
//!
//! Needs `npm ci --prefix web` and Chromium (`/usr/bin/chromium`, or `$CHROMIUM`); scripts/test
//! installs both. `SEALKIT_SKIP_INTEROP=1` skips it like the other tests that need npm packages.
//! With `SEALKIT_WEB_SCREENSHOT=PATH` it also saves a screenshot of the page there (the README's
//! docs/img/web-chat.png is made that way).

use crate::chat_cli::{sealkit, Proc};
use crate::common::json_lines::JsonLinePeer;
use crate::common::*;

use sealkit::chat::{ChatEvent, ChatStream, Verification};
use sealkit::{Chat, EThree, EThreeOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The longest wait for one answer of the browser peer (each page action waits 30 s at most).
const PEER_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest wait for one chat event of the Rust SDK user.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the browser tests run: not with `SEALKIT_SKIP_INTEROP`; otherwise the npm packages
/// and Chromium must be there.
fn web_enabled() -> bool {
    if std::env::var_os("SEALKIT_SKIP_INTEROP").is_some() {
        eprintln!("SEALKIT_SKIP_INTEROP is set: skipping the browser tests");
        return false;
    }
    assert!(
        repo_root().join("web/node_modules/puppeteer-core").is_dir(),
        "run `npm ci --prefix web`"
    );
    assert!(
        chromium().exists(),
        "no Chromium at {} (`apt-get install chromium`, or set CHROMIUM)",
        chromium().display()
    );
    true
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// `node web/test/browser_peer.mjs`: headless Chromium pages driven one JSON command per line.
struct BrowserPeer(JsonLinePeer);

impl BrowserPeer {
    fn start(backend: &str, server: &str) -> Self {
        let mut command = Command::new("node");
        command
            .arg(repo_root().join("web/test/browser_peer.mjs"))
            .args(["--backend", backend, "--server", server])
            .arg("--chromium")
            .arg(chromium());
        let (peer, ready) =
            JsonLinePeer::start("browser", command, PEER_TIMEOUT, Duration::from_secs(10));
        assert_eq!(ready["result"]["ready"], true, "{ready}");
        Self(peer)
    }

    /// Runs a command; `Err(text)` when it failed in the page (the text says why).
    fn try_call(&mut self, request: Value) -> Result<Value, String> {
        // Blocking: keep the runtime's other worker for the SDK user's tasks.
        tokio::task::block_in_place(|| self.0.send(request))
            .map_err(|answer| answer["error"].as_str().unwrap_or_default().to_owned())
    }

    fn call(&mut self, request: Value) -> Value {
        let shown = request.to_string();
        self.try_call(request)
            .unwrap_or_else(|e| panic!("browser {shown}: {e}"))
    }

    /// The messages shown in `page`'s open channel.
    fn messages(&mut self, page: &str) -> Vec<Value> {
        self.call(json!({"cmd": "messages", "page": page}))["messages"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until `page` shows `text` from `sender`, and checks that it is marked verified.
    fn expect_verified(&mut self, page: &str, sender: &str, text: &str) {
        let shown =
            self.call(json!({"cmd": "wait_message", "page": page, "sender": sender, "text": text}));
        let message = shown["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["sender"] == sender && m["text"] == text)
            .cloned()
            .unwrap();
        assert_eq!(message["verified"], "true", "{message}");
        assert_eq!(message["status"], "verified", "{message}");
    }

    /// Console errors and page errors of every page so far.
    fn page_errors(&mut self) -> Vec<Value> {
        self.call(json!({"cmd": "errors"}))["errors"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// `sealkit backend` for the app `creds`, pointing its web page at `server`.
fn start_backend(dir: &Path, creds: &Path, server: &str) -> (Proc, String) {
    let port = free_port();
    let mut cmd = sealkit(dir);
    cmd.args(["--server", server, "--app-credentials"])
        .arg(creds)
        .args(["backend", "--listen", &format!("127.0.0.1:{port}")]);
    let proc = Proc::spawn("backend", cmd);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(resp) = ureq::get(&format!("{url}/config.json")).call() {
            let config: Value = resp.into_json().unwrap();
            assert_eq!(config["server"], server, "{config}");
            return (proc, format!("{url}/"));
        }
        assert!(
            Instant::now() < deadline,
            "backend did not start: {}",
            proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A registered Rust SDK user and its chat client.
async fn sdk_user(url: &str, creds: &Path, identity: &str, dir: &Path) -> (EThree, Chat) {
    let generator = backend(creds);
    let who = identity.to_owned();
    let provider =
        move || std::future::ready(generator.generate(&who, now()).map(|j| j.to_string()));
    let ethree = EThree::initialize(provider, EThreeOptions::new(url, dir.join(identity)))
        .await
        .unwrap();
    ethree.register(None).await.unwrap();
    let chat = ethree.chat();
    (ethree, chat)
}

/// The next message of `stream` (other events are skipped).
async fn next_message(stream: &mut ChatStream) -> sealkit::chat::ReceivedMessage {
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(ChatEvent::Message(m)))) => return m,
            Ok(Some(Ok(_))) => {}
            other => panic!("SDK stream: {other:?}"),
        }
    }
}

/// Every file under `dir`, read whole (SQLite's database, WAL and journal included).
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(path);
                }
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_chat_in_headless_chromium() {
    if !web_enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let storage = ["--data-dir", data.to_str().unwrap()];
    let creds = create_app(&storage, dir.path());
    let port = free_port();
    let mut server = Server::start_at(port, &storage);
    let url = server.url.clone();
    let (_backend, page_url) = start_backend(dir.path(), &creds, &url);
    let mut web = BrowserPeer::start(&page_url, &url);
    let mut plaintexts: Vec<&str> = Vec::new();

    // The page is the backend's, with the wasm e3kit-browser loads, as the right types.
    let wasm = ureq::get(&format!("{page_url}libfoundation.browser.wasm"))
        .call()
        .unwrap();
    assert_eq!(wasm.content_type(), "application/wasm");

    // alice in the browser: registers on first login, creates `general` (an open channel).
    web.call(json!({"cmd": "open", "page": "alice"}));
    web.call(json!({"cmd": "login", "page": "alice", "identity": "alice"}));
    web.call(json!({"cmd": "join", "page": "alice", "channel": "general"}));

    // bob in a terminal, in the same channel: web → terminal and terminal → web.
    let mut bob = {
        let mut cmd = sealkit(dir.path());
        cmd.args(["--server", &url, "--app-credentials"])
            .arg(&creds)
            .args(["chat", "--identity", "bob", "--channel", "general"]);
        Proc::spawn("bob (terminal)", cmd)
    };
    bob.expect("bob is in: general");
    let text = "hello bob, from the browser: heliotrope";
    plaintexts.push(text);
    web.call(json!({"cmd": "send", "page": "alice", "text": text}));
    web.expect_verified("alice", "alice", text);
    bob.expect(&format!("[general] alice ✔ {text}"));
    let text = "hello alice, from the terminal: marigold";
    plaintexts.push(text);
    bob.send(text);
    bob.expect(&format!("[general] bob ✔ {text}"));
    web.expect_verified("alice", "bob", text);

    // carol with the Rust SDK: both ways.
    let (_carol_e3, carol) = sdk_user(&url, &creds, "carol", dir.path()).await;
    let general = carol.join("general").await.unwrap();
    let mut carol_stream = carol.subscribe().await.unwrap();
    carol_stream
        .subscribe("general", general.last_seq)
        .await
        .unwrap();
    let text = "from the Rust SDK: snapdragon";
    plaintexts.push(text);
    carol.send_text("general", text).await.unwrap();
    web.expect_verified("alice", "carol", text);
    let text = "to the Rust SDK: foxglove";
    plaintexts.push(text);
    web.call(json!({"cmd": "send", "page": "alice", "text": text}));
    // carol's own message comes back first.
    assert_eq!(
        next_message(&mut carol_stream).await.message.sender,
        "carol"
    );
    let got = next_message(&mut carol_stream).await;
    assert_eq!(got.message.sender, "alice");
    assert_eq!(got.status, Verification::Verified);
    assert_eq!(got.text(), Some(text));

    // dave in a second browser joins later: what was sent before is not for him (shown as ⚠,
    // never as text); from now on both browsers read each other.
    web.call(json!({"cmd": "open", "page": "dave"}));
    web.call(json!({"cmd": "login", "page": "dave", "identity": "dave"}));
    web.call(json!({"cmd": "join", "page": "dave", "channel": "general"}));
    let before = web.messages("dave");
    assert_eq!(before.len(), 4, "{before:?}");
    for m in &before {
        assert_eq!(m["verified"], "false", "{m}");
        assert_eq!(m["status"], "not-for-me", "{m}");
        assert!(
            plaintexts
                .iter()
                .all(|p| !m["text"].as_str().unwrap().contains(p)),
            "{m}"
        );
    }
    let text = "two browsers, one channel: larkspur";
    plaintexts.push(text);
    web.call(json!({"cmd": "send", "page": "alice", "text": text}));
    web.expect_verified("dave", "alice", text);
    let text = "dave here, in the second browser: yarrow";
    plaintexts.push(text);
    web.call(json!({"cmd": "send", "page": "dave", "text": text}));
    web.expect_verified("alice", "dave", text);
    bob.expect(&format!("[general] dave ✔ {text}"));

    // History after a reload: the key stays in the browser, the messages come back verified.
    web.call(json!({"cmd": "reload", "page": "alice"}));
    web.call(json!({"cmd": "login", "page": "alice", "identity": "alice"}));
    web.call(json!({"cmd": "join", "page": "alice", "channel": "general"}));
    let history = web.messages("alice");
    let texts: Vec<&str> = history
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, plaintexts, "{history:?}");
    assert!(
        history.iter().all(|m| m["verified"] == "true"),
        "{history:?}"
    );
    let members = web.call(json!({"cmd": "members", "page": "alice"}));
    assert_eq!(members["members"], json!(["alice", "bob", "carol", "dave"]));

    // alice (the channel's admin) removes dave: he is told, and no longer receives.
    web.call(json!({"cmd": "remove_member", "page": "alice", "identity": "dave"}));
    web.call(json!({"cmd": "wait_error", "page": "dave", "contains": "You were removed"}));
    let text = "after dave left: nightshade";
    plaintexts.push(text);
    web.call(json!({"cmd": "send", "page": "alice", "text": text}));
    bob.expect(&format!("[general] alice ✔ {text}"));
    // carol (Rust SDK) read everything since, in order.
    let mut carol_got = Vec::new();
    for _ in 0..3 {
        let m = next_message(&mut carol_stream).await;
        assert_eq!(m.status, Verification::Verified);
        carol_got.push(m.text().unwrap().to_owned());
    }
    assert_eq!(carol_got, plaintexts[4..7]);
    let dave_sees = web.messages("dave");
    assert!(dave_sees.iter().all(|m| m["text"] != text), "{dave_sees:?}");
    // Forgeries the page must flag, like the Rust SDK: carol posts a message signed by
    // mallory's key (bad signature), and ghost, who has no card, posts one (unknown sender).
    let (mallory, _) = sdk_user(&url, &creds, "mallory", dir.path()).await;
    let alice_card = mallory.find_user("alice").await.unwrap();
    let forged = mallory
        .auth_encrypt(b"forged: belladonna", &[&alice_card])
        .await
        .unwrap();
    let forged = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, forged);
    let version = carol.channel("general").await.unwrap().member_version;
    let generator = backend(&creds);
    let raw = |identity: &str, method: &str, path: &str, body: Value| {
        let jwt = generator.generate(identity, now()).unwrap().to_string();
        ureq::request(method, &format!("{url}{path}"))
            .set("Authorization", &format!("Virgil {jwt}"))
            .send_json(body)
            .unwrap()
    };
    let post = json!({"client_id": "forged-1", "ciphertext": forged, "member_version": version});
    raw("carol", "POST", "/chat/v1/channels/general/messages", post);
    raw(
        "ghost",
        "POST",
        "/chat/v1/channels/general/members",
        json!({"identity": "ghost"}),
    );
    let version = carol.channel("general").await.unwrap().member_version;
    let post = json!({"client_id": "forged-2", "ciphertext": forged, "member_version": version});
    raw("ghost", "POST", "/chat/v1/channels/general/messages", post);
    bob.expect("[general] carol ⚠ UNVERIFIED");
    bob.expect("[general] ghost ⚠ UNVERIFIED");
    let deadline = Instant::now() + PEER_TIMEOUT;
    let flagged = loop {
        let shown = web.messages("alice");
        let flagged: Vec<(String, String, String)> = shown
            .iter()
            .filter(|m| {
                m["sender"] == "ghost" || m["text"].as_str().unwrap().contains("UNVERIFIED")
            })
            .map(|m| {
                let field = |k: &str| m[k].as_str().unwrap().to_owned();
                (field("sender"), field("status"), field("verified"))
            })
            .collect();
        if flagged.len() == 2 || Instant::now() > deadline {
            assert!(
                shown
                    .iter()
                    .all(|m| !m["text"].as_str().unwrap().contains("belladonna")),
                "{shown:?}"
            );
            break flagged;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected = [("carol", "bad-signature"), ("ghost", "unknown-sender")]
        .map(|(s, st)| (s.to_owned(), st.to_owned(), "false".to_owned()));
    assert_eq!(flagged, expected);
    for _ in 0..2 {
        let m = next_message(&mut carol_stream).await;
        assert!(m.body.is_none(), "{m:?}");
    }

    // A direct channel with the terminal user, both ways.
    web.call(json!({"cmd": "dm", "page": "alice", "other": "bob"}));
    let text = "psst bob, directly: hellebore";
    plaintexts.push(text);
    web.call(json!({"cmd": "send", "page": "alice", "text": text}));
    bob.expect(&format!("[@alice] alice ✔ {text}"));
    bob.send("/switch @alice");
    bob.expect("* now in @alice");
    let text = "psst alice, directly back: wolfsbane";
    plaintexts.push(text);
    bob.send(text);
    web.expect_verified("alice", "bob", text);

    if let Some(path) = std::env::var_os("SEALKIT_WEB_SCREENSHOT") {
        web.call(json!({"cmd": "show", "page": "alice", "channel": "general"}));
        // Relative to the repository (cargo runs tests in the crate's directory).
        let path = repo_root().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        web.call(json!({"cmd": "screenshot", "page": "alice", "path": path}));
    }
    let errors = web.page_errors();
    assert!(errors.is_empty(), "page errors: {errors:#?}");

    // The server restarts in the middle of the session: messages sent while the page is
    // disconnected arrive once it is back, in order, none twice.
    web.call(json!({"cmd": "show", "page": "alice", "channel": "general"}));
    server.kill9();
    web.call(json!({"cmd": "wait_connected", "page": "alice", "connected": false}));
    let server = Server::start_at(port, &storage);
    let during = [
        "while the page was away 1: edelweiss",
        "while the page was away 2: tansy",
        "while the page was away 3: vervain",
    ];
    for text in during {
        plaintexts.push(text);
        carol.send_text("general", text).await.unwrap();
    }
    web.call(json!({"cmd": "wait_connected", "page": "alice", "connected": true}));
    for text in during {
        web.expect_verified("alice", "carol", text);
    }
    let after = web.messages("alice");
    let seqs: Vec<i64> = after.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    let mut sorted = seqs.clone();
    sorted.dedup();
    assert_eq!(seqs, sorted, "order or repeats: {after:?}");
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "gaps: {after:?}"
    );

    // History paging: a reloaded page shows the newest 50, and "Load older" the rest.
    for i in 0..45 {
        carol
            .send_text("general", &format!("bulk message {i}"))
            .await
            .unwrap();
    }
    plaintexts.push("bulk message 44");
    let total = seqs.len() as i64 + 45;
    web.call(json!({"cmd": "reload", "page": "alice"}));
    web.call(json!({"cmd": "login", "page": "alice", "identity": "alice"}));
    web.call(json!({"cmd": "join", "page": "alice", "channel": "general"}));
    let newest = web.messages("alice");
    assert_eq!(newest.len(), 50);
    assert_eq!(newest[0]["seq"], total - 49);
    let older = web.call(json!({"cmd": "older", "page": "alice"}));
    let all: Vec<i64> = older["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(all, (1..=total).collect::<Vec<_>>());
    assert_eq!(older["more"], false);

    // Since the restart: only its connection failures, nothing from the page's own code.
    let errors = web.page_errors();
    let unexpected: Vec<&Value> = errors
        .iter()
        .filter(|e| {
            let text = e["text"].as_str().unwrap_or_default();
            let connection_refused = text.contains("ERR_CONNECTION_REFUSED")
                || text.contains("ERR_CONNECTION_RESET")
                || (text.starts_with("WebSocket connection to") && text.contains(&url[7..]));
            !(e["kind"] == "console" && connection_refused)
        })
        .collect();
    assert!(unexpected.is_empty(), "page errors: {unexpected:#?}");

    // No plaintext in anything the server wrote.
    drop(server);
    plaintexts.push("forged: belladonna");
    for text in &plaintexts {
        let hits = files_containing(&data, text.as_bytes());
        assert!(hits.is_empty(), "{text:?} in {hits:?}");
    }
    drop(carol_stream);
    drop(bob);
}
