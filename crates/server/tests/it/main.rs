//! The server's HTTP services over real listeners and in-process routers, on SQLite and PostgreSQL.
//!
//! One test binary for the crate's integration tests: each module was once its own binary, and
//! every binary linked the whole server and SDK again, which dominated CI's build time.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
#[path = "../../../../interop/python/oracle.rs"]
mod oracle;

mod brainkey_v3;
mod card_cache;
mod chat_blobs;
mod chat_edits;
mod chat_read_state;
mod hostile;
mod http_api;
mod http_chat;
mod http_keyknox;
mod http_kt;
mod kt_cache;
mod pfs;
mod push_hooks;
mod tls;
