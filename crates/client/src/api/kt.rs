//! The key-transparency endpoints (`/kt/v1`, Sealkit's own API; `sealkit_proto::kt`). The
//! answers are only decoded here; `crate::transparency` verifies them.

use super::{ApiClient, Method};
use crate::error::{Error, Result};
use sealkit_proto::kt::{self as wire, paths};

/// What `GET /kt/v1/key` said.
#[derive(Debug)]
pub(crate) enum KeyAnswer {
    /// The server runs a key directory, signed with this key.
    Served(wire::KeyResponse),
    /// The server has no key directory (404: not a Sealkit server with KT, e.g. Virgil's own or
    /// an old Sealkit; or 503 code 80005: turned off). The status and reason, for messages.
    NotServed(String),
}

impl ApiClient {
    /// `GET /kt/v1/key`.
    pub(crate) async fn kt_key(&self) -> Result<KeyAnswer> {
        let answer = self
            .exchange::<()>(Method::Get, paths::KEY, None, None)
            .await?;
        let status = answer.status.as_u16();
        if status == 404 || status == 405 || status == 501 || status == 503 {
            return Ok(KeyAnswer::NotServed(format!(
                "GET {} answered HTTP {status}",
                paths::KEY
            )));
        }
        Ok(KeyAnswer::Served(
            answer.into_result()?.json("key-transparency key")?,
        ))
    }

    /// `GET /kt/v1/lookup/{identity}`.
    pub(crate) async fn kt_lookup(&self, identity: &str) -> Result<wire::LookupResponse> {
        self.send::<()>(Method::Get, &paths::lookup(&path_segment(identity)), None)
            .await?
            .json("key-transparency lookup")
    }

    /// `GET /kt/v1/lookup/{identity}?pending=true`: the lookup, and whether the server has a
    /// change of the identity's cards queued for the next epoch.
    pub(crate) async fn kt_lookup_pending(&self, identity: &str) -> Result<wire::LookupResponse> {
        let path = format!("{}?pending=true", paths::lookup(&path_segment(identity)));
        self.send::<()>(Method::Get, &path, None)
            .await?
            .json("key-transparency lookup")
    }

    /// Whether a request now would go out without asking the token provider.
    pub(crate) async fn has_fresh_token(&self) -> bool {
        self.tokens.peek(super::now_secs()).await.is_some()
    }

    /// `GET /kt/v1/lookup/{identity}` asked for ahead of need: only with a cached fresh token
    /// and without the retry on an expired one, so it never asks the token provider (the
    /// request it runs alongside does). `None` when not asked or the token was refused.
    pub(crate) async fn kt_lookup_ahead(
        &self,
        identity: &str,
    ) -> Option<Result<wire::LookupResponse>> {
        let token = self.tokens.peek(super::now_secs()).await?;
        let path = paths::lookup(&path_segment(identity));
        match self.send_once(Method::Get, &path, None, None, &token).await {
            Ok(answer) if answer.is_expired_token() => None,
            Ok(answer) => Some(
                answer
                    .into_result()
                    .and_then(|r| r.json("key-transparency lookup")),
            ),
            Err(e) => Some(Err(e)),
        }
    }

    /// `GET /kt/v1/history/{identity}` (every version).
    pub(crate) async fn kt_history(&self, identity: &str) -> Result<wire::HistoryResponse> {
        self.send::<()>(Method::Get, &paths::history(&path_segment(identity)), None)
            .await?
            .json("key-transparency history")
    }

    /// `GET /kt/v1/apps/{app_id}/audit?start&end`.
    pub(crate) async fn kt_audit(
        &self,
        app_id: &str,
        start: u64,
        end: u64,
    ) -> Result<wire::AuditResponse> {
        self.send::<()>(
            Method::Get,
            &paths::audit(&path_segment(app_id), start, end),
            None,
        )
        .await?
        .json("key-transparency audit")
    }
}

/// `text` as one URL path segment: every byte but the unreserved ones percent-encoded, so an
/// identity such as `a/b?c` names one identity, not another path.
pub(crate) fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Whether `error` is the server saying the identity has no entry in its directory yet
/// (HTTP 404, code 80002: its first card is newer than the latest epoch; or 80001: the
/// application's first epoch is not published yet).
pub(crate) fn is_not_in_directory(error: &Error) -> bool {
    matches!(
        error,
        Error::Api { status: 404, code, .. }
            if *code == wire::codes::NOT_IN_DIRECTORY || *code == wire::codes::NO_DIRECTORY
    )
}

/// Whether `error` is the server saying the identity's first entry is queued for the next
/// epoch (HTTP 404, code 80006; only to a lookup with `?pending=true`).
pub(crate) fn is_entry_pending(error: &Error) -> bool {
    matches!(
        error,
        Error::Api { status: 404, code, .. } if *code == wire::codes::ENTRY_PENDING
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("alice"), "alice");
        assert_eq!(path_segment("a@b.c"), "a@b.c");
        assert_eq!(path_segment("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(path_segment("zoë"), "zo%C3%AB");
    }
}
