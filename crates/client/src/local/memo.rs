//! [`ReadMemo`]: what the hot paths read from the local store again and again (a chat reads
//! its sender's card and pins for every message), kept in memory for a short while.
//!
//! Writes made through this process's store empty the memo once they are committed, so this
//! process always reads its own writes. A write made by another process that shares the file
//! is seen once the entry is older than [`MEMO_AGE`]: the same second's delay as a card check
//! reused under key transparency.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long an entry read from the file is reused.
pub(crate) const MEMO_AGE: Duration = Duration::from_secs(1);

/// Most entries kept per table; the memo is emptied when full (it only costs a read again).
const MEMO_CAPACITY: usize = 4096;

/// What [`ReadMemo::split`] found.
struct Split<'a, V> {
    /// The identities with a fresh entry, and their values.
    known: Vec<(&'a str, Option<V>)>,
    /// The identities to read from the file.
    unread: Vec<&'a str>,
    /// To pass to [`ReadMemo::keep`] with what was read.
    generation: u64,
}

/// Entries of one table, by identity; `None` remembers that the table has no row for it.
#[derive(Debug)]
pub(crate) struct ReadMemo<V> {
    inner: Mutex<Entries<V>>,
}

#[derive(Debug)]
struct Entries<V> {
    /// Counts the writes: an entry read before a write committed is not kept after it.
    generation: u64,
    by_identity: HashMap<String, (Instant, Option<V>)>,
}

impl<V: Clone> ReadMemo<V> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Entries {
                generation: 0,
                by_identity: HashMap::new(),
            }),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries<V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entries of `identities` read less than [`MEMO_AGE`] ago, and the identities to read
    /// from the file.
    fn split<'a>(&self, identities: &[&'a str]) -> Split<'a, V> {
        let entries = self.entries();
        let mut split = Split {
            known: Vec::new(),
            unread: Vec::new(),
            generation: entries.generation,
        };
        for identity in identities {
            match entries.by_identity.get(*identity) {
                Some((read_at, value)) if read_at.elapsed() < MEMO_AGE => {
                    split.known.push((*identity, value.clone()))
                }
                _ => split.unread.push(*identity),
            }
        }
        split
    }

    /// The values of those of `identities` that have one: entries read less than [`MEMO_AGE`]
    /// ago from the memo, the others from `read` (called with them, only when there are any),
    /// and kept unless a write committed meanwhile.
    pub(crate) async fn get_or_read<E, Fut>(
        &self,
        identities: &[&str],
        read: impl FnOnce(Vec<String>) -> Fut,
    ) -> Result<BTreeMap<String, V>, E>
    where
        Fut: Future<Output = Result<BTreeMap<String, V>, E>>,
    {
        let split = self.split(identities);
        let mut out: BTreeMap<String, V> = split
            .known
            .into_iter()
            .filter_map(|(identity, value)| Some((identity.to_owned(), value?)))
            .collect();
        if split.unread.is_empty() {
            return Ok(out);
        }
        let unread: Vec<String> = split.unread.iter().map(|i| (*i).to_owned()).collect();
        let found = read(unread.clone()).await?;
        self.keep(
            split.generation,
            unread.into_iter().map(|identity| {
                let value = found.get(&identity).cloned();
                (identity, value)
            }),
        );
        out.extend(found);
        Ok(out)
    }

    /// Keeps what was read for `identities` (a missing one as `None`), unless a write committed
    /// since `generation` was taken.
    fn keep(&self, generation: u64, read: impl IntoIterator<Item = (String, Option<V>)>) {
        let mut entries = self.entries();
        if entries.generation != generation {
            return;
        }
        let now = Instant::now();
        for (identity, value) in read {
            if entries.by_identity.len() >= MEMO_CAPACITY {
                entries.by_identity.clear();
            }
            entries.by_identity.insert(identity, (now, value));
        }
    }

    /// Forgets everything: call after a write to the table committed (or failed, when it may
    /// have committed).
    pub(crate) fn written(&self) {
        let mut entries = self.entries();
        entries.generation = entries.generation.wrapping_add(1);
        entries.by_identity.clear();
    }

    /// Calls [`ReadMemo::written`] when dropped: held across a write, it empties the memo
    /// once the write is over however it ends (committed, failed, or its future dropped).
    pub(crate) fn writing(&self) -> Writing<'_, V> {
        Writing(self)
    }
}

/// See [`ReadMemo::writing`].
pub(crate) struct Writing<'a, V: Clone>(&'a ReadMemo<V>);

impl<V: Clone> Drop for Writing<'_, V> {
    fn drop(&mut self) {
        self.0.written();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_from_before_a_write_is_not_kept() {
        let memo = ReadMemo::<u32>::new();
        let split = memo.split(&["bob", "carol"]);
        assert!(split.known.is_empty());
        assert_eq!(split.unread, ["bob", "carol"]);
        memo.written();
        memo.keep(split.generation, [("bob".to_owned(), Some(1))]);
        let split = memo.split(&["bob"]);
        assert!(split.known.is_empty(), "kept across a write");
        assert_eq!(split.unread, ["bob"]);

        memo.keep(
            split.generation,
            [("bob".to_owned(), Some(2)), ("carol".to_owned(), None)],
        );
        let split = memo.split(&["bob", "carol", "dave"]);
        assert_eq!(split.known, [("bob", Some(2)), ("carol", None)]);
        assert_eq!(split.unread, ["dave"]);
        {
            let _written = memo.writing();
        }
        assert!(
            memo.split(&["bob", "carol"]).known.is_empty(),
            "a write empties the memo"
        );
    }

    #[test]
    fn entries_are_read_again_after_their_age() {
        let memo = ReadMemo::<u32>::new();
        let generation = memo.split(&["bob"]).generation;
        memo.keep(generation, [("bob".to_owned(), Some(1))]);
        assert_eq!(memo.split(&["bob"]).known, [("bob", Some(1))]);
        std::thread::sleep(MEMO_AGE + Duration::from_millis(20));
        let split = memo.split(&["bob"]);
        assert!(split.known.is_empty());
        assert_eq!(split.unread, ["bob"]);
    }
}
