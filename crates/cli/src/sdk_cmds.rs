//! The SDK commands: `user ...`, `msg ...`, `group ...`, acting for one identity through the
//! `sealkit` client SDK against a Sealkit server.
//!
//! Ciphertext is binary in files (`--in` / `--out`) and base64 text on stdin / stdout, one
//! message per line. Passwords come from `--password-stdin` or the terminal, never from argv.

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::{Args, Subcommand};
use sealkit::{Card, EThree, EThreeOptions, Group, GroupErrorCode, TokenProvider};
use sealkit_proto::jwt::{AppCredentials, JwtGenerator};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// Lifetime of the tokens minted from `--app-credentials`.
pub(crate) const TOKEN_TTL_SECS: u64 = 3600;

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
    cmd: UserCommand,
}

#[derive(Args, Debug)]
struct KeyNameArg {
    /// The name of a separate (Keyknox v2) backup entry; without it, the identity's default backup.
    #[arg(long, value_name = "N")]
    key_name: Option<String>,
}

#[derive(Args, Debug)]
struct PasswordArg {
    /// Read the password from the first line of stdin instead of the terminal.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Publish a card for a new key (stored in --home); prints the card id.
    Register,
    /// Revoke the identity's cards and delete the local key.
    Unregister,
    /// Replace a lost key: publish a new card replacing the old one (needs no local key; run
    /// `cleanup` first to discard one); prints the new card id.
    Rotate,
    /// Delete the local private key and card cache (restore it from a backup later).
    Cleanup,
    /// Print the users' cards as JSON (an array, in the order asked).
    Find {
        /// The identities.
        #[arg(required = true, value_name = "ID")]
        identities: Vec<String>,
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
struct InOut {
    /// Read from F (binary ciphertext when decrypting) instead of stdin (base64 lines).
    #[arg(long = "in", value_name = "F")]
    input: Option<PathBuf>,
    /// Write to F (binary ciphertext when encrypting; appears only when complete) instead of
    /// stdout (base64 lines).
    #[arg(long = "out", value_name = "F")]
    output: Option<PathBuf>,
}

/// `sealkit msg ...`
#[derive(Args, Debug)]
pub(crate) struct MsgArgs {
    #[command(subcommand)]
    cmd: MsgCommand,
}

#[derive(Subcommand, Debug)]
enum MsgCommand {
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
        #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
        at: Option<SystemTime>,
        #[command(flatten)]
        io: InOut,
    },
}

/// `sealkit group ...`
#[derive(Args, Debug)]
pub(crate) struct GroupArgs {
    #[command(subcommand)]
    cmd: GroupCommand,
}

#[derive(Args, Debug)]
struct MemberArg {
    /// The participant(s).
    #[arg(long, value_name = "ID", value_delimiter = ',', required = true)]
    member: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
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
        #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
        at: Option<SystemTime>,
        #[command(flatten)]
        io: InOut,
    },
}

// ------------------------------------------------------------------------------------- setup

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn default_home() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from) {
        if dir.is_absolute() {
            return Ok(dir.join("sealkit"));
        }
    }
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(".local/share/sealkit")),
        _ => bail!("no home directory: pass --home DIR"),
    }
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A token generator from `sealkit app create --json` output.
pub(crate) fn generator(path: &Path, ttl_secs: u64) -> Result<JwtGenerator> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    AppCredentials::from_json(&text)
        .and_then(|creds| creds.generator(ttl_secs))
        .with_context(|| format!("{}", path.display()))
}

/// Runs the token command and returns the JWT it printed.
fn run_token_command(cmd: &str, identity: Option<&str>) -> Result<String, sealkit::BoxError> {
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null());
    if let Some(id) = identity {
        command.env("SEALKIT_IDENTITY", id);
    }
    let out = command
        .output()
        .map_err(|e| format!("cannot run the token command: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(match last {
            Some(line) => format!("the token command failed ({}): {}", out.status, line.trim()),
            None => format!("the token command failed ({})", out.status),
        }
        .into());
    }
    let token = String::from_utf8(out.stdout)
        .map_err(|_| "the token command printed something that is not text")?;
    let token = token.trim();
    if token.is_empty() {
        return Err("the token command printed no token".into());
    }
    Ok(token.to_owned())
}

/// A token provider shared between the CLI's token sources.
pub(crate) type Provider = Arc<dyn TokenProvider>;

