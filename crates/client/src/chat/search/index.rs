//! [`SearchIndex`]: the tantivy index of the messages a user decrypted, in a
//! [`SealedDirectory`]. Synchronous; the SDK calls it on the blocking pool.

use super::directory::SealedDirectory;
use super::sealed::{IndexKey, CHECK_FILE};
use super::SearchHit;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::error::LockError;
use tantivy::query::{QueryParser, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, Value, FAST, INDEXED, STORED, STRING, TEXT,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term};

/// The indexing arena of the writer: tantivy's minimum for one thread is 15 MB; segments are
/// flushed at every commit anyway, so it is never filled in chat use.
const WRITER_ARENA: usize = 20_000_000;

/// Messages are committed (a new sealed segment, `meta.json` synced) once this many wait, once
/// the oldest has waited [`COMMIT_AFTER`], before a search, and when the index closes: a commit
/// per message would hold up every live message by a commit and an fsync. A commit costs about
/// 10 ms of CPU whatever it holds (a new segment, sealed files, the reader reloaded), so in a
/// busy channel it is the interval that sets the index's cost; what a crash can lose is the
/// messages of the last interval, which are indexed again when read again.
const COMMIT_EVERY: usize = 500;
const COMMIT_AFTER: Duration = Duration::from_secs(5);

/// The longest snippet, in characters.
const SNIPPET_CHARS: usize = 160;

/// The most hits one search returns.
pub(crate) const MAX_HITS: usize = 1000;

/// One message to index ([`super::MessageIndex::add`]).
///
/// ```
/// use sealkit::chat::search::IndexedMessage;
///
/// let m = IndexedMessage {
///     channel: "team".into(),
///     seq: 7,
///     sender: "bob".into(),
///     sent_at: 1_700_000_000_000,
///     text: "lunch at 1?".into(),
/// };
/// assert_eq!(m.seq, 7);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedMessage {
    /// The channel id.
    pub channel: String,
    /// The message's `seq` in the channel: with the channel, what identifies it in the index.
    pub seq: i64,
    /// Who sent it.
    pub sender: String,
    /// When the server stored it (Unix milliseconds).
    pub sent_at: i64,
    /// The text that is searched.
    pub text: String,
}

/// Why an index could not be opened.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// The index was sealed under another key (the user's key was replaced).
    WrongKey,
    /// The files do not make an index (damaged, or sealed under another key and the key
    /// check lost).
    Damaged(Error),
    /// Another [`SearchIndex`] writes it, in this process or another (two clients of one
    /// identity on one storage directory).
    Busy,
    /// Anything else (I/O).
    Failed(Error),
}

#[derive(Clone, Copy)]
struct Fields {
    /// `channel` NUL `seq`: one document per message (not stored).
    key: Field,
    channel: Field,
    seq: Field,
    sender: Field,
    sent_at: Field,
    text: Field,
}

impl Fields {
    fn schema() -> (Schema, Self) {
        let mut b = Schema::builder();
        let fields = Self {
            key: b.add_text_field("key", STRING),
            channel: b.add_text_field("channel", STRING | STORED),
            seq: b.add_i64_field("seq", STORED | INDEXED | FAST),
            sender: b.add_text_field("sender", STRING | STORED),
            sent_at: b.add_i64_field("sent_at", STORED),
            text: b.add_text_field("text", TEXT | STORED),
        };
        (b.build(), fields)
    }
}

/// A user's search index, open for reading and writing.
pub(crate) struct SearchIndex {
    /// Held open for the index's lifetime: the lock that keeps other processes out.
    _process_lock: Option<std::fs::File>,
    index: Index,
    writer: Mutex<Pending>,
    reader: IndexReader,
    fields: Fields,
    root: PathBuf,
}

/// The writer, and how much it holds that is not committed yet.
struct Pending {
    /// `None` once the index is closed.
    writer: Option<IndexWriter>,
    uncommitted: usize,
    oldest: Option<Instant>,
}

impl Pending {
    fn writer(&self) -> Result<&IndexWriter> {
        self.writer
            .as_ref()
            .ok_or_else(|| failed("cannot write", "the index is closed"))
    }
}

