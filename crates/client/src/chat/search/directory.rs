//! [`SealedDirectory`]: a tantivy [`Directory`] whose files are sealed on disk
//! ([`super::sealed`]), after Matrix's seshat (an encrypted tantivy directory).
//!
//! tantivy writes each segment file once and never changes it, so a file is sealed whole when
//! its writer terminates and opened whole the first time it is read; the plaintext lives only
//! in memory (a cache of the files open, about the size of the index). `meta.json` and
//! `.managed.json` go through [`Directory::atomic_write`]: sealed, written to a temporary file,
//! synced and renamed over the old one. A file that exists on disk but is empty is one whose writer
//! has not terminated yet (tantivy's lock files are such).
//!
//! Locks are held in this process only (a registry of the locked paths): two processes that
//! share a storage directory and an identity must not both write the index. The SDK opens the
//! index lazily and keeps one writer per process.

use super::sealed::IndexKey;
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, OwnedBytes, TerminatingWrite,
    WatchCallback, WatchCallbackList, WatchHandle, WritePtr,
};

/// A tantivy directory sealing every file under an [`IndexKey`].
#[derive(Clone)]
pub(crate) struct SealedDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    key: IndexKey,
    /// Files already opened (or written) in this process, in clear. Segment files never
    /// change, so an entry stays valid until the file is deleted.
    cache: Mutex<HashMap<PathBuf, OwnedBytes>>,
    watchers: WatchCallbackList,
}

impl std::fmt::Debug for SealedDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedDirectory")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SealedDirectory {
    /// A directory over the existing folder `root`.
    pub(crate) fn new(root: PathBuf, key: IndexKey) -> Self {
        Self {
            inner: Arc::new(Inner {
                root,
                key,
                cache: Mutex::new(HashMap::new()),
                watchers: WatchCallbackList::default(),
            }),
        }
    }

    fn disk_path(&self, path: &Path) -> PathBuf {
        self.inner.root.join(path)
    }

    /// Reads and opens the sealed file `path` (`Ok(None)` when it does not exist).
    fn read_sealed(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let sealed = match std::fs::read(self.disk_path(path)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if sealed.is_empty() {
            // Created by `open_write`, not terminated yet: nothing written.
            return Ok(Some(Vec::new()));
        }
        self.inner
            .key
            .open(&name_of(path), &sealed)
            .map(Some)
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} did not decrypt (another key, or damaged)",
                        path.display()
                    ),
                )
            })
    }

    /// Seals `plaintext` into `path`, replacing it atomically (temporary file, rename).
    /// `durable` adds an fsync before the rename: for `meta.json`, the commit point. Segment
    /// files are not synced one by one: after a power cut a commit may point at a file that
    /// did not reach the disk, the index then fails to open and is rebuilt (it only holds
    /// what can be read again), and live messages do not wait for several fsyncs each.
    fn write_sealed(&self, path: &Path, plaintext: &[u8], durable: bool) -> io::Result<()> {
        let sealed = self.inner.key.seal(&name_of(path), plaintext);
        let target = self.disk_path(path);
        let mut tmp = tempfile::NamedTempFile::new_in(&self.inner.root)?;
        tmp.write_all(&sealed)?;
        if durable {
            tmp.as_file().sync_all()?;
        }
        tmp.persist(&target).map_err(|e| e.error)?;
        Ok(())
    }
}

/// The name a file is sealed under (its path inside the index directory).
fn name_of(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

impl Directory for SealedDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        if let Some(bytes) = lock(&self.inner.cache).get(path) {
            return Ok(Arc::new(bytes.clone()));
        }
        let plain = self
            .read_sealed(path)
            .map_err(|e| OpenReadError::wrap_io_error(e, path.to_owned()))?
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_owned()))?;
        let bytes = OwnedBytes::new(plain);
        lock(&self.inner.cache).insert(path.to_owned(), bytes.clone());
        Ok(Arc::new(bytes))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        lock(&self.inner.cache).remove(path);
        match std::fs::remove_file(self.disk_path(path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(DeleteError::FileDoesNotExist(path.to_owned()))
            }
            Err(e) => Err(DeleteError::IoError {
                io_error: Arc::new(e),
                filepath: path.to_owned(),
            }),
        }
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.disk_path(path)
            .try_exists()
            .map_err(|e| OpenReadError::wrap_io_error(e, path.to_owned()))
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        // The file exists from now on (tantivy relies on it), empty until terminated.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.disk_path(path))
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(OpenWriteError::FileAlreadyExists(path.to_owned()))
            }
            Err(e) => return Err(OpenWriteError::wrap_io_error(e, path.to_owned())),
        }
        lock(&self.inner.cache).remove(path);
        let writer: Box<dyn TerminatingWrite + Send + Sync> = Box::new(SealingWriter {
            directory: self.clone(),
            path: path.to_owned(),
            buffer: Vec::new(),
        });
        Ok(io::BufWriter::new(writer))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.read_sealed(path)
            .map_err(|e| OpenReadError::wrap_io_error(e, path.to_owned()))?
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_owned()))
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        lock(&self.inner.cache).remove(path);
        self.write_sealed(path, data, true)?;
        if path == Path::new("meta.json") {
            // Readers reloading on commit: tell them (the future only reports completion).
            drop(self.inner.watchers.broadcast());
        }
        Ok(())
    }

    fn sync_directory(&self) -> io::Result<()> {
        #[cfg(unix)]
        std::fs::File::open(&self.inner.root)?.sync_all()?;
        Ok(())
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        let path = self.disk_path(&lock.filepath);
        // tantivy's own policy: a blocking lock waits up to 10 s, the others fail at once.
        let attempts = if lock.is_blocking { 100 } else { 1 };
        for attempt in 0..attempts {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            if held_locks().insert(path.clone()) {
                return Ok(DirectoryLock::from(Box::new(HeldLock { path })));
            }
        }
        Err(LockError::LockBusy)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        Ok(self.inner.watchers.subscribe(watch_callback))
    }
}

