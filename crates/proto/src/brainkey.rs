//! Brainkey v3 wire types: `POST /brainkey/v3/harden`, the backup-key OPRF of the mobile e3kit
//! SDKs (e3kit-kotlin 3.x `BrainkeyHttpClient.kt`, e3kit-x `BrainkeyHttpClient.swift`;
//! `e3kit-mobile-v3.md`, "Brainkey v3"). The math is `sealkit_pythia::v3`.
//!
//! Authenticated with `Authorization: Virgil <jwt>` like every service. All byte strings are
//! standard base64 with padding. A throttled caller gets 429 with
//! [`THROTTLED_CODE`](crate::pythia::THROTTLED_CODE), the code of `/pythia/v1/brainkey` (the mobile
//! SDKs retry 5xx only, so a 429 is not hammered).

use serde::{Deserialize, Serialize};

/// `POST` path of the v3 harden.
pub const HARDEN_PATH: &str = "/brainkey/v3/harden";

/// `POST /brainkey/v3/harden` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HardenRequest {
    /// Base64 of the 65-byte uncompressed P-256 point `r·H(password)`.
    pub blinded_point: String,
}

/// `POST /brainkey/v3/harden` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HardenResponse {
    /// Base64 of the 65-byte point `x·blinded_point`.
    pub hardened_point: String,
    /// Base64 of the 65-byte point `x·G` (per identity; the same on every request).
    pub server_public_key: String,
    /// Base64 of the 32-byte DLEQ challenge c.
    pub proof_value_c: String,
    /// Base64 of the 32-byte DLEQ response s.
    pub proof_value_s: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Field names as e3kit-kotlin reads them; unknown request fields are accepted.
    #[test]
    fn json_shape() {
        let request: HardenRequest =
            serde_json::from_str(r#"{"blinded_point":"BA==","extra":1}"#).unwrap();
        assert_eq!(request.blinded_point, "BA==");
        let response = HardenResponse {
            hardened_point: "a".into(),
            server_public_key: "b".into(),
            proof_value_c: "c".into(),
            proof_value_s: "d".into(),
        };
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"hardened_point":"a","server_public_key":"b","proof_value_c":"c","proof_value_s":"d"}"#
        );
    }
}
