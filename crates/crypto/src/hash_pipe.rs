//! The signature's SHA-2 of a long body, on a second core.
//!
//! Sign-and-encrypt hashes the plaintext and encrypts it: two passes over every byte, of which
//! SHA-512 is by far the slower (about 0.7 GB/s against several GB/s for AES-GCM on a VAES
//! CPU). The two do not depend on each other, so once a body is long enough for it to pay off
//! the hash moves to a worker thread and the caller's thread only copies each piece into one of
//! a few recycled buffers. Memory stays bounded: at most [`DEPTH`] buffers of [`PIECE`] bytes
//! exist per hasher, and the caller waits for a buffer to come back when all are in flight.
//!
//! The thread owns its hasher and ends as soon as the channel feeding it closes, so dropping a
//! [`BodyHasher`] half-way (an error, a dropped encryptor) never leaves anything behind for
//! longer than it takes to hash the buffers already queued.

use crate::signature::Hasher;
use std::sync::mpsc;
use std::thread;

/// Bytes hashed inline before the hash moves to a thread: below this a thread costs more than it
/// saves (spawning one takes tens of microseconds; SHA-512 of 1 MiB takes about 1.5 ms).
pub(crate) const PIPELINE_AFTER: u64 = 1 << 20;
/// Size of the pieces sent to the worker (amortises one channel round trip per piece).
const PIECE: usize = 128 << 10;
/// Buffers per hasher: enough to absorb the jitter between the two threads.
const DEPTH: usize = 6;

enum Reply {
    Buffer(Vec<u8>),
    Digest(Vec<u8>),
}

struct Worker {
    to_worker: mpsc::SyncSender<Vec<u8>>,
    from_worker: mpsc::Receiver<Reply>,
    thread: thread::JoinHandle<()>,
    filling: Vec<u8>,
    spare: Vec<Vec<u8>>,
    allocated: usize,
}

enum Mode {
    Inline { hasher: Hasher, fed: u64 },
    Worker(Worker),
}

/// A SHA-2 hasher that moves to its own thread once the data is long (see the module docs).
pub(crate) struct BodyHasher {
    mode: Mode,
}

impl BodyHasher {
    pub fn new(hasher: Hasher) -> Self {
        Self {
            mode: Mode::Inline { hasher, fed: 0 },
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.mode {
            Mode::Inline { hasher, fed } => {
                hasher.update(data);
                *fed += data.len() as u64;
                if *fed >= PIPELINE_AFTER {
                    self.start_worker();
                }
            }
            Mode::Worker(worker) => worker.feed(data),
        }
    }

    /// The digest of everything fed; `None` only if the worker thread died.
    pub fn finish(self) -> Option<Vec<u8>> {
        match self.mode {
            Mode::Inline { hasher, .. } => Some(hasher.finish()),
            Mode::Worker(worker) => worker.finish(),
        }
    }

    /// Moves the hasher to a thread; if no thread can be started, hashing simply stays inline.
    fn start_worker(&mut self) {
        let Mode::Inline { hasher, .. } = &self.mode else {
            return;
        };
        let (to_worker, work) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (replies, from_worker) = mpsc::channel();
        let mut moved = hasher.clone();
        let spawned = thread::Builder::new()
            .name("sealkit-hash".into())
            .spawn(move || {
                for piece in work {
                    moved.update(&piece);
                    // The owner may be gone (an error dropped it); then nobody needs the reply.
                    let _ = replies.send(Reply::Buffer(piece));
                }
                let _ = replies.send(Reply::Digest(moved.finish()));
            });
        if let Ok(thread) = spawned {
            self.mode = Mode::Worker(Worker {
                to_worker,
                from_worker,
                thread,
                filling: Vec::with_capacity(PIECE),
                spare: Vec::new(),
                allocated: 1,
            });
        }
    }
}

impl Worker {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (PIECE - self.filling.len()).min(data.len());
            self.filling.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.filling.len() == PIECE {
                let next = self.next_buffer();
                let full = core::mem::replace(&mut self.filling, next);
                self.send(full);
            }
        }
    }

    fn send(&mut self, piece: Vec<u8>) {
        // A send fails only if the worker died; `finish` then reports it.
        let _ = self.to_worker.send(piece);
    }

    fn next_buffer(&mut self) -> Vec<u8> {
        while let Ok(Reply::Buffer(b)) = self.from_worker.try_recv() {
            self.spare.push(b);
        }
        if let Some(mut b) = self.spare.pop() {
            b.clear();
            return b;
        }
        if self.allocated < DEPTH {
            self.allocated += 1;
            return Vec::with_capacity(PIECE);
        }
        match self.from_worker.recv() {
            Ok(Reply::Buffer(mut b)) => {
                b.clear();
                b
            }
            // The worker is gone; keep accepting data so the caller reaches `finish`, which
            // reports the failure.
            _ => Vec::with_capacity(PIECE),
        }
    }

    fn finish(mut self) -> Option<Vec<u8>> {
        let last = core::mem::take(&mut self.filling);
        if !last.is_empty() {
            self.send(last);
        }
        drop(self.to_worker);
        let digest = loop {
            match self.from_worker.recv() {
                Ok(Reply::Buffer(_)) => continue,
                Ok(Reply::Digest(d)) => break Some(d),
                Err(_) => break None,
            }
        };
        self.thread.join().ok()?;
        digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::format::algorithm::HashAlg;

    #[test]
    fn pipelined_digest_equals_inline_digest_for_any_piece_sizes() {
        let data: Vec<u8> = (0..(3 * PIPELINE_AFTER as usize + 12345))
            .map(|i| (i * 31 + i / 977) as u8)
            .collect();
        for alg in [HashAlg::Sha512, HashAlg::Sha256] {
            let mut reference = Hasher::new(alg);
            reference.update(&data);
            let expected = reference.finish();
            // Every backend (OpenSSL's SHA-512 with the `openssl` feature) against `sha2`.
            for &backend in Backend::ALL {
                for piece in [1usize, 1000, PIECE - 1, PIECE, 3 * PIECE + 7, data.len()] {
                    let mut h = BodyHasher::new(Hasher::on(backend, alg));
                    for c in data.chunks(piece) {
                        h.update(c);
                    }
                    let went_to_thread = matches!(h.mode, Mode::Worker(_));
                    assert!(
                        went_to_thread,
                        "piece {piece}: the hash never left the thread"
                    );
                    assert_eq!(
                        h.finish(),
                        Some(expected.clone()),
                        "{alg:?} on {backend:?}, piece {piece}"
                    );
                }
            }
        }
    }

    #[test]
    fn short_data_stays_inline() {
        let mut h = BodyHasher::new(Hasher::new(HashAlg::Sha512));
        h.update(&[1; 1000]);
        assert!(matches!(h.mode, Mode::Inline { .. }));
        let mut reference = Hasher::new(HashAlg::Sha512);
        reference.update(&[1; 1000]);
        assert_eq!(h.finish(), Some(reference.finish()));
    }

    #[test]
    fn dropping_a_pipelined_hasher_ends_its_thread() {
        let mut h = BodyHasher::new(Hasher::new(HashAlg::Sha512));
        h.update(&vec![0; 2 * PIPELINE_AFTER as usize]);
        let Mode::Worker(worker) = h.mode else {
            panic!("the hash never left the thread");
        };
        let Worker {
            to_worker, thread, ..
        } = worker;
        drop(to_worker);
        assert!(thread.join().is_ok());
    }
}
