//! The shared SQL core: everything whose text is the same on SQLite and PostgreSQL (sqlx's
//! SQLite driver binds `$N` parameters too), written once and compiled once per backend: each
//! backend's `mod.rs` includes this directory with `#[path = "../sql/mod.rs"] mod sql;` and
//! defines what it is compiled against:
//! * `Db` and `Conn`, the backend's sqlx driver and connection;
//! * `ROW_LOCK`, appended to the reads of a writing transaction that decide what it writes
//!   (`" FOR UPDATE"` on PostgreSQL; nothing on SQLite, whose `BEGIN IMMEDIATE` already holds
//!   the database's write lock).
//! * `SKIP_LOCKED`, appended to the read that chooses a row to take away (a ratchet one-time
//!   key), so concurrent takers pass over the rows others hold instead of waiting for them:
//!   `" FOR UPDATE SKIP LOCKED"` on PostgreSQL; nothing on SQLite, where takers run one after
//!   another under the write lock.
//! * `BYTE_ORDER`, the collation that orders text by bytes (as Rust does), for paging by id:
//!   `COLLATE "C"` on PostgreSQL, whose default collation depends on the database; nothing on
//!   SQLite, whose default (`BINARY`) already is.
//!
//! With those, one algorithm serves both: read under the lock, decide with
//! [`rules`](crate::store::rules), write; a missing row is created with
//! `INSERT … ON CONFLICT DO NOTHING` and, when a concurrent transaction created it first (only
//! possible on PostgreSQL), read again under the lock.

pub(super) mod apps;
pub(super) mod blobs;
pub(super) mod cards;
pub(super) mod chat;
pub(super) mod chat_edits;
pub(super) mod hooks;
pub(super) mod keyknox;
pub(super) mod kt;
pub(super) mod pfs;
pub(super) mod pythia;

use sqlx::error::ErrorKind;

use super::{Conn, Db, BYTE_ORDER, ROW_LOCK, SKIP_LOCKED};
use crate::store::{Conflict, StoreError};

/// How often a writer that lost a creation race (`INSERT … ON CONFLICT DO NOTHING` inserted
/// nothing) reads the row again before giving up.
const CREATE_ATTEMPTS: usize = 3;

/// Any unexpected database error.
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The kind of a database error, if it is one.
pub(crate) fn error_kind(e: &sqlx::Error) -> Option<ErrorKind> {
    match e {
        sqlx::Error::Database(d) => Some(d.kind()),
        _ => None,
    }
}

/// Unique violations become `Conflict(rule)`, everything else `Backend`.
pub(crate) fn unique_or_backend(e: sqlx::Error, rule: Conflict) -> StoreError {
    match error_kind(&e) {
        Some(ErrorKind::UniqueViolation) => StoreError::Conflict(rule),
        _ => backend(e),
    }
}

/// `sql` with the backend's [`ROW_LOCK`] appended.
fn locked(sql: &str) -> String {
    format!("{sql}{ROW_LOCK}")
}
