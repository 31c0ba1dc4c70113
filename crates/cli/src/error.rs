//! The errors of the `sealkit` commands. `main.rs` prints one as a single line, the error and
//! its sources joined by `: ` (see [`one_line`]), and exits with status 1.

use sealkit_proto::jwt::{CredentialsError, JwtError};
use sealkit_server::store::StoreError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What a command returns.
pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

/// Why a `sealkit` command failed. Each message reads as the start of a sentence; the source,
/// when there is one, says why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CliError {
    // ----------------------------------------------------------------------- files and streams
    /// A file (or the file a key argument names) could not be read.
    #[error("cannot read {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An output file could not be written.
    #[error("cannot write {}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A complete output could not replace its target file.
    #[error("cannot write {}", path.display())]
    Persist {
        /// The target file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tempfile::PersistError,
    },
    /// `key generate --out` could not write the key.
    #[error("cannot write {}", path.display())]
    WriteKeyFile {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyFileError,
    },
    /// No temporary file could be made beside an output.
    #[error("cannot create a file in {}", dir.display())]
    CreateIn {
        /// The output's directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No anonymous temporary file could be made (to spool stdin or stage a plaintext).
    #[error("cannot create a temporary file")]
    TempFile(#[source] io::Error),
    /// Reading the data failed.
    #[error("cannot read the input")]
    ReadInput(#[source] io::Error),
    /// Reading stdin failed.
    #[error("cannot read stdin")]
    ReadStdin(#[source] io::Error),
    /// Writing stdout failed.
    #[error("cannot write to stdout")]
    WriteStdout(#[source] io::Error),
    /// A signing mode needs the input's length before reading it, and stdin has none.
    #[error("the input length is needed but unknown")]
    UnknownInputLength,
    /// Another I/O failure, described by the system.
    #[error(transparent)]
    Io(#[from] io::Error),

    // ----------------------------------------------------------------------- keys and crypto
    /// A `--key`-like argument that is not a private key.
    #[error("{0} is not a private key")]
    NotAPrivateKey(KeyArgument, #[source] sealkit_crypto::Error),
    /// A `--key`-like argument that is not a public key.
    #[error("{0} is not a public key")]
    NotAPublicKey(KeyArgument, #[source] sealkit_crypto::Error),
    /// A key argument that is neither a public nor a private key.
    #[error("{0} is neither a public nor a private key")]
    NotAKey(KeyArgument, #[source] sealkit_crypto::Error),
    /// `--signature` is neither DER nor base64.
    #[error("the signature is not base64")]
    SignatureNotBase64(#[source] base64::DecodeError),
    /// `encrypt --mode plain --sign-with`.
    #[error("--sign-with cannot be used with --mode plain")]
    SignerInPlainMode,
    /// `encrypt --mode auth|legacy` without `--sign-with`.
    #[error("this mode needs --sign-with")]
    ModeNeedsSigner,
    /// The crypto core refused.
    #[error(transparent)]
    Crypto(#[from] sealkit_crypto::Error),

    // ----------------------------------------------------------------------- tokens and the SDK
    /// The tokio runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    /// Neither `$XDG_DATA_HOME` nor `$HOME` names a directory.
    #[error("no home directory: pass --home DIR")]
    NoHome,
    /// An application credentials file that cannot mint tokens.
    #[error("{}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: CredentialsError,
    },
    /// `--app-credentials` without `--identity`.
    #[error("--app-credentials needs --identity ID")]
    CredentialsNeedIdentity,
    /// A client command without a token source.
    #[error(
        "no way to get tokens: pass --app-credentials FILE (development) or --token-command CMD"
    )]
    NoTokenSource,
    /// The token source gives tokens for another identity than `--identity`.
    #[error("the token is for {token:?}, not for --identity {wanted:?}")]
    WrongIdentity {
        /// The token's identity.
        token: String,
        /// `--identity`.
        wanted: String,
    },
    /// The server is unreachable and the card cache lacks a card.
    #[error("the server is unreachable ({reason}) and the cache cannot help")]
    Unreachable {
        /// Why the server could not be reached.
        reason: String,
        /// Why the cache could not answer.
        #[source]
        source: sealkit::Error,
    },
    /// The user has no card.
    #[error("no card found for {0}")]
    NoCard(String),
    /// The SDK failed.
    #[error(transparent)]
    Sdk(#[from] sealkit::Error),
    /// `user monitor`: versions of the own key history were not made by this device.
    #[error(
        "{count} version(s) of {identity}'s key history were not made by a key this device holds \
         or held: {list}"
    )]
    ForeignKeyVersions {
        /// The identity.
        identity: String,
        /// How many.
        count: usize,
        /// Each version and its time.
        list: String,
    },
    /// `kt audit --state FILE`: the file is not an auditor state.
    #[error("{} is not a key-transparency audit state: {reason}", path.display())]
    AuditState {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A JSON output could not be made.
    #[error(transparent)]
    Json(#[from] serde_json::Error),

    // ----------------------------------------------------------------------- user, msg, group
    /// `--password-stdin` and stdin failed.
    #[error("cannot read the password from stdin")]
    ReadPassword(#[source] io::Error),
    /// `--password-stdin` with fewer lines than passwords.
    #[error("expected {expected} password line(s) on stdin, line {line} is missing or empty")]
    MissingPasswordLine {
        /// How many passwords the command needs.
        expected: usize,
        /// The first missing line, from 1.
        line: usize,
    },
    /// No terminal to ask for the password on.
    #[error("cannot ask for the password on the terminal (use --password-stdin)")]
    Prompt(#[source] io::Error),
    /// An empty password was typed.
    #[error("the password is empty")]
    EmptyPassword,
    /// The password and its confirmation differ.
    #[error("the passwords differ")]
    PasswordsDiffer,
    /// A line of stdin that is not a base64 message.
    #[error("input line {line} is not base64")]
    LineNotBase64 {
        /// The line number, from 1.
        line: usize,
        /// Why.
        #[source]
        source: base64::DecodeError,
    },
    /// A message on a line of stdin could not be decrypted.
    #[error("message on input line {line}")]
    MessageOnLine {
        /// The line number, from 1.
        line: usize,
        /// Why.
        #[source]
        source: sealkit::Error,
    },
    /// A group this device has no copy of.
    #[error(
        "group {0:?} is not on this device: create it, or run `sealkit group load {0} \
         --initiator ID`"
    )]
    GroupNotLocal(String),
    /// `ratchet encrypt|decrypt`: no channel with that user and name on this device.
    #[error(
        "no ratchet channel {name:?} with {with} on this device: run `sealkit ratchet create \
         --with {with}` (or `join`, if they created it) first"
    )]
    RatchetChannelNotLocal {
        /// The other participant.
        with: String,
        /// The channel name.
        name: String,
    },

    // ----------------------------------------------------------------------- server and tokens
    /// `serve --config` names a file that is not a valid configuration.
    #[error("invalid configuration in {}", path.display())]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
    /// The server failed.
    #[error(transparent)]
    Server(#[from] sealkit_server::ServerError),
    /// The server's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The demo application could not be created on first start.
    #[error("cannot create the demo app")]
    CreateDemoApp(#[source] StoreError),
    /// The demo application's credentials could not be saved.
    #[error("cannot write the demo app credentials to {}", path.display())]
    WriteDemoApp {
        /// The credentials file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `app add-key` failed.
    #[error("cannot add a key to app {app_id}")]
    AddKey {
        /// The application.
        app_id: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// `app revoke-key` failed.
    #[error("cannot revoke key {key_id}")]
    RevokeKey {
        /// The API key.
        key_id: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// `app hook set` failed.
    #[error("cannot set the push hook of app {app_id}")]
    SetHook {
        /// The application.
        app_id: String,
        /// Why.
        #[source]
        source: sealkit_server::admin::HookAdminError,
    },
    /// `app hook show` for an application without a hook.
    #[error("app {0} has no push hook (set one with `sealkit app hook set {0} --url URL`)")]
    NoHook(String),
    /// `token` without `--app-credentials`.
    #[error("token needs --app-credentials FILE (`sealkit app create --json` output)")]
    TokenNeedsCredentials,
    /// `token` without `--identity`.
    #[error("token needs --identity ID")]
    TokenNeedsIdentity,
    /// The JWT could not be made.
    #[error("cannot mint a token: {0}")]
    MintToken(JwtError),
    /// `backend` without `--app-credentials`.
    #[error(
        "backend needs --app-credentials FILE (`sealkit app create --json` output, or \
         sealkit-data/demo-app.json)"
    )]
    BackendNeedsCredentials,
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The demo backend stopped with an error.
    #[error("the backend failed")]
    BackendFailed(#[source] io::Error),

    // ----------------------------------------------------------------------- chat
    /// `--linger` is negative or not finite.
    #[error("--linger must be a number of seconds, at least 0")]
    BadLinger,
    /// `--backend` with another token source.
    #[error(
        "--backend is a token source, and so are --app-credentials and --token-command (or \
         SEALKIT_APP_CREDENTIALS / SEALKIT_TOKEN_COMMAND): pass only one"
    )]
    SeveralTokenSources,
    /// `--backend` without `--identity`.
    #[error("--backend needs --identity ID (the user to log in as)")]
    BackendNeedsIdentity,
    /// `chat` without any token source, not even the demo app.
    #[error(
        "no way to get tokens: pass --backend URL (an app backend such as `sealkit backend`), \
         --app-credentials FILE or --token-command CMD; or run `sealkit serve` in this \
         directory first, which writes {demo_app}"
    )]
    NoChatTokenSource {
        /// Where `sealkit serve` writes the demo app's credentials.
        demo_app: &'static str,
    },
    /// `chat` with the demo app but without `--identity`.
    #[error("pass --identity ID: who you are in the chat")]
    ChatNeedsIdentity,
    /// The HTTP client for `--backend` could not be made.
    #[error("cannot create an HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// The token source failed.
    #[error("cannot get a token: {0}")]
    GetToken(sealkit::BoxError),
    /// The token source gave something else than a JWT.
    #[error("the token source gave something that is not a JWT")]
    NotAJwt(#[source] JwtError),
    /// A token without an application id.
    #[error("the token names no application")]
    TokenWithoutApp(#[source] JwtError),
    /// A token without an identity.
    #[error("the token names no identity")]
    TokenWithoutIdentity(#[source] JwtError),
    /// A local key the server has no card for.
    #[error(
        "the key of {identity} in {} has no card on this server (it was made for another \
         server or application): discard it with `sealkit user cleanup --identity {identity} \
         --home {}` (plus the token option you use here) and start chat again to register a \
         new one",
        home.display(),
        home.display()
    )]
    KeyWithoutCard {
        /// The user.
        identity: String,
        /// The key store.
        home: PathBuf,
    },
    /// A registered identity whose key is not in the key store.
    #[error(
        "{identity} is registered on this server, but its private key is not in {}: restore \
         it from its backup with `sealkit user restore --identity {identity} --home {}` (plus \
         the token option you use here), or start chat with the --home that holds it",
        home.display(),
        home.display()
    )]
    KeyElsewhere {
        /// The user.
        identity: String,
        /// The key store.
        home: PathBuf,
    },
    /// A chat command that needs a current channel, without one.
    #[error("no current channel: /join NAME, /create NAME, /dm ID or /switch NAME first")]
    NoCurrentChannel,
    /// `/switch` to a channel the user is not in.
    #[error("you are not in {0:?}: /channels lists yours")]
    NotInChannel(String),
    /// `--channel` names a closed channel the user is not in.
    #[error("channel {0:?} is not open: ask one of its admins to /add you")]
    ChannelNotOpen(String),
    /// `/history` with a count that is not a positive number.
    #[error("/history N: N is a positive number")]
    HistoryCount,
    /// A chat command with the wrong arguments: its help line.
    #[error("usage: {0}")]
    ChatUsage(&'static str),
    /// `/send-file` without a path.
    #[error("/send-file PATH: the file to send")]
    SendFileUsage,
    /// An unknown chat command.
    #[error("unknown command {0}: /help lists them")]
    UnknownChatCommand(String),
}

impl CliError {
    /// "cannot read PATH", with the reason.
    pub(crate) fn read(path: &Path, source: io::Error) -> Self {
        Self::ReadFile {
            path: path.to_owned(),
            source,
        }
    }
}

/// Why `key generate --out` could not write the key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum KeyFileError {
    /// The file exists: keys are never overwritten.
    #[error("the file exists (not overwriting a key)")]
    Exists(#[source] io::Error),
    /// The file could not be created.
    #[error("cannot create it")]
    Create(#[source] io::Error),
    /// Writing the key failed.
    #[error(transparent)]
    Write(io::Error),
}

/// A key argument as errors name it, without echoing key material.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum KeyArgument {
    /// The argument names this file.
    File(String),
    /// The argument is the key itself.
    Inline,
}

impl fmt::Display for KeyArgument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "key file {path}"),
            Self::Inline => f.write_str("key argument"),
        }
    }
}

/// Why a server configuration file was refused, as the server crate words it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConfigError(pub(crate) String);

/// An error and its sources on one line, outermost first: `cannot write out.bin: Permission
/// denied (os error 13)`.
pub(crate) fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
