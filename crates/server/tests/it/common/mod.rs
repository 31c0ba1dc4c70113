//! The in-process test harness shared by the HTTP tests: the router over SQLite in a temp dir,
//! two applications, token minting and request helpers.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt;
use rand_core::OsRng;
use sealkit_crypto::PrivateKey;
use sealkit_proto::cards::{CardContent, RawSignedModel};
use sealkit_proto::jwt::JwtGenerator;
use sealkit_server::admin::AppCredentials;
use sealkit_server::store::sqlite::SqliteStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

pub struct Harness {
    pub router: Router,
    pub dir: tempfile::TempDir,
    pub app: AppCredentials,
    pub other_app: AppCredentials,
}

pub async fn harness() -> Harness {
    harness_with(Config::default()).await
}

pub async fn harness_with(config: Config) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap(),
    );
    harness_in(config, store, dir).await
}

pub fn generator(creds: &AppCredentials) -> JwtGenerator {
    creds.generator(3600).unwrap()
}

pub fn token(creds: &AppCredentials, identity: &str) -> String {
    generator(creds)
        .generate(identity, sealkit_server::now())
        .unwrap()
        .to_string()
}

pub fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A hand-made token: any header and payload, signed with `key`.
pub fn craft(header: &Value, payload: &Value, key: &PrivateKey) -> String {
    let signed = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(payload.to_string().as_bytes())
    );
    let sig = sealkit_crypto::sign(signed.as_bytes(), key, &mut OsRng).unwrap();
    format!("{signed}.{}", b64url(&sig))
}

impl Harness {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Virgil {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("Content-Type", "application/json")
                .body(Body::from(b))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, bytes)
    }

    pub async fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, bytes) = self
            .call(
                method,
                path,
                token,
                body.map(|b| b.to_string().into_bytes()),
            )
            .await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }
}

pub fn card(identity: &str, key: &PrivateKey, previous: Option<&str>) -> RawSignedModel {
    let content = CardContent {
        identity: identity.to_owned(),
        previous_card_id: previous.map(str::to_owned),
        created_at: sealkit_server::now(),
        version: "5.0".to_owned(),
        public_key: key.public_key().to_base64(),
    };
    RawSignedModel::from_content(&content, key).unwrap()
}

pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert!(
        body["code"].as_u64().is_some_and(|c| c > 0),
        "no code: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
}

/// Like [`harness_with`], on a store the test opened (PostgreSQL, or a second replica's view of
/// one database). The two applications are created in it; `dir` holds the brainkey secret.
pub async fn harness_on(config: Config, store: Arc<dyn Store>) -> Harness {
    harness_in(config, store, tempfile::tempdir().unwrap()).await
}

/// The two applications created in `store`, and the router over it with `dir` as its data dir.
async fn harness_in(mut config: Config, store: Arc<dyn Store>, dir: tempfile::TempDir) -> Harness {
    let now = sealkit_server::now();
    let app = sealkit_server::admin::create_app(store.as_ref(), "test", now)
        .await
        .unwrap();
    let other_app = sealkit_server::admin::create_app(store.as_ref(), "other", now)
        .await
        .unwrap();
    config.data_dir = dir.path().to_owned();
    let router = sealkit_server::app(config, store).await.unwrap();
    Harness {
        router,
        dir,
        app,
        other_app,
    }
}

/// Serves `router` on a local port (for clients that need a socket, like WebSockets); the
/// server runs until the test's runtime ends.
pub async fn listen(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// The PostgreSQL server of the tests (`DATABASE_URL`, else the local default).
pub fn pg_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema name, unique per process, call and time, starting with `prefix`.
pub fn schema_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "sealkit_{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
