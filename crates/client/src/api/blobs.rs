//! The chat blob endpoints (`sealkit_proto::chat::paths::blobs`): uploads and downloads that
//! stream instead of going through [`ApiClient::send`]'s in-memory bodies.

use super::{now_secs, Answer, ApiClient, ApiResponse};
use crate::error::{Error, Result};
use sealkit_proto::chat::{paths, BlobUploaded};
use std::time::Duration;

/// The slowest transfer rate a blob request is given time for, in bytes per second, on top of
/// the client's usual timeout (which, for an ordinary request, bounds the whole exchange).
const SLOWEST_RATE: u64 = 128 << 10;

impl ApiClient {
    /// How long a transfer of `len` bytes may take.
    fn transfer_timeout(&self, len: u64) -> Duration {
        self.timeout + Duration::from_secs(len / SLOWEST_RATE)
    }

    /// A non-2xx answer as [`Error::Api`] (its small JSON body read in full).
    async fn refusal(&self, url: &str, response: reqwest::Response) -> Error {
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(e) => return self.network(url, &e),
        };
        let answer = Answer {
            status,
            response: ApiResponse { headers, body },
        };
        match answer.into_result() {
            Err(e) => e,
            Ok(_) => Error::InvalidResponse(format!("{url}: unexpected status {status}")),
        }
    }

    /// `POST /chat/v1/channels/{id}/blobs` with a streamed body of about `len_hint` bytes
    /// (used only to allow the transfer enough time).
    pub(crate) async fn chat_blob_upload(
        &self,
        channel: &str,
        body: reqwest::Body,
        len_hint: u64,
    ) -> Result<BlobUploaded> {
        let url = format!("{}{}", self.base, paths::blobs(channel));
        let token = self.tokens.get(now_secs(), false).await?;
        let response = self
            .http
            .post(&url)
            .timeout(self.transfer_timeout(len_hint))
            .header(reqwest::header::AUTHORIZATION, token.authorization())
            .header("Virgil-Agent", &self.agent)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| self.network(&url, &e))?;
        if !response.status().is_success() {
            return Err(self.refusal(&url, response).await);
        }
        let body = response.bytes().await.map_err(|e| self.network(&url, &e))?;
        serde_json::from_slice(&body).map_err(|e| {
            Error::InvalidResponse(format!(
                "blob upload: the body is not the expected JSON ({e})"
            ))
        })
    }

    /// `GET /chat/v1/channels/{id}/blobs/{blob}`: the response, its body still to be read
    /// ([`reqwest::Response::chunk`]), with time for about `len_hint` bytes.
    pub(crate) async fn chat_blob_download(
        &self,
        channel: &str,
        blob: &str,
        len_hint: u64,
    ) -> Result<reqwest::Response> {
        let url = format!("{}{}", self.base, paths::blob(channel, blob));
        let token = self.tokens.get(now_secs(), false).await?;
        let response = self
            .http
            .get(&url)
            .timeout(self.transfer_timeout(len_hint))
            .header(reqwest::header::AUTHORIZATION, token.authorization())
            .header("Virgil-Agent", &self.agent)
            .send()
            .await
            .map_err(|e| self.network(&url, &e))?;
        if !response.status().is_success() {
            return Err(self.refusal(&url, response).await);
        }
        Ok(response)
    }
}
