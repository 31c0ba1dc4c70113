//! Integration tests of sealkit-ratchet: conversations between Rust sessions, and between Rust
//! and Virgil's libvsc_ratchet (the oracle of `interop/python/ratchet.py`), fuzz seed replay.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;
mod conversation;
mod fuzz_seeds;
mod interop;
