//! Edge cases of the streaming API (STYLE §6): sizes around the 64 KiB chunk and the GCM block,
//! every feeding granularity, every truncation point, one flipped bit in each region of the
//! message, decryptors fed after an error, and a 256 MiB stream in constant memory. On every
//! failure the `Stage` must never be committed. The round trips, truncations and bit flips run on
//! every backend compiled in (`sealkit_crypto::Backend::ALL`: RustCrypto, and OpenSSL with the
//! `openssl` feature), and the backends must write identical bytes and open each other's messages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealkit_crypto::{
    Backend, Crypto, DecryptInfo, Decryptor, Error, FormatErrorKind, KeyType, MessageKind,
    PrivateKey, PublicKey, Signing, Stage,
};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::rc::Rc;

const TAG: usize = 16;

// ---------------------------------------------------------------------------------------------
// Test stages, readers and fixtures
// ---------------------------------------------------------------------------------------------

/// A stage in memory that records, in a shared flag, whether it was ever committed.
struct FlagStage {
    buf: Vec<u8>,
    committed: Rc<Cell<bool>>,
}

impl FlagStage {
    fn new() -> (Self, Rc<Cell<bool>>) {
        let flag = Rc::new(Cell::new(false));
        (
            Self {
                buf: Vec::new(),
                committed: Rc::clone(&flag),
            },
            flag,
        )
    }
}

impl Write for FlagStage {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stage for FlagStage {
    type Output = Vec<u8>;

    fn commit(self) -> io::Result<Vec<u8>> {
        self.committed.set(true);
        Ok(self.buf)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Plain,
    SignThenEncrypt,
    SignAndEncrypt,
}

const KINDS: [Kind; 3] = [Kind::Plain, Kind::SignThenEncrypt, Kind::SignAndEncrypt];

impl Kind {
    fn message_kind(self) -> MessageKind {
        match self {
            Kind::Plain => MessageKind::Plain,
            Kind::SignThenEncrypt => MessageKind::SignThenEncrypt,
            Kind::SignAndEncrypt => MessageKind::SignAndEncrypt,
        }
    }
}

struct Fixture {
    crypto: Crypto,
    recipient: PrivateKey,
    signer: PrivateKey,
    signers: Vec<PublicKey>,
    to: Vec<PublicKey>,
}

impl Fixture {
    fn new(seed: u64) -> Self {
        Self::on(seed, Backend::default())
    }

    /// The same keys (for the same seed), with message bodies run on `backend`.
    fn on(seed: u64, backend: Backend) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let recipient = PrivateKey::generate(KeyType::Ed25519, &mut rng);
        let signer = PrivateKey::generate(KeyType::Ed25519, &mut rng);
        let signers = vec![signer.public_key().clone()];
        let to = vec![recipient.public_key().clone()];
        Self {
            crypto: Crypto::new().with_backend(backend),
            recipient,
            signer,
            signers,
            to,
        }
    }

    /// The verification keys a caller passes for this kind (none for plain messages).
    fn verify_with(&self, kind: Kind) -> Option<&[PublicKey]> {
        match kind {
            Kind::Plain => None,
            _ => Some(&self.signers),
        }
    }

    /// Encrypts with `Crypto::encryptor`, feeding the plaintext in 10 000-byte pieces. Returns the
    /// message and the length of its message info.
    fn encrypt(
        &self,
        rng: &mut ChaCha20Rng,
        kind: Kind,
        padding: bool,
        pt: &[u8],
    ) -> (Vec<u8>, usize) {
        let signature;
        let signing = match kind {
            Kind::Plain => Signing::None,
            Kind::SignThenEncrypt => {
                signature = sealkit_crypto::sign(pt, &self.signer, rng).unwrap();
                Signing::SignThenEncrypt {
                    signer: &self.signer,
                    signature: &signature,
                }
            }
            Kind::SignAndEncrypt => Signing::SignAndEncrypt {
                signer: &self.signer,
                plaintext_len: pt.len() as u64,
            },
        };
        let mut enc = self
            .crypto
            .encryptor(rng, &self.to, signing, padding)
            .unwrap();
        let mut msg = enc.header().to_vec();
        let header_len = msg.len();
        for piece in pt.chunks(10_000) {
            enc.update(piece, &mut msg).unwrap();
        }
        enc.finish(rng, &mut msg).unwrap();
        (msg, header_len)
    }