/// Tokens minted locally by `generator` for `identity`.
pub(crate) fn minting_provider(generator: JwtGenerator, identity: String) -> Provider {
    let generator = Arc::new(generator);
    Arc::new(move || {
        let generator = generator.clone();
        let identity = identity.clone();
        async move {
            generator
                .generate(&identity, now_secs())
                .map(|jwt| jwt.to_string())
        }
    })
}

/// The token source of the options: `--app-credentials`, else `--token-command`, else `None`.
pub(crate) fn options_provider(opts: &SdkOptions) -> Result<Option<Provider>> {
    Ok(match (&opts.app_credentials, &opts.token_command) {
        (Some(path), _) => {
            let Some(identity) = opts.identity.clone() else {
                bail!("--app-credentials needs --identity ID");
            };
            Some(minting_provider(generator(path, TOKEN_TTL_SECS)?, identity))
        }
        (None, Some(cmd)) => {
            let cmd = cmd.clone();
            let identity = opts.identity.clone();
            Some(Arc::new(move || {
                let cmd = cmd.clone();
                let identity = identity.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        run_token_command(&cmd, identity.as_deref())
                    })
                    .await
                    .map_err(|e| -> sealkit::BoxError { e.to_string().into() })?
                }
            }))
        }
        (None, None) => None,
    })
}

/// Initializes the SDK with tokens from `provider` and keys in `home`, and checks that the
/// tokens are for `--identity` when one is given.
pub(crate) async fn initialize(
    opts: &SdkOptions,
    provider: Provider,
    home: PathBuf,
) -> Result<EThree> {
    let options = EThreeOptions::new(opts.server.trim_end_matches('/'), home);
    let provider = move || {
        let provider = provider.clone();
        async move { provider.get_token().await }
    };
    let ethree = EThree::initialize(provider, options).await?;
    if let Some(identity) = &opts.identity {
        if ethree.identity() != identity {
            bail!(
                "the token is for {:?}, not for --identity {identity:?}",
                ethree.identity()
            );
        }
    }
    Ok(ethree)
}

/// Initializes the SDK for the identity of the options.
async fn ethree(opts: &SdkOptions) -> Result<EThree> {
    let home = match &opts.home {
        Some(h) => h.clone(),
        None => default_home()?,
    };
    let Some(provider) = options_provider(opts)? else {
        bail!(
            "no way to get tokens: pass --app-credentials FILE (development) or --token-command CMD"
        )
    };
    initialize(opts, provider, home).await
}

/// The users' cards from the server, or from the local cache when the server is unreachable.
async fn cards(ethree: &EThree, identities: &[String]) -> Result<BTreeMap<String, Card>> {
    let ids: Vec<&str> = identities.iter().map(String::as_str).collect();
    match ethree.find_users(&ids).await {
        Err(sealkit::Error::Network(e)) => ethree
            .find_cached_users(&ids)
            .await
            .with_context(|| format!("the server is unreachable ({e}) and the cache cannot help")),
        other => Ok(other?),
    }
}

async fn card(ethree: &EThree, identity: &str) -> Result<Card> {
    let mut found = cards(ethree, &[identity.to_owned()]).await?;
    found
        .remove(identity)
        .with_context(|| format!("no card found for {identity}"))
}

// ------------------------------------------------------------------------------------- user

pub(crate) fn user(opts: &SdkOptions, args: UserArgs) -> Result<()> {
    // Passwords are read before anything else, so prompts come first.
    let passwords = match &args.cmd {
        UserCommand::Backup { password, .. } => {
            vec![read_password(password, "Backup password", true)?]
        }
        UserCommand::Restore { password, .. } => {
            vec![read_password(password, "Backup password", false)?]
        }
        UserCommand::ChangePassword { password, .. } => {
            if password.password_stdin {
                read_stdin_lines(2)?
            } else {
                vec![
                    prompt("Current backup password")?,
                    read_password(password, "New backup password", true)?,
                ]
            }
        }
        _ => Vec::new(),
    };
    runtime()?.block_on(async {
        let ethree = ethree(opts).await?;
        match args.cmd {
            UserCommand::Register => {
                let card = ethree.register(None).await?;
                crate::print_line(format_args!("{}", card.id()));
            }
            UserCommand::Unregister => ethree.unregister().await?,
            UserCommand::Rotate => {
                let card = ethree.rotate_private_key().await?;
                crate::print_line(format_args!("{}", card.id()));
            }
            UserCommand::Cleanup => ethree.cleanup().await?,
            UserCommand::Find { identities } => {
                let found = cards(&ethree, &identities).await?;
                let mut out = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for id in identities.iter().filter(|i| seen.insert(i.as_str())) {
                    if let Some(card) = found.get(id) {
                        out.push(card_json(card));
                    }
                }
                crate::print_line(format_args!("{}", serde_json::to_string_pretty(&out)?));
            }
            UserCommand::Backup { key_name, .. } => {
                ethree
                    .backup_private_key(passwords[0].as_bytes(), key_name.key_name.as_deref())
                    .await?;
            }
            UserCommand::Restore { key_name, .. } => {
                ethree
                    .restore_private_key(passwords[0].as_bytes(), key_name.key_name.as_deref())
                    .await?;
            }
            UserCommand::ChangePassword { key_name, .. } => {
                ethree
                    .change_password(
                        passwords[0].as_bytes(),
                        passwords[1].as_bytes(),
                        key_name.key_name.as_deref(),
                    )
                    .await?;
            }
            UserCommand::ResetBackup { key_name } => match key_name.key_name.as_deref() {
                Some(name) => ethree.reset_private_key_backup_with_key_name(name).await?,
                None => ethree.reset_private_key_backup().await?,
            },
        }
        Ok(())
    })
}

