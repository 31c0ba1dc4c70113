//! `sealkit chat`: a line-mode terminal client of the end-to-end encrypted chat, over the SDK's
//! [`sealkit::Chat`]. Glue only: encryption, verification, ordering and reconnection live in
//! the SDK; this file turns lines into calls and events into lines.
//!
//! stdout carries the conversation, one line per message (`[general] bob ✔ hello`) and one per
//! notice (`* ...`), flushed per line so that scripts can read it as it comes; failed commands
//! print `! ...` on stderr and the session goes on.

mod login;
mod session;

use crate::args::{ChatArgs, SdkOptions};
use crate::common::{default_home, runtime};
use crate::error::{CliError, Result};
use crate::sdk::{self, Provider};
use login::BackendLogin;
use sealkit::chat::ChatEvent;
use sealkit::EThree;
use sealkit_proto::Jwt;
use session::{notice, Flow, Session};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the channel list is read, to pick up channels others added this user to (the
/// WebSocket only reports channels it is subscribed to).
const POLL_EVERY: Duration = Duration::from_secs(3);
/// Where `sealkit serve` (run in the same directory) writes the demo app's credentials.
const DEMO_APP: &str = "sealkit-data/demo-app.json";

/// `sealkit chat`.
pub(crate) fn chat(opts: &SdkOptions, args: ChatArgs) -> Result<()> {
    let linger = Duration::try_from_secs_f64(args.linger).map_err(|_| CliError::BadLinger)?;
    let runtime = runtime()?;
    let result = runtime.block_on(run(opts, &args, linger));
    // The stdin thread may still be blocked in a read; it must not hold the exit up.
    runtime.shutdown_background();
    result
}

/// The token source: --backend, else --app-credentials / --token-command, else the demo app of
/// a `sealkit serve` started in this directory.
fn provider(opts: &SdkOptions, args: &ChatArgs) -> Result<Provider> {
    if let Some(base) = &args.backend {
        // Checked here rather than by clap, which misses the global options given before the
        // subcommand.
        if opts.app_credentials.is_some() || opts.token_command.is_some() {
            return Err(CliError::SeveralTokenSources);
        }
        let identity = opts
            .identity
            .clone()
            .ok_or(CliError::BackendNeedsIdentity)?;
        let login = Arc::new(BackendLogin {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(CliError::HttpClient)?,
            base: base.trim_end_matches('/').to_owned(),
            identity,
            auth_token: tokio::sync::Mutex::new(None),
        });
        return Ok(Arc::new(move || {
            let login = login.clone();
            async move { login.token().await }
        }));
    }
    if let Some(provider) = sdk::options_provider(opts)? {
        return Ok(provider);
    }
    let demo = Path::new(DEMO_APP);
    if !demo.exists() {
        return Err(CliError::NoChatTokenSource { demo_app: DEMO_APP });
    }
    let identity = opts.identity.clone().ok_or(CliError::ChatNeedsIdentity)?;
    eprintln!("sealkit: using the demo app ({DEMO_APP})");
    Ok(sdk::minting_provider(
        sdk::generator(demo, sdk::TOKEN_TTL_SECS)?,
        identity,
    ))
}

/// A path component for an identity: itself when harmless, else its hex.
fn path_safe(identity: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@' | '.');
    if identity.chars().all(plain) && !identity.starts_with('.') {
        identity.to_owned()
    } else {
        format!("x-{}", hex::encode(identity))
    }
}

/// The key store: --home, else one directory per application and identity under the default
/// home, so that several users (and demo servers) on one machine keep apart.
async fn home(opts: &SdkOptions, provider: &Provider) -> Result<PathBuf> {
    if let Some(home) = &opts.home {
        return Ok(home.clone());
    }
    let token = provider.get_token().await.map_err(CliError::GetToken)?;
    let jwt = Jwt::parse(&token).map_err(CliError::NotAJwt)?;
    let app = jwt.app_id().map_err(CliError::TokenWithoutApp)?;
    let identity = jwt.identity().map_err(CliError::TokenWithoutIdentity)?;
    Ok(default_home()?
        .join("chat")
        .join(path_safe(app))
        .join(path_safe(identity)))
}

async fn run(opts: &SdkOptions, args: &ChatArgs, linger: Duration) -> Result<()> {
    let provider = provider(opts, args)?;
    let home = home(opts, &provider).await?;
    let ethree = sdk::initialize(opts, provider, home.clone()).await?;
    ensure_registered(&ethree, &home).await?;
    let chat = ethree.chat();
    if let (Some(seq), Some(channel), Some(out)) = (args.download, &args.channel, &args.out) {
        return download(&chat, channel, seq, out).await;
    }
    let stream = chat.subscribe().await?;
    let mut session = Session::new(chat, stream);
    // The --channel first, so that its recent messages are shown; then the others, from now.
    if let Some(name) = &args.channel {
        session.open_or_create(name).await?;
    }
    session.refresh_channels().await?;
    notice(format_args!(
        "{} is in: {}. Type a message, or /help.",
        session.chat.identity(),
        session.current_label()
    ));

    let mut lines = stdin_lines();
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;
    loop {
        let input = tokio::select! {
            biased;
            line = lines.recv() => Input::Line(line),
            event = session.stream.next() => Input::Event(event),
            _ = poll.tick() => Input::Poll,
        };
        match input {
            Input::Line(Some(line)) => {
                if session.command(&line).await == Flow::Quit {
                    session.mark_shown_read().await;
                    session.stream.close().await;
                    return Ok(());
                }
            }
            Input::Line(None) => break,
            Input::Event(event) => {
                session.event(event);
                session.mark_shown_read_soon().await;
            }
            Input::Poll => {
                session.poll().await;
                session.mark_shown_read().await;
            }
        }
    }
    // stdin ended: every send was awaited already; keep receiving for --linger.
    let until = tokio::time::Instant::now() + linger;
    loop {
        let input = tokio::select! {
            _ = tokio::time::sleep_until(until) => break,
            event = session.stream.next() => Input::Event(event),
            _ = poll.tick() => Input::Poll,
        };
        match input {
            Input::Event(event) => {
                session.event(event);
                session.mark_shown_read_soon().await;
            }
            _ => {
                session.poll().await;
                session.mark_shown_read().await;
            }
        }
    }
    session.mark_shown_read().await;
    session.stream.close().await;
    Ok(())
}

/// `--download SEQ --out FILE`: the SDK writes FILE only once the blob decrypted, its signature
/// verified and it matched the message's size and SHA-256.
async fn download(chat: &sealkit::Chat, channel: &str, seq: i64, out: &Path) -> Result<()> {
    let file = chat.download(channel, seq, out).await?;
    notice(format_args!(
        "saved {} ({} bytes, #{seq} of {channel}) to {}",
        session::printable(&file.name),
        file.size,
        out.display()
    ));
    Ok(())
}

/// Registers the user on first use; refuses to make a second key for an identity that has a
/// card but whose key is elsewhere, and to chat with a key the server has no card for.
async fn ensure_registered(ethree: &EThree, home: &Path) -> Result<()> {
    if ethree.has_local_private_key().await? {
        // A key from another server or application (a reset demo server, a shared --home)
        // would encrypt and sign without anyone being able to check it. Other failures
        // (network) show up at the first real request.
        if let Err(sealkit::Error::UsersNotFound { .. }) = ethree.find_user(ethree.identity()).await
        {
            return Err(CliError::KeyWithoutCard {
                identity: ethree.identity().to_owned(),
                home: home.to_owned(),
            });
        }
        return Ok(());
    }
    match ethree.register(None).await {
        Ok(card) => {
            notice(format_args!(
                "registered {} (card {})",
                ethree.identity(),
                card.id()
            ));
            Ok(())
        }
        Err(sealkit::Error::IdentityAlreadyExists) => Err(CliError::KeyElsewhere {
            identity: ethree.identity().to_owned(),
            home: home.to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// stdin, line by line, from a thread (a blocking read cannot be cancelled; the thread is left
/// behind at exit). The channel closes at EOF.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// What woke the session up.
enum Input {
    Line(Option<String>),
    Event(Option<sealkit::Result<ChatEvent>>),
    Poll,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components() {
        assert_eq!(path_safe("alice@example.com"), "alice@example.com");
        assert_eq!(path_safe("../x"), "x-2e2e2f78");
        assert_eq!(path_safe(".."), "x-2e2e");
        assert_eq!(path_safe("a b"), "x-612062");
    }
}
