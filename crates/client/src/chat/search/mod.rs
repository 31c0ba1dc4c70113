//! Search over the chat messages this device decrypted, in a local index sealed under a key
//! derived from the user's private key. The server takes no part: a search is a local read.
//!
//! # What is indexed
//!
//! Every message that [`Chat::history`], [`Chat::open`] or a [`super::ChatStream`] hands out
//! verified and as UTF-8 text, and every text [`Chat::send`] posted, once per channel and
//! `seq` (reading a page again changes nothing). An application that learns of an edit or a
//! deletion calls [`Chat::index_message`] (replaces the text) or [`Chat::unindex_message`].
//!
//! # How it is stored
//!
//! A [tantivy](https://docs.rs/tantivy) index (BM25 ranking, snippets), as Matrix's seshat
//! keeps one, in `<storage_dir>/search/<id>/`. Each of its files is sealed whole with
//! AES-256-GCM under `HKDF-SHA-512(private key)`, the file name bound in as associated data:
//! on disk there is no term, no message, no sender, no channel, only file sizes and times.
//! The plaintext index lives in memory while it is open. [`crate::EThree::cleanup`] deletes
//! the index with the key. A replaced key (rotation, restore of another key) cannot open the
//! old index: it is deleted and a new one grows as messages are read again.
//!
//! # Threat model
//!
//! It protects the index against someone who gets the device's files without the private key
//! (a backup, a stolen disk, another app reading the storage directory): they learn how much
//! was indexed and when, nothing of the content. Someone who has the private key (or runs code
//! as the user while the app is open) reads the index as they could read the messages.

mod directory;
mod index;
mod sealed;

pub use index::IndexedMessage;
pub(crate) use index::{OpenFailure, SearchIndex, MAX_HITS};
pub(crate) use sealed::IndexKey;

use super::{Chat, ReceivedMessage};
use crate::error::{Error, Result};
use crate::ethree::{blocking, EThree};
use sealkit_crypto::PrivateKey;
use sealkit_proto::chat::Message;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How many hits [`Chat::search`] returns.
pub const DEFAULT_HITS: usize = 20;

/// One message found by [`Chat::search`], best first.
///
/// ```
/// # fn show(hit: &sealkit::chat::SearchHit) {
/// // Print the snippet with the matched words in brackets.
/// let mut line = String::new();
/// let mut from = 0;
/// for range in &hit.highlights {
///     line.push_str(&hit.snippet[from..range.start]);
///     line.push_str(&format!("[{}]", &hit.snippet[range.clone()]));
///     from = range.end;
/// }
/// line.push_str(&hit.snippet[from..]);
/// println!("{} #{} {}: {line}", hit.channel, hit.seq, hit.sender);
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SearchHit {
    /// The channel of the message.
    pub channel: String,
    /// Its `seq` in the channel.
    pub seq: i64,
    /// Who sent it (verified when it was indexed).
    pub sender: String,
    /// When the server stored it (Unix milliseconds).
    pub sent_at: i64,
    /// The whole text.
    pub text: String,
    /// The part of the text around the matched words (at most 160 characters).
    pub snippet: String,
    /// Byte ranges of the matched words in [`SearchHit::snippet`].
    pub highlights: Vec<Range<usize>>,
    /// The relevance (BM25): higher is better; comparable within one search only.
    pub score: f32,
}

/// The index behind [`Chat::search`], opened directly from a storage directory: for tools
/// (indexing an export, checking an index) and benchmarks. [`Chat`] keeps its own; do not open
/// the same index twice in one process ([`Error::Storage`] then). Its calls block: run them on
/// a blocking thread in async code.
///
/// ```
/// use sealkit::chat::search::{IndexedMessage, MessageIndex};
/// use sealkit::PrivateKey;
///
/// # fn main() -> sealkit::Result<()> {
/// let dir = tempfile::tempdir().map_err(|e| sealkit::Error::Storage(e.to_string()))?;
/// let key = PrivateKey::ed25519_from_seed(&[7; 32]);
/// let index = MessageIndex::open(dir.path(), &key, "alice")?;
/// index.add(&[IndexedMessage {
///     channel: "team".into(),
///     seq: 1,
///     sender: "bob".into(),
///     sent_at: 0,
///     text: "the deploy is at noon".into(),
/// }])?;
/// let hits = index.search("deploy", 10)?;
/// assert_eq!((hits[0].channel.as_str(), hits[0].seq), ("team", 1));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MessageIndex {
    index: SearchIndex,
}

impl MessageIndex {
    /// Opens (or creates) the index of `identity` in the folder `dir`, sealed under a key
    /// derived from `private_key`. [`Error::SearchIndexKey`] when it was sealed under another
    /// key; [`Error::Storage`] when it cannot be read.
    pub fn open(dir: &Path, private_key: &PrivateKey, identity: &str) -> Result<Self> {
        let key = IndexKey::derive(&private_key.to_der(), identity);
        match SearchIndex::open(dir, key) {
            Ok(index) => Ok(Self { index }),
            Err(OpenFailure::WrongKey) => Err(Error::SearchIndexKey {
                path: dir.display().to_string(),
            }),
            Err(e) => Err(open_error(e)),
        }
    }

