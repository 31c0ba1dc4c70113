//! The service logic behind the HTTP handlers, callable without HTTP.

pub mod auth;
pub mod cards;
pub mod chat;
pub mod error;
pub mod keyknox;
pub mod pythia;

pub use auth::Caller;
pub use error::ServiceError;
