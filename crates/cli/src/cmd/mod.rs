//! One module per subcommand of `sealkit`. Each is glue: it takes its parsed arguments, calls the
//! crypto core, the SDK or the server crate, and prints the result.

pub(crate) mod backend;
pub(crate) mod chat;
pub(crate) mod crypto;
pub(crate) mod group;
pub(crate) mod kt;
pub(crate) mod msg;
pub(crate) mod ratchet;
pub(crate) mod server;
pub(crate) mod token;
pub(crate) mod user;
