//! The command line: every argument, option and subcommand of `sealkit`, as clap definitions.
//! The commands themselves are in `cmd/`; this file only says what they accept.

use clap::{Args, Parser, Subcommand, ValueEnum};
use sealkit_crypto::KeyType;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::SystemTime;

/// Sealkit: end-to-end encryption compatible with Virgil Security's e3kit.
///
/// Keys are printed and read as base64 of DER (what virgil-crypto exports); key arguments and key
/// files may also be raw DER or PEM. Data is read from stdin and written to stdout unless --in /
/// --out are given.
#[derive(Parser, Debug)]
#[command(name = "sealkit", version, about, long_about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Options of the commands that act as a user (`user`, `msg`, `group`, `chat`, `token`,
    /// `backend`); accepted before or after the subcommand.
    #[command(flatten)]
    pub(crate) client: SdkOptions,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Generate keys, derive public keys and key ids.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Sign data; prints the Virgil signature as base64.
    Sign(SignArgs),
    /// Verify a signature; exits 0 when it is valid, 1 when it is not.
    Verify(VerifyArgs),
    /// Encrypt for one or more recipients (e3kit authEncrypt by default when signing).
    Encrypt(EncryptArgs),
    /// Decrypt, optionally requiring a valid signature; never writes unverified plaintext.
    Decrypt(DecryptArgs),
    /// Run the server (Virgil-compatible cards and app auth) on SQLite or PostgreSQL.
    Serve(ServeArgs),
    /// Manage applications and their API keys (directly in the database).
    #[command(subcommand)]
    App(AppCommand),
    /// Mint a JWT for --identity from --app-credentials (development, tests).
    Token(TokenArgs),
    /// DEMO app backend (Virgil's e3kit sample backend): password-less login, then Virgil JWTs.
    ///
    /// POST /authenticate {"identity"} answers {"authToken"}; GET /virgil-jwt with
    /// `Authorization: Bearer <authToken>` answers {"virgilToken"}, minted with
    /// --app-credentials. It also serves the demo web chat at / (open it in a browser), which
    /// talks to the Sealkit server of --server.
    ///
    /// WARNING: DEMO LOGIN, NO PASSWORD. Anyone who can reach it gets a token for ANY identity
    /// of the application. Tutorials and local tests only; in production your own backend mints
    /// the tokens after your own login (docs/chat.md).
    Backend(BackendArgs),
    /// End-to-end encrypted chat in the terminal (line mode; scriptable through stdin/stdout).
    ///
    /// Registers --identity on first use and opens --channel. Tokens come from --backend,
    /// --app-credentials or --token-command, else from ./sealkit-data/demo-app.json (written by
    /// `sealkit serve` on first start). Keys are kept per application and identity under the
    /// default home unless --home is given. Type a line to send it; /help lists the commands.
    /// At the end of stdin it finishes its sends and exits.
    Chat(ChatArgs),
    /// Your identity on a Sealkit server: register, find users, back up and restore the key.
    User(UserArgs),
    /// Encrypt and decrypt messages between registered users (e3kit authEncrypt/authDecrypt).
    Msg(MsgArgs),
    /// Group chats: create, load, manage participants, encrypt and decrypt.
    Group(GroupArgs),
    /// Key transparency: audit a server's verifiable key directory (no account needed).
    #[command(subcommand)]
    Kt(KtCommand),
    /// Double-ratchet channels with one user (forward secrecy, e3kit's ratchet channels).
    ///
    /// Each side publishes ratchet keys first: every `ratchet` command does when a rotation is
    /// due (hourly), `ratchet rotate` does it now. Then one side creates the channel and the
    /// other joins it; both encrypt and decrypt in it. Each message decrypts once: keep the
    /// plaintext, not the ciphertext (docs/forward-secrecy.md).
    Ratchet(RatchetArgs),
}