impl Drop for Pending {
    /// What is still uncommitted is committed when the index goes away (the end of the
    /// process included); a failure leaves those messages to be indexed when read again.
    fn drop(&mut self) {
        if self.uncommitted > 0 {
            if let Some(writer) = self.writer.as_mut() {
                let _ = writer.commit();
            }
        }
    }
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("chat search index: {what}: {e}"))
}

impl SearchIndex {
    /// Opens the index in `root` (creating it, and the folder, when there is none) under `key`.
    pub(crate) fn open(root: &Path, key: IndexKey) -> std::result::Result<Self, OpenFailure> {
        let fail = |what: &str, e: &dyn std::fmt::Display| OpenFailure::Failed(failed(what, e));
        create_private_dir(root).map_err(|e| fail("cannot create its folder", &e))?;
        let process_lock = lock_folder(root)?;
        let check = root.join(CHECK_FILE);
        let new_check = match std::fs::read(&check) {
            Ok(sealed) if key.matches_check_file(&sealed) => None,
            Ok(_) => return Err(OpenFailure::WrongKey),
            // A new index, or one whose check file was lost: the sealed files tell then.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(key.check_file()),
            Err(e) => return Err(fail("cannot read its key check", &e)),
        };
        let (schema, fields) = Fields::schema();
        let directory = SealedDirectory::new(root.to_owned(), key);
        let index = Index::open_or_create(directory, schema).map_err(|e| {
            OpenFailure::Damaged(failed(&format!("cannot open {}", root.display()), e))
        })?;
        let writer = index
            .writer_with_num_threads(1, WRITER_ARENA)
            .map_err(|e| match e {
                TantivyError::LockFailure(LockError::LockBusy, _) => OpenFailure::Busy,
                e => fail("cannot write to it", &e),
            })?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| fail("cannot read it", &e))?;
        if let Some(sealed) = new_check {
            std::fs::write(&check, sealed).map_err(|e| fail("cannot write its key check", &e))?;
        }
        Ok(Self {
            _process_lock: process_lock,
            index,
            writer: Mutex::new(Pending {
                writer: Some(writer),
                uncommitted: 0,
                oldest: None,
            }),
            reader,
            fields,
            root: root.to_owned(),
        })
    }

    /// Adds or replaces the messages of `entries` (by channel and seq); they are committed
    /// with the next batch (see [`COMMIT_EVERY`]), and searches see them at once. A message
    /// already indexed with the same text costs nothing: reading a page of history again does
    /// not rewrite the index.
    pub(crate) fn put(&self, entries: &[IndexedMessage]) -> Result<()> {
        let searcher = self.reader.searcher();
        let mut added = 0;
        let mut pending = self.pending();
        let writer = pending.writer()?;
        for entry in entries {
            let key = key_term(self.fields.key, &entry.channel, entry.seq);
            if self.stored_text(&searcher, &key)?.as_deref() == Some(entry.text.as_str()) {
                continue;
            }
            writer.delete_term(key.clone());
            let mut doc = TantivyDocument::default();
            doc.add_text(self.fields.key, key_text(&entry.channel, entry.seq));
            doc.add_text(self.fields.channel, &entry.channel);
            doc.add_i64(self.fields.seq, entry.seq);
            doc.add_text(self.fields.sender, &entry.sender);
            doc.add_i64(self.fields.sent_at, entry.sent_at);
            doc.add_text(self.fields.text, &entry.text);
            writer
                .add_document(doc)
                .map_err(|e| failed("cannot add a message", e))?;
            added += 1;
        }
        if added > 0 {
            pending.uncommitted += added;
            let oldest = *pending.oldest.get_or_insert_with(Instant::now);
            if pending.uncommitted >= COMMIT_EVERY || oldest.elapsed() >= COMMIT_AFTER {
                self.commit(pending)?;
            }
        }
        Ok(())
    }

    /// Commits what is waiting, if anything.
    pub(crate) fn flush(&self) -> Result<()> {
        let pending = self.pending();
        if pending.uncommitted > 0 {
            self.commit(pending)?;
        }
        Ok(())
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the message `seq` of `channel`; `true` when it was indexed.
    pub(crate) fn remove(&self, channel: &str, seq: i64) -> Result<bool> {
        self.flush()?;
        let key = key_term(self.fields.key, channel, seq);
        let searcher = self.reader.searcher();
        if self.stored_text(&searcher, &key)?.is_none() {
            return Ok(false);
        }
        let pending = self.pending();
        pending.writer()?.delete_term(key);
        self.commit(pending)?;
        Ok(true)
    }

    /// Closes the index, waiting for tantivy's background merges (which would otherwise
    /// still write files while the folder is being deleted).
    pub(crate) fn close(self) {
        let mut pending = self
            .writer
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(mut writer) = pending.writer.take() else {
            return;
        };
        if pending.uncommitted > 0 {
            let _ = writer.commit();
        }
        pending.uncommitted = 0;
        // A merge that failed leaves nothing to wait for; the folder goes anyway.
        let _ = writer.wait_merging_threads();
    }

    /// How many messages are indexed (what waits for a commit included).
    pub(crate) fn len(&self) -> Result<u64> {
        self.flush()?;
        Ok(self.reader.searcher().num_docs())
    }

    /// The best `limit` messages for `query` (words, all required; `"a phrase"`, `sender:bob`,
    /// `channel:team`, `-word`, `word*`... as tantivy's query language has them), best first.
    pub(crate) fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let limit = limit.clamp(1, MAX_HITS);
        if query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let mut parser = QueryParser::for_index(&self.index, vec![self.fields.text]);
        parser.set_conjunction_by_default();
        // Lenient: what a user types is never a syntax error; unusable parts are dropped.
        let (query, _ignored) = parser.parse_query_lenient(query);
        self.flush()?;
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(limit))
            .map_err(|e| failed("search failed", e))?;
        let mut snippets = SnippetGenerator::create(&searcher, &*query, self.fields.text)
            .map_err(|e| failed("search failed", e))?;
        snippets.set_max_num_chars(SNIPPET_CHARS);
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher
                .doc(address)
                .map_err(|e| failed("cannot read a hit", e))?;
            let text = self.str_of(&doc, self.fields.text);
            let snippet = snippets.snippet(&text);
            let (snippet, highlights) = if snippet.is_empty() {
                // Matched on another field (sender:bob): the start of the text.
                (text.chars().take(SNIPPET_CHARS).collect(), Vec::new())
            } else {
                (
                    snippet.fragment().to_owned(),
                    snippet.highlighted().to_vec(),
                )
            };
            hits.push(SearchHit {
                channel: self.str_of(&doc, self.fields.channel),
                seq: self.i64_of(&doc, self.fields.seq),
                sender: self.str_of(&doc, self.fields.sender),
                sent_at: self.i64_of(&doc, self.fields.sent_at),
                text,
                snippet,
                highlights,
                score,
            });
        }
        Ok(hits)
    }

    /// The stored text of the message with `key`, if indexed.
    fn stored_text(&self, searcher: &tantivy::Searcher, key: &Term) -> Result<Option<String>> {
        let query = TermQuery::new(key.clone(), IndexRecordOption::Basic);
        let (count, top) = searcher
            .search(&query, &(Count, TopDocs::with_limit(1)))
            .map_err(|e| failed("lookup failed", e))?;
        let Some((_, address)) = top.first().filter(|_| count > 0) else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher
            .doc(*address)
            .map_err(|e| failed("cannot read a message", e))?;
        Ok(Some(self.str_of(&doc, self.fields.text)))
    }

    fn commit(&self, mut pending: MutexGuard<'_, Pending>) -> Result<()> {
        let writer = pending
            .writer
            .as_mut()
            .ok_or_else(|| failed("cannot commit", "the index is closed"))?;
        writer.commit().map_err(|e| failed("cannot commit", e))?;
        pending.uncommitted = 0;
        pending.oldest = None;
        drop(pending);
        self.reader.reload().map_err(|e| failed("cannot reload", e))
    }

    fn str_of(&self, doc: &TantivyDocument, field: Field) -> String {
        doc.get_first(field)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    }

    fn i64_of(&self, doc: &TantivyDocument, field: Field) -> i64 {
        doc.get_first(field).and_then(|v| v.as_i64()).unwrap_or(0)
    }
}

