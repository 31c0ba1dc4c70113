//! The error body of every Virgil service (spec §1, §1.1): HTTP 4xx with
//! `{"code": <int>, "message": "<text>"}`.

use serde::{Deserialize, Serialize};

/// The JSON body of a Virgil error response (spec §1): `{"code":20304,"message":"..."}`.
///
/// The cards client parses it from every 4xx response, the Keyknox client needs both fields
/// truthy (non-zero code, non-empty message) to report the code (spec §1.1). Codes the JS clients
/// react to are listed in spec §1.2 (20304 with HTTP 401, 50010, 60007).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// The Virgil error code.
    pub code: u32,
    /// A human-readable message.
    pub message: String,
}

impl ErrorBody {
    /// A body with the given code and message.
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() -> Result<(), serde_json::Error> {
        let body = ErrorBody::new(20304, "JWT is expired");
        assert_eq!(
            serde_json::to_string(&body)?,
            r#"{"code":20304,"message":"JWT is expired"}"#
        );
        let parsed: ErrorBody =
            serde_json::from_str(r#"{"message":"Self signature is invalid","code":40006,"x":1}"#)?;
        assert_eq!(parsed, ErrorBody::new(40006, "Self signature is invalid"));
        Ok(())
    }
}
