//! HTTP glue for the Virgil service APIs (spec §1): one client, one token cache, one error
//! mapping. Each service has its own module with its endpoints (`cards`; `keyknox` with Pythia's
//! brainkey; `pfs`, the ratchet key service), built on [`ApiClient::send`].

pub(crate) mod blobs;
pub(crate) mod cards;
pub(crate) mod chat;
pub(crate) mod keyknox;
pub(crate) mod kt;
pub(crate) mod pfs;

use crate::error::{Error, Result};
use crate::token::TokenCache;
use sealkit_proto::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The Virgil error code of an expired token, answered with HTTP 401 (spec §1.2).
pub(crate) const TOKEN_EXPIRED: u32 = 20304;

/// The HTTP methods the services use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
    Delete,
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub(crate) struct ApiResponse {
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl ApiResponse {
    /// The body as JSON of type `T`.
    pub(crate) fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::InvalidResponse(format!("{what}: the body is not the expected JSON ({e})"))
        })
    }

    /// A response header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An answer of any status, as received.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: reqwest::StatusCode,
    pub(crate) response: ApiResponse,
}

impl Answer {
    /// 2xx as the response; anything else as [`Error::Api`], with the Virgil code and message
    /// of a 4xx body (spec §1).
    pub(crate) fn into_result(self) -> Result<ApiResponse> {
        let status = self.status;
        if status.is_success() {
            return Ok(self.response);
        }
        let reason = status.canonical_reason().unwrap_or("error").to_owned();
        let (code, message) = match self.error_body() {
            Some(e) => (e.code, e.message),
            None => (0, reason),
        };
        Err(Error::Api {
            status: status.as_u16(),
            code,
            message,
        })
    }

    /// The `{code, message}` of a 4xx answer.
    fn error_body(&self) -> Option<ErrorBody> {
        if !self.status.is_client_error() {
            return None;
        }
        serde_json::from_slice::<ErrorBody>(&self.response.body).ok()
    }

    /// HTTP 401 with code 20304: the token expired (spec §1.2).
    fn is_expired_token(&self) -> bool {
        self.status == reqwest::StatusCode::UNAUTHORIZED
            && self.error_body().is_some_and(|e| e.code == TOKEN_EXPIRED)
    }
}

/// Talks to one server for one identity.
pub(crate) struct ApiClient {
    http: reqwest::Client,
    base: String,
    tokens: TokenCache,
    agent: String,
    timeout: Duration,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("identity", &self.tokens.identity())
            .finish_non_exhaustive()
    }
}

/// Unix seconds now.
pub(crate) fn now_secs() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

impl ApiClient {
    /// A client for the server at `base_url` (paths are appended verbatim, spec §1).
    pub(crate) fn new(base_url: &str, timeout: Duration, tokens: TokenCache) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| Error::InvalidInput(format!("api_url {base_url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::InvalidInput(format!(
                "api_url {base_url:?} must start with https:// (or http:// for a local server)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| Error::Network(format!("cannot set up the HTTP client: {}", chain(&e))))?;
        let agent = format!(
            "sealkit;rust;{}/{};{}",
            std::env::consts::OS,
            std::env::consts::ARCH,
            env!("CARGO_PKG_VERSION")
        );
        Ok(Self {
            http,
            base,
            tokens,
            agent,
            timeout,
        })
    }

    /// The application of the tokens.
    pub(crate) fn app_id(&self) -> &str {
        self.tokens.app_id()
    }

    /// Sends a request with the current token and a JSON body (if any). On HTTP 401 with code
    /// 20304 the token provider is asked for a new token and the request is repeated once
    /// (spec §1.2). Non-2xx answers become [`Error::Api`].
    pub(crate) async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<ApiResponse> {
        self.send_with(method, path, body, None).await
    }

    /// [`ApiClient::send`] with one extra request header (Keyknox's previous hash).
    pub(crate) async fn send_with<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        header: Option<(&str, &str)>,
    ) -> Result<ApiResponse> {
        self.exchange(method, path, body, header)
            .await?
            .into_result()
    }

    /// Sends a request like [`ApiClient::send_with`] and returns the answer whatever its status,
    /// for the callers that read a refusal's body beyond `{code, message}`.
    pub(crate) async fn exchange<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        header: Option<(&str, &str)>,
    ) -> Result<Answer> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::InvalidInput(format!("cannot encode the request: {e}")))?;
        let token = self.tokens.get(now_secs(), false).await?;
        let answer = self
            .send_once(method, path, body.as_deref(), header, &token)
            .await?;
        if !answer.is_expired_token() {
            return Ok(answer);
        }
        let token = self.tokens.get(now_secs(), true).await?;
        self.send_once(method, path, body.as_deref(), header, &token)
            .await
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        header: Option<(&str, &str)>,
        token: &sealkit_proto::Jwt,
    ) -> Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            Method::Get => self.http.get(&url),
            Method::Post => self.http.post(&url),
            Method::Put => self.http.put(&url),
            Method::Delete => self.http.delete(&url),
        }
        .header(reqwest::header::AUTHORIZATION, token.authorization())
        .header("Virgil-Agent", &self.agent);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let response = request.send().await.map_err(|e| self.network(&url, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.network(&url, &e))?
            .to_vec();
        Ok(Answer {
            status,
            response: ApiResponse { headers, body },
        })
    }

    fn network(&self, url: &str, e: &reqwest::Error) -> Error {
        if e.is_timeout() {
            Error::Network(format!(
                "{url}: no answer within {} s",
                self.timeout.as_secs_f32()
            ))
        } else {
            // reqwest's own message repeats the URL; its causes say what happened.
            let cause = match std::error::Error::source(e) {
                Some(source) => chain(source),
                None => e.to_string(),
            };
            Error::Network(format!("{url}: {cause}"))
        }
    }
}

/// A client without a token, for the endpoints anyone may call (the key directory's key, heads
/// and audit proofs: an auditor needs no account).
#[derive(Debug)]
pub(crate) struct PublicClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl PublicClient {
    /// A client for the server at `base_url`.
    pub(crate) fn new(base_url: &str, timeout: Duration) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| Error::InvalidInput(format!("server {base_url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::InvalidInput(format!(
                "server {base_url:?} must start with https:// (or http:// for a local server)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| Error::Network(format!("cannot set up the HTTP client: {}", chain(&e))))?;
        Ok(Self {
            http,
            base,
            timeout,
        })
    }

    /// `GET path` as JSON of type `T`; non-2xx answers are [`Error::Api`].
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let network = |e: reqwest::Error| {
            if e.is_timeout() {
                Error::Network(format!(
                    "{url}: no answer within {} s",
                    self.timeout.as_secs_f32()
                ))
            } else {
                Error::Network(format!("{url}: {}", chain(&e)))
            }
        };
        let response = self.http.get(&url).send().await.map_err(network)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(network)?.to_vec();
        Answer {
            status,
            response: ApiResponse { headers, body },
        }
        .into_result()?
        .json(what)
    }
}

/// An error and its causes, joined (reqwest's own message alone says little).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
