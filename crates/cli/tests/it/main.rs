//! The `sealkit` binary, the SDK and the server together, through real processes and sockets.
//!
//! One test binary for the crate's integration tests: each module was once its own binary, and
//! every binary linked the whole server and SDK again, which dominated CI's build time.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
#[path = "../../../../interop/python/oracle.rs"]
mod oracle;

mod chat_cli;
mod chat_e2e;
mod chat_edit_cli;
mod chat_files;
mod chat_read_typing;
mod chat_search;
mod cli;
mod cli_sdk;
mod kt_lying;
mod ratchet;
mod safety_numbers;
mod sdk_brainkey_v3;
mod sdk_e2e;
mod sdk_safety;
mod serve_ops;
mod server_e2e;
mod web_e2e;