fn key_text(channel: &str, seq: i64) -> String {
    // Channel ids hold no NUL (validate_channel_id), so the pair is unambiguous.
    format!("{channel}\0{seq}")
}

fn key_term(field: Field, channel: &str, seq: i64) -> Term {
    Term::from_field_text(field, &key_text(channel, seq))
}

/// Keeps other processes from opening the index in `root` while the returned file is open
/// (tantivy's own locks are per process here, see [`SealedDirectory`]). An advisory lock
/// (`flock`), released by the OS when the process ends, so a crash leaves nothing stale.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios"
))]
fn lock_folder(root: &Path) -> std::result::Result<Option<std::fs::File>, OpenFailure> {
    use rustix::fs::{flock, FlockOperation};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join(PROCESS_LOCK))
        .map_err(|e| OpenFailure::Failed(failed("cannot create its lock", e)))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(OpenFailure::Busy),
        Err(e) => Err(OpenFailure::Failed(failed("cannot lock it", e))),
    }
}

/// Elsewhere only the locks of this process apply (documented).
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios"
)))]
fn lock_folder(_root: &Path) -> std::result::Result<Option<std::fs::File>, OpenFailure> {
    Ok(None)
}

/// The file [`lock_folder`] locks (empty).
const PROCESS_LOCK: &str = "sealkit-index.lock";

