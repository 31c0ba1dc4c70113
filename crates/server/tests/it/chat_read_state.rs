//! Read state and typing indicators of the chat (`POST /chat/v1/channels/{id}/read`, the
//! `read` and `typing` WebSocket frames) on SQLite and PostgreSQL, and across two PostgreSQL
//! replicas.

use crate::common::{assert_error, harness, listen, pg_url, token, Harness};
use crate::http_chat::{assert_quiet, connect, next, pg_harness, send, Ws};
use axum::http::StatusCode;
use base64::Engine as _;
use sealkit_proto::chat::{codes, ServerFrame};
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const CHANNELS: &str = "/chat/v1/channels";

/// A second server process (replica) on the harness's PostgreSQL schema.
async fn replica(h: &Harness, schema: &str) -> std::net::SocketAddr {
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&pg_url(), schema)
            .await
            .unwrap(),
    );
    let mut config = Config::default();
    config.data_dir = h.dir.path().to_owned();
    listen(sealkit_server::app(config, store).await.unwrap()).await
}

fn assert_chat_error(status: StatusCode, body: &Value, expected: StatusCode, expected_code: u32) {
    assert_error(status, body, expected);
    assert_eq!(
        body["code"].as_u64(),
        Some(u64::from(expected_code)),
        "{body}"
    );
}

