//! The Keyknox v1 and v2 endpoints (spec §4, §5) and the Pythia brainkey endpoint (spec §6).

use super::{ApiClient, Method};
use crate::error::{Error, Result};
use sealkit_proto::keyknox::{paths, V1Push, V1Value, V2Keys, V2Pull, V2Push, V2Reset, V2Value};
use sealkit_proto::pythia::{BrainkeyRequest, BrainkeyResponse, BRAINKEY_PATH};

/// A Keyknox answer with the storage hash of its response header.
#[derive(Debug)]
pub(crate) struct Hashed<T> {
    pub(crate) value: T,
    /// `Virgil-Keyknox-Hash`, to send back as the previous hash of the next write.
    pub(crate) hash: Option<String>,
}

impl ApiClient {
    async fn hashed<T: serde::de::DeserializeOwned, B: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        previous_hash: Option<&str>,
        what: &str,
    ) -> Result<Hashed<T>> {
        let response = self
            .send_with(
                method,
                path,
                body,
                previous_hash.map(|h| (paths::PREVIOUS_HASH_HEADER, h)),
            )
            .await?;
        Ok(Hashed {
            value: response.json(what)?,
            hash: response.header(paths::HASH_HEADER).map(str::to_owned),
        })
    }

    /// `GET /keyknox/v1` (spec §4): the caller's blob; empty strings when never written.
    pub(crate) async fn keyknox_v1_pull(&self) -> Result<Hashed<V1Value>> {
        self.hashed::<_, ()>(Method::Get, paths::V1, None, None, "keyknox v1 pull")
            .await
    }

    /// `PUT /keyknox/v1` with the hash of the last pull.
    pub(crate) async fn keyknox_v1_push(
        &self,
        push: &V1Push,
        previous_hash: Option<&str>,
    ) -> Result<Hashed<V1Value>> {
        self.hashed(
            Method::Put,
            paths::V1,
            Some(push),
            previous_hash,
            "keyknox v1 push",
        )
        .await
    }

    /// `POST /keyknox/v1/reset`.
    pub(crate) async fn keyknox_v1_reset(&self) -> Result<()> {
        self.send::<()>(Method::Post, paths::V1_RESET, None).await?;
        Ok(())
    }

    /// `POST /keyknox/v2/pull` (spec §5.3): the caller's copy; empty strings when none.
    pub(crate) async fn keyknox_v2_pull(&self, pull: &V2Pull) -> Result<Hashed<V2Value>> {
        self.hashed(
            Method::Post,
            paths::V2_PULL,
            Some(pull),
            None,
            "keyknox v2 pull",
        )
        .await
    }

    /// `POST /keyknox/v2/push` with the hash of the last pull.
    pub(crate) async fn keyknox_v2_push(
        &self,
        push: &V2Push,
        previous_hash: Option<&str>,
    ) -> Result<Hashed<V2Value>> {
        self.hashed(
            Method::Post,
            paths::V2_PUSH,
            Some(push),
            previous_hash,
            "keyknox v2 push",
        )
        .await
    }

    /// `POST /keyknox/v2/keys`: the keys under root/path that the caller can read.
    #[allow(dead_code)] // Groups.
    pub(crate) async fn keyknox_v2_keys(&self, keys: &V2Keys) -> Result<Vec<String>> {
        let response = self.send(Method::Post, paths::V2_KEYS, Some(keys)).await?;
        response.json("keyknox v2 keys")
    }

    /// `POST /keyknox/v2/reset`.
    pub(crate) async fn keyknox_v2_reset(&self, reset: &V2Reset) -> Result<()> {
        self.send(Method::Post, paths::V2_RESET, Some(reset))
            .await?;
        Ok(())
    }

    /// `POST /pythia/v1/brainkey` (spec §6): the 384-byte transformed `seed` of a blinded
    /// password.
    pub(crate) async fn pythia_brainkey(&self, blinded: &[u8]) -> Result<Vec<u8>> {
        use base64::Engine as _;
        let request = BrainkeyRequest {
            blinded_password: base64::engine::general_purpose::STANDARD.encode(blinded),
            brainkey_id: None,
        };
        let response = self
            .send(Method::Post, BRAINKEY_PATH, Some(&request))
            .await?;
        let answer: BrainkeyResponse = response.json("pythia brainkey")?;
        base64::engine::general_purpose::STANDARD
            .decode(answer.seed)
            .map_err(|e| {
                Error::InvalidResponse(format!("pythia brainkey: the seed is not base64 ({e})"))
            })
    }

    /// `POST /brainkey/v3/harden`: the server's answer to a blinded P-256 point, decoded from
    /// base64 (the points and proof values are checked by `sealkit_pythia::v3::verify`).
    pub(crate) async fn brainkey_v3_harden(&self, blinded: &[u8]) -> Result<HardenAnswer> {
        use base64::Engine as _;
        use sealkit_proto::brainkey::{HardenRequest, HardenResponse, HARDEN_PATH};
        let b64 = base64::engine::general_purpose::STANDARD;
        let request = HardenRequest {
            blinded_point: b64.encode(blinded),
        };
        let response = self.send(Method::Post, HARDEN_PATH, Some(&request)).await?;
        let answer: HardenResponse = response.json("brainkey v3 harden")?;
        let field = |name: &str, value: &str| {
            b64.decode(value).map_err(|e| {
                Error::InvalidResponse(format!("brainkey v3: {name} is not base64 ({e})"))
            })
        };
        Ok(HardenAnswer {
            hardened_point: field("hardened_point", &answer.hardened_point)?,
            server_public_key: field("server_public_key", &answer.server_public_key)?,
            proof_value_c: field("proof_value_c", &answer.proof_value_c)?,
            proof_value_s: field("proof_value_s", &answer.proof_value_s)?,
        })
    }
}

/// The decoded answer of `POST /brainkey/v3/harden`.
pub(crate) struct HardenAnswer {
    pub(crate) hardened_point: Vec<u8>,
    pub(crate) server_public_key: Vec<u8>,
    pub(crate) proof_value_c: Vec<u8>,
    pub(crate) proof_value_s: Vec<u8>,
}
