//! Editing and deleting chat messages through the router: who may (typed refusals), what
//! history shows, and the `edited`/`deleted` WebSocket frames, on SQLite and PostgreSQL and
//! across two replicas on one PostgreSQL database (the `LISTEN` path).

use crate::common::{assert_error, harness, listen, pg_url, token, Harness};
use crate::http_chat::{assert_quiet, connect, next, pg_harness, send, Ws};
use axum::http::StatusCode;
use base64::Engine as _;
use sealkit_proto::chat::{codes, Message, ServerFrame};
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use serde_json::{json, Value};
use std::sync::Arc;

const CHANNELS: &str = "/chat/v1/channels";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn assert_code(status: StatusCode, body: &Value, expected: StatusCode, code: u32) {
    assert_error(status, body, expected);
    assert_eq!(body["code"].as_u64(), Some(u64::from(code)), "{body}");
}

async fn post(h: &Harness, tok: &str, client_id: &str) -> Value {
    let body = json!({
        "client_id": client_id,
        "ciphertext": b64(client_id.as_bytes()),
        "member_version": 1,
    });
    let (s, b) = h
        .json(
            "POST",
            &format!("{CHANNELS}/g/messages"),
            Some(tok),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

async fn edit(h: &Harness, tok: &str, seq: &str, text: &str, version: i64) -> (StatusCode, Value) {
    let body = json!({"ciphertext": b64(text.as_bytes()), "member_version": version});
    h.json(
        "PUT",
        &format!("{CHANNELS}/g/messages/{seq}"),
        Some(tok),
        Some(body),
    )
    .await
}

async fn delete(h: &Harness, tok: &str, seq: &str) -> (StatusCode, Value) {
    h.json(
        "DELETE",
        &format!("{CHANNELS}/g/messages/{seq}"),
        Some(tok),
        None,
    )
    .await
}

async fn messages(h: &Harness, tok: &str) -> Vec<Message> {
    let (s, b) = h
        .json("GET", &format!("{CHANNELS}/g/messages"), Some(tok), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    serde_json::from_value(b["messages"].clone()).unwrap()
}

async fn subscribed(addr: std::net::SocketAddr, tok: &str, after: i64) -> Ws {
    let mut ws = connect(addr, tok, false).await;
    send(
        &mut ws,
        json!({"type": "subscribe", "channel": "g", "after": after}),
    )
    .await;
    assert!(matches!(
        next(&mut ws).await,
        ServerFrame::Subscribed { .. }
    ));
    ws
}

async fn next_message(ws: &mut Ws) -> Message {
    match next(ws).await {
        ServerFrame::Message { message } => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn edits_and_deletes(h: &Harness) {
    let (alice, bob, carol, dave) = (
        token(&h.app, "alice"),
        token(&h.app, "bob"),
        token(&h.app, "carol"),
        token(&h.app, "dave"),
    );
    let (s, b) = h
        .json(
            "POST",
            CHANNELS,
            Some(&alice),
            Some(json!({"id": "g", "kind": "group", "members": ["bob", "carol"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    post(h, &alice, "from-alice").await;
    post(h, &bob, "from-bob").await;
    post(h, &carol, "from-carol").await;
    let addr = listen(h.router.clone()).await;
    let mut bob_ws = subscribed(addr, &bob, 0).await;
    for seq in 1..=3 {
        assert_eq!(next_message(&mut bob_ws).await.seq, seq);
    }

    // Refusals, each with its typed code; nothing changes.
    let (s, b) = edit(h, &bob, "1", "hijack", 1).await;
    assert_code(s, &b, StatusCode::FORBIDDEN, codes::NOT_THE_SENDER);
    let (s, b) = edit(h, &dave, "1", "outsider", 1).await;
    assert_code(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    for seq in ["0", "-2", "4"] {
        let (s, b) = edit(h, &alice, seq, "x", 1).await;
        assert_code(s, &b, StatusCode::NOT_FOUND, codes::MESSAGE_NOT_FOUND);
        let (s, b) = delete(h, &alice, seq).await;
        assert_code(s, &b, StatusCode::NOT_FOUND, codes::MESSAGE_NOT_FOUND);
    }
    let (s, b) = edit(h, &alice, "one", "x", 1).await;
    assert_code(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);
    let (s, b) = edit(h, &alice, "1", "stale", 7).await;
    assert_code(s, &b, StatusCode::CONFLICT, codes::STALE_MEMBERS);
    assert_eq!(b["channel"]["member_version"], 1, "{b}");
    let (s, b) = edit(h, &alice, "1", "", 1).await;
    assert_code(s, &b, StatusCode::BAD_REQUEST, codes::INVALID);
    let (s, b) = delete(h, &carol, "2").await;
    assert_code(s, &b, StatusCode::FORBIDDEN, codes::NOT_THE_SENDER);
    let (s, b) = delete(h, &dave, "2").await;
    assert_code(s, &b, StatusCode::NOT_FOUND, codes::CHANNEL_NOT_FOUND);
    assert!(messages(h, &bob)
        .await
        .iter()
        .all(|m| m.edited_at.is_none() && m.deleted.is_none()));

    // The sender edits: the answer, the live frame and history show the latest version.
    let (s, edited) = edit(h, &alice, "1", "from-alice v2", 1).await;
    assert_eq!(s, StatusCode::OK, "{edited}");
    let edited: Message = serde_json::from_value(edited).unwrap();
    assert_eq!(
        (
            edited.seq,
            edited.sender.as_str(),
            edited.ciphertext.as_str()
        ),
        (1, "alice", b64(b"from-alice v2").as_str())
    );
    let edited_at = edited.edited_at.expect("edited_at");
    assert!(edited_at >= edited.sent_at);
    assert_eq!(
        next(&mut bob_ws).await,
        ServerFrame::Edited {
            message: edited.clone()
        }
    );
    // The sender deletes; an admin deletes someone else's.
    let (s, b) = delete(h, &bob, "2").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let tombstone: Message = serde_json::from_value(b).unwrap();
    assert_eq!(tombstone.ciphertext, "");
    assert_eq!(
        tombstone.deleted.as_ref().map(|d| d.by.as_str()),
        Some("bob")
    );
    assert_eq!(
        next(&mut bob_ws).await,
        ServerFrame::Deleted {
            message: tombstone.clone()
        }
    );
    let (s, b) = delete(h, &alice, "3").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["deleted"]["by"], "alice", "{b}");
    assert!(matches!(
        next(&mut bob_ws).await,
        ServerFrame::Deleted { message } if message.seq == 3
    ));
    // Deleting again answers the same tombstone and announces nothing.
    let (s, b) = delete(h, &bob, "2").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(serde_json::from_value::<Message>(b).unwrap(), tombstone);
    let (s, b) = edit(h, &bob, "2", "revive", 1).await;
    assert_code(s, &b, StatusCode::CONFLICT, codes::MESSAGE_DELETED);
    assert_quiet(&mut bob_ws).await;

    // History, and a new subscription, show the latest state of every seq, gaps none.
    let page = messages(h, &carol).await;
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(page[0], edited);
    assert_eq!(page[1], tombstone);
    assert!(page[2].deleted.is_some() && page[2].ciphertext.is_empty());
    let mut carol_ws = subscribed(addr, &carol, 0).await;
    for expected in &page {
        assert_eq!(&next_message(&mut carol_ws).await, expected);
    }
    // A subscription that started after the older messages gets the edit of a newer one.
    let mut late = subscribed(addr, &carol, 3).await;
    post(h, &alice, "fourth").await;
    assert_eq!(next_message(&mut late).await.seq, 4);
    let (s, b) = edit(h, &alice, "4", "fourth v2", 1).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(matches!(
        next(&mut late).await,
        ServerFrame::Edited { message } if message.seq == 4 && message.edited_at.is_some()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_sqlite() {
    edits_and_deletes(&harness().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_postgres() {
    let (h, schema) = pg_harness().await;
    edits_and_deletes(&h).await;
    drop(h);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}

/// An edit and a delete through one replica reach a subscriber of another replica of the same
/// PostgreSQL database (through the chat events' `LISTEN`/`NOTIFY`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_deliver_each_others_edits() {
    let (a, schema) = pg_harness().await;
    let store_b: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&pg_url(), &schema)
            .await
            .unwrap(),
    );
    let mut config = Config::default();
    config.data_dir = a.dir.path().to_owned();
    let addr_b = listen(sealkit_server::app(config, store_b).await.unwrap()).await;
    let (alice, bob) = (token(&a.app, "alice"), token(&a.app, "bob"));
    let (s, b) = a
        .json(
            "POST",
            CHANNELS,
            Some(&alice),
            Some(json!({"id": "g", "kind": "group", "members": ["bob"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    post(&a, &alice, "one").await;
    let mut bob_ws = subscribed(addr_b, &bob, 0).await;
    assert_eq!(next_message(&mut bob_ws).await.seq, 1);
    let (s, b) = edit(&a, &alice, "1", "one v2", 1).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(matches!(
        next(&mut bob_ws).await,
        ServerFrame::Edited { message } if message.ciphertext == b64(b"one v2")
    ));
    let (s, b) = delete(&a, &alice, "1").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(matches!(
        next(&mut bob_ws).await,
        ServerFrame::Deleted { message } if message.ciphertext.is_empty()
    ));
    drop(a);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}
