//! `sealkit chat`: a line-mode terminal client of the end-to-end encrypted chat, over the SDK's
//! [`sealkit::Chat`]. Glue only: encryption, verification, ordering and reconnection live in
//! the SDK; this file turns lines into calls and events into lines.
//!
//! stdout carries the conversation, one line per message (`[general] bob ✔ hello`) and one per
//! notice (`* ...`), flushed per line so that scripts can read it as it comes; failed commands
//! print `! ...` on stderr and the session goes on.

use crate::backend_cmd::{AuthTokenBody, AuthenticateRequest, VirgilTokenBody};
use crate::print_line;
use crate::sdk_cmds::{self, Provider, SdkOptions};
use anyhow::{bail, Context, Result};
use clap::Args;
use sealkit::chat::{
    Channel, ChannelKind, ChatEvent, ChatStream, HistoryCursor, ReceivedMessage, Verification,
};
use sealkit::{Chat, EThree};
use sealkit_proto::Jwt;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages of a channel shown when it is opened.
const RECENT: i64 = 20;
/// How often the channel list is read, to pick up channels others added this user to (the
/// WebSocket only reports channels it is subscribed to).
const POLL_EVERY: Duration = Duration::from_secs(3);
/// Where `sealkit serve` (run in the same directory) writes the demo app's credentials.
const DEMO_APP: &str = "sealkit-data/demo-app.json";

/// `sealkit chat`.
#[derive(Args, Debug)]
pub(crate) struct ChatArgs {
    /// Get tokens from this app backend (`sealkit backend` or Virgil's sample backend): POST
    /// /authenticate, then GET /virgil-jwt. Without it, --app-credentials, --token-command, or
    /// ./sealkit-data/demo-app.json (written by `sealkit serve` on first start).
    #[arg(long, value_name = "URL")]
    backend: Option<String>,
    /// Open this channel: join it, or create it as an open group channel.
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,
    /// After stdin ends, keep printing incoming messages for SECS seconds (for scripts).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    linger: f64,
}

pub(crate) fn chat(opts: &SdkOptions, args: ChatArgs) -> Result<()> {
    let linger = Duration::try_from_secs_f64(args.linger)
        .map_err(|_| anyhow::anyhow!("--linger must be a number of seconds, at least 0"))?;
    let runtime = sdk_cmds::runtime()?;
    let result = runtime.block_on(run(opts, &args, linger));
    // The stdin thread may still be blocked in a read; it must not hold the exit up.
    runtime.shutdown_background();
    result
}

// ------------------------------------------------------------------------------------- tokens

/// Tokens from an app backend, the e3kit tutorial's way: log in once (`POST /authenticate`),
/// then a Virgil JWT whenever the SDK asks (`GET /virgil-jwt`), logging in again if the backend
/// forgot the session (a restart).
struct BackendLogin {
    http: reqwest::Client,
    base: String,
    identity: String,
    auth_token: tokio::sync::Mutex<Option<String>>,
}

impl BackendLogin {
    async fn failure(what: &str, response: reqwest::Response) -> sealkit::BoxError {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        format!("{what}: HTTP {status} {}", body.trim()).into()
    }

    async fn login(&self) -> Result<String, sealkit::BoxError> {
        let url = format!("{}/authenticate", self.base);
        let response = self
            .http
            .post(&url)
            .json(&AuthenticateRequest {
                identity: self.identity.clone(),
            })
            .send()
            .await
            .map_err(|e| format!("cannot reach the backend ({url}): {e}"))?;
        if !response.status().is_success() {
            return Err(Self::failure(&format!("POST {url}"), response).await);
        }
        let body: AuthTokenBody = response
            .json()
            .await
            .map_err(|e| format!("POST {url}: not {{\"authToken\": ...}}: {e}"))?;
        Ok(body.auth_token)
    }

    async fn token(&self) -> Result<String, sealkit::BoxError> {
        let url = format!("{}/virgil-jwt", self.base);
        let mut auth = self.auth_token.lock().await;
        let mut fresh_login = false;
        loop {
            let auth_token = match auth.as_ref() {
                Some(t) => t.clone(),
                None => {
                    let t = self.login().await?;
                    fresh_login = true;
                    auth.insert(t).clone()
                }
            };
            let response = self
                .http
                .get(&url)
                .bearer_auth(&auth_token)
                .send()
                .await
                .map_err(|e| format!("cannot reach the backend ({url}): {e}"))?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && !fresh_login {
                *auth = None;
                continue;
            }
            if !response.status().is_success() {
                return Err(Self::failure(&format!("GET {url}"), response).await);
            }
            let body: VirgilTokenBody = response
                .json()
                .await
                .map_err(|e| format!("GET {url}: not {{\"virgilToken\": ...}}: {e}"))?;
            return Ok(body.virgil_token);
        }
    }
}

