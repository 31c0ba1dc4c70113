//! Validated identifiers: a user [`Identity`], an application's [`AppId`] and a chat
//! [`ChannelId`].
//!
//! Each is checked once, when it is made (`new`, `FromStr`, `TryFrom<String>` or
//! deserialization), so code holding one never checks it again and cannot pass one kind of id
//! where another is expected. On the wire and in storage they are their plain strings.
//!
//! ```
//! use sealkit_proto::ids::{ChannelId, Identity};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let alice: Identity = "alice@example.com".parse()?;
//! assert_eq!(alice.to_string(), "alice@example.com");
//! assert!("".parse::<Identity>().is_err());
//! let channel: ChannelId = serde_json::from_str(r#""general""#)?;
//! assert_eq!(serde_json::to_string(&channel)?, r#""general""#);
//! assert!(serde_json::from_str::<ChannelId>(r#""no spaces""#).is_err());
//! # Ok(())
//! # }
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid id of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidId {
    /// Not an identity (see [`crate::jwt::validate_identity`]); the reason.
    #[error("{0}")]
    Identity(&'static str),
    /// Not an application id.
    #[error("app id must be 1 to {MAX_APP_ID} characters of A-Z a-z 0-9 . _ -")]
    AppId,
    /// Not a channel id (see [`crate::chat::validate_channel_id`]); the reason.
    #[error("{0}")]
    ChannelId(String),
}

/// The longest application id, in bytes.
pub const MAX_APP_ID: usize = 64;

fn check_identity(value: &str) -> Result<(), InvalidId> {
    crate::jwt::validate_identity(value).map_err(InvalidId::Identity)
}

fn check_app_id(value: &str) -> Result<(), InvalidId> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if value.is_empty() || value.len() > MAX_APP_ID || !value.chars().all(ok_char) {
        return Err(InvalidId::AppId);
    }
    Ok(())
}

fn check_channel_id(value: &str) -> Result<(), InvalidId> {
    crate::chat::validate_channel_id(value).map_err(|e| InvalidId::ChannelId(e.0))
}

/// Declares a validated string id: `new`, `as_str`, `into_string`, `FromStr`, `Display`,
/// `Deref<Target = str>` and serde through the string form.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value` ([`InvalidId`] when it breaks the rules above).
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                $check(&value)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(value: String) -> Result<Self, InvalidId> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(
    /// A user identity, as in a JWT's `sub` after `identity-` and a card's `identity`: 1 to 256
    /// bytes without control characters ([`crate::jwt::validate_identity`]).
    Identity,
    check_identity
);

string_id!(
    /// An application (tenant) id, as in a JWT's `iss` after `virgil-`: 1 to [`MAX_APP_ID`]
    /// characters of `[A-Za-z0-9._-]` (the server makes 32 lowercase hex characters).
    AppId,
    check_app_id
);

string_id!(
    /// A chat channel id: 1 to 128 characters of `[A-Za-z0-9._:@-]`, safe in a URL path
    /// ([`crate::chat::validate_channel_id`]).
    ChannelId,
    check_channel_id
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text`, prints it back and sends it through JSON: the same string every way.
    fn round_trip<T>(text: &str) -> Result<T, Box<dyn std::error::Error>>
    where
        T: FromStr<Err = InvalidId> + fmt::Display + Serialize + serde::de::DeserializeOwned,
        T: PartialEq + fmt::Debug,
    {
        let id: T = text.parse()?;
        assert_eq!(id.to_string(), text);
        let json = serde_json::to_string(&id)?;
        assert_eq!(json, serde_json::to_string(text)?);
        assert_eq!(serde_json::from_str::<T>(&json)?, id);
        Ok(id)
    }

    #[test]
    fn identities_round_trip_and_keep_the_jwt_rules() -> Result<(), Box<dyn std::error::Error>> {
        let alice: Identity = round_trip("alice@example.com")?;
        assert_eq!(alice, "alice@example.com");
        assert_eq!(alice.as_str(), "alice@example.com");
        round_trip::<Identity>("Jürgen with spaces")?;
        assert_eq!(
            "".parse::<Identity>(),
            Err(InvalidId::Identity("identity is empty"))
        );
        assert!("a\nb".parse::<Identity>().is_err());
        assert!("x".repeat(257).parse::<Identity>().is_err());
        assert!("x".repeat(256).parse::<Identity>().is_ok());
        assert!(serde_json::from_str::<Identity>(r#""""#).is_err());
        Ok(())
    }

    #[test]
    fn app_ids_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        round_trip::<AppId>("0123456789abcdef0123456789abcdef")?;
        round_trip::<AppId>("first")?;
        for bad in ["", "a b", "a/b", &"a".repeat(MAX_APP_ID + 1)] {
            assert_eq!(bad.parse::<AppId>(), Err(InvalidId::AppId), "{bad:?}");
        }
        Ok(())
    }

    #[test]
    fn channel_ids_round_trip_and_keep_the_chat_rules() -> Result<(), Box<dyn std::error::Error>> {
        round_trip::<ChannelId>("general")?;
        round_trip::<ChannelId>("dm:alice@x.org:bob@y.org")?;
        for bad in ["", "no spaces", "a/b", &"c".repeat(129)] {
            let err = bad.parse::<ChannelId>().err();
            let expected = crate::chat::validate_channel_id(bad).err().map(|e| e.0);
            assert_eq!(err.map(|e| e.to_string()), expected, "{bad:?}");
        }
        assert!(serde_json::from_str::<ChannelId>(r#""a b""#).is_err());
        Ok(())
    }
}
