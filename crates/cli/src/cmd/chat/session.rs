//! One chat session: the commands typed on stdin and the events of the stream, turned into lines
//! on stdout.

use crate::common::print_line;
use crate::error::{one_line, CliError, Result};
use sealkit::chat::{
    Channel, ChannelKind, ChatEvent, ChatStream, HistoryCursor, ReceivedMessage, Verification,
};
use sealkit::Chat;
use std::collections::{BTreeMap, HashSet};

/// Messages of a channel shown when it is opened.
pub(super) const RECENT: i64 = 20;

/// The state of the terminal client between two inputs.
pub(super) struct Session {
    pub(super) chat: Chat,
    pub(super) stream: ChatStream,
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
    /// The newest message shown per channel, to be marked read ([`Session::mark_shown_read`]).
    shown: BTreeMap<String, i64>,
    /// The read horizon the server confirmed per channel.
    marked: BTreeMap<String, i64>,
    /// Own edits and deletes already printed, by (channel, seq), so the stream's copy is not
    /// printed again.
    echoed_revisions: HashSet<(String, i64)>,
    /// The user's newest own message per channel, for read receipts.
    last_own: BTreeMap<String, i64>,
    /// The newest own message a receipt was printed for, per (channel, reader).
    receipts: BTreeMap<(String, String), i64>,
    /// When shown messages were last marked read.
    last_marked: Option<std::time::Instant>,
}

/// Shown messages are marked read at most this often while events come in (and at every
/// poll, and before the session ends).
const MARK_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the session goes on after a command.
#[derive(PartialEq, Eq)]
pub(super) enum Flow {
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
/send-file PATH  encrypt the file PATH and send it (fetch: chat --download SEQ --out FILE)
/history [N]  the last N messages of the current channel (default 20)
/members      members of the current channel
/add ID       add ID to the current channel (admins)
/remove ID    remove ID from the current channel (admins)
/leave        leave the current channel
/unread       unread messages per channel, and how far the members have read
/search TERM  search the messages this device decrypted (all words; nothing is sent)
/typing       tell the current channel you are typing
/edit SEQ TEXT  replace your message #SEQ with TEXT (others see it marked (edited))
/delete SEQ   delete message #SEQ (yours; anyone's if you are an admin); the server keeps no copy
/quit         exit (so does the end of input)";

impl Session {
    /// A session on `stream`, in no channel yet.
    pub(super) fn new(chat: Chat, stream: ChatStream) -> Self {
        Self {
            chat,
            stream,
            current: None,
            channels: BTreeMap::new(),
            started: false,
            echoed: HashSet::new(),
            echoed_revisions: HashSet::new(),
            last_error: None,
            shown: BTreeMap::new(),
            marked: BTreeMap::new(),
            last_own: BTreeMap::new(),
            receipts: BTreeMap::new(),
            last_marked: None,
        }
    }