/// A card as JSON: its fields, the raw card (Virgil's wire format) and its predecessor.
fn card_json(card: &Card) -> serde_json::Value {
    serde_json::json!({
        "identity": card.identity(),
        "card_id": card.id().to_string(),
        "public_key": STANDARD.encode(card.public_key().to_der()),
        "created_at": card.created_at_secs(),
        "previous_card_id": card.previous_card_id().map(ToString::to_string),
        "is_outdated": card.is_outdated(),
        "raw_card": card.raw(),
        "previous_card": card.previous_card().map(card_json),
    })
}

type Password = Zeroizing<String>;

fn strip_newline(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

/// `n` passwords, one per line of stdin.
fn read_stdin_lines(n: usize) -> Result<Vec<Password>> {
    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut line = Zeroizing::new(String::new());
        stdin
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let line = Zeroizing::new(strip_newline(std::mem::take(&mut *line)));
        if line.is_empty() {
            bail!(
                "expected {n} password line(s) on stdin, line {} is missing or empty",
                i + 1
            );
        }
        out.push(line);
    }
    Ok(out)
}

fn prompt(what: &str) -> Result<Password> {
    let password = Zeroizing::new(
        rpassword::prompt_password(format!("{what}: "))
            .context("cannot ask for the password on the terminal (use --password-stdin)")?,
    );
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

fn read_password(arg: &PasswordArg, what: &str, confirm: bool) -> Result<Password> {
    if arg.password_stdin {
        let mut lines = read_stdin_lines(1)?;
        return lines.pop().context("no password");
    }
    let password = prompt(what)?;
    if confirm {
        let again = prompt(&format!("{what} (again)"))?;
        if *again != *password {
            bail!("the passwords differ");
        }
    }
    Ok(password)
}

// ------------------------------------------------------------------------------------- messages

/// One line of text input: the bytes without the line end.
fn lines_of(reader: impl BufRead) -> impl Iterator<Item = Result<Vec<u8>>> {
    reader.split(b'\n').map(|line| {
        let mut line = line.context("cannot read the input")?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    })
}

fn read_all(path: Option<&Path>) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    match path {
        Some(p) => {
            File::open(p)
                .and_then(|mut f| f.read_to_end(&mut data))
                .with_context(|| format!("cannot read {}", p.display()))?;
        }
        None => {
            io::stdin()
                .lock()
                .read_to_end(&mut data)
                .context("cannot read stdin")?;
        }
    }
    Ok(data)
}

fn decode_line(line: &[u8], n: usize) -> Result<Vec<u8>> {
    STANDARD
        .decode(line.trim_ascii())
        .with_context(|| format!("input line {n} is not base64"))
}

/// Encrypts with `encrypt` (one message at a time): stdin lines to stdout lines, or the whole
/// input into one message.
async fn encrypt_messages<F, Fut>(io: &InOut, mut encrypt: F) -> Result<()>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = sealkit::Result<Vec<u8>>>,
{
    match (&io.input, &io.output) {
        (None, None) => {
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            for line in lines_of(io::stdin().lock()) {
                let message = encrypt(line?).await?;
                writeln!(out, "{}", STANDARD.encode(message)).context("cannot write to stdout")?;
            }
            out.flush().context("cannot write to stdout")
        }
        (input, output) => {
            let message = encrypt(read_all(input.as_deref())?).await?;
            crate::io::write_output(output.as_deref(), |w| {
                match output {
                    Some(_) => w.write_all(&message)?,
                    None => writeln!(w, "{}", STANDARD.encode(&message))?,
                }
                Ok(())
            })
        }
    }
}

