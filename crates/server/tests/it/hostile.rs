//! Hostile clients against the real listener (`sealkit_server::net::serve_on` on a TCP port),
//! on SQLite and on PostgreSQL. Each case is an attack from the hardening review: it asserts
//! the clean refusal, that what the server keeps stays bounded, and that a normal client is
//! still served promptly while the attack goes on.
//!
//! Cases: unknown methods do not grow `/metrics`; a request head that never ends is cut off;
//! an idle keep-alive connection is closed; a body that trickles in is answered 408; the
//! connection cap holds further clients back until a slot frees; shutdown lets a request in
//! flight finish and stops accepting; a token whose `exp` is `i64::MAX` is not a crash; NUL
//! bytes in names are 400; cards are bounded; WebSocket frames, sockets and writes are bounded;
//! `dm:` ids cannot be squatted; outsiders cannot tell which channels exist; a direct channel
//! can be left; channels per creator are capped; the channel list is paged; a Keyknox push is
//! stored once and within the owner's quota. (The server's resident memory under attack is
//! measured on the real process in `crates/cli/tests/it/serve_ops.rs`.)

use crate::common;

use crate::common::{harness_on, token, Harness};
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::sqlite::SqliteStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// A server on a real port, with the test's config; dropping `stop` (or sending) shuts it down.
struct Running {
    addr: SocketAddr,
    harness: Harness,
    store: Arc<dyn Store>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(backend: Backend, config: Config) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = match backend {
        Backend::Sqlite => Arc::new(
            SqliteStore::open(&dir.path().join("db.sqlite"))
                .await
                .unwrap(),
        ),
        Backend::Postgres => Arc::new(
            PostgresStore::connect_fresh_schema(&common::pg_url(), &common::schema_name("hostile"))
                .await
                .expect("PostgreSQL reachable at DATABASE_URL"),
        ),
    };
    let harness = harness_on(config.clone(), store.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let router = harness.router.clone();
    let done = tokio::spawn(async move {
        sealkit_server::net::serve_on(listener, router, &config, None, async {
            let _ = stopped.await;
        })
        .await
    });
    Running {
        addr,
        harness,
        store,
        stop: Some(stop),
        done,
        _dir: dir,
    }
}

/// One request on a fresh connection; returns the status line's code and the body.
async fn request(addr: SocketAddr, raw: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    read_response(&mut stream).await
}

async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
                return (status, body);
            }
        }
    }
    panic!(
        "connection closed before a full response: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

/// A normal client's request, which must be answered quickly while an attack is under way.
async fn assert_served_promptly(addr: SocketAddr) {
    let started = Instant::now();
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), request(addr, &get("/healthz")))
        .await
        .expect("a normal client was not served during the attack");
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Waits for the peer to close the connection (read returns 0 or an error).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut byte = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_do_not_grow_metrics() {
    for backend in BACKENDS {
        let server = start(backend, Config::default()).await;
        let (_, before) = request(server.addr, &get("/metrics")).await;
        for i in 0..200 {
            let method = format!("ATTACK{i}{}", "M".repeat(200));
            let (status, _) = request(
                server.addr,
                &format!("{method} /card/v5/actions/search HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            )
            .await;
            assert!(
                status == 405 || status == 404 || status == 400,
                "{backend:?}: {status}"
            );
        }
        let (_, after) = request(server.addr, &get("/metrics")).await;
        assert!(
            !after.contains("ATTACK"),
            "{backend:?}: method names leaked into /metrics"
        );
        assert!(after.contains("method=\"OTHER\""), "{backend:?}: {after}");
        // 200 distinct methods add one OTHER row per (route, status), not 200.
        let rows = |text: &str| {
            text.lines()
                .filter(|l| l.starts_with("sealkit_http_requests_total"))
                .count()
        };
        assert!(
            rows(&after) <= rows(&before) + 4,
            "{backend:?}: {} -> {} rows",
            rows(&before),
            rows(&after)
        );
        assert_served_promptly(server.addr).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_never_ends_is_cut_off() {
    for backend in BACKENDS {
        let mut config = Config::default();
        config.header_read_timeout_secs = 1;
        let server = start(backend, config).await;
        let mut slow = Vec::new();
        for _ in 0..20 {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .await
                .unwrap();
            slow.push(stream);
        }
        assert_served_promptly(server.addr).await;
        for stream in &mut slow {
            assert!(
                closed_within(stream, Duration::from_secs(4)).await,
                "{backend:?}: a connection with an endless head stayed open"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    for backend in BACKENDS {
        let mut config = Config::default();
        config.idle_timeout_secs = 1;
        let server = start(backend, config).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let (status, _) = read_response(&mut stream).await;
        assert_eq!(status, 200);
        assert!(
            closed_within(&mut stream, Duration::from_secs(4)).await,
            "{backend:?}: an idle keep-alive connection stayed open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_answered_408() {
    for backend in BACKENDS {
        let mut config = Config::default();
        config.request_timeout_secs = 1;
        let server = start(backend, config).await;
        let jwt = token(&server.harness.app, "alice");
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "POST /card/v5/actions/search HTTP/1.1\r\nHost: x\r\nAuthorization: Virgil {jwt}\r\n\
                     Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"identities\""
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        assert_served_promptly(server.addr).await;
        let (status, body) =
            tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
                .await
                .expect("no answer to a trickling body");
        assert_eq!(status, 408, "{backend:?}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], 40800, "{backend:?}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_further_clients_back() {
    for backend in BACKENDS {
        let mut config = Config::default();
        config.max_connections = 3;
        let server = start(backend, config).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(TcpStream::connect(server.addr).await.unwrap());
        }
        // The kernel completes the handshake, but the server does not take the connection.
        let addr = server.addr;
        let waiting = tokio::spawn(async move { request(addr, &get("/healthz")).await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !waiting.is_finished(),
            "{backend:?}: a fourth connection was served over the cap"
        );
        drop(held.pop());
        let (status, _) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting client was not served after a slot freed")
            .unwrap();
        assert_eq!(status, 200, "{backend:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_request_in_flight_and_stops_accepting() {
    for backend in BACKENDS {
        let mut server = start(backend, Config::default()).await;
        let jwt = token(&server.harness.app, "alice");
        let body = r#"{"identities":["bob"]}"#;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "POST /card/v5/actions/search HTTP/1.1\r\nHost: x\r\nAuthorization: Virgil {jwt}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                    body.len(),
                    &body[..5]
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = server.stop.take().unwrap().send(());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            TcpStream::connect(server.addr).await.is_err(),
            "{backend:?}: still accepting after shutdown"
        );
        assert!(
            !server.done.is_finished(),
            "{backend:?}: returned with a request in flight"
        );
        stream.write_all(&body.as_bytes()[5..]).await.unwrap();
        let (status, response) = read_response(&mut stream).await;
        assert_eq!(status, 200, "{backend:?}: {response}");
        tokio::time::timeout(Duration::from_secs(5), &mut server.done)
            .await
            .expect("the server did not stop after draining")
            .unwrap()
            .unwrap();
    }
}

/// `exp + leeway` overflowed (a panic in debug builds, a wrapped cache time in release).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_at_i64_max_is_no_crash() {
    for backend in BACKENDS {
        let server = start(backend, Config::default()).await;
        let creds = &server.harness.app;
        let key = sealkit_crypto::PrivateKey::import(creds.api_private_key.as_bytes()).unwrap();
        let jwt = common::craft(
            &serde_json::json!({"alg": "VEDS512", "typ": "JWT", "cty": "virgil-jwt;v=1", "kid": creds.api_key_id}),
            &serde_json::json!({"iss": format!("virgil-{}", creds.app_id), "sub": "identity-alice",
                "iat": sealkit_server::now(), "exp": i64::MAX}),
            &key,
        );
        let (status, body) = request(
            server.addr,
            &format!(
                "POST /card/v5/actions/search HTTP/1.1\r\nHost: x\r\nAuthorization: Virgil {jwt}\r\n\
                 Content-Type: application/json\r\nContent-Length: 22\r\nConnection: close\r\n\r\n{{\"identities\":[\"bob\"]}}"
            ),
        )
        .await;
        assert_eq!(status, 200, "{backend:?}: {body}");
        assert_served_promptly(server.addr).await;
    }
}

/// A NUL byte (or another control character) in any string a client names things with is a
/// 400 with `{code, message}` on both backends, never a 500 (PostgreSQL refuses NUL in text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_in_names_are_400_on_both_backends() {
    use serde_json::json;
    for backend in BACKENDS {
        let server = start(backend, Config::default()).await;
        let h = &server.harness;
        let jwt = token(&h.app, "alice");
        let nul = "a\u{0}b";
        let b64 = "AAAA";
        let cases = [
            (
                "POST",
                "/keyknox/v2/push",
                json!({"root": nul, "path": "p", "key": "k", "identities": ["alice"], "meta": b64, "value": b64}),
            ),
            (
                "POST",
                "/keyknox/v2/push",
                json!({"root": "r", "path": nul, "key": "k", "identities": ["alice"], "meta": b64, "value": b64}),
            ),
            (
                "POST",
                "/keyknox/v2/push",
                json!({"root": "r", "path": "p", "key": nul, "identities": ["alice"], "meta": b64, "value": b64}),
            ),
            (
                "POST",
                "/keyknox/v2/push",
                json!({"root": "r", "path": "p", "key": "k", "identities": [nul], "meta": b64, "value": b64}),
            ),
            (
                "POST",
                "/keyknox/v2/pull",
                json!({"root": nul, "path": "p", "key": "k"}),
            ),
            (
                "POST",
                "/keyknox/v2/pull",
                json!({"root": "r", "path": "p", "key": "k", "identity": nul}),
            ),
            (
                "POST",
                "/keyknox/v2/keys",
                json!({"root": "r", "path": nul}),
            ),
            (
                "POST",
                "/keyknox/v2/keys",
                json!({"root": "r", "path": "p", "identity": nul}),
            ),
            ("POST", "/keyknox/v2/reset", json!({"root": nul})),
            (
                "POST",
                "/keyknox/v2/reset",
                json!({"root": "r", "path": "p", "key": nul}),
            ),
            (
                "POST",
                "/card/v5/actions/search",
                json!({"identities": [nul]}),
            ),
            (
                "POST",
                "/chat/v1/channels",
                json!({"id": nul, "kind": "group", "members": []}),
            ),
        ];
        for (method, path, body) in cases {
            let (status, reply) = h.json(method, path, Some(&jwt), Some(body.clone())).await;
            common::assert_error(status, &reply, axum::http::StatusCode::BAD_REQUEST);
            assert!(
                status.as_u16() == 400,
                "{backend:?} {path} {body}: {status} {reply}"
            );
        }
    }
}

/// Cards are bounded: no more than `MAX_CARD_SIGNATURES` signatures and `MAX_CARD_BYTES` bytes
/// (both used to be unbounded up to the body limit), and a search of an identity that rotated
/// in a loop returns a bounded chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_are_bounded_in_size_signatures_and_chain() {
    use sealkit_proto::cards::RawSignature;
    use sealkit_server::service::cards::{MAX_CARD_BYTES, MAX_CARD_SIGNATURES};
    use sealkit_server::store::MAX_CHAIN_CARDS;
    for backend in BACKENDS {
        let server = start(backend, Config::default()).await;
        let h = &server.harness;
        let jwt = token(&h.app, "alice");
        let key = sealkit_crypto::PrivateKey::generate(
            sealkit_crypto::KeyType::Ed25519,
            &mut rand_core::OsRng,
        );
        let extra = |n: usize, snapshot_len: usize| {
            let mut card = common::card("alice", &key, None);
            for i in 0..n {
                card.signatures.push(RawSignature {
                    signer: format!("extra{i}"),
                    signature: "AAAA".into(),
                    snapshot: (snapshot_len > 0).then(|| "A".repeat(snapshot_len)),
                });
            }
            serde_json::to_value(&card).unwrap()
        };
        for (what, body) in [
            ("too many signatures", extra(MAX_CARD_SIGNATURES, 0)),
            ("too large", extra(1, MAX_CARD_BYTES)),
        ] {
            let (status, reply) = h.json("POST", "/card/v5", Some(&jwt), Some(body)).await;
            common::assert_error(status, &reply, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(reply["code"], 40001, "{backend:?} {what}: {reply}");
        }
        // A rotation loop: the search stays bounded.
        let mut previous: Option<String> = None;
        for _ in 0..MAX_CHAIN_CARDS + 3 {
            let key = sealkit_crypto::PrivateKey::generate(
                sealkit_crypto::KeyType::Ed25519,
                &mut rand_core::OsRng,
            );
            let card = common::card("alice", &key, previous.as_deref());
            let (status, reply) = h
                .json(
                    "POST",
                    "/card/v5",
                    Some(&jwt),
                    Some(serde_json::to_value(&card).unwrap()),
                )
                .await;
            assert_eq!(status, 200, "{backend:?}: {reply}");
            previous = Some(card.card_id().unwrap().to_string());
        }
        let (status, found) = h
            .json(
                "POST",
                "/card/v5/actions/search",
                Some(&jwt),
                Some(serde_json::json!({"identities": ["alice"]})),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            found.as_array().unwrap().len(),
            MAX_CHAIN_CARDS,
            "{backend:?}"
        );
        assert_served_promptly(server.addr).await;
    }
}

mod websocket {
    use super::*;
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;

    type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

    async fn connect(
        addr: SocketAddr,
        jwt: &str,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://{addr}/chat/v1/ws?token={jwt}");
        tokio_tungstenite::connect_async(url)
            .await
            .map(|(ws, _)| ws)
    }

    /// The close code the server ends with (pings skipped), within `limit`.
    async fn closed_with(ws: &mut Ws, limit: Duration) -> Option<CloseCode> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return None,
            }
        }
    }

    /// A 1 MiB frame used to be read into memory (axum's limit is 64 MiB); now 1009.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_oversized_frame_closes_with_1009() {
        for backend in BACKENDS {
            let server = start(backend, Config::default()).await;
            let jwt = token(&server.harness.app, "alice");
            let mut ws = connect(server.addr, &jwt).await.unwrap();
            let _ = ws.send(Message::text("x".repeat(1 << 20))).await;
            assert_eq!(
                closed_with(&mut ws, Duration::from_secs(5)).await,
                Some(CloseCode::Size),
                "{backend:?}"
            );
            assert_served_promptly(server.addr).await;
        }
    }

    /// One identity cannot open sockets without bound: over the cap the upgrade is a 429.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sockets_per_identity_are_capped() {
        for backend in BACKENDS {
            let mut config = Config::default();
            config.chat_sockets_per_identity = 3;
            let server = start(backend, config).await;
            let jwt = token(&server.harness.app, "alice");
            let mut open = Vec::new();
            for _ in 0..3 {
                open.push(connect(server.addr, &jwt).await.unwrap());
            }
            match connect(server.addr, &jwt).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    assert_eq!(response.status(), 429, "{backend:?}");
                    let body: serde_json::Value =
                        serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                            .unwrap();
                    assert_eq!(body["code"], 70009, "{backend:?}");
                }
                other => panic!("{backend:?}: expected 429, got {:?}", other.map(|_| ())),
            }
            // Another identity is not affected, and a closed socket frees its slot.
            let bob = token(&server.harness.app, "bob");
            assert!(connect(server.addr, &bob).await.is_ok());
            let mut first = open.remove(0);
            first.close(None).await.unwrap();
            while first.next().await.is_some() {}
            let mut reconnected = false;
            for _ in 0..50 {
                if connect(server.addr, &jwt).await.is_ok() {
                    reconnected = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(
                reconnected,
                "{backend:?}: a closed socket's slot was not freed"
            );
        }
    }

    /// A subscriber that stops reading: once the socket's buffers and queue are full, a write
    /// blocks; the server gives up on it after its write timeout (10 s) and frees the socket's
    /// place, instead of keeping it (and its subscriptions) as long as the token lives.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_is_dropped() {
        use base64::Engine as _;
        use serde_json::json;
        for backend in BACKENDS {
            let mut config = Config::default();
            config.chat_sockets_per_identity = 1;
            let server = start(backend, config).await;
            let h = &server.harness;
            let alice = token(&h.app, "alice");
            let bob = token(&h.app, "bob");
            let (status, reply) = h
                .json(
                    "POST",
                    "/chat/v1/channels",
                    Some(&alice),
                    Some(json!({"id": "flood", "kind": "group", "members": ["bob"]})),
                )
                .await;
            assert_eq!(status, 201, "{reply}");
            let mut ws = connect(server.addr, &bob).await.unwrap();
            ws.send(Message::text(
                json!({"type": "subscribe", "channel": "flood", "after": 0}).to_string(),
            ))
            .await
            .unwrap();
            // bob reads nothing from here on.
            let ciphertext = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 60 << 10]);
            let started = Instant::now();
            let mut freed = false;
            for i in 0..2000 {
                let (status, reply) = h
                    .json(
                        "POST",
                        "/chat/v1/channels/flood/messages",
                        Some(&alice),
                        Some(json!({"client_id": format!("m{i}"), "ciphertext": ciphertext, "member_version": 1})),
                    )
                    .await;
                assert_eq!(status, 201, "{backend:?}: {reply}");
                if i % 50 == 49 && connect(server.addr, &bob).await.is_ok() {
                    freed = true;
                    break;
                }
            }
            while !freed && started.elapsed() < Duration::from_secs(40) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                freed = connect(server.addr, &bob).await.is_ok();
            }
            assert!(
                freed,
                "{backend:?}: a socket that never reads kept its place"
            );
            drop(ws);
        }
    }

    /// Revoking the API key that signed a socket's token closes the socket (1008) within the
    /// re-check interval, although the token has not expired.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revoked_key_closes_its_sockets() {
        for backend in BACKENDS {
            let mut config = Config::default();
            config.chat_token_recheck_secs = 1;
            let server = start(backend, config).await;
            let jwt = token(&server.harness.app, "alice");
            let mut ws = connect(server.addr, &jwt).await.unwrap();
            assert_eq!(
                closed_with(&mut ws, Duration::from_millis(1500)).await,
                None
            );
            server
                .store
                .revoke_app_key(&server.harness.app.api_key_id, sealkit_server::now())
                .await
                .unwrap();
            assert_eq!(
                closed_with(&mut ws, Duration::from_secs(5)).await,
                Some(CloseCode::Policy),
                "{backend:?}"
            );
        }
    }
}

/// `dm:` ids are reserved for the direct channel of the two identities they derive from:
/// mallory can neither squat alice and bob's id with a group channel nor with a direct channel
/// of her own; alice (or bob) creates it as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_channel_ids_cannot_be_squatted() {
    use sealkit_proto::chat::direct_channel_id;
    use serde_json::json;
    for backend in BACKENDS {
        let server = start(backend, Config::default()).await;
        let h = &server.harness;
        let pair = direct_channel_id("alice", "bob");
        let mallory = token(&h.app, "mallory");
        for body in [
            json!({"id": pair, "kind": "group", "members": ["alice", "bob"]}),
            json!({"id": pair, "kind": "direct", "members": ["bob"]}),
            json!({"id": "dm:anything", "kind": "group", "members": []}),
        ] {
            let (status, reply) = h
                .json(
                    "POST",
                    "/chat/v1/channels",
                    Some(&mallory),
                    Some(body.clone()),
                )
                .await;
            common::assert_error(status, &reply, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(reply["code"], 70007, "{backend:?} {body}: {reply}");
        }
        let alice = token(&h.app, "alice");
        let (status, reply) = h
            .json(
                "POST",
                "/chat/v1/channels",
                Some(&alice),
                Some(json!({"id": pair, "kind": "direct", "members": ["bob"]})),
            )
            .await;
        assert_eq!(status, 201, "{backend:?}: {reply}");
    }
}

/// Outsiders get the same answer for a closed channel (or a direct channel of others) as for
/// one that does not exist, on every route that names a channel: the review found 403 for the
/// first and 404 for the second, which told anyone which channels and DMs exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_cannot_tell_which_channels_exist() {
    use sealkit_proto::chat::direct_channel_id;
    use serde_json::{json, Value};
    for backend in BACKENDS {
        let server = start(backend, Config::default()).await;
        let h = &server.harness;
        let alice = token(&h.app, "alice");
        let mallory = token(&h.app, "mallory");
        let dm = direct_channel_id("alice", "bob");
        for body in [
            json!({"id": "secret", "kind": "group", "members": ["bob"]}),
            json!({"id": dm, "kind": "direct", "members": ["bob"]}),
        ] {
            let (status, reply) = h
                .json("POST", "/chat/v1/channels", Some(&alice), Some(body))
                .await;
            assert_eq!(status, 201, "{backend:?}: {reply}");
        }
        let post = json!({"client_id": "m1", "ciphertext": "AAAA", "member_version": 1});
        let answers = |id: String| {
            let requests: Vec<(&str, String, Option<Value>)> = vec![
                ("GET", format!("/chat/v1/channels/{id}"), None),
                ("GET", format!("/chat/v1/channels/{id}/messages"), None),
                (
                    "POST",
                    format!("/chat/v1/channels/{id}/messages"),
                    Some(post.clone()),
                ),
                (
                    "POST",
                    format!("/chat/v1/channels/{id}/members"),
                    Some(json!({"identity": "mallory"})),
                ),
                // Beyond the last seq too: membership is checked first, so it tells nothing.
                (
                    "POST",
                    format!("/chat/v1/channels/{id}/read"),
                    Some(json!({"seq": 5})),
                ),
                (
                    "DELETE",
                    format!("/chat/v1/channels/{id}/members/mallory"),
                    None,
                ),
                (
                    "DELETE",
                    format!("/chat/v1/channels/{id}/members/bob"),
                    None,
                ),
            ];
            let mallory = mallory.clone();
            async move {
                let mut out = Vec::new();
                for (method, path, body) in requests {
                    let (status, reply) = h.json(method, &path, Some(&mallory), body).await;
                    // The message must not name the id either.
                    let message = reply["message"].as_str().unwrap_or("").replace(&id, "ID");
                    out.push((method, status.as_u16(), reply["code"].clone(), message));
                }
                out
            }
        };
        let missing = answers("no-such-channel".to_owned()).await;
        assert!(
            missing.iter().all(|(_, status, ..)| *status == 404),
            "{backend:?}: {missing:?}"
        );
        assert_eq!(
            answers("secret".to_owned()).await,
            missing,
            "{backend:?}: a closed group"
        );
        assert_eq!(answers(dm.clone()).await, missing, "{backend:?}: a DM");
        assert_served_promptly(server.addr).await;
    }
}

