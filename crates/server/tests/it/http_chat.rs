//! The chat API (`/chat/v1`) end to end through the router: REST rules and error bodies, history
//! paging, and WebSocket delivery (backlog, live, resume, removal), on SQLite and PostgreSQL,
//! and across two replicas on one PostgreSQL database.

use crate::common;

use crate::common::{assert_error, harness, harness_on, listen, pg_url, token, Harness};
use axum::http::StatusCode;
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use sealkit_proto::chat::direct_channel_id;
use sealkit_proto::chat::{codes, ServerFrame};
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const CHANNELS: &str = "/chat/v1/channels";

fn schema_name() -> String {
    common::schema_name("chat")
}

/// A harness on a fresh PostgreSQL schema; returns the schema so a second replica can join.
pub(crate) async fn pg_harness() -> (Harness, String) {
    let schema = schema_name();
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_fresh_schema(&pg_url(), &schema)
            .await
            .expect("PostgreSQL reachable at DATABASE_URL"),
    );
    (harness_on(Config::default(), store).await, schema)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn code(body: &Value) -> u64 {
    body["code"].as_u64().unwrap_or(0)
}

/// Asserts a chat error: status, code and a message.
fn assert_chat_error(status: StatusCode, body: &Value, expected: StatusCode, expected_code: u32) {
    assert_error(status, body, expected);
    assert_eq!(code(body), u64::from(expected_code), "{body}");
}

struct Users {
    alice: String,
    bob: String,
    carol: String,
    dave: String,
}

fn users(h: &Harness) -> Users {
    Users {
        alice: token(&h.app, "alice"),
        bob: token(&h.app, "bob"),
        carol: token(&h.app, "carol"),
        dave: token(&h.app, "dave"),
    }
}

async fn create(h: &Harness, tok: &str, body: Value) -> (StatusCode, Value) {
    h.json("POST", CHANNELS, Some(tok), Some(body)).await
}

async fn post(h: &Harness, tok: &str, channel: &str, body: Value) -> (StatusCode, Value) {
    h.json(
        "POST",
        &format!("{CHANNELS}/{channel}/messages"),
        Some(tok),
        Some(body),
    )
    .await
}

fn message(client_id: &str, version: i64) -> Value {
    json!({
        "client_id": client_id,
        "ciphertext": b64(client_id.as_bytes()),
        "member_version": version,
    })
}

async fn history(h: &Harness, tok: &str, channel: &str, query: &str) -> (StatusCode, Value) {
    h.json(
        "GET",
        &format!("{CHANNELS}/{channel}/messages{query}"),
        Some(tok),
        None,
    )
    .await
}

fn seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

