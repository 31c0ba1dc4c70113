//! Chat attachments over HTTP (`/chat/v1/channels/{id}/blobs`): streamed upload and download,
//! who may read what, the per-blob limit and the per-application quota as typed 413s, posts
//! naming blobs, deletion with a message and garbage collection, on SQLite and PostgreSQL.

use crate::common::{assert_error, harness_on, pg_url, schema_name, token, Harness};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use sealkit_proto::chat::codes;
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::sqlite::SqliteStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt as _;

const CHANNELS: &str = "/chat/v1/channels";

async fn sqlite_store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(&dir.path().join("blobs.sqlite"))
            .await
            .unwrap(),
    )
}

async fn pg_store() -> Arc<dyn Store> {
    Arc::new(
        PostgresStore::connect_fresh_schema(&pg_url(), &schema_name("blobs"))
            .await
            .expect("PostgreSQL reachable at DATABASE_URL"),
    )
}

/// Bytes that are not all alike (so a chunk out of order would show).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// Uploads `data` in 64 KiB pieces without a Content-Length (as a streaming client does), or
/// with one when `declared` is given.
async fn upload(
    h: &Harness,
    tok: &str,
    channel: &str,
    data: Vec<u8>,
    declared: Option<u64>,
) -> (StatusCode, Value) {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
    let mut request = Request::builder()
        .method("POST")
        .uri(format!("{CHANNELS}/{channel}/blobs"))
        .header("Authorization", format!("Virgil {tok}"))
        .header("Content-Type", "application/octet-stream");
    if let Some(len) = declared {
        request = request.header("Content-Length", len.to_string());
    }
    let request = request
        .body(Body::from_stream(futures_util::stream::iter(pieces)))
        .unwrap();
    let response = h.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// `GET` a blob: status, Content-Length header, body.
async fn download(
    h: &Harness,
    tok: &str,
    channel: &str,
    blob: &str,
) -> (StatusCode, Option<String>, Vec<u8>) {
    let (status, headers, body) = h
        .call(
            "GET",
            &format!("{CHANNELS}/{channel}/blobs/{blob}"),
            Some(tok),
            None,
        )
        .await;
    let len = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, len, body)
}

fn assert_code(status: StatusCode, body: &Value, expected: StatusCode, code: u32) {
    assert_error(status, body, expected);
    assert_eq!(body["code"].as_u64(), Some(u64::from(code)), "{body}");
}

/// The `{code, message}` of an answer's raw body.
fn error_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

async fn post_message(
    h: &Harness,
    tok: &str,
    channel: &str,
    client_id: &str,
    blobs: &[&str],
) -> (StatusCode, Value) {
    let body = json!({
        "client_id": client_id,
        "ciphertext": base64::engine::general_purpose::STANDARD.encode(b"opaque"),
        "member_version": 1,
        "blobs": blobs,
    });
    h.json(
        "POST",
        &format!("{CHANNELS}/{channel}/messages"),
        Some(tok),
        Some(body),
    )
    .await
}