/// A direct channel can be left by either of its two identities (the review found that one
/// naming a victim could never be left), and only they can come back; nobody else joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_channel_can_be_left_and_only_its_pair_comes_back() {
    use sealkit_proto::chat::direct_channel_id;
    use serde_json::json;
    for backend in BACKENDS {
        let server = start(backend, Config::default()).await;
        let h = &server.harness;
        let (alice, mallory, eve) = (
            token(&h.app, "alice"),
            token(&h.app, "mallory"),
            token(&h.app, "eve"),
        );
        let dm = direct_channel_id("mallory", "alice");
        let (status, _) = h
            .json(
                "POST",
                "/chat/v1/channels",
                Some(&mallory),
                Some(json!({"id": dm, "kind": "direct", "members": ["alice"]})),
            )
            .await;
        assert_eq!(status, 201);
        let members = format!("/chat/v1/channels/{dm}/members");
        // Mallory cannot remove alice, nor add anyone.
        let (status, reply) = h
            .json("DELETE", &format!("{members}/alice"), Some(&mallory), None)
            .await;
        assert_eq!((status.as_u16(), &reply["code"]), (409, &json!(70008)));
        let (status, reply) = h
            .json(
                "POST",
                &members,
                Some(&mallory),
                Some(json!({"identity": "eve"})),
            )
            .await;
        assert_eq!((status.as_u16(), &reply["code"]), (409, &json!(70008)));
        // Alice leaves: mallory's posts now reach only mallory.
        let (status, reply) = h
            .json("DELETE", &format!("{members}/alice"), Some(&alice), None)
            .await;
        assert_eq!(status, 200, "{backend:?}: {reply}");
        assert_eq!(reply["members"], json!(["mallory"]));
        let (status, _) = h
            .json(
                "GET",
                &format!("/chat/v1/channels/{dm}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(status, 404);
        // Mallory cannot pull her back in; eve cannot join; alice can come back.
        let (status, _) = h
            .json(
                "POST",
                &members,
                Some(&mallory),
                Some(json!({"identity": "alice"})),
            )
            .await;
        assert_eq!(status, 409);
        let (status, _) = h
            .json(
                "POST",
                &members,
                Some(&eve),
                Some(json!({"identity": "eve"})),
            )
            .await;
        assert_eq!(status, 404);
        let (status, reply) = h
            .json(
                "POST",
                &members,
                Some(&alice),
                Some(json!({"identity": "alice"})),
            )
            .await;
        assert_eq!(status, 200, "{backend:?}: {reply}");
        assert_eq!(reply["members"], json!(["alice", "mallory"]));
        // The creator may leave too, even as its only admin.
        let (status, reply) = h
            .json(
                "DELETE",
                &format!("{members}/mallory"),
                Some(&mallory),
                None,
            )
            .await;
        assert_eq!(status, 200, "{backend:?}: {reply}");
        assert_eq!(reply["members"], json!(["alice"]));
    }
}

/// One identity creates at most `chat_channels_per_creator` channels, also when it creates
/// them all at once; others are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_per_creator_are_capped() {
    use futures_util::future::join_all;
    use serde_json::json;
    for backend in BACKENDS {
        let mut config = Config::default();
        config.chat_channels_per_creator = 3;
        let server = start(backend, config).await;
        let h = &server.harness;
        let alice = token(&h.app, "alice");
        let results = join_all((0..12).map(|i| {
            h.json(
                "POST",
                "/chat/v1/channels",
                Some(&alice),
                Some(json!({"id": format!("c{i}"), "kind": "group", "members": []})),
            )
        }))
        .await;
        let created = results.iter().filter(|(s, _)| s.as_u16() == 201).count();
        assert_eq!(created, 3, "{backend:?}: {results:?}");
        for (status, reply) in results.iter().filter(|(s, _)| s.as_u16() != 201) {
            common::assert_error(*status, reply, axum::http::StatusCode::FORBIDDEN);
            assert_eq!(reply["code"], 70010, "{backend:?}: {reply}");
        }
        let bob = token(&h.app, "bob");
        let (status, _) = h
            .json(
                "POST",
                "/chat/v1/channels",
                Some(&bob),
                Some(json!({"id": "bobs", "kind": "group", "members": []})),
            )
            .await;
        assert_eq!(status, 201);
    }
}