    /// The same message through `Crypto::encrypt_stream` from a `Cursor`.
    fn encrypt_stream(
        &self,
        rng: &mut ChaCha20Rng,
        kind: Kind,
        padding: bool,
        reader: impl Read,
        pt_for_signature: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let signature;
        let signing = match kind {
            Kind::Plain => Signing::None,
            Kind::SignThenEncrypt => {
                signature = sealkit_crypto::sign(pt_for_signature, &self.signer, rng).unwrap();
                Signing::SignThenEncrypt {
                    signer: &self.signer,
                    signature: &signature,
                }
            }
            Kind::SignAndEncrypt => Signing::SignAndEncrypt {
                signer: &self.signer,
                plaintext_len: pt_for_signature.len() as u64,
            },
        };
        let mut out = Vec::new();
        self.crypto
            .encrypt_stream(rng, reader, &mut out, &self.to, signing, padding)?;
        Ok(out)
    }

    /// Pushes `msg` into a `Decryptor` `feed` bytes at a time. Returns the result and whether the
    /// stage was committed.
    fn decrypt_fed(
        &self,
        kind: Kind,
        msg: &[u8],
        feed: usize,
    ) -> (Result<(Vec<u8>, DecryptInfo), Error>, bool) {
        let (stage, flag) = FlagStage::new();
        let result = (|| {
            let mut dec = Decryptor::new(&self.recipient, self.verify_with(kind), stage)?
                .with_backend(self.crypto.backend());
            for piece in msg.chunks(feed.max(1)) {
                dec.update(piece)?;
            }
            dec.finish()
        })();
        (result, flag.get())
    }
}

/// A deterministic pattern: the byte at offset `i` is byte `i % 8` (little-endian) of
/// `splitmix64(i / 8)`. Cheap to regenerate at any offset, so nothing has to be kept around.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pattern_byte(i: u64) -> u8 {
    splitmix64(i / 8).to_le_bytes()[(i % 8) as usize]
}

/// Fills `buf` with the pattern starting at `offset`.
fn fill_pattern(offset: u64, buf: &mut [u8]) {
    let head = ((8 - offset % 8) % 8).min(buf.len() as u64) as usize;
    let (first, rest) = buf.split_at_mut(head);
    for (j, b) in first.iter_mut().enumerate() {
        *b = pattern_byte(offset + j as u64);
    }
    let aligned = offset + head as u64;
    let mut words = rest.chunks_exact_mut(8);
    let mut word = aligned / 8;
    for w in &mut words {
        w.copy_from_slice(&splitmix64(word).to_le_bytes());
        word += 1;
    }
    let tail = words.into_remainder();
    let tail_start = word * 8;
    for (j, b) in tail.iter_mut().enumerate() {
        *b = pattern_byte(tail_start + j as u64);
    }
}

fn pattern(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_pattern(0, &mut v);
    v
}

/// A reader of `len` pattern bytes; never holds more than the caller's buffer.
struct PatternReader {
    pos: u64,
    len: u64,
}

impl Read for PatternReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len - self.pos).min(buf.len() as u64) as usize;
        fill_pattern(self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// A reader that returns short reads of varying length and an `Interrupted` error every third call.
struct ChoppyReader<'a> {
    data: &'a [u8],
    calls: usize,
}

impl Read for ChoppyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(3) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let want = [1usize, 7, 16, 4095, 70_000][self.calls % 5];
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A reader that yields `data` and then fails.
struct FailingReader<'a> {
    data: &'a [u8],
}

impl Read for FailingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "source failed"));
        }
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The variant of an error, without offsets: `Format(<kind>)`, `DecryptionFailed`, ...
fn variant(e: &Error) -> String {
    match e {
        Error::Format(f) => format!("Format({:?})", f.kind),
        Error::Io(io) => format!("Io({:?})", io.kind()),
        other => format!("{other:?}"),
    }
}

fn padded_len(len: usize) -> usize {
    len + (160 - (len + 4) % 160) + 4
}

// ---------------------------------------------------------------------------------------------
// Round trips at the edges
// ---------------------------------------------------------------------------------------------

const SIZES: [usize; 9] = [0, 1, 15, 16, 17, 65_535, 65_536, 65_537, 1 << 20];
const FEEDS: [usize; 5] = [1, 7, 16, 4096, 65_536];