/// Creates `dir` (and its parents), readable by the user only where the OS has modes.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn entry(channel: &str, seq: i64, sender: &str, text: &str) -> IndexedMessage {
        IndexedMessage {
            channel: channel.into(),
            seq,
            sender: sender.into(),
            sent_at: 1_700_000_000_000 + seq,
            text: text.into(),
        }
    }

    fn open(root: &Path, key: u8) -> SearchIndex {
        SearchIndex::open(root, IndexKey::from_bytes(&[key; 32])).unwrap()
    }

    fn found(index: &SearchIndex, query: &str) -> Vec<(String, i64)> {
        index
            .search(query, 10)
            .unwrap()
            .into_iter()
            .map(|h| (h.channel, h.seq))
            .collect()
    }

    #[test]
    fn ranks_hits_and_returns_their_message() {
        let tmp = tempfile::tempdir().unwrap();
        let index = open(tmp.path(), 1);
        index
            .put(&[
                entry("team", 1, "bob", "lunch at noon?"),
                entry("team", 2, "alice", "the zebra report is late, zebra zebra"),
                entry(
                    "ops",
                    7,
                    "carol",
                    "a zebra crossed the datacenter floor during lunch",
                ),
                entry("ops", 8, "carol", "nothing to see"),
            ])
            .unwrap();
        // Ranked: the message saying it three times, in a short text, comes first.
        assert_eq!(
            found(&index, "zebra"),
            [("team".into(), 2), ("ops".into(), 7)]
        );
        let hits = index.search("Zebra", 10).unwrap();
        assert!(hits[0].score > hits[1].score);
        assert_eq!(hits[0].sender, "alice");
        assert_eq!(hits[0].sent_at, 1_700_000_000_002);
        assert_eq!(hits[0].text, "the zebra report is late, zebra zebra");
        let first = hits[0].highlights.first().cloned().unwrap();
        assert_eq!(&hits[0].snippet[first], "zebra");
        // All words are required; a field can be named.
        assert_eq!(found(&index, "zebra lunch"), [("ops".into(), 7)]);
        assert_eq!(found(&index, "sender:bob"), [("team".into(), 1)]);
        assert_eq!(found(&index, "lunch channel:team"), [("team".into(), 1)]);
        assert!(found(&index, "giraffe").is_empty());
        assert!(found(&index, "  ").is_empty());
        // Syntax a user may type by accident is no error.
        assert_eq!(found(&index, "zebra AND (").len(), 2);
        // Limit.
        assert_eq!(index.search("zebra", 1).unwrap().len(), 1);
    }

    #[test]
    fn indexing_is_idempotent_and_upserts_and_removes() {
        let tmp = tempfile::tempdir().unwrap();
        let index = open(tmp.path(), 1);
        let hello = entry("team", 1, "bob", "hello world");
        index.put(std::slice::from_ref(&hello)).unwrap();
        index.put(&[hello.clone(), hello.clone()]).unwrap();
        assert_eq!(index.len().unwrap(), 1);
        assert_eq!(found(&index, "hello"), [("team".into(), 1)]);
        // The same seq in another channel is another message.
        index.put(&[entry("ops", 1, "bob", "hello ops")]).unwrap();
        assert_eq!(index.len().unwrap(), 2);
        // An edit replaces the text: the old words no longer find it.
        index
            .put(&[entry("team", 1, "bob", "goodbye world")])
            .unwrap();
        assert_eq!(index.len().unwrap(), 2);
        assert_eq!(found(&index, "hello"), [("ops".into(), 1)]);
        assert_eq!(found(&index, "goodbye"), [("team".into(), 1)]);
        // Removal (a deleted message).
        assert!(index.remove("team", 1).unwrap());
        assert!(!index.remove("team", 1).unwrap());
        assert!(found(&index, "goodbye").is_empty());
        assert_eq!(index.len().unwrap(), 1);
        // All of it survives reopening.
        drop(index);
        let index = open(tmp.path(), 1);
        assert_eq!(index.len().unwrap(), 1);
        assert_eq!(found(&index, "hello"), [("ops".into(), 1)]);
    }

    #[test]
    fn another_key_cannot_open_it() {
        let tmp = tempfile::tempdir().unwrap();
        let index = open(tmp.path(), 1);
        index.put(&[entry("team", 1, "bob", "hello")]).unwrap();
        drop(index);
        assert!(matches!(
            SearchIndex::open(tmp.path(), IndexKey::from_bytes(&[2; 32])),
            Err(OpenFailure::WrongKey)
        ));
        // Without the check file, the sealed files themselves refuse the other key.
        std::fs::remove_file(tmp.path().join(CHECK_FILE)).unwrap();
        assert!(matches!(
            SearchIndex::open(tmp.path(), IndexKey::from_bytes(&[2; 32])),
            Err(OpenFailure::Damaged(_))
        ));
        // Which wrote no check file for the wrong key: the right one still opens it.
        let index = open(tmp.path(), 1);
        assert_eq!(found(&index, "hello"), [("team".into(), 1)]);
        // A second writer in this process is refused, not given a damaged index.
        assert!(matches!(
            SearchIndex::open(tmp.path(), IndexKey::from_bytes(&[1; 32])),
            Err(OpenFailure::Busy)
        ));
    }

    #[test]
    fn no_plaintext_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let index = open(tmp.path(), 1);
        let words = [
            "quokka",
            "marmalade",
            "xylophone",
            "bobsender",
            "secretchan",
        ];
        let mut batch = Vec::new();
        for seq in 1..=200 {
            batch.push(entry(
                "secretchan",
                seq,
                "bobsender",
                &format!("quokka {seq} likes marmalade and the xylophone"),
            ));
        }
        index.put(&batch).unwrap();
        index
            .put(&[entry("secretchan", 500, "bobsender", "quokka again")])
            .unwrap();
        index.remove("secretchan", 3).unwrap();
        assert_eq!(found(&index, "quokka").len(), 10);
        drop(index);
        let mut files = 0;
        for file in std::fs::read_dir(tmp.path()).unwrap() {
            let file = file.unwrap();
            let bytes = std::fs::read(file.path()).unwrap();
            files += 1;
            for word in words {
                assert!(
                    !bytes.windows(word.len()).any(|w| w == word.as_bytes()),
                    "{word} in {:?}",
                    file.file_name()
                );
                let name = file.file_name().to_string_lossy().into_owned();
                assert!(!name.contains(word));
            }
            // Nor the field names of the schema (meta.json is sealed too).
            assert!(!bytes.windows(7).any(|w| w == b"sent_at"));
        }
        assert!(files >= 4, "{files} files");
    }
}