/// `GET /chat/v1/channels` answers pages (it used to answer every channel of the caller, a
/// list an attacker can grow by adding the victim to channels).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_list_is_paged() {
    use serde_json::json;
    for backend in BACKENDS {
        let server = start(backend, Config::default()).await;
        let h = &server.harness;
        let alice = token(&h.app, "alice");
        let mut ids: Vec<String> = (0..7).map(|i| format!("room-{}", 7 - i)).collect();
        ids.push("Z:upper".to_owned());
        for id in &ids {
            let (status, _) = h
                .json(
                    "POST",
                    "/chat/v1/channels",
                    Some(&alice),
                    Some(json!({"id": id, "kind": "group", "members": []})),
                )
                .await;
            assert_eq!(status, 201);
        }
        ids.sort();
        let mut seen = Vec::new();
        let mut path = "/chat/v1/channels?limit=3".to_owned();
        loop {
            let (status, page) = h.json("GET", &path, Some(&alice), None).await;
            assert_eq!(status, 200, "{backend:?}: {page}");
            let channels = page["channels"].as_array().unwrap();
            assert!(channels.len() <= 3);
            seen.extend(
                channels
                    .iter()
                    .map(|c| c["id"].as_str().unwrap().to_owned()),
            );
            if page["more"] != json!(true) {
                break;
            }
            path = format!("/chat/v1/channels?limit=3&after={}", seen.last().unwrap());
        }
        assert_eq!(seen, ids, "{backend:?}: every channel once, in byte order");
        let (status, page) = h.json("GET", "/chat/v1/channels", Some(&alice), None).await;
        assert_eq!((status.as_u16(), &page["more"]), (200, &json!(false)));
        assert_eq!(page["channels"].as_array().unwrap().len(), 8);
        for bad in ["limit=0", "limit=-1", "limit=x", "after=%00"] {
            let (status, reply) = h
                .json(
                    "GET",
                    &format!("/chat/v1/channels?{bad}"),
                    Some(&alice),
                    None,
                )
                .await;
            common::assert_error(status, &reply, axum::http::StatusCode::BAD_REQUEST);
        }
    }
}