/// `sealkit kt ...`
#[derive(Subcommand, Debug)]
pub(crate) enum KtCommand {
    /// Check that the newest signed head of --app's key directory on --server is an
    /// append-only extension of the head stored in --state, then store the new head. The first
    /// run (no FILE yet) trusts and stores what the server shows. Exits 1 on a fork, a rollback,
    /// a bad signature or a changed signing key; prints the accepted epoch.
    Audit {
        /// The application whose directory to audit.
        #[arg(long = "app", value_name = "APP_ID")]
        app_id: String,
        /// The auditor's state (JSON: the pinned signing key and the last accepted head).
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum KeyCommand {
    /// Generate a private key; prints it as base64 of DER.
    Generate {
        /// Key algorithm.
        #[arg(long = "type", value_enum, default_value_t = KeyTypeArg::Ed25519)]
        key_type: KeyTypeArg,
        /// Write the key to FILE (created with mode 0600; an existing file is not overwritten).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the public key of a private key, as base64 of SubjectPublicKeyInfo DER.
    Public {
        /// The private key: a file, or the key itself (base64 of DER, or PEM).
        #[arg(long, value_name = "PRIV")]
        key: String,
    },
    /// Print the key id (hex) of a public or private key.
    Id {
        /// The key (public or private): a file, or the key itself.
        #[arg(long, value_name = "KEY")]
        key: String,
        /// Print the 32-byte SHA-256 id instead of the default 8-byte one.
        #[arg(long)]
        sha256: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum KeyTypeArg {
    Ed25519,
    Curve25519,
    Secp256r1,
}

impl From<KeyTypeArg> for KeyType {
    fn from(t: KeyTypeArg) -> Self {
        match t {
            KeyTypeArg::Ed25519 => KeyType::Ed25519,
            KeyTypeArg::Curve25519 => KeyType::Curve25519,
            KeyTypeArg::Secp256r1 => KeyType::Secp256r1,
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct InputArg {
    /// Read the data from FILE instead of stdin.
    #[arg(long = "in", value_name = "F")]
    pub(crate) input: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct SignArgs {
    /// The signer's private key: a file, or the key itself.
    #[arg(long, value_name = "PRIV")]
    pub(crate) key: String,
    #[command(flatten)]
    pub(crate) input: InputArg,
}

#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The signer's public key: a file, or the key itself.
    #[arg(long, value_name = "PUB")]
    pub(crate) key: String,
    /// The signature, base64 (or a file holding it, base64 or DER).
    #[arg(long, value_name = "B64")]
    pub(crate) signature: String,
    #[command(flatten)]
    pub(crate) input: InputArg,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// e3kit authEncrypt: sign-and-encrypt with an encrypted signature footer, always padded.
    Auth,
    /// e3kit encrypt: sign-then-encrypt, signature in the message header.
    Legacy,
    /// No signature.
    Plain,
}

#[derive(Args, Debug)]
pub(crate) struct EncryptArgs {
    /// A recipient's public key (file or key); repeat for several recipients.
    #[arg(long = "to", value_name = "PUB", required = true)]
    pub(crate) to: Vec<String>,
    /// Sign with this private key (file or key).
    #[arg(long = "sign-with", value_name = "PRIV")]
    pub(crate) sign_with: Option<String>,
    /// Message format [default: auth with --sign-with, else plain].
    #[arg(long, value_enum)]
    pub(crate) mode: Option<Mode>,
    /// Pad the plaintext to a multiple of 160 bytes (always on in auth mode).
    #[arg(long)]
    pub(crate) padding: bool,
    /// Write key ids as SHA-256 (virgil-crypto's useSha256Identifiers).
    #[arg(long)]
    pub(crate) sha256_ids: bool,
    #[command(flatten)]
    pub(crate) input: InputArg,
    /// Write the message to F (replaced atomically once complete).
    #[arg(long = "out", value_name = "F")]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct DecryptArgs {
    /// The recipient's private key (file or key).
    #[arg(long, value_name = "PRIV")]
    pub(crate) key: String,
    /// Require a valid signature by this public key (repeat for a key chain: any may match).
    #[arg(long = "verify-with", value_name = "PUB")]
    pub(crate) verify_with: Vec<String>,
    #[command(flatten)]
    pub(crate) input: InputArg,
    /// Write the plaintext to F; it appears only after the message was authenticated.
    #[arg(long = "out", value_name = "F")]
    pub(crate) output: Option<PathBuf>,
}

/// Who acts, against which server, with which local key store and tokens. Global: accepted
/// before the subcommand (`sealkit --identity alice user register`) and after it.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Client options")]
pub(crate) struct SdkOptions {
    /// URL of the Sealkit server.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "SEALKIT_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) server: String,
    /// The identity to act as (required with --app-credentials; with --token-command it is
    /// checked against the token's, and passed to the command as $SEALKIT_IDENTITY).
    #[arg(long, global = true, value_name = "ID", env = "SEALKIT_IDENTITY")]
    pub(crate) identity: Option<String>,
    /// Local key store: private keys, card cache, group tickets [default:
    /// $XDG_DATA_HOME/sealkit, else ~/.local/share/sealkit; for `chat`, its
    /// chat/APP_ID/IDENTITY subdirectory].
    #[arg(long, global = true, value_name = "DIR", env = "SEALKIT_HOME")]
    pub(crate) home: Option<PathBuf>,
    /// Development: mint tokens locally from `sealkit app create --json` output.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "SEALKIT_APP_CREDENTIALS",
        conflicts_with = "token_command"
    )]
    pub(crate) app_credentials: Option<PathBuf>,
    /// Production: run CMD with `sh -c` whenever a token is needed; it prints the JWT on stdout.
    #[arg(long, global = true, value_name = "CMD", env = "SEALKIT_TOKEN_COMMAND")]
    pub(crate) token_command: Option<String>,
}

/// `sealkit user ...`
#[derive(Args, Debug)]
pub(crate) struct UserArgs {
    #[command(subcommand)]
    pub(crate) cmd: UserCommand,
}

#[derive(Args, Debug)]
pub(crate) struct KeyNameArg {
    /// The name of a separate (Keyknox v2) backup entry; without it, the identity's default backup.
    #[arg(long, value_name = "N")]
    pub(crate) key_name: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct PasswordArg {
    /// Read the password from the first line of stdin instead of the terminal.
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum UserCommand {
    /// Publish a card for a new key (stored in --home); prints the card id.
    Register,
    /// Revoke the identity's cards and delete the local key.
    Unregister,
    /// Replace a lost key: publish a new card replacing the old one (needs no local key; run
    /// `cleanup` first to discard one); prints the new card id.
    Rotate,
    /// Delete the local private key and card cache (restore it from a backup later).
    Cleanup,
    /// Print the users' cards as JSON (an array, in the order asked). Each card is checked
    /// against the server's key directory when it has one; a failed check exits 1 naming it.
    Find {
        /// The identities.
        #[arg(required = true, value_name = "ID")]
        identities: Vec<String>,
    },
    /// Check your own key history in the server's key directory: lists every version; exits 0
    /// when each was made by a key this device holds or held, 1 otherwise, naming each foreign
    /// version and its time.
    Monitor,
    /// Print the safety number of you and ID (60 digits in groups of 5), to compare with what
    /// ID's device shows.
    SafetyNumber {
        /// The contact.
        #[arg(value_name = "ID")]
        contact: String,
    },
    /// Pin ID's current key once you compared safety numbers: from then on `find` and `msg
    /// encrypt` refuse ID when the key changes, until you verify again or accept the change.
    /// Prints the pinned card id.
    Verify {
        /// The contact.
        #[arg(value_name = "ID")]
        contact: String,
        /// The safety number ID's device shows (60 digits, spaces allowed); pins only if it is
        /// the one computed here.
        #[arg(
            long,
            value_name = "DIGITS",
            required_unless_present = "accept_change",
            conflicts_with = "accept_change"
        )]
        safety_number: Option<String>,
        /// Accept the new key of a verified contact whose key changed, without comparing
        /// safety numbers.
        #[arg(long)]
        accept_change: bool,
    },
    /// Back the private key up on the server, encrypted with a password-derived key.
    Backup {
        #[command(flatten)]
        key_name: KeyNameArg,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Restore the private key from its backup onto this device.
    Restore {
        #[command(flatten)]
        key_name: KeyNameArg,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Re-encrypt the backup with a new password (--password-stdin: old, then new, one per line).
    ChangePassword {
        #[command(flatten)]
        key_name: KeyNameArg,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Delete the backup (needs no password).
    ResetBackup {
        #[command(flatten)]
        key_name: KeyNameArg,
    },
}

/// Where messages come from and go to.
#[derive(Args, Debug)]
pub(crate) struct InOut {
    /// Read from F (binary ciphertext when decrypting) instead of stdin (base64 lines).
    #[arg(long = "in", value_name = "F")]
    pub(crate) input: Option<PathBuf>,
    /// Write to F (binary ciphertext when encrypting; appears only when complete) instead of
    /// stdout (base64 lines).
    #[arg(long = "out", value_name = "F")]
    pub(crate) output: Option<PathBuf>,
}

/// `sealkit msg ...`
#[derive(Args, Debug)]
pub(crate) struct MsgArgs {
    #[command(subcommand)]
    pub(crate) cmd: MsgCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum MsgCommand {
    /// Sign and encrypt (e3kit authEncrypt) for users and yourself. From stdin to stdout each
    /// line is one message and each output line one base64 message.
    Encrypt {
        /// The recipients' identities.
        #[arg(
            long,
            value_name = "ID[,ID...]",
            value_delimiter = ',',
            required = true
        )]
        to: Vec<String>,
        #[command(flatten)]
        io: InOut,
    },
    /// Decrypt and verify the sender (e3kit authDecrypt). Each stdin line is one base64
    /// message; each plaintext is written followed by a newline.
    Decrypt {
        /// The sender's identity.
        #[arg(long, value_name = "ID")]
        from: String,
        /// When the message was sent (RFC 3339), to verify it with the sender's key of then.
        #[arg(long, value_name = "RFC3339", value_parser = crate::time::parse_rfc3339)]
        at: Option<SystemTime>,
        #[command(flatten)]
        io: InOut,
    },
}

/// `sealkit group ...`
#[derive(Args, Debug)]
pub(crate) struct GroupArgs {
    #[command(subcommand)]
    pub(crate) cmd: GroupCommand,
}

#[derive(Args, Debug)]
pub(crate) struct MemberArg {
    /// The participant(s).
    #[arg(long, value_name = "ID", value_delimiter = ',', required = true)]
    pub(crate) member: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum GroupCommand {
    /// Create a group (ID: at least 10 characters, unique for you) with users.
    Create {
        /// The group id.
        id: String,
        /// The other participants.
        #[arg(
            long = "with",
            value_name = "ID[,ID...]",
            value_delimiter = ',',
            required = true
        )]
        with: Vec<String>,
    },
    /// Download a group someone created with you onto this device.
    Load {
        /// The group id.
        id: String,
        /// Who created the group.
        #[arg(long, value_name = "ID")]
        initiator: String,
    },
    /// Share the group with users (initiator only).
    Add {
        /// The group id.
        id: String,
        #[command(flatten)]
        member: MemberArg,
    },
    /// Remove users from the group (initiator only).
    Remove {
        /// The group id.
        id: String,
        #[command(flatten)]
        member: MemberArg,
    },
    /// Share the group again with a user who rotated their key (initiator only).
    ReAdd {
        /// The group id.
        id: String,
        #[command(flatten)]
        member: MemberArg,
    },
    /// Fetch the group's newest state from the server.
    Update {
        /// The group id.
        id: String,
    },
    /// Delete the group (for everyone when run by the initiator) and its local copy.
    Delete {
        /// The group id.
        id: String,
    },
    /// Encrypt for the group. From stdin to stdout each line is one message.
    Encrypt {
        /// The group id.
        id: String,
        #[command(flatten)]
        io: InOut,
    },
    /// Decrypt a group message and verify the sender.
    Decrypt {
        /// The group id.
        id: String,
        /// The sender's identity.
        #[arg(long, value_name = "ID")]
        from: String,
        /// When the message was sent (RFC 3339), to verify it with the sender's key of then.
        #[arg(long, value_name = "RFC3339", value_parser = crate::time::parse_rfc3339)]
        at: Option<SystemTime>,
        #[command(flatten)]
        io: InOut,
    },
}

/// `sealkit ratchet ...`
#[derive(Args, Debug)]
pub(crate) struct RatchetArgs {
    #[command(subcommand)]
    pub(crate) cmd: RatchetCommand,
}

/// Which ratchet channel.
#[derive(Args, Debug)]
pub(crate) struct ChannelArg {
    /// The other participant.
    #[arg(long = "with", value_name = "ID")]
    pub(crate) with: String,
    /// The channel's name, for several channels with one user [default: default].
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum RatchetCommand {
    /// Create a channel with a user who published ratchet keys; they join it next.
    Create {
        #[command(flatten)]
        channel: ChannelArg,
    },
    /// Join the channel a user created with you.
    Join {
        #[command(flatten)]
        channel: ChannelArg,
    },
    /// Encrypt in the channel. From stdin to stdout each line is one message.
    Encrypt {
        #[command(flatten)]
        channel: ChannelArg,
        #[command(flatten)]
        io: InOut,
    },
    /// Decrypt messages of the channel, each once. Each stdin line is one base64 message; each
    /// plaintext is written followed by a newline.
    Decrypt {
        #[command(flatten)]
        channel: ChannelArg,
        #[command(flatten)]
        io: InOut,
    },
    /// Delete the channel on this device (and your invitation for it, if you created it).
    Delete {
        #[command(flatten)]
        channel: ChannelArg,
    },
    /// Publish or rotate your ratchet keys now.
    Rotate,
}

/// Where the server's data lives (shared by `serve` and `app`).
#[derive(Args, Debug, Clone)]
pub(crate) struct StorageArgs {
    /// Directory of the embedded SQLite database [default: ./sealkit-data].
    #[arg(long, value_name = "DIR", conflicts_with = "database_url")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Use PostgreSQL instead of SQLite (postgres://user@host:port/db).
    #[arg(long, value_name = "URL", env = "SEALKIT_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// The brainkey (Pythia) master secret [default: DATA_DIR/pythia.secret, created on first
    /// start]. Every replica must use the same file, and it must never change: key backups
    /// depend on it.
    #[arg(long, value_name = "FILE")]
    pub(crate) pythia_secret_file: Option<PathBuf>,
    /// The key-transparency signing key [default: DATA_DIR/kt.key, created on first start].
    /// Every replica must use the same file: the database refuses another key.
    #[arg(long, value_name = "FILE")]
    pub(crate) kt_key_file: Option<PathBuf>,
    /// TOML configuration file (keys: listen, data_dir, database_url, body_limit,
    /// jwt_leeway_secs, pythia_secret_file, kt_key_file, kt_epoch_secs, kt_node_cache_nodes,
    /// card_cache_ms, card_cache_entries, brainkey_burst, brainkey_per_second,
    /// keyknox_quota_bytes, chat_message_limit, chat_feed_capacity, chat_channels_per_creator,
    /// chat_sockets_per_identity, chat_token_recheck_secs, hook_poll_ms, hook_retry_base_ms,
    /// hook_retry_max_ms, hook_timeout_secs, tls_cert, tls_key, max_connections,
    /// header_read_timeout_secs, request_timeout_secs,
    /// idle_timeout_secs, drain_timeout_secs; docs/security.md lists them); command-line
    /// options win.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Do not create the demo application on first start (SQLite only: when the database has
    /// no application yet, `serve` creates one named "demo" and writes its credentials to
    /// DATA_DIR/demo-app.json for `sealkit chat`).
    #[arg(long)]
    pub(crate) no_demo_app: bool,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key. Both files
    /// are read again on SIGHUP, without dropping connections.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, SEC1 or PKCS#1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Log format on stderr: text (coloured only on a terminal) or json (one object per line,
    /// for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

/// How `serve` and `backend` write their logs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Human-readable lines; colours only when stderr is a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand, Debug)]
pub(crate) enum AppCommand {
    /// Create an application and its first API key; prints the credentials (keep them secret).
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        storage: StorageArgs,
        /// Print the credentials as JSON: {"app_id","api_key_id","api_private_key","api_public_key"}.
        #[arg(long)]
        json: bool,
    },
    /// List applications and their API keys.
    List {
        #[command(flatten)]
        storage: StorageArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add an API key to an application (rotate keys without downtime); prints credentials JSON.
    AddKey {
        /// The application.
        #[arg(long)]
        app_id: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke an API key: tokens it signed stop working (within a minute on running servers).
    RevokeKey {
        /// The key id (the JWT `kid`).
        #[arg(long)]
        key_id: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Push hooks: chat events (metadata only, never ciphertext) POSTed, signed, to the
    /// application's backend; see docs/chat.md, "Push hooks".
    #[command(subcommand)]
    Hook(HookCommand),
}

/// `sealkit app hook ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum HookCommand {
    /// Set (or replace) the application's webhook; prints the new signing secret (keep it
    /// secret; it is shown this once). Events still queued go to the new URL.
    Set {
        /// The application.
        #[arg(value_name = "APP_ID")]
        app_id: String,
        /// Where events are POSTed (https:// in production).
        #[arg(long)]
        url: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Show the application's webhook and its undelivered events (not the secret).
    Show {
        /// The application.
        #[arg(value_name = "APP_ID")]
        app_id: String,
        #[command(flatten)]
        storage: StorageArgs,
        /// Print JSON: {"app_id","url","created_at","queued","last_error"}.
        #[arg(long)]
        json: bool,
    },
    /// Remove the application's webhook and drop its undelivered events.
    Remove {
        /// The application.
        #[arg(value_name = "APP_ID")]
        app_id: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Args, Debug)]
pub(crate) struct TokenArgs {
    /// Lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub(crate) ttl: u64,
}

/// `sealkit backend`.
#[derive(Args, Debug)]
pub(crate) struct BackendArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub(crate) listen: SocketAddr,
    /// Lifetime of the Virgil JWTs it mints, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub(crate) token_ttl: u64,
}

/// `sealkit chat`.
#[derive(Args, Debug)]
pub(crate) struct ChatArgs {
    /// Get tokens from this app backend (`sealkit backend` or Virgil's sample backend): POST
    /// /authenticate, then GET /virgil-jwt. Without it, --app-credentials, --token-command, or
    /// ./sealkit-data/demo-app.json (written by `sealkit serve` on first start).
    #[arg(long, value_name = "URL")]
    pub(crate) backend: Option<String>,
    /// Open this channel: join it, or create it as an open group channel.
    #[arg(long, value_name = "NAME")]
    pub(crate) channel: Option<String>,
    /// After stdin ends, keep printing incoming messages for SECS seconds (for scripts).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub(crate) linger: f64,
    /// Instead of chatting: download the file sent as message SEQ of --channel into --out, then
    /// exit. The file appears only once complete and verified (exit status 1 otherwise).
    #[arg(long, value_name = "SEQ", requires_all = ["channel", "out"])]
    pub(crate) download: Option<i64>,
    /// Where --download writes the file (replaced if it exists).
    #[arg(long, value_name = "FILE", requires = "download")]
    pub(crate) out: Option<PathBuf>,
}
