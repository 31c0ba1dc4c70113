//! The SQL core both backends share: how database errors become [`StoreError`]s. Rows map onto
//! the records with sqlx's `FromRow` derive (on the records in `store/mod.rs`).

use sqlx::error::ErrorKind;

use super::{Conflict, StoreError};

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

/// A failed API key insert: a taken key id is `Conflict(KeyExists)`, a missing application
/// `NotFound` (the foreign key).
pub(crate) fn key_insert_error(e: sqlx::Error) -> StoreError {
    match error_kind(&e) {
        Some(ErrorKind::UniqueViolation) => StoreError::Conflict(Conflict::KeyExists),
        Some(ErrorKind::ForeignKeyViolation) => StoreError::NotFound,
        _ => backend(e),
    }
}