    /// Adds `messages`, each replacing what was indexed for its channel and `seq` (nothing is
    /// written for one indexed already with the same text). They are committed in batches: at
    /// 500 waiting, once the oldest waited a second, before a search, at [`MessageIndex::commit`]
    /// and when the index is dropped.
    pub fn add(&self, messages: &[IndexedMessage]) -> Result<()> {
        self.index.put(messages)
    }

    /// Commits the messages waiting, if any (a new sealed segment, `meta.json` synced).
    pub fn commit(&self) -> Result<()> {
        self.index.flush()
    }

    /// Removes the message `seq` of `channel`; `true` when it was indexed.
    pub fn remove(&self, channel: &str, seq: i64) -> Result<bool> {
        self.index.remove(channel, seq)
    }

    /// The best `limit` (at most 1000) messages for `query`, as [`Chat::search`].
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        self.index.search(query, limit)
    }

    /// How many messages are indexed (committing those waiting first).
    pub fn len(&self) -> Result<u64> {
        self.index.len()
    }

    /// Whether no message is indexed.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The open index of one [`EThree`], opened at its first use.
pub(crate) struct SearchSlot {
    root: PathBuf,
    index: Arc<tokio::sync::Mutex<Option<Arc<SearchIndex>>>>,
}

impl SearchSlot {
    /// The slot of `identity`'s index in `storage_dir`.
    pub(crate) fn new(storage_dir: &Path, identity: &str) -> Self {
        // A hash, not the identity: any identity is a valid folder name this way.
        let digest = <sha2::Sha256 as sha2::Digest>::digest(identity.as_bytes());
        Self {
            root: storage_dir
                .join("search")
                .join(hex::encode(digest.get(..16).unwrap_or_default())),
            index: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// The open index; opens (or creates) it under `ethree`'s private key.
    async fn get(&self, ethree: &EThree) -> Result<Arc<SearchIndex>> {
        let mut slot = self.index.clone().lock_owned().await;
        if let Some(index) = slot.as_ref() {
            return Ok(index.clone());
        }
        let private_key = ethree.private_key().await?;
        let identity = ethree.identity().to_owned();
        let root = self.root.clone();
        // The slot goes with the opening, which puts the index in it even when this caller
        // is cancelled meanwhile (a terminal chat drops a message being opened when a command
        // is typed): dropped unused instead, the index would still hold its lock while the
        // next caller tried to open it, and find it busy.
        blocking(move || {
            let key = || IndexKey::derive(&private_key.to_der(), &identity);
            let index = match SearchIndex::open(&root, key()) {
                Ok(index) => index,
                // Sealed under a key this user no longer has, or damaged: what it held can be
                // read again (from the server, while the key allows), so start over.
                Err(OpenFailure::WrongKey | OpenFailure::Damaged(_)) => {
                    remove_dir(&root)?;
                    SearchIndex::open(&root, key()).map_err(open_error)?
                }
                Err(e) => return Err(open_error(e)),
            };
            let index = Arc::new(index);
            *slot = Some(index.clone());
            Ok(index)
        })
        .await
    }

    /// Closes and deletes the index (with the private key: [`EThree::cleanup`]).
    pub(crate) async fn wipe(&self) -> Result<()> {
        let mut slot = self.index.lock().await;
        let index = slot.take();
        let root = self.root.clone();
        blocking(move || {
            // Its merges finish first, then its files can go; a search still running elsewhere
            // holds the last reference, so a late file is possible: try a few times.
            if let Some(index) = index {
                if let Ok(index) = Arc::try_unwrap(index) {
                    index.close();
                }
            }
            let mut attempt = 0;
            loop {
                match remove_dir(&root) {
                    Err(_) if attempt < 10 => {
                        attempt += 1;
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                    other => return other,
                }
            }
        })
        .await
    }
}

fn remove_dir(root: &Path) -> Result<()> {
    match std::fs::remove_dir_all(root) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Storage(format!(
            "cannot delete the chat search index {}: {e}",
            root.display()
        ))),
        _ => Ok(()),
    }
}

fn open_error(e: OpenFailure) -> Error {
    match e {
        OpenFailure::Failed(e) | OpenFailure::Damaged(e) => e,
        OpenFailure::WrongKey => Error::Storage(
            "chat search index: sealed under another key and could not be replaced".into(),
        ),
        OpenFailure::Busy => Error::Storage(
            "chat search index: another client of this identity in this process has it open \
             (use one EThree per identity and storage directory)"
                .into(),
        ),
    }
}

/// The index entry of a received message: verified UTF-8 text only.
fn entry_of(m: &ReceivedMessage) -> Option<IndexedMessage> {
    let text = m.text()?;
    if !m.is_verified() {
        return None;
    }
    Some(entry(&m.message, text))
}

fn entry(m: &Message, text: &str) -> IndexedMessage {
    IndexedMessage {
        channel: m.channel.clone(),
        seq: m.seq,
        sender: m.sender.clone(),
        sent_at: m.sent_at,
        text: text.to_owned(),
    }
}

impl Chat {
    /// The [`DEFAULT_HITS`] messages that best match `query`, best first, from the index of
    /// messages this device decrypted (see [`crate::chat::search`]). Nothing is sent to the
    /// server. Words are all required, case-insensitive; tantivy's query language works too:
    /// `"a phrase"`, `-without`, `pref*`, `sender:bob`, `channel:team`. What cannot be parsed
    /// is ignored rather than an error; an empty query finds nothing.
    ///
    /// Errors: [`Error::MissingPrivateKey`] (the index key comes from it), [`Error::Storage`].
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// for hit in chat.search("quarterly report").await? {
    ///     println!("[{}] #{} {}: {}", hit.channel, hit.seq, hit.sender, hit.snippet);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn search(&self, query: &str) -> Result<Vec<SearchHit>> {
        self.search_top(query, DEFAULT_HITS).await
    }