async fn group(h: &Harness, tok: &str, id: &str, members: &[&str]) {
    let (status, body) = h
        .json(
            "POST",
            CHANNELS,
            Some(tok),
            Some(json!({"id": id, "kind": "group", "members": members})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Upload, download, visibility, posts naming blobs and deletion with the message.
async fn blobs_round_trip(store: Arc<dyn Store>) {
    let h = harness_on(Config::default(), store.clone()).await;
    let (alice, bob, carol) = (
        token(&h.app, "alice"),
        token(&h.app, "bob"),
        token(&h.app, "carol"),
    );
    group(&h, &alice, "team", &["bob"]).await;
    group(&h, &bob, "bobs", &[]).await;

    // Over two stored chunks, not a multiple of anything.
    let data = pattern((2 << 20) + 12_345, 1);
    let (status, uploaded) = upload(&h, &alice, "team", data.clone(), None).await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let blob = uploaded["id"].as_str().unwrap().to_owned();
    assert_eq!(blob.len(), 32);
    assert_eq!(uploaded["size"].as_u64(), Some(data.len() as u64));

    // Not named by a message yet: its uploader only.
    let (status, len, body) = download(&h, &alice, "team", &blob).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(len, Some(data.len().to_string()));
    assert!(body == data, "the uploader reads back other bytes");
    let (status, _, body) = download(&h, &bob, "team", &blob).await;
    assert_code(
        status,
        &error_body(&body),
        StatusCode::NOT_FOUND,
        codes::BLOB_NOT_FOUND,
    );

    // Outsiders learn nothing: the channel's 404, for uploads and downloads alike.
    let (status, body) = upload(&h, &carol, "team", b"x".to_vec(), None).await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        codes::CHANNEL_NOT_FOUND,
    );
    let (status, _, body) = download(&h, &carol, "team", &blob).await;
    assert_code(
        status,
        &error_body(&body),
        StatusCode::NOT_FOUND,
        codes::CHANNEL_NOT_FOUND,
    );
    let other = token(&h.other_app, "alice");
    let (status, _, body) = download(&h, &other, "team", &blob).await;
    assert_code(
        status,
        &error_body(&body),
        StatusCode::NOT_FOUND,
        codes::CHANNEL_NOT_FOUND,
    );

    // Bad ids are 400; unknown ones 404.
    let (status, _, body) = download(&h, &alice, "team", "..%2F..%2Fetc").await;
    assert_code(
        status,
        &error_body(&body),
        StatusCode::BAD_REQUEST,
        codes::INVALID,
    );
    let unknown = "0123456789abcdef0123456789abcdef";
    let (status, _, body) = download(&h, &alice, "team", unknown).await;
    assert_code(
        status,
        &error_body(&body),
        StatusCode::NOT_FOUND,
        codes::BLOB_NOT_FOUND,
    );

    // Posts: only the sender's own finished blob of this channel, once.
    let (status, body) = post_message(&h, &bob, "team", "b1", &[&blob]).await;
    assert_code(status, &body, StatusCode::CONFLICT, codes::BLOB_UNUSABLE);
    let (status, body) = post_message(&h, &alice, "team", "a0", &["nope"]).await;
    assert_code(status, &body, StatusCode::BAD_REQUEST, codes::INVALID);
    let (status, body) = post_message(&h, &alice, "team", "a0", &[&blob, &blob]).await;
    assert_code(status, &body, StatusCode::BAD_REQUEST, codes::INVALID);
    let (status, message) = post_message(&h, &alice, "team", "a1", &[&blob]).await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    let seq = message["seq"].as_i64().unwrap();
    let (status, body) = post_message(&h, &alice, "team", "a2", &[&blob]).await;
    assert_code(status, &body, StatusCode::CONFLICT, codes::BLOB_UNUSABLE);

    // Named: every member reads it, in this channel only.
    let (status, _, body) = download(&h, &bob, "team", &blob).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == data, "a member reads back other bytes");
    let (status, _, body) = download(&h, &bob, "bobs", &blob).await;
    assert_code(
        status,
        &error_body(&body),
        StatusCode::NOT_FOUND,
        codes::BLOB_NOT_FOUND,
    );

    // An empty file is a blob too.
    let (status, empty) = upload(&h, &bob, "team", Vec::new(), None).await;
    assert_eq!(status, StatusCode::CREATED, "{empty}");
    assert_eq!(empty["size"].as_u64(), Some(0));
    let (status, _, body) = download(&h, &bob, "team", empty["id"].as_str().unwrap()).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));

    // Deleting the message (what the delete path calls) deletes its blob.
    let app = h.app.app_id.to_string();
    assert_eq!(
        store
            .chat_delete_message_blobs(&app, "team", seq)
            .await
            .unwrap(),
        1
    );
    let (status, _, body) = download(&h, &bob, "team", &blob).await;
    assert_code(
        status,
        &error_body(&body),
        StatusCode::NOT_FOUND,
        codes::BLOB_NOT_FOUND,
    );
    assert_eq!(store.chat_blob_usage(&app).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_round_trip_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    blobs_round_trip(sqlite_store(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_round_trip_postgres() {
    blobs_round_trip(pg_store().await).await;
}

/// The per-blob limit and the per-application quota are typed 413s, and a refused upload
/// leaves nothing stored.
async fn blobs_limits(store: Arc<dyn Store>) {
    let mut config = Config::default();
    config.chat_blob_limit = (1 << 20) + 100;
    config.chat_blob_quota = (3 << 20) + 100;
    let h = harness_on(config, store.clone()).await;
    let app = h.app.app_id.to_string();
    let alice = token(&h.app, "alice");
    group(&h, &alice, "team", &[]).await;

    // Over the limit, found while streaming (no Content-Length) or from the header.
    let (status, body) = upload(&h, &alice, "team", pattern((1 << 20) + 101, 2), None).await;
    assert_code(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::BLOB_TOO_LARGE,
    );
    assert!(
        body["message"].as_str().unwrap().contains("1048676"),
        "{body}"
    );
    assert_eq!(store.chat_blob_usage(&app).await.unwrap(), 0);
    let (status, body) = upload(&h, &alice, "team", vec![1; 10], Some(5 << 20)).await;
    assert_code(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::BLOB_TOO_LARGE,
    );
    // Exactly the limit is fine.
    let (status, body) = upload(&h, &alice, "team", pattern((1 << 20) + 100, 3), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The quota counts every blob of the application.
    for n in 0..2 {
        let (status, body) = upload(&h, &alice, "team", pattern(1 << 20, n), None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let used = store.chat_blob_usage(&app).await.unwrap();
    assert_eq!(used, (3 << 20) + 100);
    let (status, body) = upload(&h, &alice, "team", pattern(4096, 9), None).await;
    assert_code(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::BLOB_QUOTA_EXCEEDED,
    );
    assert_eq!(store.chat_blob_usage(&app).await.unwrap(), used);
    // Another application has its own quota.
    let other = token(&h.other_app, "alice");
    group(&h, &other, "team", &[]).await;
    let (status, body) = upload(&h, &other, "team", pattern(4096, 9), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_limits_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    blobs_limits(sqlite_store(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_limits_postgres() {
    blobs_limits(pg_store().await).await;
}

/// An upload of several chunks that fails part way, while earlier chunks are already stored
/// (the quota runs out on its third chunk, or the connection breaks after two), answers the
/// failure and leaves nothing: no blob, no quota taken. Chunks are stored while the next ones
/// arrive, so this checks that a refusal stops the upload and that what was stored goes.
async fn blobs_failing_part_way(store: Arc<dyn Store>) {
    let mut config = Config::default();
    config.chat_blob_quota = (2 << 20) + (1 << 19);
    let h = harness_on(config, store.clone()).await;
    let app = h.app.app_id.to_string();
    let alice = token(&h.app, "alice");
    group(&h, &alice, "team", &[]).await;

    let (status, body) = upload(&h, &alice, "team", pattern(3 << 20, 5), None).await;
    assert_code(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::BLOB_QUOTA_EXCEEDED,
    );
    assert_eq!(store.chat_blob_usage(&app).await.unwrap(), 0);

    let mut pieces: Vec<Result<Vec<u8>, std::io::Error>> = pattern(2 << 20, 6)
        .chunks(64 << 10)
        .map(|c| Ok(c.to_vec()))
        .collect();
    pieces.push(Err(std::io::Error::other("connection reset")));
    let request = Request::builder()
        .method("POST")
        .uri(format!("{CHANNELS}/team/blobs"))
        .header("Authorization", format!("Virgil {alice}"))
        .body(Body::from_stream(futures_util::stream::iter(pieces)))
        .unwrap();
    let response = h.router.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_eq!(store.chat_blob_usage(&app).await.unwrap(), 0);

    // The quota is whole again: an upload that fits is taken.
    let (status, body) = upload(&h, &alice, "team", pattern(2 << 20, 7), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let blob = body["id"].as_str().unwrap().to_owned();
    let (status, _, bytes) = download(&h, &alice, "team", &blob).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, pattern(2 << 20, 7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_failing_part_way_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    blobs_failing_part_way(sqlite_store(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_failing_part_way_postgres() {
    blobs_failing_part_way(pg_store().await).await;
}

/// A blob no message names is deleted once the grace period is over; a named one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unposted_blobs_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let mut config = Config::default();
    config.chat_blob_grace_secs = 1;
    let h = harness_on(config, store.clone()).await;
    let alice = token(&h.app, "alice");
    group(&h, &alice, "team", &[]).await;
    let (_, unposted) = upload(&h, &alice, "team", pattern(1000, 4), None).await;
    let (_, posted) = upload(&h, &alice, "team", pattern(1000, 5), None).await;
    let (status, body) =
        post_message(&h, &alice, "team", "c1", &[posted["id"].as_str().unwrap()]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let app = h.app.app_id.to_string();
    let unposted = unposted["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.chat_blob(&app, unposted).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unposted blob was never collected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, body) = download(&h, &alice, "team", posted["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, pattern(1000, 5));
    assert_eq!(store.chat_blob_usage(&app).await.unwrap(), 1000);
}
