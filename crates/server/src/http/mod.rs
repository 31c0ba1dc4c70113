//! The HTTP surface: one router per resource, merged here, with the cross-cutting layers (CORS
//! for browser e3kit, body limit, JSON errors for unknown routes, metrics and logs).

pub mod auth;
pub mod cards;
pub mod chat;
pub mod chat_blobs;
pub mod error;
pub mod keyknox;
pub mod kt;
pub mod pfs;
pub mod pythia;

use crate::metrics::Metrics;
use crate::service::auth::Authenticator;
use crate::store::Store;
use crate::Config;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use error::ApiError;
use sealkit_crypto::PrivateKey;
use std::sync::Arc;
use std::time::Instant;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The service's own keys.
pub struct ServiceKeys {
    /// Signs every published card as signer `"virgil"`.
    pub card_signer: PrivateKey,
}

impl std::fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKeys")
            .field("card_signer", &self.card_signer)
            .finish()
    }
}

/// Shared state of every handler; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Service keys.
    pub keys: Arc<ServiceKeys>,
    /// Configuration.
    pub config: Arc<Config>,
    /// JWT verification.
    pub auth: Arc<Authenticator>,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// Pythia brainkey.
    pub brainkey: Arc<crate::service::pythia::Brainkey>,
    /// Live chat WebSockets per identity on this process.
    pub chat_sockets: Arc<chat::SocketCounter>,
    /// Chat fan-out to this process's WebSocket subscribers.
    pub chat: Arc<crate::service::chat::ChatHub<axum::extract::ws::Utf8Bytes>>,
    /// Key transparency: directories, proofs and (on the elected process) the publisher.
    pub kt: Arc<crate::service::kt::KtService>,
    /// Recent card search answers per identity.
    pub card_cache: Arc<crate::service::cards::SearchCache>,
}

/// Builds the application router.
pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("virgil-agent"),
            HeaderName::from_static("virgil-keyknox-previous-hash"),
        ])
        .expose_headers([
            HeaderName::from_static("virgil-keyknox-hash"),
            HeaderName::from_static("x-virgil-is-superseeded"),
        ]);
    Router::new()
        .merge(cards::routes())
        .merge(keyknox::routes())
        .merge(pythia::routes())
        .merge(kt::routes())
        .merge(pfs::routes())
        .merge(chat::routes(
            state.config.body_limit,
            state.config.chat_message_limit,
        ))
        .merge(chat_blobs::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.body_limit,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), bound_time))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(cors)
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.list_apps().await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok"})),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: storage unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "storage unavailable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Answers 408 when a request (reading its body included) outlasts `request_timeout_secs`, so
/// a client trickling its body cannot hold a handler forever. A WebSocket upgrade answers at
/// once; the socket itself lives outside this bound.
async fn bound_time(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = std::time::Duration::from_secs(state.config.request_timeout_secs.max(1));
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}

/// Counts and times every request and logs it (never its body or token). Routes and methods
/// are labels from fixed sets (unknown ones count as `unmatched` and `OTHER`), so hostile
/// requests cannot grow the registry.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = crate::metrics::method_label(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    state.metrics.record(&route, method, status, elapsed);
    tracing::debug!(method, %route, status, micros = elapsed.as_micros() as u64, "request");
    response
}