/// Decrypts with `decrypt`: base64 lines from stdin (each plaintext followed by a newline), or
/// one binary message from `--in`.
async fn decrypt_messages<F, Fut>(io: &InOut, mut decrypt: F) -> Result<()>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>>>,
{
    match &io.input {
        Some(path) => {
            let message = read_all(Some(path))?;
            let plaintext = Zeroizing::new(decrypt(message).await?);
            crate::io::write_output(io.output.as_deref(), |w| Ok(w.write_all(&plaintext)?))
        }
        None => {
            let mut plaintexts = Vec::new();
            for (i, line) in lines_of(io::stdin().lock()).enumerate() {
                let line = line?;
                if line.trim_ascii().is_empty() {
                    continue;
                }
                let message = decode_line(&line, i + 1)?;
                let plaintext = decrypt(message)
                    .await
                    .with_context(|| format!("message on input line {}", i + 1))?;
                plaintexts.push(Zeroizing::new(plaintext));
            }
            crate::io::write_output(io.output.as_deref(), |w| {
                for p in &plaintexts {
                    w.write_all(p)?;
                    w.write_all(b"\n")?;
                }
                Ok(())
            })
        }
    }
}

/// The input as a file of known length: `--in`, or stdin spooled to a temporary file.
fn input_file(path: Option<&Path>) -> Result<(File, u64)> {
    match path {
        Some(p) => {
            let file = File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
            let len = file
                .metadata()
                .with_context(|| format!("cannot read {}", p.display()))?
                .len();
            Ok((file, len))
        }
        None => {
            let mut file = tempfile::tempfile().context("cannot create a temporary file")?;
            let len = io::copy(&mut io::stdin().lock(), &mut file).context("cannot read stdin")?;
            file.rewind()?;
            Ok((file, len))
        }
    }
}

pub(crate) fn msg(opts: &SdkOptions, args: MsgArgs) -> Result<()> {
    runtime()?.block_on(async {
        let ethree = ethree(opts).await?;
        match args.cmd {
            MsgCommand::Encrypt { to, io } => {
                let found = cards(&ethree, &to).await?;
                let recipients: Vec<&Card> = found.values().collect();
                match &io.output {
                    // Into a file: streamed, constant memory.
                    Some(out) => {
                        let (src, len) = input_file(io.input.as_deref())?;
                        let stage = sealkit::FileStage::new(out)?;
                        let stage = ethree
                            .auth_encrypt_stream(
                                BufReader::new(src),
                                len,
                                stage,
                                &recipients,
                                |_| (),
                            )
                            .await?;
                        sealkit::Stage::commit(stage)
                            .with_context(|| format!("cannot write {}", out.display()))?;
                        Ok(())
                    }
                    None => {
                        encrypt_messages(&io, |data| {
                            let ethree = ethree.clone();
                            let recipients = recipients.clone();
                            async move { ethree.auth_encrypt(&data, &recipients).await }
                        })
                        .await
                    }
                }
            }
            MsgCommand::Decrypt { from, at, io } => {
                let sender = card(&ethree, &from).await?;
                match &io.input {
                    // From a file: streamed; the plaintext appears only once verified.
                    Some(path) => {
                        let src = File::open(path)
                            .with_context(|| format!("cannot read {}", path.display()))?;
                        let stage = crate::io::StagedOutput::new(io.output.as_deref())?;
                        ethree
                            .auth_decrypt_stream(BufReader::new(src), stage, &sender, at, |_| ())
                            .await?;
                        Ok(())
                    }
                    None => {
                        decrypt_messages(&io, |data| {
                            let ethree = ethree.clone();
                            let sender = sender.clone();
                            async move { Ok(ethree.auth_decrypt(&data, &sender, at).await?) }
                        })
                        .await
                    }
                }
            }
        }
    })
}

// ------------------------------------------------------------------------------------- groups

async fn local_group(ethree: &EThree, id: &str) -> Result<Group> {
    ethree.get_group(id).await?.with_context(|| {
        format!(
            "group {id:?} is not on this device: create it, or run `sealkit group load {id} \
             --initiator ID`"
        )
    })
}