/// A Keyknox v2 push for many identities stores its blob once (it used to store one copy per
/// identity: 1000 × the body limit from one request), and an owner's entries stay within the
/// configured quota, refused with 413 and a code of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyknox_pushes_are_stored_once_and_within_a_quota() {
    use base64::Engine as _;
    use serde_json::json;
    const BLOB: usize = 256 << 10;
    for backend in BACKENDS {
        let mut config = Config::default();
        config.keyknox_quota_bytes = 3 * (BLOB as u64) + 4096;
        let server = start(backend, config).await;
        let h = &server.harness;
        let alice = token(&h.app, "alice");
        let identities: Vec<String> = (0..1000).map(|i| format!("member-{i}")).collect();
        let value = base64::engine::general_purpose::STANDARD.encode(vec![7u8; BLOB / 4 * 3]);
        let push = |key: usize| {
            json!({"root": "group-sessions", "path": "big", "key": key.to_string(),
                   "identities": identities, "meta": "AAAA", "value": value})
        };
        for key in 0..3 {
            let (status, reply) = h
                .json("POST", "/keyknox/v2/push", Some(&alice), Some(push(key)))
                .await;
            assert_eq!(status, 200, "{backend:?} push {key}: {reply}");
        }
        let (status, reply) = h
            .json("POST", "/keyknox/v2/push", Some(&alice), Some(push(3)))
            .await;
        common::assert_error(status, &reply, axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(reply["code"], 50013, "{backend:?}: {reply}");
        // What was pushed is readable by every recipient.
        let (status, reply) = h
            .json(
                "POST",
                "/keyknox/v2/pull",
                Some(&token(&h.app, "member-999")),
                Some(json!({"root": "group-sessions", "path": "big", "key": "2", "identity": "alice"})),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(reply["value"].as_str().map(str::len), Some(value.len()));
        assert_eq!(reply["identities"].as_array().map(Vec::len), Some(1000));
        if let Backend::Sqlite = backend {
            // Three pushes of 256 KiB for 1000 identities each: about 768 KiB of blobs (and
            // the recipient rows), not 750 MiB.
            let bytes: u64 = ["db.sqlite", "db.sqlite-wal"]
                .iter()
                .filter_map(|f| std::fs::metadata(server._dir.path().join(f)).ok())
                .map(|m| m.len())
                .sum();
            assert!(
                bytes < 16 << 20,
                "{backend:?}: the database holds {bytes} bytes"
            );
        }
        assert_served_promptly(server.addr).await;
    }
}
