//! Server configuration: command-line options over an optional TOML file over defaults.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Largest `card_cache_ms`: other replicas must see a card change within a second.
pub const MAX_CARD_CACHE_MS: u64 = 1000;
/// `card_cache_ms` when unset.
pub const DEFAULT_CARD_CACHE_MS: u64 = 500;

/// Everything `sealkit serve` can be told.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the embedded SQLite database (used when no `database_url` is set).
    pub data_dir: PathBuf,
    /// `postgres://...` to store everything in PostgreSQL (several replicas may share it).
    pub database_url: Option<String>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Allowed clock skew when checking token times, in seconds.
    pub jwt_leeway_secs: i64,
    /// The brainkey master secret (default: `pythia.secret` in `data_dir`, created on first
    /// start). Every replica must use the same file; changing it breaks every key backup.
    pub pythia_secret_file: Option<PathBuf>,
    /// Bytes of Keyknox v2 entries (meta and value, each blob counted once however many
    /// identities it is pushed for) one identity may own; a push over it is answered 413.
    pub keyknox_quota_bytes: u64,
    /// Brainkey requests an identity may make at once (e3kit's changePassword makes three).
    pub brainkey_burst: u32,
    /// Brainkey requests per second an identity regains after the burst.
    pub brainkey_per_second: f64,
    /// Largest chat message, in bytes of decoded ciphertext (the request body may be a third
    /// larger: it carries base64).
    pub chat_message_limit: usize,
    /// Messages a channel's live feed holds for a subscriber that has not sent them yet; one
    /// further behind (a slow client) re-reads them from the database instead.
    pub chat_feed_capacity: usize,
    /// Chat channels (direct ones included) one identity may create in an application.
    pub chat_channels_per_creator: u32,
    /// Live WebSockets one identity may hold open on one server process.
    pub chat_sockets_per_identity: usize,
    /// Largest chat attachment (blob), in bytes of ciphertext; a larger upload is answered 413
    /// ([`sealkit_proto::chat::codes::BLOB_TOO_LARGE`]) and discarded.
    pub chat_blob_limit: u64,
    /// Bytes of chat attachments one application may store in all (uploads in progress and
    /// blobs awaiting garbage collection included); an upload over it is answered 413
    /// ([`sealkit_proto::chat::codes::BLOB_QUOTA_EXCEEDED`]) and discarded.
    pub chat_blob_quota: u64,
    /// Seconds an uploaded blob may stay unnamed by any message (and an unfinished upload may
    /// stay) before it is deleted.
    pub chat_blob_grace_secs: u64,
    /// Seconds between re-verifications of a live WebSocket's token (a revoked API key closes
    /// its sockets within this time).
    pub chat_token_recheck_secs: u64,
    /// PEM certificate chain (leaf first) to serve HTTPS with; needs `tls_key`. Re-read on
    /// SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Most connections open at once (WebSockets included); further clients wait to be
    /// accepted.
    pub max_connections: usize,
    /// Seconds a client has to send a request's head (and to finish a TLS handshake).
    pub header_read_timeout_secs: u64,
    /// Seconds a whole request may take, body included, before it is answered 408.
    pub request_timeout_secs: u64,
    /// Seconds a keep-alive connection may sit with no request before it is closed.
    pub idle_timeout_secs: u64,
    /// Seconds requests in flight get to finish on shutdown (SIGTERM, Ctrl-C).
    pub drain_timeout_secs: u64,
    /// Seconds between key-transparency epochs: every card change since the last epoch is
    /// published in the next one (no change, no epoch). Decimal values are allowed (`0.2`).
    pub kt_epoch_secs: f64,
    /// The key-transparency signing key, 32 raw bytes (default: `kt.key` in `data_dir`,
    /// created on first start). Every replica must use the same file.
    pub kt_key_file: Option<PathBuf>,
    /// Most key-transparency tree nodes one process keeps in memory per application (about 400
    /// bytes each). The default holds every node a lookup reads near the root of a directory of
    /// a million identities; twice the number of identities holds a whole directory, so a
    /// lookup reads nothing from the database but the entry's versions. 0: no cache.
    pub kt_node_cache_nodes: usize,
    /// Card search answers are kept in this process's memory unless this is 0. A publish or
    /// revoke through this process clears its identity before it is acknowledged. On SQLite
    /// (one process owns the database) an answer is then good until its identity changes. On
    /// PostgreSQL every replica announces its changes to the others (`LISTEN`/`NOTIFY`, usually
    /// heard within milliseconds), and this is the longest a change made through another
    /// replica may stay unseen here, even when announcements are late or lost. A search answers
    /// from the cache only once this replica has heard every change committed before the
    /// search began (a read of PostgreSQL's card change number, shared by concurrent searches), so a
    /// client alternating replicas sees its changes at once. At most 1000; unset: 500.
    pub card_cache_ms: Option<u64>,
    /// Most identities whose search answers one process keeps in memory (about 1 to 1.4 KiB
    /// each with e3kit's cards); the cache starts over when full.
    pub card_cache_entries: usize,
    /// Milliseconds between two looks at the push hook outbox when it had nothing due (see
    /// docs/chat.md, "Push hooks").
    pub hook_poll_ms: u64,
    /// Milliseconds before the second attempt of a failed hook delivery; each further failure
    /// doubles it, up to `hook_retry_max_ms`.
    pub hook_retry_base_ms: u64,
    /// Longest wait between two attempts of a hook delivery, in milliseconds.
    pub hook_retry_max_ms: u64,
    /// Seconds one hook delivery (connect, send, answer) may take before it counts as failed.
    pub hook_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./sealkit-data"),
            database_url: None,
            body_limit: 4 << 20,
            jwt_leeway_secs: 30,
            pythia_secret_file: None,
            keyknox_quota_bytes: 64 << 20,
            brainkey_burst: 10,
            brainkey_per_second: 0.5,
            chat_message_limit: 64 << 10,
            chat_feed_capacity: 1024,
            chat_channels_per_creator: 5000,
            chat_sockets_per_identity: 32,
            chat_token_recheck_secs: 30,
            chat_blob_limit: 100 << 20,
            chat_blob_quota: 10 << 30,
            chat_blob_grace_secs: 24 * 3600,
            tls_cert: None,
            tls_key: None,
            max_connections: 10_000,
            header_read_timeout_secs: 10,
            request_timeout_secs: 60,
            idle_timeout_secs: 75,
            drain_timeout_secs: 30,
            kt_epoch_secs: 1.0,
            kt_key_file: None,
            kt_node_cache_nodes: crate::service::kt::NODE_CACHE_CAPACITY,
            card_cache_ms: None,
            card_cache_entries: crate::service::cards::DEFAULT_CACHE_ENTRIES,
            hook_poll_ms: 1000,
            hook_retry_base_ms: 5_000,
            hook_retry_max_ms: 3_600_000,
            hook_timeout_secs: 10,
        }
    }
}