/// The token source: --backend, else --app-credentials / --token-command, else the demo app of
/// a `sealkit serve` started in this directory.
fn provider(opts: &SdkOptions, args: &ChatArgs) -> Result<Provider> {
    if let Some(base) = &args.backend {
        // Checked here rather than by clap, which misses the global options given before the
        // subcommand.
        if opts.app_credentials.is_some() || opts.token_command.is_some() {
            bail!(
                "--backend is a token source, and so are --app-credentials and --token-command \
                 (or SEALKIT_APP_CREDENTIALS / SEALKIT_TOKEN_COMMAND): pass only one"
            );
        }
        let Some(identity) = opts.identity.clone() else {
            bail!("--backend needs --identity ID (the user to log in as)");
        };
        let login = Arc::new(BackendLogin {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .context("cannot create an HTTP client")?,
            base: base.trim_end_matches('/').to_owned(),
            identity,
            auth_token: tokio::sync::Mutex::new(None),
        });
        return Ok(Arc::new(move || {
            let login = login.clone();
            async move { login.token().await }
        }));
    }
    if let Some(provider) = sdk_cmds::options_provider(opts)? {
        return Ok(provider);
    }
    let demo = Path::new(DEMO_APP);
    if !demo.exists() {
        bail!(
            "no way to get tokens: pass --backend URL (an app backend such as `sealkit backend`), \
             --app-credentials FILE or --token-command CMD; or run `sealkit serve` in this \
             directory first, which writes {DEMO_APP}"
        );
    }
    let Some(identity) = opts.identity.clone() else {
        bail!("pass --identity ID: who you are in the chat");
    };
    eprintln!("sealkit: using the demo app ({DEMO_APP})");
    Ok(sdk_cmds::minting_provider(
        sdk_cmds::generator(demo, sdk_cmds::TOKEN_TTL_SECS)?,
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
    let token = provider
        .get_token()
        .await
        .map_err(|e| anyhow::anyhow!("cannot get a token: {e}"))?;
    let jwt = Jwt::parse(&token).context("the token source gave something that is not a JWT")?;
    let app = jwt.app_id().context("the token names no application")?;
    let identity = jwt.identity().context("the token names no identity")?;
    Ok(sdk_cmds::default_home()?
        .join("chat")
        .join(path_safe(app))
        .join(path_safe(identity)))
}

// ------------------------------------------------------------------------------------- session

struct Session {
    chat: Chat,
    stream: ChatStream,
    /// The channel plain lines go to.
    current: Option<String>,
    /// The channels this user is in, as last read.
    channels: BTreeMap<String, Channel>,
    /// The channel list was read once: channels found later are new to this session.
    started: bool,
    /// Own messages already printed when sent, by (channel, seq), so the stream's copy is not
    /// printed again.
    echoed: HashSet<(String, i64)>,
    /// The last stream error printed: the stream retries a message it could not check, and the
    /// same failure is worth one line, not one every half second.
    last_error: Option<String>,
}

async fn run(opts: &SdkOptions, args: &ChatArgs, linger: Duration) -> Result<()> {
    let provider = provider(opts, args)?;
    let home = home(opts, &provider).await?;
    let ethree = sdk_cmds::initialize(opts, provider, home.clone()).await?;
    ensure_registered(&ethree, &home).await?;
    let chat = ethree.chat();
    let stream = chat.subscribe().await?;
    let mut session = Session {
        chat,
        stream,
        current: None,
        channels: BTreeMap::new(),
        started: false,
        echoed: HashSet::new(),
        last_error: None,
    };
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
                    session.stream.close().await;
                    return Ok(());
                }
            }
            Input::Line(None) => break,
            Input::Event(event) => session.event(event),
            Input::Poll => session.poll().await,
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
            Input::Event(event) => session.event(event),
            _ => session.poll().await,
        }
    }
    session.stream.close().await;
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
            bail!(
                "the key of {id} in {home} has no card on this server (it was made for another \
                 server or application): discard it with `sealkit user cleanup --identity {id} \
                 --home {home}` (plus the token option you use here) and start chat again to \
                 register a new one",
                id = ethree.identity(),
                home = home.display()
            );
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
        Err(sealkit::Error::IdentityAlreadyExists) => bail!(
            "{id} is registered on this server, but its private key is not in {home}: restore \
             it from its backup with `sealkit user restore --identity {id} --home {home}` (plus \
             the token option you use here), or start chat with the --home that holds it",
            id = ethree.identity(),
            home = home.display()
        ),
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

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

