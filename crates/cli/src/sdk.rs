//! Acting as a user through the SDK: where tokens come from (`--app-credentials`,
//! `--token-command`), opening [`EThree`] for the global client options, and finding cards.

use crate::args::SdkOptions;
use crate::common::{default_home, now_secs};
use crate::error::{CliError, Result};
use sealkit::{Card, EThree, EThreeOptions, TokenProvider};
use sealkit_proto::jwt::{AppCredentials, JwtGenerator};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Lifetime of the tokens minted from `--app-credentials`.
pub(crate) const TOKEN_TTL_SECS: u64 = 3600;

/// A token generator from `sealkit app create --json` output.
pub(crate) fn generator(path: &Path, ttl_secs: u64) -> Result<JwtGenerator> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::read(path, source))?;
    AppCredentials::from_json(&text)
        .and_then(|creds| creds.generator(ttl_secs))
        .map_err(|source| CliError::Credentials {
            path: path.to_owned(),
            source,
        })
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
            let identity = opts
                .identity
                .clone()
                .ok_or(CliError::CredentialsNeedIdentity)?;
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
    initialize_with(
        opts,
        provider,
        EThreeOptions::new(opts.server.trim_end_matches('/'), home),
    )
    .await
}

/// [`initialize`] with SDK options chosen by the caller (e.g. ratchet channels enabled).
async fn initialize_with(
    opts: &SdkOptions,
    provider: Provider,
    options: EThreeOptions,
) -> Result<EThree> {
    let provider = move || {
        let provider = provider.clone();
        async move { provider.get_token().await }
    };
    let ethree = EThree::initialize(provider, options).await?;
    if let Some(identity) = &opts.identity {
        if ethree.identity() != identity {
            return Err(CliError::WrongIdentity {
                token: ethree.identity().to_owned(),
                wanted: identity.clone(),
            });
        }
    }
    Ok(ethree)
}

/// Initializes the SDK for the identity of the options.
pub(crate) async fn ethree(opts: &SdkOptions) -> Result<EThree> {
    let home = match &opts.home {
        Some(h) => h.clone(),
        None => default_home()?,
    };
    let provider = options_provider(opts)?.ok_or(CliError::NoTokenSource)?;
    initialize(opts, provider, home).await
}

/// [`ethree`] with the ratchet channels enabled (which publishes or rotates this user's ratchet
/// keys when a rotation is due).
pub(crate) async fn ratchet_ethree(opts: &SdkOptions) -> Result<EThree> {
    let home = match &opts.home {
        Some(h) => h.clone(),
        None => default_home()?,
    };
    let provider = options_provider(opts)?.ok_or(CliError::NoTokenSource)?;
    let options = EThreeOptions::new(opts.server.trim_end_matches('/'), home).enable_ratchet(true);
    initialize_with(opts, provider, options).await
}

/// The users' cards from the server, or from the local cache when the server is unreachable.
pub(crate) async fn cards(
    ethree: &EThree,
    identities: &[String],
) -> Result<BTreeMap<String, Card>> {
    let ids: Vec<&str> = identities.iter().map(String::as_str).collect();
    match ethree.find_users(&ids).await {
        Err(sealkit::Error::Network(reason)) => ethree
            .find_cached_users(&ids)
            .await
            .map_err(|source| CliError::Unreachable { reason, source }),
        other => Ok(other?),
    }
}

/// The card of one user (see [`cards`]).
pub(crate) async fn card(ethree: &EThree, identity: &str) -> Result<Card> {
    let mut found = cards(ethree, &[identity.to_owned()]).await?;
    found
        .remove(identity)
        .ok_or_else(|| CliError::NoCard(identity.to_owned()))
}