impl Config {
    /// Reads a TOML configuration file; absent keys keep their defaults.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    /// Refuses values that would break a promise the documentation makes.
    pub fn check(&self) -> Result<(), String> {
        if let Some(ms) = self.card_cache_ms.filter(|ms| *ms > MAX_CARD_CACHE_MS) {
            return Err(format!(
                "card_cache_ms is {ms}; at most {MAX_CARD_CACHE_MS} (a card change must show on \
                 every replica within a second)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn chat_options_have_defaults_and_read_from_toml() -> Result<(), String> {
        let defaults = Config::from_toml("")?;
        assert_eq!(defaults.chat_message_limit, 64 << 10);
        assert_eq!(defaults.chat_feed_capacity, 1024);
        let set = Config::from_toml("chat_message_limit = 1000\nchat_feed_capacity = 8")?;
        assert_eq!(set.chat_message_limit, 1000);
        assert_eq!(set.chat_feed_capacity, 8);
        assert!(Config::from_toml("chat_message_limt = 1").is_err());
        Ok(())
    }

    #[test]
    fn blob_options_have_defaults_and_read_from_toml() -> Result<(), String> {
        let defaults = Config::from_toml("")?;
        assert_eq!(defaults.chat_blob_limit, 100 << 20);
        assert_eq!(defaults.chat_blob_quota, 10 << 30);
        assert_eq!(defaults.chat_blob_grace_secs, 86_400);
        let set = Config::from_toml(
            "chat_blob_limit = 1000\nchat_blob_quota = 5000\nchat_blob_grace_secs = 60",
        )?;
        assert_eq!(
            (
                set.chat_blob_limit,
                set.chat_blob_quota,
                set.chat_blob_grace_secs
            ),
            (1000, 5000, 60)
        );
        Ok(())
    }

    #[test]
    fn kt_options_have_defaults_and_read_from_toml() -> Result<(), String> {
        let defaults = Config::from_toml("")?;
        assert_eq!(defaults.kt_epoch_secs, 1.0);
        assert_eq!(defaults.kt_key_file, None);
        assert_eq!(defaults.kt_node_cache_nodes, 200_000);
        let set = Config::from_toml(
            "kt_epoch_secs = 0.25\nkt_key_file = \"/etc/kt.key\"\nkt_node_cache_nodes = 2000000",
        )?;
        assert_eq!(set.kt_epoch_secs, 0.25);
        assert_eq!(set.kt_node_cache_nodes, 2_000_000);
        assert_eq!(set.kt_key_file, Some("/etc/kt.key".into()));
        Ok(())
    }

    #[test]
    fn card_cache_is_bounded_by_a_second() -> Result<(), String> {
        assert_eq!(Config::from_toml("")?.card_cache_ms, None);
        assert_eq!(
            Config::from_toml("card_cache_ms = 0")?.card_cache_ms,
            Some(0)
        );
        assert_eq!(
            Config::from_toml("card_cache_ms = 1000")?.card_cache_ms,
            Some(1000)
        );
        let too_long = Config::from_toml("card_cache_ms = 1001");
        assert!(too_long.is_err_and(|e| e.contains("at most 1000")));
        Ok(())
    }
}