    /// [`Chat::search`] returning up to `limit` hits (at most 1000).
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// let hits = chat.search_top("sender:bob invoice", 100).await?;
    /// println!("{} messages of bob's mention an invoice", hits.len());
    /// # Ok(()) }
    /// ```
    pub async fn search_top(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let index = self.search_index().await?;
        let query = query.to_owned();
        blocking(move || index.search(&query, limit.min(MAX_HITS))).await
    }

    /// Indexes `message`, replacing what was indexed for its channel and `seq`: the new text
    /// of an edited message. A message that is not verified text removes the entry instead.
    /// Messages handed out by the SDK are indexed already.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat, edited: sealkit::chat::ReceivedMessage)
    /// #     -> sealkit::Result<()> {
    /// // The sender edited a message: its new version (decrypted and verified).
    /// chat.index_message(&edited).await?;
    /// # Ok(()) }
    /// ```
    pub async fn index_message(&self, message: &ReceivedMessage) -> Result<()> {
        let index = self.search_index().await?;
        match entry_of(message) {
            Some(entry) => blocking(move || index.put(&[entry])).await,
            None => {
                let (channel, seq) = (message.message.channel.clone(), message.message.seq);
                blocking(move || index.remove(&channel, seq).map(|_| ())).await
            }
        }
    }

    /// Removes the message `seq` of `channel` from the index (it was deleted); `true` when it
    /// was indexed.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// // A tombstone for #42 of team arrived:
    /// chat.unindex_message("team", 42).await?;
    /// assert!(chat.search("words of 42").await?.iter().all(|h| h.seq != 42));
    /// # Ok(()) }
    /// ```
    pub async fn unindex_message(&self, channel: &str, seq: i64) -> Result<bool> {
        let index = self.search_index().await?;
        let channel = channel.to_owned();
        blocking(move || index.remove(&channel, seq)).await
    }

    /// How many messages the search index holds.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// println!("{} messages searchable on this device", chat.indexed_count().await?);
    /// # Ok(()) }
    /// ```
    pub async fn indexed_count(&self) -> Result<u64> {
        let index = self.search_index().await?;
        blocking(move || index.len()).await
    }

    async fn search_index(&self) -> Result<Arc<SearchIndex>> {
        self.ethree.inner.search.get(&self.ethree).await
    }

    /// Indexes what the SDK just handed out or sent. Search is a convenience on top of the
    /// chat: a failure here (a full disk) must not fail reading or sending, so it is dropped;
    /// the message is indexed when it is read again.
    pub(super) async fn index_quietly(&self, entries: Vec<IndexedMessage>) {
        if entries.is_empty() {
            return;
        }
        if let Ok(index) = self.search_index().await {
            let _ = blocking(move || index.put(&entries)).await;
        }
    }

    /// [`Chat::index_quietly`] for received messages; a tombstone among them removes its
    /// message from the index.
    pub(super) async fn index_received(&self, messages: &[ReceivedMessage]) {
        for deleted in messages.iter().filter(|m| m.message.deleted.is_some()) {
            self.unindex_quietly(&deleted.message.channel, deleted.message.seq)
                .await;
        }
        self.index_quietly(messages.iter().filter_map(entry_of).collect())
            .await;
    }

    /// Removes a deleted message from the index; like [`Chat::index_quietly`], a failure is
    /// dropped (a later read of the tombstone tries again).
    pub(super) async fn unindex_quietly(&self, channel: &str, seq: i64) {
        if let Ok(index) = self.search_index().await {
            let channel = channel.to_owned();
            let _ = blocking(move || index.remove(&channel, seq)).await;
        }
    }

    /// [`Chat::index_quietly`] for a message the user sent.
    pub(super) async fn index_sent(&self, message: &Message, data: &[u8]) {
        if let Ok(text) = std::str::from_utf8(data) {
            self.index_quietly(vec![entry(message, text)]).await;
        }
    }
}