/// The locks held in this process, by path on disk.
fn held_locks() -> std::sync::MutexGuard<'static, HashSet<PathBuf>> {
    static LOCKS: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    lock(LOCKS.get_or_init(Mutex::default))
}

/// A lock of [`held_locks`], released on drop.
struct HeldLock {
    path: PathBuf,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        held_locks().remove(&self.path);
    }
}

/// Collects a file in memory and seals it to disk when tantivy terminates it.
struct SealingWriter {
    directory: SealedDirectory,
    path: PathBuf,
    buffer: Vec<u8>,
}

impl Write for SealingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Nothing to do: a file is sealed whole, at [`TerminatingWrite::terminate_ref`] (tantivy
    /// reads a file it wrote only after terminating it).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TerminatingWrite for SealingWriter {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        let plain = std::mem::take(&mut self.buffer);
        self.directory.write_sealed(&self.path, &plain, false)?;
        lock(&self.directory.inner.cache).insert(self.path.clone(), OwnedBytes::new(plain));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn dir_with(key: [u8; 32]) -> (tempfile::TempDir, SealedDirectory) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SealedDirectory::new(tmp.path().to_owned(), IndexKey::from_bytes(&key));
        (tmp, dir)
    }

    #[test]
    fn files_are_sealed_on_disk_and_read_back() {
        let (tmp, dir) = dir_with([1; 32]);
        let path = Path::new("seg.idx");
        let mut w = dir.open_write(path).unwrap();
        // Exists (empty) before it is terminated; a second writer is refused.
        assert!(dir.exists(path).unwrap());
        assert!(matches!(
            dir.open_write(path),
            Err(OpenWriteError::FileAlreadyExists(_))
        ));
        w.write_all(b"secret words secret words").unwrap();
        w.terminate().unwrap();
        let on_disk = std::fs::read(tmp.path().join(path)).unwrap();
        assert!(!on_disk.windows(6).any(|w| w == b"secret"));
        let read = dir.open_read(path).unwrap().read_bytes().unwrap();
        assert_eq!(read.as_slice(), b"secret words secret words");

        dir.atomic_write(Path::new("meta.json"), b"{\"secret\":1}")
            .unwrap();
        assert_eq!(
            dir.atomic_read(Path::new("meta.json")).unwrap(),
            b"{\"secret\":1}"
        );
        let meta = std::fs::read(tmp.path().join("meta.json")).unwrap();
        assert!(!meta.windows(6).any(|w| w == b"secret"));

        // Another key (a fresh process, so nothing cached) reads nothing.
        let other = SealedDirectory::new(tmp.path().to_owned(), IndexKey::from_bytes(&[2; 32]));
        assert!(matches!(
            other.open_read(path),
            Err(OpenReadError::IoError { .. })
        ));
        assert!(other.atomic_read(Path::new("meta.json")).is_err());

        dir.delete(path).unwrap();
        assert!(!dir.exists(path).unwrap());
        assert!(matches!(
            dir.delete(path),
            Err(DeleteError::FileDoesNotExist(_))
        ));
        assert!(matches!(
            dir.open_read(path),
            Err(OpenReadError::FileDoesNotExist(_))
        ));
    }

    #[test]
    fn locks_are_exclusive_until_dropped() {
        let (_tmp, dir) = dir_with([3; 32]);
        let lock = Lock {
            filepath: PathBuf::from(".test.lock"),
            is_blocking: false,
        };
        let held = dir.acquire_lock(&lock).unwrap();
        assert!(matches!(
            dir.clone().acquire_lock(&lock),
            Err(LockError::LockBusy)
        ));
        drop(held);
        assert!(dir.acquire_lock(&lock).is_ok());
    }
}