pub(crate) fn group(opts: &SdkOptions, args: GroupArgs) -> Result<()> {
    runtime()?.block_on(async {
        let ethree = ethree(opts).await?;
        match args.cmd {
            GroupCommand::Create { id, with } => {
                let found = cards(&ethree, &with).await?;
                let participants: Vec<&Card> = found.values().collect();
                ethree.create_group(&id, &participants).await?;
            }
            GroupCommand::Load { id, initiator } => {
                let initiator = card(&ethree, &initiator).await?;
                ethree.load_group(&id, &initiator).await?;
            }
            GroupCommand::Add { id, member } => {
                let mut group = local_group(&ethree, &id).await?;
                let found = cards(&ethree, &member.member).await?;
                let members: Vec<&Card> = found.values().collect();
                group.add(&members).await?;
            }
            GroupCommand::Remove { id, member } => {
                let mut group = local_group(&ethree, &id).await?;
                let found = cards(&ethree, &member.member).await?;
                let members: Vec<&Card> = found.values().collect();
                group.remove(&members).await?;
            }
            GroupCommand::ReAdd { id, member } => {
                let group = local_group(&ethree, &id).await?;
                for card in cards(&ethree, &member.member).await?.values() {
                    group.re_add(card).await?;
                }
            }
            GroupCommand::Update { id } => {
                let mut group = local_group(&ethree, &id).await?;
                group.update().await?;
            }
            GroupCommand::Delete { id } => ethree.delete_group(&id).await?,
            GroupCommand::Encrypt { id, io } => {
                let group = local_group(&ethree, &id).await?;
                encrypt_messages(&io, |data| {
                    let group = &group;
                    async move { group.encrypt(&data).await }
                })
                .await?;
            }
            GroupCommand::Decrypt { id, from, at, io } => {
                let group = tokio::sync::Mutex::new(local_group(&ethree, &id).await?);
                let sender = card(&ethree, &from).await?;
                decrypt_messages(&io, |data| {
                    let (group, sender) = (&group, &sender);
                    async move {
                        let mut group = group.lock().await;
                        match group.decrypt(&data, sender, at).await {
                            // A newer epoch: fetch the group's state once and retry.
                            Err(sealkit::Error::Group {
                                code: GroupErrorCode::GroupIsOutdated,
                                ..
                            }) => {
                                group.update().await?;
                                Ok(group.decrypt(&data, sender, at).await?)
                            }
                            other => Ok(other?),
                        }
                    }
                })
                .await?;
            }
        }
        Ok(())
    })
}

// ------------------------------------------------------------------------------------- time

/// Parses an RFC 3339 timestamp: `2026-11-27T20:15:00Z`, `2026-11-27T21:15:00.5+01:00`.
pub(crate) fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    let err = || format!("{s:?} is not an RFC 3339 time (like 2026-11-27T20:15:00Z)");
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let part = b.get(r).ok_or_else(err)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(err());
        }
        std::str::from_utf8(part)
            .ok()
            .and_then(|p| p.parse().ok())
            .ok_or_else(err)
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(err());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(err());
        }
        let mut digits: Vec<u8> = b[start..i].iter().take(9).copied().collect();
        digits.resize(9, b'0');
        nanos = std::str::from_utf8(&digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(err)?;
    }
    let offset = match b.get(i..) {
        Some(b"Z" | b"z") => 0,
        Some([sign @ (b'+' | b'-'), ..]) if b.len() == i + 6 && b[i + 3] == b':' => {
            let minutes = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return Err(err()),
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return Err(err()),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return Err(err());
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let time = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    Ok(time + Duration::from_nanos(u64::from(nanos)))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn secs(s: &str) -> i64 {
        let t = parse_rfc3339(s).unwrap();
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    }

    #[test]
    fn rfc3339() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), 0);
        assert_eq!(secs("2000-03-01T00:00:00Z"), 951_868_800);
        assert_eq!(
            secs("2026-11-27T21:15:00+01:00"),
            secs("2026-11-27T20:15:00Z")
        );
        assert_eq!(
            secs("2026-11-27T20:15:00.999-00:30"),
            secs("2026-11-27T20:45:00Z")
        );
        assert_eq!(secs("1969-12-31T23:59:59Z"), -1);
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T20:15:00",
            "2026-02-30T00:00:00Z",
            "2026-11-27T20:15:00+0100",
            "2026-11-27T20:15:00.Z",
            "2026-1a-27T20:15:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
