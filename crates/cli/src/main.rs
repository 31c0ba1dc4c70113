//! `sealkit`: Virgil-compatible keys, signatures and encryption from the terminal.
//!
//! This file is glue: it parses arguments, calls `sealkit-crypto`, and maps errors to one line on
//! stderr and an exit code. Input/output plumbing (staged output, spooling, progress) lives in
//! `io.rs`, key arguments in `keyarg.rs`.

mod backend_cmd;
mod chat_cmd;
mod crypto_cmds;
mod io;
mod keyarg;
mod sdk_cmds;
mod server_cmds;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use sealkit_crypto::KeyType;
use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) use server_cmds::{AppCommand, ServeArgs, TokenArgs};

/// Sealkit: end-to-end encryption compatible with Virgil Security's e3kit.
///
/// Keys are printed and read as base64 of DER (what virgil-crypto exports); key arguments and key
/// files may also be raw DER or PEM. Data is read from stdin and written to stdout unless --in /
/// --out are given.
#[derive(Parser, Debug)]
#[command(name = "sealkit", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Options of the commands that act as a user (`user`, `msg`, `group`, `chat`, `token`,
    /// `backend`); accepted before or after the subcommand.
    #[command(flatten)]
    pub(crate) client: sdk_cmds::SdkOptions,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    /// --app-credentials.
    ///
    /// WARNING: DEMO LOGIN, NO PASSWORD. Anyone who can reach it gets a token for ANY identity
    /// of the application. Tutorials and local tests only; in production your own backend mints
    /// the tokens after your own login (docs/chat.md).
    Backend(backend_cmd::BackendArgs),
    /// End-to-end encrypted chat in the terminal (line mode; scriptable through stdin/stdout).
    ///
    /// Registers --identity on first use and opens --channel. Tokens come from --backend,
    /// --app-credentials or --token-command, else from ./sealkit-data/demo-app.json (written by
    /// `sealkit serve` on first start). Keys are kept per application and identity under the
    /// default home unless --home is given. Type a line to send it; /help lists the commands.
    /// At the end of stdin it finishes its sends and exits.
    Chat(chat_cmd::ChatArgs),
    /// Your identity on a Sealkit server: register, find users, back up and restore the key.
    User(sdk_cmds::UserArgs),
    /// Encrypt and decrypt messages between registered users (e3kit authEncrypt/authDecrypt).
    Msg(sdk_cmds::MsgArgs),
    /// Group chats: create, load, manage participants, encrypt and decrypt.
    Group(sdk_cmds::GroupArgs),
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

/// Prints a line on stdout. A closed pipe (`sealkit ... | head`) ends the program quietly
/// instead of panicking like `println!`.
pub(crate) fn print_line(text: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("sealkit: error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: the chain of causes, outermost first.
            let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("sealkit: error: {}", msg.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Key(k) => crypto_cmds::key_command(k)?,
        Command::Sign(a) => crypto_cmds::sign(a)?,
        Command::Verify(a) => return crypto_cmds::verify(a),
        Command::Encrypt(a) => crypto_cmds::encrypt(a)?,
        Command::Decrypt(a) => crypto_cmds::decrypt(a)?,
        Command::Serve(a) => server_cmds::serve(a)?,
        Command::App(a) => server_cmds::app(a)?,
        Command::Token(a) => server_cmds::token(&cli.client, a)?,
        Command::Backend(a) => backend_cmd::backend(&cli.client, a)?,
        Command::Chat(a) => chat_cmd::chat(&cli.client, a)?,
        Command::User(a) => sdk_cmds::user(&cli.client, a)?,
        Command::Msg(a) => sdk_cmds::msg(&cli.client, a)?,
        Command::Group(a) => sdk_cmds::group(&cli.client, a)?,
    }
    Ok(ExitCode::SUCCESS)
}