async fn rest_rules(h: &Harness) {
    let u = users(h);

    // Unauthenticated.
    let (s, b) = h.json("GET", CHANNELS, None, None).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED);
    let (s, b) = h
        .json(
            "POST",
            CHANNELS,
            None,
            Some(json!({"id": "x", "kind": "group"})),
        )
        .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED);

    // Create a group.
    let (s, general) = create(
        h,
        &u.alice,
        json!({"id": "general", "kind": "group", "members": ["bob", "bob"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{general}");
    assert_eq!(general["admins"], json!(["alice"]));
    assert_eq!(general["members"], json!(["alice", "bob"]));
    assert_eq!(general["member_version"], 1);
    assert_eq!(general["last_seq"], 0);
    assert_eq!(general["created_by"], "alice");
    assert_eq!(general["kind"], "group");
    let (s, b) = create(h, &u.bob, json!({"id": "general", "kind": "group"})).await;
    assert_chat_error(s, &b, StatusCode::CONFLICT, codes::CHANNEL_EXISTS);
    let (s, b) = create(h, &u.alice, json!({"id": "no spaces", "kind": "group"})).await;
    assert_chat_error(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);
    let (s, b) = create(
        h,
        &u.alice,
        json!({"id": "ctl", "kind": "group", "members": ["a\u{7}b"]}),
    )
    .await;
    assert_chat_error(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);
    let too_many: Vec<String> = (0..sealkit_proto::chat::MAX_MEMBERS)
        .map(|i| format!("u{i}"))
        .collect();
    let (s, b) = create(
        h,
        &u.alice,
        json!({"id": "huge", "kind": "group", "members": too_many}),
    )
    .await;
    assert_chat_error(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);

    // Direct channels: exactly one other member, never open, fixed.
    for bad in [
        json!({"id": "d", "kind": "direct", "members": []}),
        json!({"id": "d", "kind": "direct", "members": ["alice"]}),
        json!({"id": "d", "kind": "direct", "members": ["bob", "carol"]}),
        json!({"id": "d", "kind": "direct", "members": ["bob"], "open": true}),
    ] {
        let (s, b) = create(h, &u.alice, bad.clone()).await;
        assert_chat_error(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);
    }
    let (s, dm) = create(
        h,
        &u.alice,
        json!({"id": direct_channel_id("alice", "bob"), "kind": "direct", "members": ["bob"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{dm}");
    assert_eq!(dm["members"], json!(["alice", "bob"]));
    let (s, b) = h
        .json(
            "POST",
            &format!("{CHANNELS}/{}/members", direct_channel_id("alice", "bob")),
            Some(&u.alice),
            Some(json!({"identity": "carol"})),
        )
        .await;
    assert_chat_error(s, &b, StatusCode::CONFLICT, codes::MEMBERSHIP_RULE);
    let (s, b) = h
        .json(
            "DELETE",
            &format!(
                "{CHANNELS}/{}/members/bob",
                direct_channel_id("alice", "bob")
            ),
            Some(&u.alice),
            None,
        )
        .await;
    assert_chat_error(s, &b, StatusCode::CONFLICT, codes::MEMBERSHIP_RULE);

    // Reading: members only; unknown channels are 404, also across applications.
    let (s, b) = h
        .json("GET", &format!("{CHANNELS}/general"), Some(&u.bob), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, general);
    let (s, b) = h
        .json("GET", &format!("{CHANNELS}/general"), Some(&u.carol), None)
        .await;
    assert_chat_error(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    let (s, b) = h
        .json("GET", &format!("{CHANNELS}/nothing"), Some(&u.alice), None)
        .await;
    assert_chat_error(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    let other_alice = token(&h.other_app, "alice");
    let (s, b) = h
        .json(
            "GET",
            &format!("{CHANNELS}/general"),
            Some(&other_alice),
            None,
        )
        .await;
    assert_chat_error(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    let (s, b) = h.json("GET", CHANNELS, Some(&u.bob), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ids: Vec<&str> = b["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [direct_channel_id("alice", "bob").as_str(), "general"]);
    let (s, b) = h.json("GET", CHANNELS, Some(&other_alice), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["channels"], json!([]));

    // Adding: admins only, except joining an open channel.
    let add = |tok: String, channel: &'static str, who: &'static str| async move {
        h.json(
            "POST",
            &format!("{CHANNELS}/{channel}/members"),
            Some(&tok),
            Some(json!({ "identity": who })),
        )
        .await
    };
    let (s, b) = add(u.bob.clone(), "general", "carol").await;
    assert_chat_error(s, &b, StatusCode::FORBIDDEN, codes::NOT_AN_ADMIN);
    let (s, b) = add(u.carol.clone(), "general", "carol").await;
    assert_chat_error(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    let (s, b) = add(u.alice.clone(), "general", "carol").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["members"], json!(["alice", "bob", "carol"]));
    assert_eq!(b["member_version"], 2);
    let (s, b) = add(u.alice.clone(), "nothing", "carol").await;
    assert_chat_error(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    let (s, lobby) = create(
        h,
        &u.alice,
        json!({"id": "lobby", "kind": "group", "open": true}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{lobby}");
    let (s, b) = add(u.dave.clone(), "lobby", "dave").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["members"], json!(["alice", "dave"]));
    let (s, b) = add(u.dave.clone(), "lobby", "carol").await;
    assert_chat_error(s, &b, StatusCode::FORBIDDEN, codes::NOT_AN_ADMIN);
    let (s, b) = create(
        h,
        &u.alice,
        json!({"id": "full", "kind": "group", "members": too_many[1..]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{}", code(&b));
    assert_eq!(
        b["members"].as_array().unwrap().len(),
        sealkit_proto::chat::MAX_MEMBERS
    );
    let (s, b) = add(u.alice.clone(), "full", "one-more").await;
    assert_chat_error(s, &b, StatusCode::CONFLICT, codes::MEMBERSHIP_RULE);

    // Posting.
    let (s, b) = post(h, &u.carol, "general", message("m1", 1)).await;
    assert_chat_error(s, &b, StatusCode::CONFLICT, codes::STALE_MEMBERS);
    assert!(b["message"].as_str().unwrap().contains('2'), "{b}");
    // The refusal carries the channel as GET answers it, so the sender re-encrypts at once.
    let (s, current) = h
        .json("GET", &format!("{CHANNELS}/general"), Some(&u.carol), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{current}");
    assert_eq!(b["channel"], current, "{b}");
    assert_eq!(b["channel"]["member_version"], 2);
    assert_eq!(b["channel"]["members"], json!(["alice", "bob", "carol"]));
    let (s, first) = post(h, &u.carol, "general", message("m1", 2)).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["sender"], "carol");
    assert_eq!(first["channel"], "general");
    assert_eq!(first["ciphertext"], b64(b"m1"));
    // A retry (even with a stale version) answers the stored message.
    let (s, again) = post(h, &u.carol, "general", message("m1", 2)).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again, first);
    let (s, b) = post(h, &u.dave, "general", message("m2", 2)).await;
    assert_chat_error(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    let (s, b) = post(h, &u.alice, "nothing", message("m2", 1)).await;
    assert_chat_error(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    let (s, b) = post(
        h,
        &u.alice,
        "general",
        json!({"client_id": "m2", "ciphertext": "not base64!", "member_version": 2}),
    )
    .await;
    assert_chat_error(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);
    let (s, b) = post(h, &u.alice, "general", message("bad:id", 2)).await;
    assert_chat_error(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);
    let limit = Config::default().chat_message_limit;
    let (s, b) = post(
        h,
        &u.alice,
        "general",
        json!({"client_id": "big", "ciphertext": b64(&vec![7u8; limit + 1]), "member_version": 2}),
    )
    .await;
    assert_chat_error(
        s,
        &b,
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::MESSAGE_TOO_LARGE,
    );
    let (s, b) = post(
        h,
        &u.alice,
        "general",
        json!({"client_id": "big", "ciphertext": b64(&vec![7u8; limit]), "member_version": 2}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{}", code(&b));
    assert_eq!(b["seq"], 2);
    let (s, b) = post(h, &u.alice, "general", json!({"client_id": "x"})).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST);

    // History errors.
    let (s, b) = history(h, &u.dave, "general", "").await;
    assert_chat_error(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    let (s, b) = history(h, &u.alice, "nothing", "").await;
    assert_chat_error(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    for bad in [
        "?after=1&before=3",
        "?after=-1",
        "?before=-5",
        "?limit=0",
        "?limit=-1",
        "?limit=abc",
        "?after=1.5",
    ] {
        let (s, b) = history(h, &u.alice, "general", bad).await;
        assert_chat_error(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);
    }

    // Removing: admins remove anyone, members themselves; the last admin stays.
    let remove = |tok: String, who: &'static str| async move {
        h.json(
            "DELETE",
            &format!("{CHANNELS}/general/members/{who}"),
            Some(&tok),
            None,
        )
        .await
    };
    let (s, b) = remove(u.bob.clone(), "carol").await;
    assert_chat_error(s, &b, StatusCode::FORBIDDEN, codes::NOT_AN_ADMIN);
    let (s, b) = remove(u.alice.clone(), "dave").await;
    assert_chat_error(s, &b, StatusCode::FORBIDDEN, codes::NOT_A_MEMBER);
    let (s, b) = remove(u.carol.clone(), "carol").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["members"], json!(["alice", "bob"]));
    assert_eq!(b["member_version"], 3);
    let (s, b) = history(h, &u.carol, "general", "").await;
    assert_chat_error(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    let (s, b) = remove(u.alice.clone(), "alice").await;
    assert_chat_error(s, &b, StatusCode::CONFLICT, codes::MEMBERSHIP_RULE);
    let (s, b) = remove(u.alice.clone(), "bob").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["members"], json!(["alice"]));

    // An identity that needs escaping in a path is removed by its percent-encoded form.
    let odd = "bob smith/\u{fc}@x?";
    let (s, b) = add(u.alice.clone(), "general", odd).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["members"], json!(["alice", odd]));
    let (s, b) = h
        .json(
            "DELETE",
            &format!("{CHANNELS}/general/members/bob%20smith%2F%C3%BC%40x%3F"),
            Some(&u.alice),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["members"], json!(["alice"]));
}

async fn history_paging(h: &Harness) {
    let u = users(h);
    let (s, b) = create(
        h,
        &u.alice,
        json!({"id": "pages", "kind": "group", "members": ["bob"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    for i in 1..=7 {
        let tok = if i % 2 == 0 { &u.bob } else { &u.alice };
        let (s, b) = post(h, tok, "pages", message(&format!("c{i}"), 1)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["seq"], i);
    }
    let cases: [(&str, &[i64], bool); 10] = [
        ("?after=0&limit=3", &[1, 2, 3], true),
        ("?after=3&limit=3", &[4, 5, 6], true),
        ("?after=6&limit=3", &[7], false),
        ("?after=4&limit=3", &[5, 6, 7], false),
        ("?after=7", &[], false),
        ("?limit=3", &[5, 6, 7], true),
        ("?before=5&limit=3", &[2, 3, 4], true),
        ("?before=2&limit=3", &[1], false),
        ("", &[1, 2, 3, 4, 5, 6, 7], false),
        ("?limit=100000", &[1, 2, 3, 4, 5, 6, 7], false),
    ];
    for (query, expected, more) in cases {
        let (s, page) = history(h, &u.bob, "pages", query).await;
        assert_eq!(s, StatusCode::OK, "{query}: {page}");
        assert_eq!(seqs(&page), expected, "{query}");
        assert_eq!(page["more"], more, "{query}");
    }
    let (_, page) = history(h, &u.alice, "pages", "?after=1&limit=1").await;
    let m = &page["messages"][0];
    assert_eq!(m["sender"], "bob");
    assert_eq!(m["client_id"], "c2");
    assert_eq!(m["member_version"], 1);
    assert_eq!(m["ciphertext"], b64(b"c2"));
    assert!(m["sent_at"].as_i64().unwrap() > 1_700_000_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_rules_sqlite() {
    rest_rules(&harness().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_rules_postgres() {
    let (h, schema) = pg_harness().await;
    rest_rules(&h).await;
    drop(h);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_paging_sqlite() {
    history_paging(&harness().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_paging_postgres() {
    let (h, schema) = pg_harness().await;
    history_paging(&h).await;
    drop(h);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the chat WebSocket with the token in the header, or in the query when `in_query`.
pub(crate) async fn connect(addr: std::net::SocketAddr, tok: &str, in_query: bool) -> Ws {
    let url = if in_query {
        format!("ws://{addr}/chat/v1/ws?token={tok}")
    } else {
        format!("ws://{addr}/chat/v1/ws")
    };
    let mut request = url.into_client_request().unwrap();
    if !in_query {
        request
            .headers_mut()
            .insert("Authorization", format!("Virgil {tok}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

pub(crate) async fn send(ws: &mut Ws, frame: Value) {
    ws.send(WsMessage::text(frame.to_string())).await.unwrap();
}

/// The next server frame (skipping WebSocket pings), failing after 10 s.
pub(crate) async fn next(ws: &mut Ws) -> ServerFrame {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket is open")
            .unwrap();
        match msg {
            WsMessage::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Asserts that no frame arrives for a while (answers a ping to prove the socket is alive).
pub(crate) async fn assert_quiet(ws: &mut Ws) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(ws, json!({"type": "ping"})).await;
    assert_eq!(next(ws).await, ServerFrame::Pong);
}

async fn next_seq(ws: &mut Ws) -> i64 {
    match next(ws).await {
        ServerFrame::Message { message } => message.seq,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn subscribe(ws: &mut Ws, channel: &str, after: i64) -> ServerFrame {
    send(
        ws,
        json!({"type": "subscribe", "channel": channel, "after": after}),
    )
    .await;
    next(ws).await
}

async fn websocket_delivery(h: &Harness) {
    let u = users(h);
    let addr = listen(h.router.clone()).await;
    let (s, b) = create(
        h,
        &u.alice,
        json!({"id": "room", "kind": "group", "members": ["bob", "carol"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    for i in 1..=3 {
        let (s, b) = post(h, &u.alice, "room", message(&format!("a{i}"), 1)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    // Backlog, then live, in order.
    let mut bob = connect(addr, &u.bob, false).await;
    assert_eq!(
        subscribe(&mut bob, "room", 0).await,
        ServerFrame::Subscribed {
            channel: "room".into(),
            last_seq: 3
        }
    );
    for seq in 1..=3 {
        assert_eq!(next_seq(&mut bob).await, seq);
    }
    assert_quiet(&mut bob).await;
    let (s, b) = post(h, &u.carol, "room", message("c4", 1)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    match next(&mut bob).await {
        ServerFrame::Message { message } => {
            assert_eq!(message.seq, 4);
            assert_eq!(message.sender, "carol");
            assert_eq!(message.client_id, "c4");
            assert_eq!(message.ciphertext, b64(b"c4"));
            assert_eq!(message.channel, "room");
        }
        other => panic!("expected message 4, got {other:?}"),
    }

    // A second subscriber (token in the query) resuming after 2 gets exactly 3 and 4, then
    // both get the live ones; a duplicate post is not delivered again.
    let mut carol = connect(addr, &u.carol, true).await;
    assert_eq!(
        subscribe(&mut carol, "room", 2).await,
        ServerFrame::Subscribed {
            channel: "room".into(),
            last_seq: 4
        }
    );
    assert_eq!(next_seq(&mut carol).await, 3);
    assert_eq!(next_seq(&mut carol).await, 4);
    for i in 5..=6 {
        let (s, b) = post(h, &u.bob, "room", message(&format!("b{i}"), 1)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, _) = post(h, &u.bob, "room", message("b5", 1)).await;
    assert_eq!(s, StatusCode::OK);
    for ws in [&mut bob, &mut carol] {
        assert_eq!(next_seq(ws).await, 5);
        assert_eq!(next_seq(ws).await, 6);
        assert_quiet(ws).await;
    }

    // Ping, bad frames (the connection stays), errors for channels one may not read.
    send(&mut bob, json!({"type": "ping"})).await;
    assert_eq!(next(&mut bob).await, ServerFrame::Pong);
    for bad in [
        json!({"type": "dance"}),
        json!({"type": "subscribe"}),
        json!([1]),
    ] {
        send(&mut bob, bad).await;
        match next(&mut bob).await {
            ServerFrame::Error {
                code,
                channel: None,
                ..
            } => assert_eq!(code, codes::INVALID),
            other => panic!("expected an error, got {other:?}"),
        }
    }
    bob.send(WsMessage::text("not json")).await.unwrap();
    assert!(matches!(next(&mut bob).await, ServerFrame::Error { .. }));
    let (s, b) = create(h, &u.alice, json!({"id": "secret", "kind": "group"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    match subscribe(&mut bob, "secret", 0).await {
        ServerFrame::Error { channel, code, .. } => {
            assert_eq!(channel.as_deref(), Some("secret"));
            assert_eq!(code, codes::CHANNEL_NOT_FOUND);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    match subscribe(&mut bob, "nothing", 0).await {
        ServerFrame::Error { channel, code, .. } => {
            assert_eq!(channel.as_deref(), Some("nothing"));
            assert_eq!(code, codes::CHANNEL_NOT_FOUND);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    match subscribe(&mut bob, "bad id", 0).await {
        ServerFrame::Error { code, .. } => assert_eq!(code, codes::INVALID),
        other => panic!("expected an error, got {other:?}"),
    }
    send(&mut bob, json!({"type": "ping"})).await;
    assert_eq!(next(&mut bob).await, ServerFrame::Pong);

    // Membership: carol leaves; bob hears the new version, carol is removed and hears nothing
    // more.
    let (s, b) = h
        .json(
            "DELETE",
            &format!("{CHANNELS}/room/members/carol"),
            Some(&u.carol),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        next(&mut carol).await,
        ServerFrame::Removed {
            channel: "room".into()
        }
    );
    assert_eq!(
        next(&mut bob).await,
        ServerFrame::Members {
            channel: "room".into(),
            member_version: 2
        }
    );
    let (s, b) = post(h, &u.alice, "room", message("a7", 2)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(next_seq(&mut bob).await, 7);
    assert_quiet(&mut carol).await;

    // Unsubscribe stops delivery.
    send(&mut bob, json!({"type": "unsubscribe", "channel": "room"})).await;
    let (s, b) = post(h, &u.alice, "room", message("a8", 2)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_quiet(&mut bob).await;
    // ... and resubscribing from where it stopped resumes exactly there.
    assert_eq!(
        subscribe(&mut bob, "room", 7).await,
        ServerFrame::Subscribed {
            channel: "room".into(),
            last_seq: 8
        }
    );
    assert_eq!(next_seq(&mut bob).await, 8);
    assert_quiet(&mut bob).await;
    bob.close(None).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(msg)) = bob.next().await {
            if msg.is_close() {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(closed, "the server completes the closing handshake");

    // A plain GET (no upgrade) is a typed error, after authentication.
    let (s, b) = h.json("GET", "/chat/v1/ws", Some(&u.bob), None).await;
    assert_chat_error(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);
    let (s, b) = h.json("GET", "/chat/v1/ws", None, None).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED);

    // Bad credentials are refused before the upgrade, as HTTP 401.
    for url in [
        format!("ws://{addr}/chat/v1/ws"),
        format!("ws://{addr}/chat/v1/ws?token=garbage"),
    ] {
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            }
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
    }
}

/// Many concurrent posters: every subscriber sees 1..=N once each, in order.
async fn concurrent_fan_out(h: &Harness) {
    let u = users(h);
    let addr = listen(h.router.clone()).await;
    let (s, b) = create(
        h,
        &u.alice,
        json!({"id": "busy", "kind": "group", "members": ["bob"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        let mut ws = connect(addr, &u.bob, false).await;
        assert!(matches!(
            subscribe(&mut ws, "busy", 0).await,
            ServerFrame::Subscribed { .. }
        ));
        subscribers.push(ws);
    }
    const N: i64 = 60;
    let mut posts = tokio::task::JoinSet::new();
    for poster in 0..4 {
        let router = h.router.clone();
        let tok = if poster % 2 == 0 {
            u.alice.clone()
        } else {
            u.bob.clone()
        };
        posts.spawn(async move {
            for i in 0..N / 4 {
                let body = message(&format!("p{poster}-{i}"), 1).to_string();
                let request = axum::http::Request::post(format!("{CHANNELS}/busy/messages"))
                    .header("Authorization", format!("Virgil {tok}"))
                    .header("Content-Type", "application/json")
                    .body(axum::body::Body::from(body))
                    .unwrap();
                let response = tower::ServiceExt::oneshot(router.clone(), request)
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
            }
        });
    }
    // A late subscriber joins while the posts flow: its backlog and the live broadcast
    // overlap, and it must still see every seq once.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut late = connect(addr, &u.alice, true).await;
    assert!(matches!(
        subscribe(&mut late, "busy", 0).await,
        ServerFrame::Subscribed { .. }
    ));
    subscribers.push(late);
    while let Some(done) = posts.join_next().await {
        done.unwrap();
    }
    for ws in &mut subscribers {
        for seq in 1..=N {
            assert_eq!(next_seq(ws).await, seq);
        }
        assert_quiet(ws).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sqlite() {
    let h = harness().await;
    websocket_delivery(&h).await;
    concurrent_fan_out(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_postgres() {
    let (h, schema) = pg_harness().await;
    websocket_delivery(&h).await;
    concurrent_fan_out(&h).await;
    drop(h);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}

/// Two replicas on one PostgreSQL database: a post through one reaches a WebSocket subscriber
/// of the other, live and in order, and membership changes made on one reach the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_deliver_each_others_messages() {
    let (a, schema) = pg_harness().await;
    let store_b: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&pg_url(), &schema)
            .await
            .unwrap(),
    );
    let mut config = Config::default();
    config.data_dir = a.dir.path().to_owned();
    let router_b = sealkit_server::app(config, store_b).await.unwrap();
    let addr_b = listen(router_b).await;
    let u = users(&a);
    let (s, b) = create(
        &a,
        &u.alice,
        json!({"id": "x", "kind": "group", "members": ["bob", "carol"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(&a, &u.alice, "x", message("before", 1)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    let mut bob = connect(addr_b, &u.bob, false).await;
    let mut carol = connect(addr_b, &u.carol, true).await;
    for ws in [&mut bob, &mut carol] {
        assert_eq!(
            subscribe(ws, "x", 0).await,
            ServerFrame::Subscribed {
                channel: "x".into(),
                last_seq: 1
            }
        );
        assert_eq!(next_seq(ws).await, 1);
    }
    for i in 2..=5 {
        let (s, b) = post(&a, &u.alice, "x", message(&format!("live{i}"), 1)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    for ws in [&mut bob, &mut carol] {
        for seq in 2..=5 {
            assert_eq!(next_seq(ws).await, seq);
        }
    }
    let (s, b) = a
        .json(
            "DELETE",
            &format!("{CHANNELS}/x/members/carol"),
            Some(&u.alice),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        next(&mut carol).await,
        ServerFrame::Removed {
            channel: "x".into()
        }
    );
    assert_eq!(
        next(&mut bob).await,
        ServerFrame::Members {
            channel: "x".into(),
            member_version: 2
        }
    );
    let (s, b) = post(&a, &u.bob, "x", message("after", 2)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(next_seq(&mut bob).await, 6);
    assert_quiet(&mut bob).await;
    assert_quiet(&mut carol).await;
    drop(a);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}

/// Feeds that hold only two messages per subscriber: subscribers fall behind the broadcast
/// under concurrent posts and must catch up from the store without gaps or repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_subscribers_catch_up_from_the_store() {
    let mut config = Config::default();
    config.chat_feed_capacity = 2;
    let h = common::harness_with(config).await;
    concurrent_fan_out(&h).await;

    // A client that stops reading: the server's socket buffer and queue fill, its subscription
    // falls behind the feed, and once the client reads again it gets everything, in order.
    let u = users(&h);
    let addr = listen(h.router.clone()).await;
    let (s, b) = create(
        &h,
        &u.alice,
        json!({"id": "slow", "kind": "group", "members": ["bob"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut request = format!("ws://{addr}/chat/v1/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Authorization",
        format!("Virgil {}", u.bob).parse().unwrap(),
    );
    let (mut bob, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    assert!(matches!(
        subscribe(&mut bob, "slow", 0).await,
        ServerFrame::Subscribed { .. }
    ));
    const N: i64 = 400;
    let ciphertext = b64(&[9u8; 16 << 10]);
    for i in 1..=N {
        let body =
            json!({"client_id": format!("s{i}"), "ciphertext": ciphertext, "member_version": 1});
        let (s, b) = post(&h, &u.alice, "slow", body).await;
        assert_eq!(s, StatusCode::CREATED, "{}", code(&b));
    }
    for seq in 1..=N {
        assert_eq!(next_seq(&mut bob).await, seq);
    }
    assert_quiet(&mut bob).await;
}

/// A fresh PostgreSQL database (not a schema: the test below ends connections by database).
async fn fresh_database() -> (String, String) {
    use sqlx::{Connection as _, Executor as _};
    let base = pg_url();
    let name = schema_name();
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    conn.close().await.unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    (format!("{prefix}/{name}"), name)
}

/// The replica's `LISTEN` connection dies and messages are posted right after: whether their
/// notifications were lost (then the store's `Resync` brings them) or arrive on the new
/// connection, the subscriber gets them, and live delivery goes on. (That a resync alone
/// recovers lost events is shown deterministically by the hub's unit test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_notifications_are_recovered_after_listen_reconnects() {
    use sqlx::{Connection as _, Executor as _};
    let (url, name) = fresh_database().await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let h = harness_on(Config::default(), store).await;
    let addr = listen(h.router.clone()).await;
    let u = users(&h);
    let (s, b) = create(
        &h,
        &u.alice,
        json!({"id": "r", "kind": "group", "members": ["bob"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let mut bob = connect(addr, &u.bob, false).await;
    assert!(matches!(
        subscribe(&mut bob, "r", 0).await,
        ServerFrame::Subscribed { .. }
    ));
    let (s, _) = post(&h, &u.alice, "r", message("one", 1)).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(next_seq(&mut bob).await, 1);

    let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query ILIKE 'LISTEN%'",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "no LISTEN connection found");
    // Post once the old connection is gone, before the listener's first reconnect attempt.
    for _ in 0..100 {
        let left: (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'",
        )
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if left.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 2..=3 {
        let (s, b) = post(&h, &u.alice, "r", message(&format!("m{i}"), 1)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    // Nothing else is posted until both arrive.
    assert_eq!(next_seq(&mut bob).await, 2);
    assert_eq!(next_seq(&mut bob).await, 3);
    // Live delivery works again afterwards.
    let (s, _) = post(&h, &u.alice, "r", message("four", 1)).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(next_seq(&mut bob).await, 4);
    assert_quiet(&mut bob).await;

    drop(bob);
    drop(h);
    let _ = admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await;
}

/// The global body limit does not cap chat messages: the post route allows what the chat
/// message limit needs, while other routes keep the global limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_message_limit_is_independent_of_the_body_limit() {
    let mut config = Config::default();
    config.body_limit = 1024;
    config.chat_message_limit = 8192;
    let h = common::harness_with(config).await;
    let u = users(&h);
    let (s, b) = create(&h, &u.alice, json!({"id": "big", "kind": "group"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let body = |n: usize, id: &str| {
        let ciphertext = b64(&vec![1u8; n]);
        json!({"client_id": id, "ciphertext": ciphertext, "member_version": 1})
    };
    let (s, b) = post(&h, &u.alice, "big", body(8192, "fits")).await;
    assert_eq!(s, StatusCode::CREATED, "{}", code(&b));
    let (s, b) = post(&h, &u.alice, "big", body(8193, "over")).await;
    assert_chat_error(
        s,
        &b,
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::MESSAGE_TOO_LARGE,
    );
    let (s, b) = create(
        &h,
        &u.alice,
        json!({"id": "x", "kind": "group", "members": vec!["m".repeat(100); 20]}),
    )
    .await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE);
}

/// One channel, many sockets: every subscriber gets every message once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_many_sockets() {
    let mut config = Config::default();
    // Far more sockets per identity than the default allows, on purpose.
    config.chat_sockets_per_identity = 200;
    let h = common::harness_with(config).await;
    let u = users(&h);
    let addr = listen(h.router.clone()).await;
    let (s, b) = create(
        &h,
        &u.alice,
        json!({"id": "crowd", "kind": "group", "open": true}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(&h, &u.alice, "crowd", message("first", 1)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    const SOCKETS: usize = 200;
    const MESSAGES: i64 = 20;
    let mut sockets = Vec::new();
    for i in 0..SOCKETS {
        // Half as bob, half as the author herself; several sockets per identity.
        let tok = if i % 2 == 0 { &u.bob } else { &u.alice };
        if i == 0 {
            let (s, b) = h
                .json(
                    "POST",
                    &format!("{CHANNELS}/crowd/members"),
                    Some(&u.bob),
                    Some(json!({"identity": "bob"})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
        let mut ws = connect(addr, tok, i % 3 == 0).await;
        let after = i64::from(i % 2 == 0);
        send(
            &mut ws,
            json!({"type": "subscribe", "channel": "crowd", "after": after}),
        )
        .await;
        sockets.push((ws, after));
    }
    for (ws, _) in &mut sockets {
        assert!(matches!(next(ws).await, ServerFrame::Subscribed { .. }));
    }
    for i in 2..=MESSAGES {
        let (s, b) = post(&h, &u.alice, "crowd", message(&format!("m{i}"), 2)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    for (ws, after) in &mut sockets {
        for seq in *after + 1..=MESSAGES {
            assert_eq!(next_seq(ws).await, seq);
        }
    }
    for (ws, _) in sockets.iter_mut().take(5) {
        assert_quiet(ws).await;
    }
}

/// A WebSocket lasts only as long as its token: the server closes it (1008) at expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_closes_when_its_token_expires() {
    let mut config = Config::default();
    config.jwt_leeway_secs = 0;
    let h = common::harness_with(config).await;
    let addr = listen(h.router.clone()).await;
    let short = h
        .app
        .generator(2)
        .unwrap()
        .generate("bob", sealkit_server::now())
        .unwrap()
        .to_string();
    let mut ws = connect(addr, &short, false).await;
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await, ServerFrame::Pong);
    let started = std::time::Instant::now();
    let close = loop {
        let msg = tokio::time::timeout(Duration::from_secs(6), ws.next())
            .await
            .expect("closed within 6 s")
            .expect("a close frame before the end")
            .unwrap();
        if let WsMessage::Close(frame) = msg {
            break frame;
        }
    };
    let close = close.expect("a close code");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "token expired");
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
