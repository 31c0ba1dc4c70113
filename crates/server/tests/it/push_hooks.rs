//! Push hooks end to end: chat writes through the router reach a local receiver as signed,
//! metadata-only events; a failing receiver gets each event again with growing pauses until it
//! answers 2xx; two PostgreSQL replicas deliver each event once between them.

use crate::common::{harness_on, listen, pg_url, schema_name, token, Harness};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use sealkit_proto::hooks::{verify, HookEvent, HookKind, EVENT_ID_HEADER, SIGNATURE_HEADER};
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::sqlite::SqliteStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHANNELS: &str = "/chat/v1/channels";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    event_id: String,
    signature: String,
    body: Bytes,
}

/// A webhook receiver that answers 500 to the first `failures` attempts of every event.
#[derive(Clone, Default)]
struct Receiver {
    failures: usize,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The attempts per event id, in arrival order.
    fn by_event(&self) -> HashMap<String, Vec<Received>> {
        let mut out: HashMap<String, Vec<Received>> = HashMap::new();
        for r in self.all() {
            out.entry(r.event_id.clone()).or_default().push(r);
        }
        out
    }

    /// Waits until `done` holds for what was received (at most 30 s).
    async fn wait_for(&self, what: &str, done: impl Fn(&Receiver) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(Instant::now() < deadline, "receiver: {what} within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let received = Received {
        at: Instant::now(),
        event_id: header(EVENT_ID_HEADER),
        signature: header(SIGNATURE_HEADER),
        body,
    };
    let mut got = r.got.lock().unwrap();
    let earlier = got
        .iter()
        .filter(|g| g.event_id == received.event_id)
        .count();
    got.push(received);
    if earlier < r.failures {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

async fn start_receiver(failures: usize) -> (Receiver, String) {
    let receiver = Receiver {
        failures,
        ..Receiver::default()
    };
    let router = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    let addr = listen(router).await;
    (receiver, format!("http://{addr}/hook"))
}

fn fast_hooks() -> Config {
    let mut config = Config::default();
    config.hook_poll_ms = 50;
    config.hook_retry_base_ms = 300;
    config.hook_retry_max_ms = 5_000;
    config.hook_timeout_secs = 5;
    config
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn call(h: &Harness, method: &str, path: &str, tok: &str, body: Option<Value>) -> Value {
    let (s, b) = h.json(method, path, Some(tok), body).await;
    assert!(s.is_success(), "{method} {path}: {s} {b}");
    b
}

/// The chat writes whose events the tests expect: a member added, a post, an edit, a delete.
/// Returns the ciphertexts posted (none may reach the receiver).
async fn chat_activity(h: &Harness) -> Vec<String> {
    let alice = token(&h.app, "alice");
    let group = json!({"id": "g", "kind": "group", "members": ["bob"]});
    call(h, "POST", CHANNELS, &alice, Some(group)).await;
    let add = json!({"identity": "carol"});
    call(
        h,
        "POST",
        &format!("{CHANNELS}/g/members"),
        &alice,
        Some(add),
    )
    .await;
    let first = b64(b"SECRET-CIPHERTEXT-ONE");
    let second = b64(b"SECRET-CIPHERTEXT-TWO");
    let message = json!({"client_id": "c1", "ciphertext": first, "member_version": 2});
    call(
        h,
        "POST",
        &format!("{CHANNELS}/g/messages"),
        &alice,
        Some(message),
    )
    .await;
    let edit = json!({"ciphertext": second, "member_version": 2});
    call(
        h,
        "PUT",
        &format!("{CHANNELS}/g/messages/1"),
        &alice,
        Some(edit),
    )
    .await;
    call(
        h,
        "DELETE",
        &format!("{CHANNELS}/g/messages/1"),
        &alice,
        None,
    )
    .await;
    vec![first, second]
}

/// Signature, payload and retries, against the store `store`.
async fn signed_metadata_with_retries(store: Arc<dyn Store>) {
    let (receiver, url) = start_receiver(2).await;
    let h = harness_on(fast_hooks(), store.clone()).await;
    let hook =
        sealkit_server::admin::set_hook(store.as_ref(), &h.app.app_id, &url, sealkit_server::now())
            .await
            .unwrap();
    let ciphertexts = chat_activity(&h).await;
    // Another application's activity goes nowhere: it has no hook.
    let other = token(&h.other_app, "zed");
    let group = json!({"id": "g", "kind": "group"});
    call(&h, "POST", CHANNELS, &other, Some(group)).await;

    receiver
        .wait_for("4 events, each delivered on its third attempt", |r| {
            let by_event = r.by_event();
            by_event.len() == 4 && by_event.values().all(|attempts| attempts.len() >= 3)
        })
        .await;
    // Delivered: nothing stays queued (the outbox row goes once the receiver answered 2xx).
    let mut backlog = store.hook_backlog(&h.app.app_id).await.unwrap();
    for _ in 0..100 {
        if backlog.queued == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        backlog = store.hook_backlog(&h.app.app_id).await.unwrap();
    }
    assert_eq!(backlog.queued, 0, "{backlog:?}");

    let mut events: Vec<HookEvent> = Vec::new();
    for (id, attempts) in receiver.by_event() {
        assert_eq!(
            attempts.len(),
            3,
            "event {id}: two failures, then delivered once"
        );
        // Each retry waited at least its backoff: 300 ms, then 600 ms.
        let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1].at - w[0].at).collect();
        assert!(gaps[0] >= Duration::from_millis(300), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_millis(600), "{gaps:?}");
        let mut bodies = HashMap::new();
        for attempt in &attempts {
            let text = String::from_utf8(attempt.body.to_vec()).unwrap();
            for secret in &ciphertexts {
                assert!(!text.contains(secret.as_str()), "ciphertext in {text}");
            }
            assert!(
                !text.contains("SECRET") && !text.contains("ciphertext"),
                "{text}"
            );
            let event = verify(
                &hook.secret,
                &attempt.signature,
                &attempt.body,
                sealkit_server::now(),
                300,
            )
            .unwrap_or_else(|e| panic!("event {id}: {e}"));
            assert_eq!(event.id, id);
            assert!(verify(
                "whsec_wrong",
                &attempt.signature,
                &attempt.body,
                sealkit_server::now(),
                300
            )
            .is_err());
            bodies.insert(event.id.clone(), event);
        }
        events.extend(bodies.into_values());
    }
    events.sort_by_key(|e| e.id.parse::<i64>().unwrap());
    let kinds: Vec<HookKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            HookKind::MemberAdded,
            HookKind::Message,
            HookKind::Edit,
            HookKind::Delete
        ]
    );
    assert!(events
        .iter()
        .all(|e| e.app == h.app.app_id && e.channel == "g"));
    assert_eq!(events[0].identity.as_deref(), Some("carol"));
    for e in &events[1..] {
        assert_eq!((e.seq, e.sender.as_deref()), (Some(1), Some("alice")));
    }
    assert_eq!(events[3].deleted_by.as_deref(), Some("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_metadata_with_retries_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("hooks.db"))
            .await
            .unwrap(),
    );
    signed_metadata_with_retries(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_metadata_with_retries_postgres() {
    let schema = schema_name("hooks");
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_fresh_schema(&pg_url(), &schema)
            .await
            .unwrap(),
    );
    signed_metadata_with_retries(store).await;
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}

/// Two replicas on one PostgreSQL database, both running the delivery task: every event
/// reaches the receiver exactly once (no crash, so the leases never run out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_event_once() {
    let schema = schema_name("hooks2");
    let store_a: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_fresh_schema(&pg_url(), &schema)
            .await
            .unwrap(),
    );
    let store_b: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&pg_url(), &schema)
            .await
            .unwrap(),
    );
    let (receiver, url) = start_receiver(0).await;
    let h = harness_on(fast_hooks(), store_a.clone()).await;
    let mut config_b = fast_hooks();
    config_b.data_dir = h.dir.path().to_owned();
    let _replica_b = sealkit_server::app(config_b, store_b).await.unwrap();
    sealkit_server::admin::set_hook(store_a.as_ref(), &h.app.app_id, &url, sealkit_server::now())
        .await
        .unwrap();
    let alice = token(&h.app, "alice");
    let group = json!({"id": "g", "kind": "group"});
    call(&h, "POST", CHANNELS, &alice, Some(group)).await;
    for n in 0..30 {
        let message =
            json!({"client_id": format!("c{n}"), "ciphertext": b64(b"x"), "member_version": 1});
        call(
            &h,
            "POST",
            &format!("{CHANNELS}/g/messages"),
            &alice,
            Some(message),
        )
        .await;
    }
    receiver
        .wait_for("30 events", |r| r.by_event().len() == 30)
        .await;
    // Time for a duplicate to show up, were there one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let by_event = receiver.by_event();
    assert_eq!(by_event.len(), 30);
    assert!(
        by_event.values().all(|attempts| attempts.len() == 1),
        "an event was delivered twice"
    );
    assert_eq!(receiver.all().len(), 30);
    drop(h);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}
