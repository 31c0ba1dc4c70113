//! `sealkit`: Virgil-compatible keys, signatures and encryption from the terminal.
//!
//! This file is glue: it parses arguments, calls `sealkit-crypto`, and maps errors to one line on
//! stderr and an exit code. Input/output plumbing (staged output, spooling, progress) lives in
//! `io.rs`, key arguments in `keyarg.rs`.

mod io;
mod keyarg;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use rand_core::OsRng;
use sealkit_crypto::{Crypto, KeyIdScheme, KeyType, PrivateKey, Signing};
use std::path::PathBuf;
use std::process::ExitCode;

/// Sealkit: end-to-end encryption compatible with Virgil Security's e3kit.
///
/// Keys are printed and read as base64 of DER (what virgil-crypto exports); key arguments and key
/// files may also be raw DER or PEM. Data is read from stdin and written to stdout unless --in /
/// --out are given.
#[derive(Parser, Debug)]
#[command(name = "sealkit", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
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
enum KeyTypeArg {
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
struct InputArg {
    /// Read the data from FILE instead of stdin.
    #[arg(long = "in", value_name = "F")]
    input: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SignArgs {
    /// The signer's private key: a file, or the key itself.
    #[arg(long, value_name = "PRIV")]
    key: String,
    #[command(flatten)]
    input: InputArg,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The signer's public key: a file, or the key itself.
    #[arg(long, value_name = "PUB")]
    key: String,
    /// The signature, base64 (or a file holding it, base64 or DER).
    #[arg(long, value_name = "B64")]
    signature: String,
    #[command(flatten)]
    input: InputArg,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// e3kit authEncrypt: sign-and-encrypt with an encrypted signature footer, always padded.
    Auth,
    /// e3kit encrypt: sign-then-encrypt, signature in the message header.
    Legacy,
    /// No signature.
    Plain,
}

#[derive(Args, Debug)]
struct EncryptArgs {
    /// A recipient's public key (file or key); repeat for several recipients.
    #[arg(long = "to", value_name = "PUB", required = true)]
    to: Vec<String>,
    /// Sign with this private key (file or key).
    #[arg(long = "sign-with", value_name = "PRIV")]
    sign_with: Option<String>,
    /// Message format [default: auth with --sign-with, else plain].
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Pad the plaintext to a multiple of 160 bytes (always on in auth mode).
    #[arg(long)]
    padding: bool,
    /// Write key ids as SHA-256 (virgil-crypto's useSha256Identifiers).
    #[arg(long)]
    sha256_ids: bool,
    #[command(flatten)]
    input: InputArg,
    /// Write the message to F (replaced atomically once complete).
    #[arg(long = "out", value_name = "F")]
    output: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DecryptArgs {
    /// The recipient's private key (file or key).
    #[arg(long, value_name = "PRIV")]
    key: String,
    /// Require a valid signature by this public key (repeat for a key chain: any may match).
    #[arg(long = "verify-with", value_name = "PUB")]
    verify_with: Vec<String>,
    #[command(flatten)]
    input: InputArg,
    /// Write the plaintext to F; it appears only after the message was authenticated.
    #[arg(long = "out", value_name = "F")]
    output: Option<PathBuf>,
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
        Command::Key(k) => key_command(k)?,
        Command::Sign(a) => {
            let key = keyarg::private_key(&a.key)?;
            let mut signer = sealkit_crypto::Signer::new();
            io::for_each_chunk(a.input.input.as_deref(), |c| signer.update(c))?;
            let sig = signer.finish(&key, &mut OsRng)?;
            println!("{}", base64::engine::general_purpose::STANDARD.encode(sig));
        }
        Command::Verify(a) => return verify(a),
        Command::Encrypt(a) => encrypt(a)?,
        Command::Decrypt(a) => decrypt(a)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn key_command(cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate { key_type, out } => {
            let key = PrivateKey::generate(key_type.into(), &mut OsRng);
            let text = key.to_base64();
            match out {
                Some(path) => io::write_secret_file(&path, text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => println!("{}", text.as_str()),
            }
        }
        KeyCommand::Public { key } => {
            println!("{}", keyarg::private_key(&key)?.public_key().to_base64());
        }
        KeyCommand::Id { key, sha256 } => {
            let scheme = if sha256 {
                KeyIdScheme::Sha256
            } else {
                KeyIdScheme::Sha512Truncated
            };
            println!("{}", keyarg::any_public_key(&key)?.key_id_with(scheme));
        }
    }
    Ok(())
}

fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let key = keyarg::public_key(&a.key)?;
    let signature = keyarg::signature(&a.signature)?;
    let mut verifier = sealkit_crypto::Verifier::new();
    io::for_each_chunk(a.input.input.as_deref(), |c| verifier.update(c))?;
    match verifier.finish(&signature, &key) {
        Ok(()) => {
            eprintln!("sealkit: signature is valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("sealkit: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn encrypt(a: EncryptArgs) -> Result<()> {
    let recipients =
        a.to.iter()
            .map(|k| keyarg::public_key(k))
            .collect::<Result<Vec<_>>>()?;
    let signer = a
        .sign_with
        .as_deref()
        .map(keyarg::private_key)
        .transpose()?;
    let mode = a.mode.unwrap_or(if signer.is_some() {
        Mode::Auth
    } else {
        Mode::Plain
    });
    let crypto = if a.sha256_ids {
        Crypto::with_key_ids(KeyIdScheme::Sha256)
    } else {
        Crypto::new()
    };
    let signer_ref = match (mode, &signer) {
        (Mode::Plain, Some(_)) => bail!("--sign-with cannot be used with --mode plain"),
        (Mode::Auth | Mode::Legacy, None) => bail!("this mode needs --sign-with"),
        (_, s) => s.as_ref(),
    };

    // Sign-and-encrypt records the length up front and sign-then-encrypt needs the signature
    // first: both read the input twice, so a pipe is spooled to a temporary file.
    let input = io::Input::open(a.input.input.as_deref(), mode != Mode::Plain)?;
    let signature = match (mode, signer_ref) {
        (Mode::Legacy, Some(key)) => {
            let mut signer = sealkit_crypto::Signer::new();
            io::for_each_chunk_of(input.reader()?, |c| signer.update(c))?;
            Some(signer.finish(key, &mut OsRng)?)
        }
        _ => None,
    };
    let signing = match (mode, signer_ref, &signature) {
        (Mode::Auth, Some(signer), _) => Signing::SignAndEncrypt {
            signer,
            plaintext_len: input.len()?,
        },
        (Mode::Legacy, Some(signer), Some(sig)) => Signing::SignThenEncrypt {
            signer,
            signature: sig,
        },
        _ => Signing::None,
    };
    let padding = a.padding || mode == Mode::Auth;
    let reader = io::with_progress(input.reader()?, input.known_len());
    io::write_output(a.output.as_deref(), |w| {
        crypto
            .encrypt_stream(&mut OsRng, reader, w, &recipients, signing, padding)
            .map_err(Into::into)
    })
}

fn decrypt(a: DecryptArgs) -> Result<()> {
    let key = keyarg::private_key(&a.key)?;
    let verify_with = a
        .verify_with
        .iter()
        .map(|k| keyarg::public_key(k))
        .collect::<Result<Vec<_>>>()?;
    let input = io::Input::open(a.input.input.as_deref(), false)?;
    let reader = io::with_progress(input.reader()?, input.known_len());
    let stage = io::StagedOutput::new(a.output.as_deref())?;
    let verify = (!verify_with.is_empty()).then_some(verify_with.as_slice());
    Crypto::new().decrypt_stream(reader, &key, verify, stage)?;
    Ok(())
}
