//! Wire structures, one module per structure, each with its layout from
//! `virgil-crypto-format.md` and its decoder and encoder side by side.

pub(crate) mod algorithm;
pub(crate) mod der;
pub(crate) mod ecies;
pub(crate) mod footer;
pub(crate) mod group;
pub(crate) mod key;
pub(crate) mod message_info;
pub(crate) mod oid;
pub(crate) mod signature;