fn round_trips_at_every_size(kind: Kind) {
    for &backend in Backend::ALL {
        round_trips_at_every_size_on(kind, backend);
    }
}

fn round_trips_at_every_size_on(kind: Kind, backend: Backend) {
    let fx = Fixture::on(1, backend);
    let mut rng = ChaCha20Rng::seed_from_u64(0x2000 + kind as u64);
    for padding in [false, true] {
        for size in SIZES {
            let pt = pattern(size);
            let before = rng.clone();
            let (msg, header_len) = fx.encrypt(&mut rng, kind, padding, &pt);
            let body = if padding { padded_len(size) } else { size };
            match kind {
                Kind::SignAndEncrypt => assert!(msg.len() > header_len + body + 2 * TAG),
                _ => assert_eq!(msg.len(), header_len + body + TAG, "{kind:?} {size}"),
            }

            // `encrypt_stream` from a Cursor writes the same bytes, for the same rng state.
            let mut again = before.clone();
            let streamed = fx
                .encrypt_stream(&mut again, kind, padding, Cursor::new(&pt), &pt)
                .unwrap();
            assert_eq!(streamed, msg, "{kind:?} padding={padding} size={size}");
            // ... and so does a reader with short reads and `Interrupted` errors.
            if size <= 65_537 {
                let mut again = before.clone();
                let choppy = ChoppyReader {
                    data: &pt,
                    calls: 0,
                };
                let streamed = fx
                    .encrypt_stream(&mut again, kind, padding, choppy, &pt)
                    .unwrap();
                assert_eq!(
                    streamed, msg,
                    "choppy {kind:?} padding={padding} size={size}"
                );
            }

            for feed in FEEDS {
                if feed == 1 && size > 65_537 {
                    continue;
                }
                let (result, committed) = fx.decrypt_fed(kind, &msg, feed);
                let (plain, info) = result.unwrap_or_else(|e| {
                    panic!("{kind:?} padding={padding} size={size} feed={feed}: {e}")
                });
                assert!(committed);
                assert!(
                    plain == pt,
                    "{kind:?} padding={padding} size={size} feed={feed}"
                );
                assert_eq!(info.kind, kind.message_kind());
                let expect_verified = if kind == Kind::Plain { None } else { Some(0) };
                assert_eq!(info.verified_by, expect_verified);
            }

            let (stage, flag) = FlagStage::new();
            let (plain, info) = fx
                .crypto
                .decrypt_stream(
                    Cursor::new(&msg),
                    &fx.recipient,
                    fx.verify_with(kind),
                    stage,
                )
                .unwrap();
            assert!(flag.get());
            assert!(
                plain == pt,
                "decrypt_stream {kind:?} padding={padding} size={size}"
            );
            assert_eq!(info.kind, kind.message_kind());

            let choppy = ChoppyReader {
                data: &msg,
                calls: 0,
            };
            let (plain, _) = fx
                .crypto
                .decrypt_stream(choppy, &fx.recipient, fx.verify_with(kind), Vec::new())
                .unwrap();
            assert!(plain == pt, "choppy decrypt_stream {kind:?} size={size}");
        }
    }
    eprintln!("{kind:?}: round trips at every size and feed on {backend:?}");
}

