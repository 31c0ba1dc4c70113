//! Tokens from an app backend (`sealkit backend` or Virgil's sample backend), for
//! `sealkit chat --backend`.

use crate::cmd::backend::{AuthTokenBody, AuthenticateRequest, VirgilTokenBody};

/// Tokens from an app backend, the e3kit tutorial's way: log in once (`POST /authenticate`),
/// then a Virgil JWT whenever the SDK asks (`GET /virgil-jwt`), logging in again if the backend
/// forgot the session (a restart).
pub(super) struct BackendLogin {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) identity: String,
    pub(super) auth_token: tokio::sync::Mutex<Option<String>>,
}

impl BackendLogin {
    async fn failure(what: &str, response: reqwest::Response) -> sealkit::BoxError {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        format!("{what}: HTTP {status} {}", body.trim()).into()
    }

    async fn login(&self) -> Result<String, sealkit::BoxError> {
        let url = format!("{}/authenticate", self.base);
        let response = self
            .http
            .post(&url)
            .json(&AuthenticateRequest {
                identity: self.identity.clone(),
            })
            .send()
            .await
            .map_err(|e| format!("cannot reach the backend ({url}): {e}"))?;
        if !response.status().is_success() {
            return Err(Self::failure(&format!("POST {url}"), response).await);
        }
        let body: AuthTokenBody = response
            .json()
            .await
            .map_err(|e| format!("POST {url}: not {{\"authToken\": ...}}: {e}"))?;
        Ok(body.auth_token)
    }

    /// A Virgil JWT, logging in first when there is no session yet or the backend forgot it.
    pub(super) async fn token(&self) -> Result<String, sealkit::BoxError> {
        let url = format!("{}/virgil-jwt", self.base);
        let mut auth = self.auth_token.lock().await;
        let mut fresh_login = false;
        loop {
            let auth_token = match auth.as_ref() {
                Some(t) => t.clone(),
                None => {
                    let t = self.login().await?;
                    fresh_login = true;
                    auth.insert(t).clone()
                }
            };
            let response = self
                .http
                .get(&url)
                .bearer_auth(&auth_token)
                .send()
                .await
                .map_err(|e| format!("cannot reach the backend ({url}): {e}"))?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && !fresh_login {
                *auth = None;
                continue;
            }
            if !response.status().is_success() {
                return Err(Self::failure(&format!("GET {url}"), response).await);
            }
            let body: VirgilTokenBody = response
                .json()
                .await
                .map_err(|e| format!("GET {url}: not {{\"virgilToken\": ...}}: {e}"))?;
            return Ok(body.virgil_token);
        }
    }
}