/// Creates group `id` of alice with `members`, and alice posts `posts` messages.
async fn group_with_posts(h: &Harness, id: &str, members: &[&str], posts: usize) {
    let alice = token(&h.app, "alice");
    let (s, b) = h
        .json(
            "POST",
            CHANNELS,
            Some(&alice),
            Some(json!({"id": id, "kind": "group", "members": members})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    for i in 0..posts {
        let client_id = format!("m{i}");
        let body = json!({
            "client_id": client_id,
            "ciphertext": base64::engine::general_purpose::STANDARD.encode(&client_id),
            "member_version": 1,
        });
        let (s, b) = h
            .json(
                "POST",
                &format!("{CHANNELS}/{id}/messages"),
                Some(&alice),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
}

async fn mark_read(h: &Harness, who: &str, channel: &str, body: Value) -> (StatusCode, Value) {
    h.json(
        "POST",
        &format!("{CHANNELS}/{channel}/read"),
        Some(&token(&h.app, who)),
        Some(body),
    )
    .await
}

async fn channel(h: &Harness, who: &str, id: &str) -> Value {
    let (s, b) = h
        .json(
            "GET",
            &format!("{CHANNELS}/{id}"),
            Some(&token(&h.app, who)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

async fn subscribe(ws: &mut Ws, channel: &str, after: i64) {
    send(
        ws,
        json!({"type": "subscribe", "channel": channel, "after": after}),
    )
    .await;
    assert!(
        matches!(next(ws).await, ServerFrame::Subscribed { .. }),
        "subscribed"
    );
}

async fn typing(ws: &mut Ws, channel: &str) {
    send(ws, json!({"type": "typing", "channel": channel})).await;
}

fn read_frame(channel: &str, identity: &str, seq: i64) -> ServerFrame {
    ServerFrame::Read {
        channel: channel.into(),
        identity: identity.into(),
        seq,
    }
}

fn typing_frame(channel: &str, identity: &str) -> ServerFrame {
    ServerFrame::Typing {
        channel: channel.into(),
        identity: identity.into(),
    }
}

/// The REST side: unread counts and horizons in the channel and the list, monotonic marks,
/// refusals.
async fn read_state_rest(h: &Harness) {
    group_with_posts(h, "r", &["bob"], 0).await;
    let fresh = channel(h, "alice", "r").await;
    assert_eq!(fresh["unread"], 0, "{fresh}");
    assert_eq!(fresh["read"], json!({"alice": 0, "bob": 0}), "{fresh}");
    let (s, b) = mark_read(h, "bob", "r", json!({"seq": 1})).await;
    assert_chat_error(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);

    let alice = token(&h.app, "alice");
    for i in 0..3 {
        let client_id = format!("p{i}");
        let body = json!({
            "client_id": client_id,
            "ciphertext": base64::engine::general_purpose::STANDARD.encode(&client_id),
            "member_version": 1,
        });
        let (s, b) = h
            .json(
                "POST",
                &format!("{CHANNELS}/r/messages"),
                Some(&alice),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    // Posting moved alice's own horizon; bob has everything unread.
    let as_alice = channel(h, "alice", "r").await;
    assert_eq!(as_alice["unread"], 0, "{as_alice}");
    let as_bob = channel(h, "bob", "r").await;
    assert_eq!(as_bob["unread"], 3, "{as_bob}");
    assert_eq!(as_bob["read"], json!({"alice": 3, "bob": 0}), "{as_bob}");

    let (s, b) = mark_read(h, "bob", "r", json!({"seq": 2})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, json!({"channel": "r", "seq": 2, "unread": 1}));
    // Never back.
    let (s, b) = mark_read(h, "bob", "r", json!({"seq": 1})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, json!({"channel": "r", "seq": 2, "unread": 1}));
    // Beyond the newest message, negative, malformed.
    let (s, b) = mark_read(h, "bob", "r", json!({"seq": 4})).await;
    assert_chat_error(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);
    let (s, b) = mark_read(h, "bob", "r", json!({"seq": -1})).await;
    assert_chat_error(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);
    let (s, b) = mark_read(h, "bob", "r", json!({"seq": "two"})).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST);
    let (s, b) = mark_read(h, "bob", "bad!id", json!({"seq": 0})).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST);
    // Outsiders and no channel alike: 404 70001.
    for (who, id) in [("carol", "r"), ("bob", "nowhere")] {
        let (s, b) = mark_read(h, who, id, json!({"seq": 0})).await;
        assert_chat_error(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    }
    let (s, b) = h
        .json(
            "POST",
            &format!("{CHANNELS}/r/read"),
            None,
            Some(json!({"seq": 0})),
        )
        .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED);

    // The list carries the same.
    let (s, list) = h
        .json("GET", CHANNELS, Some(&token(&h.app, "bob")), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let listed = &list["channels"][0];
    assert_eq!(listed["id"], "r");
    assert_eq!(listed["unread"], 1, "{listed}");
    assert_eq!(listed["read"], json!({"alice": 3, "bob": 2}), "{listed}");

    // A member added now starts with nothing unread; a removed one sees no read state.
    let (s, added) = h
        .json(
            "POST",
            &format!("{CHANNELS}/r/members"),
            Some(&alice),
            Some(json!({"identity": "carol"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{added}");
    assert_eq!(added["read"]["carol"], 3, "{added}");
    assert_eq!(channel(h, "carol", "r").await["unread"], 0);
    let (s, left) = h
        .json(
            "DELETE",
            &format!("{CHANNELS}/r/members/carol"),
            Some(&token(&h.app, "carol")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{left}");
    assert!(left.get("read").is_none(), "{left}");
    assert!(left.get("unread").is_none(), "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_state_rest_sqlite() {
    read_state_rest(&harness().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_state_rest_postgres() {
    let (h, schema) = pg_harness().await;
    read_state_rest(&h).await;
    drop(h);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}

/// Live: read horizons reach every subscriber (the reader's own included), typing reaches the
/// others once per interval, outsiders are refused.
async fn live_frames(h: &Harness) {
    let addr = listen(h.router.clone()).await;
    group_with_posts(h, "t", &["bob"], 2).await;
    let mut alice = connect(addr, &token(&h.app, "alice"), false).await;
    let mut bob = connect(addr, &token(&h.app, "bob"), false).await;
    subscribe(&mut alice, "t", 2).await;
    subscribe(&mut bob, "t", 2).await;

    let (s, b) = mark_read(h, "bob", "t", json!({"seq": 2})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(next(&mut alice).await, read_frame("t", "bob", 2));
    assert_eq!(next(&mut bob).await, read_frame("t", "bob", 2));
    // A mark that moves nothing says nothing.
    let (s, b) = mark_read(h, "bob", "t", json!({"seq": 1})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_quiet(&mut alice).await;

    typing(&mut bob, "t").await;
    assert_eq!(next(&mut alice).await, typing_frame("t", "bob"));
    assert_quiet(&mut bob).await;
    // Again at once: dropped, without an answer.
    typing(&mut bob, "t").await;
    assert_quiet(&mut alice).await;
    assert_quiet(&mut bob).await;

    // A non-member, and a channel that does not exist: refused alike.
    let mut dave = connect(addr, &token(&h.app, "dave"), false).await;
    for id in ["t", "nowhere"] {
        typing(&mut dave, id).await;
        match next(&mut dave).await {
            ServerFrame::Error { channel, code, .. } => {
                assert_eq!(channel.as_deref(), Some(id));
                assert_eq!(code, codes::CHANNEL_NOT_FOUND);
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }
    assert_quiet(&mut alice).await;

    // After the interval, typing is relayed again.
    tokio::time::sleep(Duration::from_millis(
        sealkit_proto::chat::TYPING_INTERVAL_MS + 100,
    ))
    .await;
    typing(&mut bob, "t").await;
    assert_eq!(next(&mut alice).await, typing_frame("t", "bob"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_read_and_typing_sqlite() {
    live_frames(&harness().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_read_and_typing_postgres() {
    let (h, schema) = pg_harness().await;
    live_frames(&h).await;
    drop(h);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}

/// Two replicas on one PostgreSQL database: a horizon marked on one and typing on either reach
/// a subscriber of the other; a member typing on both replicas at once is relayed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_relay_read_and_typing() {
    let (a, schema) = pg_harness().await;
    let addr_a = listen(a.router.clone()).await;
    let addr_b = replica(&a, &schema).await;
    group_with_posts(&a, "x", &["bob"], 1).await;
    let mut alice_on_b = connect(addr_b, &token(&a.app, "alice"), false).await;
    subscribe(&mut alice_on_b, "x", 1).await;

    let (s, b) = mark_read(&a, "bob", "x", json!({"seq": 1})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(next(&mut alice_on_b).await, read_frame("x", "bob", 1));

    let mut bob_on_a = connect(addr_a, &token(&a.app, "bob"), false).await;
    let mut bob_on_b = connect(addr_b, &token(&a.app, "bob"), false).await;
    typing(&mut bob_on_a, "x").await;
    typing(&mut bob_on_b, "x").await;
    assert_eq!(next(&mut alice_on_b).await, typing_frame("x", "bob"));
    assert_quiet(&mut alice_on_b).await;
    assert_eq!(
        channel(&a, "alice", "x").await["last_seq"],
        1,
        "typing is not stored"
    );
    drop(a);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}