/// Every backend writes the same bytes for the same random numbers, and every backend opens
/// every other backend's messages, verified, in any feed size; sizes reach past the point where
/// the signature's hash moves to its own thread.
#[test]
fn backends_write_identical_bytes_and_open_each_others_messages() {
    assert_eq!(Crypto::new().backend(), Backend::default());
    let expected_default = if cfg!(feature = "openssl") {
        "OpenSsl"
    } else {
        "RustCrypto"
    };
    assert_eq!(format!("{:?}", Backend::default()), expected_default);
    let sizes = [0, 1, 17, 65_537, (3 << 20) + 1001];
    for kind in KINDS {
        for padding in [false, true] {
            for size in sizes {
                let pt = pattern(size);
                let seed = 0x3000 + size as u64 + kind as u64;
                let messages: Vec<(Vec<u8>, usize)> = Backend::ALL
                    .iter()
                    .map(|&b| {
                        let mut rng = ChaCha20Rng::seed_from_u64(seed);
                        Fixture::on(9, b).encrypt(&mut rng, kind, padding, &pt)
                    })
                    .collect();
                let (message, h) = &messages[0];
                let body = if padding { padded_len(size) } else { size };
                for ((m, _), b) in messages.iter().zip(Backend::ALL) {
                    assert!(
                        m == message,
                        "{kind:?} padding={padding} size={size}: {b:?} wrote other bytes than {:?}",
                        Backend::ALL[0]
                    );
                }
                for &b in Backend::ALL {
                    let fx = Fixture::on(9, b);
                    for feed in [4093, 1 << 20] {
                        let (result, committed) = fx.decrypt_fed(kind, message, feed);
                        let (plain, info) = result.unwrap_or_else(|e| {
                            panic!("{kind:?} padding={padding} size={size} on {b:?}: {e}")
                        });
                        assert!(committed && plain == pt, "{kind:?} {size} on {b:?}");
                        assert_eq!(info.kind, kind.message_kind());
                    }
                    // One flipped bit in the last body byte (or the tag of an empty body)
                    // fails on every backend.
                    let mut bad = message.clone();
                    let at = if body > 0 { h + body - 1 } else { h + 3 };
                    bad[at] ^= 0x80;
                    let (result, committed) = fx.decrypt_fed(kind, &bad, 65_536);
                    assert!(
                        matches!(result, Err(Error::DecryptionFailed)) && !committed,
                        "{kind:?} padding={padding} size={size} on {b:?}: flip at {at} gave {result:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn plain_round_trips_at_every_size_and_feed() {
    round_trips_at_every_size(Kind::Plain);
}

#[test]
fn sign_then_encrypt_round_trips_at_every_size_and_feed() {
    round_trips_at_every_size(Kind::SignThenEncrypt);
}

#[test]
fn sign_and_encrypt_round_trips_at_every_size_and_feed() {
    round_trips_at_every_size(Kind::SignAndEncrypt);
}

#[test]
fn stream_io_errors_surface_as_io_and_commit_nothing() {
    let fx = Fixture::new(2);
    let mut rng = ChaCha20Rng::seed_from_u64(0x1000 + 2);
    let pt = pattern(100_000);
    for kind in KINDS {
        let (msg, _) = fx.encrypt(&mut rng, kind, true, &pt);
        for cut in [0, 10, msg.len() / 2, msg.len()] {
            let (stage, flag) = FlagStage::new();
            let reader = FailingReader { data: &msg[..cut] };
            let r = fx
                .crypto
                .decrypt_stream(reader, &fx.recipient, fx.verify_with(kind), stage);
            assert!(
                matches!(&r, Err(Error::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe),
                "{kind:?} cut={cut}: {r:?}"
            );
            assert!(!flag.get());
        }
    }
    // Sign-and-encrypt needs the declared length: a short reader is an error, not a short message.
    let r = fx.encrypt_stream(
        &mut rng,
        Kind::SignAndEncrypt,
        false,
        Cursor::new(&pt[..pt.len() - 1]),
        &pt,
    );
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    let mut longer = pt.clone();
    longer.push(0);
    let r = fx.encrypt_stream(
        &mut rng,
        Kind::SignAndEncrypt,
        false,
        Cursor::new(&longer),
        &pt,
    );
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// 256 MiB in constant memory
// ---------------------------------------------------------------------------------------------

/// A stage that keeps nothing: it checks every byte against the regenerated pattern and counts.
struct CheckingStage {
    pos: u64,
    expected: Vec<u8>,
    first_mismatch: Option<u64>,
}

impl Write for CheckingStage {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.expected.resize(data.len(), 0);
        fill_pattern(self.pos, &mut self.expected);
        if self.first_mismatch.is_none() && self.expected != data {
            let at = self
                .expected
                .iter()
                .zip(data)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            self.first_mismatch = Some(self.pos + at as u64);
        }
        self.pos += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stage for CheckingStage {
    type Output = (u64, Option<u64>);

    fn commit(self) -> io::Result<Self::Output> {
        Ok((self.pos, self.first_mismatch))
    }
}

/// Deletes the file when dropped, also when the test panics.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Peak resident set size of this process, from `/proc/self/status` (Linux only).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Encrypts `len` pattern bytes with `encrypt_stream` into a file in the temp directory, decrypts
/// it with `decrypt_stream` into a `CheckingStage`, and deletes the file. Nothing holds the data.
fn stream_through_a_file(len: u64, seed: u64) {
    let started = std::time::Instant::now();
    let fx = Fixture::new(seed);
    let mut rng = ChaCha20Rng::seed_from_u64(0x1000 + seed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        "sealkit-stream-edges-{}-{len}-{nanos}.bin",
        std::process::id()
    ));
    let file = TempFile(path);

    let writer = io::BufWriter::new(std::fs::File::create(&file.0).unwrap());
    let reader = PatternReader { pos: 0, len };
    fx.crypto
        .encrypt_stream(&mut rng, reader, writer, &fx.to, Signing::None, false)
        .unwrap();
    let written = std::fs::metadata(&file.0).unwrap().len();
    assert!(written > len + TAG as u64 && written < len + 4096);
    let encrypted_at = started.elapsed();

    let stage = CheckingStage {
        pos: 0,
        expected: Vec::new(),
        first_mismatch: None,
    };
    let source = std::fs::File::open(&file.0).unwrap();
    let ((count, mismatch), info) = fx
        .crypto
        .decrypt_stream(source, &fx.recipient, None, stage)
        .unwrap();
    assert_eq!(count, len);
    assert_eq!(mismatch, None);
    assert_eq!(info.kind, MessageKind::Plain);
    eprintln!(
        "{} MiB stream: encrypt {:.1?}, total {:.1?}",
        len >> 20,
        encrypted_at,
        started.elapsed()
    );
}

#[test]
fn a_4_mib_stream_round_trips_through_a_file() {
    stream_through_a_file(4 << 20, 3);
}

/// STYLE §6's 256 MiB case (about 2 s: the workspace builds sealkit-crypto optimised even in
/// the dev profile).
#[test]
fn a_256_mib_stream_round_trips_in_constant_memory() {
    const LEN: u64 = 256 << 20;
    stream_through_a_file(LEN, 8);
    // Neither the test nor the library may hold the data. Other tests of this binary may run
    // concurrently, but stay far below 256 MiB.
    if let Some(peak) = peak_rss_bytes() {
        eprintln!(
            "256 MiB stream: peak RSS of the test process {} MiB",
            peak >> 20
        );
        assert!(peak < LEN, "peak RSS {peak} bytes for a {LEN}-byte stream");
    }
}

// ---------------------------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------------------------

#[test]
fn every_truncation_fails_and_commits_nothing() {
    for &backend in Backend::ALL {
        every_truncation_fails_and_commits_nothing_on(backend);
    }
}

fn every_truncation_fails_and_commits_nothing_on(backend: Backend) {
    let fx = Fixture::on(4, backend);
    let mut rng = ChaCha20Rng::seed_from_u64(0x1000 + 4);
    let pt = pattern(200);
    let mut seen: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for kind in KINDS {
        for padding in [false, true] {
            let (msg, header_len) = fx.encrypt(&mut rng, kind, padding, &pt);
            for cut in 0..msg.len() {
                for feed in [msg.len().max(1), 7] {
                    let (result, committed) = fx.decrypt_fed(kind, &msg[..cut], feed);
                    let err = match result {
                        Ok(_) => panic!("{kind:?} padding={padding}: truncation at {cut} accepted"),
                        Err(e) => e,
                    };
                    assert!(
                        !committed,
                        "{kind:?} padding={padding} cut={cut}: committed"
                    );
                    let region = if cut < header_len {
                        "inside message info"
                    } else {
                        "after message info"
                    };
                    if cut < header_len {
                        assert!(
                            matches!(&err, Error::Format(f) if matches!(f.kind, FormatErrorKind::Truncated { .. })),
                            "{kind:?} padding={padding} cut={cut}: {err:?}"
                        );
                    } else {
                        assert!(
                            matches!(err, Error::DecryptionFailed),
                            "{kind:?} padding={padding} cut={cut}: {err:?}"
                        );
                    }
                    *seen
                        .entry((format!("{kind:?}"), region.to_owned(), variant(&err)))
                        .or_default() += 1;
                }
            }
        }
    }
    for ((kind, region, v), n) in &seen {
        eprintln!("truncation on {backend:?}: {kind:<16} {region:<20} {v} x{n}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bit flips
// ---------------------------------------------------------------------------------------------

/// The byte range of the `VIRGIL-DATA-SIGNER-ID` custom parameter (the whole
/// `SEQUENCE { UTF8String name, [2] OCTET STRING id }`) in a sign-then-encrypt message info.
fn signer_id_param(header: &[u8]) -> std::ops::Range<usize> {
    let name = b"VIRGIL-DATA-SIGNER-ID";
    let at = header
        .windows(name.len())
        .position(|w| w == name)
        .expect("sign-then-encrypt message info names its signer");
    // 30 LL 0c 15 <name> a2 LL 04 LL <id>
    assert_eq!(&header[at - 4..at], &[0x30, 0x23, 0x0c, 0x15]);
    let value = at + name.len();
    assert_eq!(header[value], 0xa2);
    value - name.len() - 4..value + 2 + header[value + 1] as usize
}

fn flip_regions(
    kind: Kind,
    msg: &[u8],
    h: usize,
    body: usize,
) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let mut regions = vec![
        ("message info", 0..h),
        ("body ciphertext", h..h + body),
        ("body tag", h + body..h + body + TAG),
    ];
    if kind == Kind::SignAndEncrypt {
        regions.push(("footer", h + body + TAG..msg.len() - TAG));
        regions.push(("footer tag", msg.len() - TAG..msg.len()));
    } else {
        assert_eq!(h + body + TAG, msg.len());
    }
    regions
}

/// Coarse error variant for the summary: the `FormatErrorKind` without its field.
fn coarse(e: &Error) -> String {
    let v = variant(e);
    match v.find(" {") {
        Some(i) if v.starts_with("Format(") => format!("{})", &v[..i]),
        _ => v.split('(').next().unwrap_or_default().to_owned(),
    }
}

#[test]
fn one_flipped_bit_in_any_region_fails_and_commits_nothing() {
    for &backend in Backend::ALL {
        one_flipped_bit_in_any_region_fails_and_commits_nothing_on(backend);
    }
}

fn one_flipped_bit_in_any_region_fails_and_commits_nothing_on(backend: Backend) {
    let fx = Fixture::on(5, backend);
    let mut rng = ChaCha20Rng::seed_from_u64(0x1000 + 5);
    let pt = pattern(200);
    let mut seen: BTreeMap<(String, &str, String), usize> = BTreeMap::new();
    let mut accepted: Vec<(Kind, bool, usize)> = Vec::new();
    for kind in KINDS {
        for padding in [false, true] {
            let (msg, h) = fx.encrypt(&mut rng, kind, padding, &pt);
            let body = if padding {
                padded_len(pt.len())
            } else {
                pt.len()
            };
            for (region, range) in flip_regions(kind, &msg, h, body) {
                for pos in range {
                    let mut bad = msg.clone();
                    bad[pos] ^= 1 << (pos % 8);
                    let (result, committed) = fx.decrypt_fed(kind, &bad, 4096);
                    let err = match result {
                        Ok((plain, _)) => {
                            // Only the unauthenticated signer-id parameter of sign-then-encrypt
                            // may change unnoticed (see the ignored test below), and then the
                            // plaintext must still be the original.
                            assert!(
                                kind == Kind::SignThenEncrypt
                                    && signer_id_param(&msg[..h]).contains(&pos)
                                    && plain == pt,
                                "{kind:?} padding={padding} {region}: flip at byte {pos} accepted"
                            );
                            assert!(committed);
                            accepted.push((kind, padding, pos));
                            continue;
                        }
                        Err(e) => e,
                    };
                    assert!(
                        !committed,
                        "{kind:?} padding={padding} {region} {pos}: committed"
                    );
                    if region != "message info" {
                        assert!(
                            matches!(err, Error::DecryptionFailed),
                            "{kind:?} padding={padding} {region} byte {pos}: {err:?}"
                        );
                    }
                    *seen
                        .entry((format!("{kind:?}"), region, coarse(&err)))
                        .or_default() += 1;
                }
            }
        }
    }
    for ((kind, region, v), n) in &seen {
        eprintln!("flip on {backend:?}: {kind:<16} {region:<16} {v} x{n}");
    }
    let mut by_message: BTreeMap<(Kind, bool), Vec<usize>> = BTreeMap::new();
    for (kind, padding, pos) in accepted {
        by_message.entry((kind, padding)).or_default().push(pos);
    }
    for ((kind, padding), positions) in &by_message {
        eprintln!(
            "flip {kind:?} padding={padding}: {} flips inside the signer-id parameter accepted, at {positions:?}",
            positions.len()
        );
    }
}

/// The sign-then-encrypt message info is not authenticated by the format (the signature covers
/// the plaintext only). Sealkit requires the signer id, when present, to name the verification
/// key, so a flip in the id value is detected. A flip in the parameter's *name* turns it into an
/// unknown parameter, which is ignored (as by the reference): the message still verifies with the
/// same plaintext and signer, which is the documented limit (`manual::differences`).
#[test]
fn sign_then_encrypt_signer_id_value_is_not_malleable() {
    let fx = Fixture::new(7);
    let mut rng = ChaCha20Rng::seed_from_u64(0x1000 + 7);
    let pt = pattern(200);
    let (msg, h) = fx.encrypt(&mut rng, Kind::SignThenEncrypt, false, &pt);
    let param = signer_id_param(&msg[..h]);
    let id_value = param.end - 8..param.end;
    for pos in param.clone() {
        let mut bad = msg.clone();
        bad[pos] ^= 0x01;
        let r = fx
            .crypto
            .decrypt_then_verify(&bad, &fx.recipient, &fx.signers);
        if id_value.contains(&pos) {
            assert!(
                r.is_err(),
                "flip in the signer id value at {pos} went undetected"
            );
        } else if let Ok(out) = r {
            assert_eq!(out, pt, "an accepted flip at {pos} changed the plaintext");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Use after an error
// ---------------------------------------------------------------------------------------------

/// Every further `update` fails, `finish` fails, and the stage was never committed.
fn assert_poisoned(mut dec: Decryptor<'_, FlagStage>, rest: &[u8], flag: &Rc<Cell<bool>>) {
    for piece in rest.chunks(1000) {
        let r = dec.update(piece);
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    }
    let r = dec.update(&[]);
    assert!(r.is_err(), "{r:?}");
    let r = dec.finish();
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    assert!(!flag.get());
}

#[test]
fn a_decryptor_fed_after_an_error_keeps_failing() {
    let fx = Fixture::new(6);
    let mut rng = ChaCha20Rng::seed_from_u64(0x1000 + 6);
    let pt = pattern(5000);
    let outsider = PrivateKey::generate(KeyType::Ed25519, &mut rng);
    for kind in KINDS {
        let (msg, h) = fx.encrypt(&mut rng, kind, true, &pt);

        // A malformed message info (wrong outer tag).
        let mut bad = msg.clone();
        bad[0] = 0x31;
        let (stage, flag) = FlagStage::new();
        let mut dec = Decryptor::new(&fx.recipient, fx.verify_with(kind), stage).unwrap();
        let r = dec.update(&bad[..10]);
        assert!(matches!(r, Err(Error::Format(_))), "{r:?}");
        // Even the valid message does not revive it.
        assert_poisoned(dec, &msg, &flag);

        // Not a recipient: the error comes as soon as the message info is complete.
        let (stage, flag) = FlagStage::new();
        let mut dec = Decryptor::new(&outsider, fx.verify_with(kind), stage).unwrap();
        let r = dec.update(&msg[..h + 1]);
        assert!(
            matches!(r, Err(Error::RecipientNotFound)),
            "{kind:?}: {r:?}"
        );
        assert_poisoned(dec, &msg[h + 1..], &flag);
    }

    // Sign-and-encrypt: more than a footer's worth of bytes after the body is an error in update.
    let (msg, _) = fx.encrypt(&mut rng, Kind::SignAndEncrypt, false, &pt);
    let (stage, flag) = FlagStage::new();
    let mut dec = Decryptor::new(&fx.recipient, Some(&fx.signers), stage).unwrap();
    dec.update(&msg).unwrap();
    let junk = vec![0u8; 64 << 10];
    let mut failed = None;
    for i in 0..64 {
        if let Err(e) = dec.update(&junk) {
            failed = Some((i, e));
            break;
        }
    }
    let (_, e) = failed.expect("an unbounded footer was accepted");
    assert!(
        matches!(&e, Error::Format(f) if matches!(f.kind, FormatErrorKind::TrailingData { .. })),
        "{e:?}"
    );
    assert_poisoned(dec, &junk[..10], &flag);

    // Plain: bytes after a complete message make it fail at `finish` (the tag moves).
    let (msg, _) = fx.encrypt(&mut rng, Kind::Plain, false, &pt);
    let mut longer = msg.clone();
    longer.push(0);
    let (r, committed) = fx.decrypt_fed(Kind::Plain, &longer, 4096);
    assert!(matches!(r, Err(Error::DecryptionFailed)), "{r:?}");
    assert!(!committed);
}