    pub(super) async fn command(&mut self, line: &str) -> Flow {
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
                        _ => Err(CliError::HistoryCount),
                    },
                    ("members", []) => self.members().await,
                    ("add", [who]) => self.add(who).await,
                    ("remove", [who]) => self.remove(who).await,
                    ("leave", []) => self.leave().await,
                    ("unread", []) => self.unread().await,
                    ("typing", []) => self.typing().await,
                    ("edit", [seq, _, ..]) => self.edit(seq, words_after(rest, 2)).await,
                    ("delete", [seq]) => self.delete(seq).await,
                    ("send-file", _) => {
                        // The path is the rest of the line, spaces included.
                        let path = rest
                            .trim_start()
                            .strip_prefix("send-file")
                            .unwrap_or("")
                            .trim();
                        if path.is_empty() {
                            Err(CliError::SendFileUsage)
                        } else {
                            self.send_file(std::path::Path::new(path)).await
                        }
                    }
                    ("search", [_, ..]) => self.search(&args.join(" ")).await,
                    _ => Err(usage(verb)),
                }
            }
            // "//text" sends "/text".
            Some(rest) => self.send(rest).await,
            None => self.send(line).await,
        };
        if let Err(e) = result {
            eprintln!("! {}", one_line(&e));
        }
        Flow::Continue
    }

    fn current(&self) -> Result<String> {
        self.current.clone().ok_or(CliError::NoCurrentChannel)
    }

    pub(super) fn current_label(&self) -> String {
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
    pub(super) async fn refresh_channels(&mut self) -> Result<()> {
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

    pub(super) async fn poll(&mut self) {
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
    pub(super) async fn open_or_create(&mut self, name: &str) -> Result<()> {
        let channel = match self.chat.channel(name).await {
            Ok(c) => c,
            // Not a member, or no such channel (the server answers both alike): join an open
            // one, else create it.
            Err(sealkit::Error::ChannelNotFound { .. } | sealkit::Error::NotAMember { .. }) => {
                match self.chat.join(name).await {
                    Ok(c) => c,
                    Err(sealkit::Error::ChannelNotFound { .. }) => self.create_open(name).await?,
                    // Servers before 0.2 told outsiders of a closed channel so.
                    Err(sealkit::Error::NotAnAdmin { .. }) => {
                        return Err(CliError::ChannelNotOpen(name.to_owned()))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        self.enter(channel).await
    }

    /// Creates the open channel `name`; when it exists after all (created meanwhile, or closed
    /// to the user), joins it.
    async fn create_open(&mut self, name: &str) -> Result<sealkit::chat::Channel> {
        match self
            .chat
            .create_channel(name, ChannelKind::Group, &[], true)
            .await
        {
            Ok(c) => {
                notice(format_args!("created the open channel {name}"));
                Ok(c)
            }
            Err(sealkit::Error::ChannelExists { .. }) => {
                self.chat.join(name).await.map_err(|e| match e {
                    sealkit::Error::ChannelNotFound { .. } | sealkit::Error::NotAnAdmin { .. } => {
                        CliError::ChannelNotOpen(name.to_owned())
                    }
                    e => e.into(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn join(&mut self, name: &str) -> Result<()> {
        let channel = match self.chat.channel(name).await {
            Ok(c) => c,
            Err(sealkit::Error::ChannelNotFound { .. } | sealkit::Error::NotAMember { .. }) => {
                self.chat.join(name).await?
            }
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
            .ok_or_else(|| CliError::NotInChannel(name.to_owned()))?;
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
        // Sending moved the user's read horizon to this message (the server does that).
        self.last_own.insert(message.channel.clone(), message.seq);
        self.marked.insert(message.channel.clone(), message.seq);
        print_line(format_args!(
            "[{}] {} ✔ {} (#{})",
            self.label(&message.channel),
            message.sender,
            printable(text),
            message.seq
        ));
        Ok(())
    }

    /// `/edit SEQ TEXT`.
    async fn edit(&mut self, seq: &str, text: &str) -> Result<()> {
        let channel = self.current()?;
        let seq = seq.parse::<i64>().map_err(|_| usage("edit"))?;
        let message = self.chat.edit_text(&channel, seq, text).await?;
        self.echoed_revisions.insert((message.channel.clone(), seq));
        print_line(format_args!(
            "[{}] {} ✔ {} (#{seq} (edited))",
            self.label(&message.channel),
            message.sender,
            printable(text),
        ));
        Ok(())
    }

    /// `/send-file PATH`.
    async fn send_file(&mut self, path: &std::path::Path) -> Result<()> {
        let channel = self.current()?;
        let (message, file) = self.chat.send_file(&channel, path).await?;
        self.echoed.insert((message.channel.clone(), message.seq));
        self.last_own.insert(message.channel.clone(), message.seq);
        self.marked.insert(message.channel.clone(), message.seq);
        print_line(format_args!(
            "[{}] {} ✔ {}",
            self.label(&message.channel),
            message.sender,
            file_line(&file, message.seq)
        ));
        Ok(())
    }

    /// `/delete SEQ`.
    async fn delete(&mut self, seq: &str) -> Result<()> {
        let channel = self.current()?;
        let seq = seq.parse::<i64>().map_err(|_| usage("delete"))?;
        let tombstone = self.chat.delete(&channel, seq).await?;
        self.echoed_revisions
            .insert((tombstone.channel.clone(), seq));
        notice(format_args!("[{}] deleted #{seq}", self.label(&channel)));
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
            print_line(format_args!("{} {}", self.render(m), tag(m)));
        }
        if let Some(last) = page.messages.last() {
            self.note_shown(&channel, last.message.seq);
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

    /// `/unread`: each channel's unread count, as the server keeps it, and how far the other
    /// members of the current channel have read.
    async fn unread(&mut self) -> Result<()> {
        self.mark_shown_read().await;
        let list = self.chat.channels().await?;
        for c in &list {
            self.channels.insert(c.id.clone(), c.clone());
        }
        let me = self.chat.identity().to_owned();
        for c in &list {
            let unread = c.unread.unwrap_or(0);
            let others: Vec<String> = c
                .read
                .iter()
                .filter(|(member, _)| **member != me)
                .map(|(member, seq)| format!("{} #{seq}", printable(member)))
                .collect();
            if self.current.as_deref() == Some(c.id.as_str()) && !others.is_empty() {
                notice(format_args!(
                    "{}: {unread} unread; read up to: {}",
                    self.label(&c.id),
                    others.join(", ")
                ));
            } else {
                notice(format_args!("{}: {unread} unread", self.label(&c.id)));
            }
        }
        Ok(())
    }

    /// `/search TERM`: the best hits of the local index, one line each, best first.
    async fn search(&mut self, query: &str) -> Result<()> {
        let hits = self.chat.search(query).await?;
        notice(format_args!(
            "{} {} for {}",
            hits.len(),
            if hits.len() == 1 { "hit" } else { "hits" },
            printable(query)
        ));
        for hit in &hits {
            print_line(format_args!(
                "[{}] #{} {}: {}",
                self.label(&hit.channel),
                hit.seq,
                printable(&hit.sender),
                printable(&hit.text)
            ));
        }
        Ok(())
    }

    /// `/typing`: tells the current channel's members that the user is typing (a line-based
    /// terminal cannot see keystrokes, so the user says so).
    async fn typing(&mut self) -> Result<()> {
        let channel = self.current()?;
        Ok(self.stream.typing(&channel).await?)
    }

    fn note_shown(&mut self, channel: &str, seq: i64) {
        let shown = self.shown.entry(channel.to_owned()).or_insert(0);
        *shown = (*shown).max(seq);
    }

    /// Marks the messages shown since the last call read, one request per channel; a channel
    /// the user has left meanwhile is skipped quietly.
    pub(super) async fn mark_shown_read(&mut self) {
        self.last_marked = Some(std::time::Instant::now());
        let due: Vec<(String, i64)> = self
            .shown
            .iter()
            .filter(|(channel, seq)| self.marked.get(*channel).is_none_or(|m| m < seq))
            .map(|(channel, seq)| (channel.clone(), *seq))
            .collect();
        for (channel, seq) in due {
            match self.chat.mark_read(&channel, seq).await {
                Ok(state) => {
                    self.marked.insert(channel, state.seq);
                }
                Err(sealkit::Error::ChannelNotFound { .. }) => {
                    self.shown.remove(&channel);
                }
                Err(e) => eprintln!("! cannot mark {} read: {}", self.label(&channel), e),
            }
        }
    }

    /// Marks shown messages read unless that was done less than [`MARK_READ_EVERY`] ago (the
    /// next poll does it then).
    pub(super) async fn mark_shown_read_soon(&mut self) {
        if self
            .last_marked
            .is_none_or(|at| at.elapsed() >= MARK_READ_EVERY)
        {
            self.mark_shown_read().await;
        }
    }

    pub(super) fn event(&mut self, event: Option<sealkit::Result<ChatEvent>>) {
        match event {
            Some(Ok(ChatEvent::Message(m))) => {
                let key = (m.message.channel.clone(), m.message.seq);
                if !self.echoed.remove(&key) {
                    // Already edited or deleted when it arrived: say so (and which it is).
                    if m.message.edited_at.is_some() || m.message.deleted.is_some() {
                        print_line(format_args!("{} {}", self.render(&m), tag(&m)));
                    } else {
                        print_line(format_args!("{}", self.render(&m)));
                    }
                }
                if m.message.sender == self.chat.identity() {
                    let own = self.last_own.entry(key.0.clone()).or_insert(0);
                    *own = (*own).max(key.1);
                }
                self.note_shown(&key.0, key.1);
            }
            Some(Ok(ChatEvent::Typing { channel, identity })) => {
                notice(format_args!(
                    "[{}] {} is typing…",
                    self.label(&channel),
                    printable(&identity)
                ));
            }
            Some(Ok(ChatEvent::Read {
                channel,
                identity,
                seq,
            })) => self.receipt(channel, identity, seq),
            Some(Ok(ChatEvent::Removed { channel })) => {
                notice(format_args!(
                    "you were removed from {}",
                    self.label(&channel)
                ));
                self.channels.remove(&channel);
                self.shown.remove(&channel);
                if self.current.as_deref() == Some(channel.as_str()) {
                    self.current = None;
                }
            }
            Some(Ok(ChatEvent::Edited(m) | ChatEvent::Deleted(m))) => {
                let key = (m.message.channel.clone(), m.message.seq);
                if !self.echoed_revisions.remove(&key) {
                    print_line(format_args!("{} {}", self.render(&m), tag(&m)));
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

    /// A read receipt is worth a line only when another member read the user's newest own
    /// message of the channel (once per reader and message).
    fn receipt(&mut self, channel: String, reader: String, seq: i64) {
        if reader == self.chat.identity() {
            return;
        }
        let Some(own) = self.last_own.get(&channel).copied() else {
            return;
        };
        let key = (channel, reader);
        if seq < own || self.receipts.get(&key).is_some_and(|r| *r >= own) {
            return;
        }
        notice(format_args!(
            "[{}] seen by {} (#{own})",
            self.label(&key.0),
            printable(&key.1)
        ));
        self.receipts.insert(key, own);
    }

    fn render(&self, m: &ReceivedMessage) -> String {
        let channel = self.label(&m.message.channel);
        let sender = printable(&m.message.sender);
        if let Some(file) = m.attachment() {
            return format!("[{channel}] {sender} ✔ {}", file_line(&file, m.message.seq));
        }
        match (m.status, &m.body) {
            (Verification::Verified, Some(body)) => format!(
                "[{channel}] {sender} ✔ {}",
                printable(&String::from_utf8_lossy(body))
            ),
            (Verification::Deleted, _) => {
                let by = m.deletion().map_or("?", |(_, by)| by);
                format!("[{channel}] {sender} ✖ deleted by {}", printable(by))
            }
            (status, _) => format!("[{channel}] {sender} ⚠ UNVERIFIED ({})", reason(status)),
        }
    }
}

/// A message's number as shown after it: `(#7)`, `(#7 (edited))` or `(#7 (deleted))`.
fn tag(m: &ReceivedMessage) -> String {
    let seq = m.message.seq;
    if m.message.deleted.is_some() {
        format!("(#{seq} (deleted))")
    } else if m.message.edited_at.is_some() {
        format!("(#{seq} (edited))")
    } else {
        format!("(#{seq})")
    }
}

/// What follows the first `n` words of `line`, as typed (inner spaces kept).
fn words_after(line: &str, n: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest.get(end..).unwrap_or_default().trim_start();
    }
    rest
}

/// The error for a command used wrongly: its help line, or "unknown".
fn usage(verb: &str) -> CliError {
    let name = format!("/{verb}");
    match HELP
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
    {
        Some(line) => CliError::ChatUsage(line.trim_end()),
        None => CliError::UnknownChatCommand(name),
    }
}

fn reason(status: Verification) -> &'static str {
    match status {
        Verification::NotForMe => {
            "not encrypted for you: sent before you joined, or to a key you no longer have"
        }
        Verification::BadSignature => "the signature is not the sender's",
        Verification::UnknownSender => "the sender has no valid card",
        Verification::SenderKeyChanged => {
            "the sender's key changed since you verified it (sealkit user verify --accept-change)"
        }
        Verification::Malformed => "not a readable message",
        Verification::KeyTransparencyFailed => {
            "the sender's card is not the one in the server's key directory"
        }
        Verification::SplitView => {
            "split view: the sender saw another key directory than you; the server is lying"
        }
        _ => "cannot be verified",
    }
}

/// How a file in a message is shown: its name, size and the message's number (what
/// `--download` takes).
fn file_line(file: &sealkit::chat::Attachment, seq: i64) -> String {
    format!(
        "file {} ({} bytes) #{seq}",
        printable(&file.name),
        file.size
    )
}

/// Text as one terminal line: control characters (escape sequences a sender could use to
/// redraw the screen, line breaks that would fake another sender's line) are shown escaped.
pub(super) fn printable(text: &str) -> String {
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

/// A notice line: `* text`.
pub(super) fn notice(text: std::fmt::Arguments<'_>) {
    print_line(format_args!("* {text}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_text_keeps_its_spaces() {
        assert_eq!(words_after("edit 3 hello   there ", 2), "hello   there ");
        assert_eq!(words_after("  edit   3\tx", 2), "x");
        assert_eq!(words_after("edit 3", 2), "");
    }

    #[test]
    fn printable_escapes_controls() {
        assert_eq!(printable("hi ✔"), "hi ✔");
        assert_eq!(printable("a\nb"), "a\\nb");
        assert_eq!(printable("\u{1b}[2J"), "\\u{1b}[2J");
    }
}
