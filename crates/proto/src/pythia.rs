//! Pythia wire types (spec §6).

use serde::{Deserialize, Serialize};

/// `POST` path of the brainkey transform.
pub const BRAINKEY_PATH: &str = "/pythia/v1/brainkey";
/// `POST` path of the verifiable password transform.
pub const PASSWORD_PATH: &str = "/pythia/v1/password";
/// The code answered when the caller is throttled (e3kit waits 2 s and retries once).
pub const THROTTLED_CODE: u32 = 60007;

/// `POST /pythia/v1/brainkey` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BrainkeyRequest {
    /// Base64 of the 49-byte blinded password (relic's compressed G1 point).
    pub blinded_password: String,
    /// Optional key selector; e3kit never sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brainkey_id: Option<String>,
}

/// `POST /pythia/v1/brainkey` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BrainkeyResponse {
    /// Base64 of the 384-byte transformed value (relic's compressed GT element).
    pub seed: String,
}

/// `POST /pythia/v1/password` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PasswordRequest {
    /// Base64 of the blinded password.
    pub blinded_password: String,
    /// The user the password belongs to (the tweak).
    pub user_id: String,
    /// Key version (rotations); 1 when absent.
    #[serde(default)]
    pub version: Option<u32>,
    /// Whether to return the Chaum–Pedersen proof.
    #[serde(default)]
    pub include_proof: bool,
}

/// The proof of a password transform.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PasswordProof {
    /// Base64 challenge.
    pub value_c: String,
    /// Base64 response.
    pub value_u: String,
}

/// `POST /pythia/v1/password` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PasswordResponse {
    /// Base64 transformed password.
    pub transformed_password: String,
    /// The proof, when requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<PasswordProof>,
}
