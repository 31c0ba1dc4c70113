//! `sealkit backend`: the sample application backend of Virgil's e3kit tutorial ("Step 1: set
//! up your backend"), so the tutorial's clients and `sealkit chat --backend` have something to
//! get tokens from.
//!
//! Same endpoints and JSON as Virgil's sample backend (sample-backend-nodejs):
//! `POST /authenticate {"identity"}` → `{"authToken"}`, then `GET /virgil-jwt` with
//! `Authorization: Bearer <authToken>` → `{"virgilToken"}`. The login takes no password: it is
//! a DEMO, and says so wherever it can.
//!
//! It also serves the demo web chat at `/` (built from `web/` and embedded in the binary), which
//! logs in through those two endpoints and talks to the Sealkit server of `--server`, named to
//! the page by `GET /config.json`.

use crate::args::{BackendArgs, SdkOptions};
use crate::common::{init_logging, runtime};
use crate::error::{CliError, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand_core::RngCore;
use sealkit_proto::jwt::JwtGenerator;
use sealkit_proto::ErrorBody;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most live demo sessions; beyond it the oldest-looking one is dropped, so a flood of logins
/// cannot grow memory without bound.
const MAX_SESSIONS: usize = 100_000;

/// The warning printed at startup (and repeated in `--help` and docs/chat.md).
pub(crate) const DEMO_WARNING: &str = "\
WARNING: DEMO LOGIN. `sealkit backend` hands an auth token to anyone who names an identity, \
without a password: whoever can reach it can act as ANY user of the application. Use it for \
tutorials and local tests only; in production, mint Virgil JWTs in your own backend after your \
own login (see docs/chat.md).";

struct Backend {
    generator: JwtGenerator,
    /// The Sealkit server the web page talks to (`--server`), as the page is told.
    server_url: String,
    /// authToken → identity.
    sessions: Mutex<HashMap<String, String>>,
}

/// `POST /authenticate` body. This and the two answers below are the backend's wire shapes,
/// served here and read by `sealkit chat --backend`.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct AuthenticateRequest {
    pub(crate) identity: String,
}

/// `POST /authenticate` answer.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuthTokenBody {
    pub(crate) auth_token: String,
}

/// `GET /virgil-jwt` answer.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VirgilTokenBody {
    pub(crate) virgil_token: String,
}

fn error(status: StatusCode, code: u32, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

async fn authenticate(State(backend): State<Arc<Backend>>, body: Bytes) -> Response {
    // Parsed by hand so that every bad body gets the JSON error shape, not axum's plain text.
    let request: AuthenticateRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                40000,
                format!("expected {{\"identity\": \"...\"}}: {e}"),
            )
        }
    };
    if let Err(e) = sealkit_proto::validate_identity(&request.identity) {
        return error(StatusCode::BAD_REQUEST, 40000, e);
    }
    let token = random_token();
    {
        let Ok(mut sessions) = backend.sessions.lock() else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, 50000, "internal error");
        };
        if sessions.len() >= MAX_SESSIONS {
            if let Some(victim) = sessions.keys().next().cloned() {
                sessions.remove(&victim);
            }
        }
        sessions.insert(token.clone(), request.identity.clone());
    }
    tracing::info!(identity = %request.identity, "demo login");
    Json(AuthTokenBody { auth_token: token }).into_response()
}

async fn virgil_jwt(State(backend): State<Arc<Backend>>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(bearer) = bearer.filter(|b| !b.is_empty()) else {
        return error(
            StatusCode::UNAUTHORIZED,
            20300,
            "missing `Authorization: Bearer <authToken>` (POST /authenticate first)",
        );
    };
    let identity = match backend.sessions.lock() {
        Ok(sessions) => sessions.get(bearer).cloned(),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, 50000, "internal error"),
    };
    let Some(identity) = identity else {
        return error(StatusCode::UNAUTHORIZED, 20301, "unknown authToken");
    };
    match backend.generator.generate(&identity, sealkit_server::now()) {
        Ok(jwt) => Json(VirgilTokenBody {
            virgil_token: jwt.to_string(),
        })
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            50000,
            format!("cannot mint a token: {e}"),
        ),
    }
}

/// The demo web chat's files (`web/dist`, rebuilt by `npm run build --prefix web`; CI checks
/// that the committed build is current), embedded so that `cargo build` alone makes a binary
/// that serves it.
const WEB_ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../../../web/dist/index.html"),
    ),
    (
        "/index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../../../web/dist/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../../web/dist/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../../web/dist/style.css"),
    ),
    (
        "/libfoundation.browser.wasm",
        "application/wasm",
        include_bytes!("../../../../web/dist/libfoundation.browser.wasm"),
    ),
    (
        "/libpythia.browser.wasm",
        "application/wasm",
        include_bytes!("../../../../web/dist/libpythia.browser.wasm"),
    ),
];

/// `GET /config.json` answer: what the web page needs to know that only the backend knows.
#[derive(serde::Serialize)]
struct WebConfig<'a> {
    server: &'a str,
}

async fn web_config(State(backend): State<Arc<Backend>>) -> Response {
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(WebConfig {
            server: &backend.server_url,
        }),
    )
        .into_response()
}

fn web_asset(
    content_type: &'static str,
    body: &'static [u8],
) -> axum::routing::MethodRouter<Arc<Backend>> {
    get(move || async move {
        (
            [
                (axum::http::header::CONTENT_TYPE, content_type),
                // The assets change only with the binary: revalidate rather than cache blindly.
                (axum::http::header::CACHE_CONTROL, "no-cache"),
                (
                    axum::http::header::HeaderName::from_static("x-content-type-options"),
                    "nosniff",
                ),
            ],
            body,
        )
    })
}

fn router(generator: JwtGenerator, server_url: String) -> Router {
    let backend = Arc::new(Backend {
        generator,
        server_url,
        sessions: Mutex::new(HashMap::new()),
    });
    let mut router = Router::new()
        .route("/authenticate", post(authenticate))
        .route("/virgil-jwt", get(virgil_jwt))
        .route("/config.json", get(web_config));
    for (path, content_type, body) in WEB_ASSETS {
        router = router.route(path, web_asset(content_type, body));
    }
    router
        // Open CORS: the tutorial's browser clients call it from another origin.
        .layer(tower_http::cors::CorsLayer::permissive())
        .with_state(backend)
}

/// `sealkit backend`.
pub(crate) fn backend(opts: &SdkOptions, args: BackendArgs) -> Result<()> {
    init_logging(crate::args::LogFormat::Text);
    let path = opts
        .app_credentials
        .as_ref()
        .ok_or(CliError::BackendNeedsCredentials)?;
    let generator = crate::sdk::generator(path, args.token_ttl)?;
    eprintln!("{DEMO_WARNING}");
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|source| CliError::Listen {
                addr: args.listen,
                source,
            })?;
        let addr = listener.local_addr()?;
        eprintln!(
            "sealkit backend: app {} on http://{addr} (POST /authenticate, GET /virgil-jwt)",
            generator.app_id(),
        );
        eprintln!(
            "sealkit backend: web chat at http://{addr}/ (talking to the server {})",
            opts.server
        );
        axum::serve(listener, router(generator, opts.server.clone()))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(CliError::BackendFailed)
    })
}