const HELP: &str = "\
text          send to the current channel (//text sends a line that starts with /)
/channels     your channels
/switch NAME  make NAME the current channel
/join NAME    join an open channel (or switch to one of yours)
/create NAME [ID...]  create a closed group channel with these members (you are its admin)
/dm ID        direct channel with ID
/history [N]  the last N messages of the current channel (default 20)
/members      members of the current channel
/add ID       add ID to the current channel (admins)
/remove ID    remove ID from the current channel (admins)
/leave        leave the current channel
/quit         exit (so does the end of input)";

impl Session {
    async fn command(&mut self, line: &str) -> Flow {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            return Flow::Continue;
        }
        let result = match line.strip_prefix('/') {
            Some(rest) if !rest.starts_with('/') => {
                let mut words = rest.split_whitespace();
                let verb = words.next().unwrap_or_default();
                let args: Vec<&str> = words.collect();
                match (verb, args.as_slice()) {
                    ("quit" | "exit", _) => return Flow::Quit,
                    ("help", _) => {
                        for l in HELP.lines() {
                            notice(format_args!("{l}"));
                        }
                        Ok(())
                    }
                    ("channels", []) => self.list_channels().await,
                    ("switch", [name]) => self.switch(name),
                    ("join", [name]) => self.join(name).await,
                    ("create", [name, members @ ..]) => self.create(name, members).await,
                    ("dm", [other]) => self.direct(other).await,
                    ("history", []) => self.history(RECENT).await,
                    ("history", [n]) => match n.parse::<i64>() {
                        Ok(n) if n > 0 => self.history(n).await,
                        _ => Err(anyhow::anyhow!("/history N: N is a positive number")),
                    },
                    ("members", []) => self.members().await,
                    ("add", [who]) => self.add(who).await,
                    ("remove", [who]) => self.remove(who).await,
                    ("leave", []) => self.leave().await,
                    _ => Err(usage(verb)),
                }
            }
            // "//text" sends "/text".
            Some(rest) => self.send(rest).await,
            None => self.send(line).await,
        };
        if let Err(e) = result {
            let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("! {}", msg.join(": "));
        }
        Flow::Continue
    }

    fn current(&self) -> Result<String> {
        self.current
            .clone()
            .context("no current channel: /join NAME, /create NAME, /dm ID or /switch NAME first")
    }

    fn current_label(&self) -> String {
        match &self.current {
            Some(id) => self.label(id),
            None => "no channel yet".to_owned(),
        }
    }

    /// How a channel is shown: its id, or `@other` for a direct channel.
    fn label(&self, id: &str) -> String {
        match self.channels.get(id) {
            Some(c) if c.kind == ChannelKind::Direct => {
                let me = self.chat.identity();
                match c.members.iter().find(|m| *m != me) {
                    Some(other) => format!("@{other}"),
                    None => id.to_owned(),
                }
            }
            _ => id.to_owned(),
        }
    }

    /// Reads the channel list; subscribes to channels not seen before from their newest
    /// message on (or the last few, for one created after this session started).
    async fn refresh_channels(&mut self) -> Result<()> {
        let list = self.chat.channels().await?;
        let first = !self.started;
        self.started = true;
        for channel in list {
            if !self.stream.subscriptions().contains_key(&channel.id) {
                let after = if first {
                    channel.last_seq
                } else {
                    (channel.last_seq - RECENT).max(0)
                };
                self.stream.subscribe(&channel.id, after).await?;
                if !first {
                    self.channels.insert(channel.id.clone(), channel.clone());
                    notice(format_args!("you are in {}", self.label(&channel.id)));
                }
            }
            self.channels.insert(channel.id.clone(), channel);
        }
        Ok(())
    }

    async fn poll(&mut self) {
        if let Err(e) = self.refresh_channels().await {
            eprintln!("! cannot read your channels: {e}");
        }
    }

    /// Makes `channel` current; when it is new to this session, shows its last messages
    /// (through the stream, so that each message is printed once, in order).
    async fn enter(&mut self, channel: Channel) -> Result<()> {
        let id = channel.id.clone();
        if !self.stream.subscriptions().contains_key(&id) {
            let after = (channel.last_seq - RECENT).max(0);
            self.stream.subscribe(&id, after).await?;
        }
        self.channels.insert(id.clone(), channel);
        self.current = Some(id);
        Ok(())
    }

    /// `--channel`: join it, or create it (open) when it does not exist.
    async fn open_or_create(&mut self, name: &str) -> Result<()> {
        let channel = match self.chat.channel(name).await {
            Ok(c) => c,
            Err(sealkit::Error::NotAMember { .. }) => {
                self.chat.join(name).await.map_err(|e| match e {
                    sealkit::Error::NotAnAdmin { .. } => anyhow::anyhow!(
                        "channel {name:?} is not open: ask one of its admins to /add you"
                    ),
                    e => e.into(),
                })?
            }
            Err(sealkit::Error::ChannelNotFound { .. }) => {
                match self
                    .chat
                    .create_channel(name, ChannelKind::Group, &[], true)
                    .await
                {
                    Ok(c) => {
                        notice(format_args!("created the open channel {name}"));
                        c
                    }
                    // Someone else created it meanwhile.
                    Err(sealkit::Error::ChannelExists { .. }) => self.chat.join(name).await?,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        self.enter(channel).await
    }

    async fn join(&mut self, name: &str) -> Result<()> {
        let channel = match self.chat.channel(name).await {
            Ok(c) => c,
            Err(sealkit::Error::NotAMember { .. }) => self.chat.join(name).await?,
            Err(e) => return Err(e.into()),
        };
        self.enter(channel).await?;
        notice(format_args!("now in {}", self.label(name)));
        Ok(())
    }

    fn switch(&mut self, name: &str) -> Result<()> {
        let id = self
            .channels
            .iter()
            .find(|(id, _)| *id == name || self.label(id) == name)
            .map(|(id, _)| id.clone())
            .with_context(|| format!("you are not in {name:?}: /channels lists yours"))?;
        self.current = Some(id);
        notice(format_args!("now in {}", self.current_label()));
        Ok(())
    }

    async fn create(&mut self, name: &str, members: &[&str]) -> Result<()> {
        let channel = self
            .chat
            .create_channel(name, ChannelKind::Group, members, false)
            .await?;
        self.enter(channel).await?;
        notice(format_args!("created {name}; now in it"));
        Ok(())
    }

    async fn direct(&mut self, other: &str) -> Result<()> {
        let channel = self.chat.direct_channel(other).await?;
        let id = channel.id.clone();
        self.enter(channel).await?;
        notice(format_args!("now in {}", self.label(&id)));
        Ok(())
    }

    async fn send(&mut self, text: &str) -> Result<()> {
        let channel = self.current()?;
        let message = self.chat.send_text(&channel, text).await?;
        self.echoed.insert((message.channel.clone(), message.seq));
        print_line(format_args!(
            "[{}] {} ✔ {} (#{})",
            self.label(&message.channel),
            message.sender,
            printable(text),
            message.seq
        ));
        Ok(())
    }

    async fn history(&mut self, n: i64) -> Result<()> {
        let channel = self.current()?;
        let limit = u32::try_from(n.min(i64::from(sealkit_proto::chat::MAX_PAGE))).unwrap_or(1);
        let page = self
            .chat
            .history(&channel, HistoryCursor::Latest, limit)
            .await?;
        notice(format_args!(
            "history of {} ({} messages{})",
            self.label(&channel),
            page.messages.len(),
            if page.more { ", more before" } else { "" }
        ));
        for m in &page.messages {
            print_line(format_args!("{} (#{})", self.render(m), m.message.seq));
        }
        Ok(())
    }

    async fn members(&mut self) -> Result<()> {
        let id = self.current()?;
        let channel = self.chat.channel(&id).await?;
        let list: Vec<String> = channel
            .members
            .iter()
            .map(|m| {
                if channel.admins.contains(m) {
                    format!("{m} (admin)")
                } else {
                    m.clone()
                }
            })
            .collect();
        notice(format_args!(
            "members of {}: {}",
            self.label(&id),
            list.join(", ")
        ));
        self.channels.insert(id, channel);
        Ok(())
    }

    async fn add(&mut self, who: &str) -> Result<()> {
        let id = self.current()?;
        let channel = self.chat.add_member(&id, who).await?;
        notice(format_args!("added {who} to {}", self.label(&id)));
        self.channels.insert(id, channel);
        Ok(())
    }

    async fn remove(&mut self, who: &str) -> Result<()> {
        let id = self.current()?;
        let channel = self.chat.remove_member(&id, who).await?;
        notice(format_args!("removed {who} from {}", self.label(&id)));
        self.channels.insert(id, channel);
        Ok(())
    }

    async fn leave(&mut self) -> Result<()> {
        let id = self.current()?;
        self.chat.leave(&id).await?;
        self.stream.unsubscribe(&id).await?;
        notice(format_args!("left {}", self.label(&id)));
        self.channels.remove(&id);
        self.current = None;
        Ok(())
    }

    async fn list_channels(&mut self) -> Result<()> {
        let list = self.chat.channels().await?;
        if list.is_empty() {
            notice(format_args!(
                "no channels yet: /join NAME, /create NAME or /dm ID"
            ));
        }
        for c in &list {
            self.channels.insert(c.id.clone(), c.clone());
        }
        for c in &list {
            let mark = if self.current.as_deref() == Some(&c.id) {
                "> "
            } else {
                "  "
            };
            let kind = match (c.kind, c.open) {
                (ChannelKind::Direct, _) => "direct",
                (ChannelKind::Group, true) => "open group",
                (ChannelKind::Group, false) => "group",
            };
            notice(format_args!(
                "{mark}{} ({kind}, {} members, {} messages)",
                self.label(&c.id),
                c.members.len(),
                c.last_seq
            ));
        }
        Ok(())
    }

    fn event(&mut self, event: Option<sealkit::Result<ChatEvent>>) {
        match event {
            Some(Ok(ChatEvent::Message(m))) => {
                let key = (m.message.channel.clone(), m.message.seq);
                if !self.echoed.remove(&key) {
                    print_line(format_args!("{}", self.render(&m)));
                }
            }
            Some(Ok(ChatEvent::Removed { channel })) => {
                notice(format_args!(
                    "you were removed from {}",
                    self.label(&channel)
                ));
                self.channels.remove(&channel);
                if self.current.as_deref() == Some(channel.as_str()) {
                    self.current = None;
                }
            }
            Some(Ok(ChatEvent::Members { .. })) => {}
            Some(Ok(ChatEvent::Reconnected)) => notice(format_args!("reconnected")),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                let text = e.to_string();
                if self.last_error.as_ref() != Some(&text) {
                    eprintln!("! {text}");
                    self.last_error = Some(text);
                }
                return;
            }
            None => {}
        }
        self.last_error = None;
    }

    fn render(&self, m: &ReceivedMessage) -> String {
        let channel = self.label(&m.message.channel);
        let sender = printable(&m.message.sender);
        match (m.status, &m.body) {
            (Verification::Verified, Some(body)) => format!(
                "[{channel}] {sender} ✔ {}",
                printable(&String::from_utf8_lossy(body))
            ),
            (status, _) => format!("[{channel}] {sender} ⚠ UNVERIFIED ({})", reason(status)),
        }
    }
}

/// The error for a command used wrongly: its help line, or "unknown".
fn usage(verb: &str) -> anyhow::Error {
    let name = format!("/{verb}");
    match HELP
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
    {
        Some(line) => anyhow::anyhow!("usage: {}", line.trim_end()),
        None => anyhow::anyhow!("unknown command {name}: /help lists them"),
    }
}

fn reason(status: Verification) -> &'static str {
    match status {
        Verification::NotForMe => {
            "not encrypted for you: sent before you joined, or to a key you no longer have"
        }
        Verification::BadSignature => "the signature is not the sender's",
        Verification::UnknownSender => "the sender has no valid card",
        Verification::Malformed => "not a readable message",
        _ => "cannot be verified",
    }
}

/// Text as one terminal line: control characters (escape sequences a sender could use to
/// redraw the screen, line breaks that would fake another sender's line) are shown escaped.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn notice(text: std::fmt::Arguments<'_>) {
    crate::print_line(format_args!("* {text}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_controls() {
        assert_eq!(printable("hi ✔"), "hi ✔");
        assert_eq!(printable("a\nb"), "a\\nb");
        assert_eq!(printable("\u{1b}[2J"), "\\u{1b}[2J");
    }

    #[test]
    fn path_components() {
        assert_eq!(path_safe("alice@example.com"), "alice@example.com");
        assert_eq!(path_safe("../x"), "x-2e2e2f78");
        assert_eq!(path_safe(".."), "x-2e2e");
        assert_eq!(path_safe("a b"), "x-612062");
    }
}
