//! The service logic behind the HTTP handlers, callable without HTTP.
//!
//! Rules of this room:
//!
//! * Nothing here imports `crate::http` or axum (`scripts/test` checks it). A transport
//!   authenticates the user into a [`Caller`] and turns a [`ServiceError`] into its own answer.
//! * Every operation for a user takes `&Caller`; ids from requests are validated once, into the
//!   types of `sealkit_proto::ids`, at the start of the operation.
//! * Failures are [`ServiceError`] variants named for what went wrong; their display texts are
//!   the messages clients read. Store failures a rule anticipates are matched by their typed
//!   variant (`StoreError::Conflict(Conflict::...)`), never by text.
//! * Decisions that need no store live in pure functions (`chat::rules`), so they are tested
//!   without a database.

pub mod auth;
pub mod cards;
pub mod chat;
pub mod error;
pub mod hooks;
pub mod keyknox;
pub mod kt;
pub mod pfs;
pub mod pythia;

pub use auth::Caller;
pub use error::ServiceError;
