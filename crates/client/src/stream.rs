//! Streaming and file variants of `auth_encrypt` / `auth_decrypt`: constant memory whatever the
//! size, on tokio's blocking pool, with a progress callback.
//!
//! Decryption writes into a [`Stage`] and commits it only after the GCM tag and the signature
//! have been verified (see `sealkit_crypto`'s envelope docs): nothing unverified is ever
//! released. [`FileStage`] is the usual stage: a temporary file beside the destination that
//! replaces it on commit and is deleted otherwise.

use crate::error::{Error, Result};
use crate::ethree::{blocking, EThree};
use crate::Card;
use rand_core::OsRng;
use sealkit_crypto::{Signing, Stage};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Counts the bytes read through it and reports the running total.
struct Progress<R, P> {
    inner: R,
    total: u64,
    report: P,
}

impl<R: Read, P: FnMut(u64)> Read for Progress<R, P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.total += n as u64;
            (self.report)(self.total);
        }
        Ok(n)
    }
}

/// A [`Stage`] backed by a temporary file (mode 0600) in the destination's directory. On
/// [`Stage::commit`] the file is flushed, synced and renamed to the destination (replacing it);
/// dropped uncommitted, it is deleted.
///
/// ```no_run
/// # async fn run(ethree: sealkit::EThree) -> Result<(), Box<dyn std::error::Error>> {
/// use sealkit::FileStage;
/// use std::fs::File;
///
/// let alice = ethree.find_user("alice").await?;
/// let input = File::open("photo.jpg.enc")?;
/// // photo.jpg appears only if the whole message is authentic:
/// let path = ethree
///     .auth_decrypt_stream(input, FileStage::new("photo.jpg")?, &alice, None, |_| ())
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FileStage {
    target: PathBuf,
    file: BufWriter<tempfile::NamedTempFile>,
}

impl FileStage {
    /// A stage whose committed output becomes `target`.
    ///
    /// ```
    /// use sealkit::{FileStage, Stage};
    /// use std::io::Write;
    ///
    /// // auth_decrypt_stream normally writes and commits; by hand:
    /// let dir = tempfile::tempdir()?;
    /// let target = dir.path().join("report.pdf");
    /// let mut stage = FileStage::new(target.clone())?;
    /// stage.write_all(b"verified bytes")?;
    /// assert!(!target.exists()); // nothing visible before the commit
    /// assert_eq!(stage.commit()?, target);
    /// assert_eq!(std::fs::read(&target)?, b"verified bytes");
    ///
    /// // Dropped without a commit (a failed decryption): no file, nothing left behind.
    /// let mut stage = FileStage::new(dir.path().join("forged.pdf"))?;
    /// stage.write_all(b"unverified bytes")?;
    /// drop(stage);
    /// assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(target: impl Into<PathBuf>) -> Result<Self> {
        let target = target.into();
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".sealkit-")
            .tempfile_in(&dir)
            .map_err(|e| Error::storage(format!("cannot create a file in {}", dir.display()), e))?;
        Ok(Self {
            target,
            file: BufWriter::new(tmp),
        })
    }
}

impl Write for FileStage {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Stage for FileStage {
    /// The destination path.
    type Output = PathBuf;

    fn commit(self) -> io::Result<PathBuf> {
        let tmp = self.file.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.target).map_err(|e| e.error)?;
        Ok(self.target)
    }
}

impl EThree {
    /// [`EThree::auth_encrypt`] for a stream: reads exactly `input_len` bytes from `input` and
    /// writes the message to `output`, in 64 KiB pieces on the blocking thread pool.
    /// `progress` is called with the number of plaintext bytes read so far. Returns `output`.
    ///
    /// The length must be known because the sign-and-encrypt format records it before the body
    /// (spec §6); a reader that yields a different number of bytes is an error. The output is
    /// byte-compatible with e3kit's `authEncrypt` (and virgil-crypto's
    /// `createStreamSignAndEncrypt` with padding).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, upload: std::net::TcpStream)
    /// #     -> Result<(), Box<dyn std::error::Error>> {
    /// use std::fs::File;
    ///
    /// let bob = ethree.find_user("bob").await?;
    /// let video = File::open("talk.mp4")?;
    /// let len = video.metadata()?.len();
    /// // Straight into a network connection, in constant memory:
    /// let upload = ethree
    ///     .auth_encrypt_stream(video, len, upload, &[&bob], move |done| {
    ///         eprint!("\r{}%", done * 100 / len.max(1))
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn auth_encrypt_stream<R, W, P>(
        &self,
        input: R,
        input_len: u64,
        output: W,
        recipients: &[&Card],
        progress: P,
    ) -> Result<W>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
        P: FnMut(u64) + Send + 'static,
    {
        let (key, keys) = self.sealing_keys(recipients).await?;
        let crypto = self.inner.crypto;
        blocking(move || {
            let reader = Progress {
                inner: input,
                total: 0,
                report: progress,
            };
            let mut output = output;
            let signing = Signing::SignAndEncrypt {
                signer: &key,
                plaintext_len: input_len,
            };
            crypto.encrypt_stream(&mut OsRng, reader, &mut output, &keys, signing, true)?;
            Ok(output)
        })
        .await
    }

    /// [`EThree::auth_decrypt`] for a stream: decrypts everything `input` yields into `stage`,
    /// which is committed only once the message is authenticated and `sender`'s signature
    /// (chosen with `encrypted_at` as in [`EThree::auth_decrypt`]) verified. `progress` is
    /// called with the number of ciphertext bytes read so far. Returns what the stage's commit
    /// returns.
    ///
    /// Unlike the one-shot [`EThree::auth_decrypt`], a signed legacy message
    /// ([`EThree::encrypt`]) is accepted too: its signature is verified the same way. Unsigned
    /// messages are rejected.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, socket: std::net::TcpStream) -> sealkit::Result<()> {
    /// let alice = ethree.find_user("alice").await?;
    /// // Into memory (a Vec<u8> is a stage), or into a file with FileStage::new(path):
    /// let plaintext: Vec<u8> = ethree
    ///     .auth_decrypt_stream(socket, Vec::new(), &alice, None, |_| ())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn auth_decrypt_stream<R, S, P>(
        &self,
        input: R,
        stage: S,
        sender: &Card,
        encrypted_at: Option<SystemTime>,
        progress: P,
    ) -> Result<S::Output>
    where
        R: Read + Send + 'static,
        S: Stage + Send + 'static,
        S::Output: Send + 'static,
        P: FnMut(u64) + Send + 'static,
    {
        let (key, signer) = self.opening_keys(sender, encrypted_at).await?;
        let crypto = self.inner.crypto;
        blocking(move || {
            let reader = Progress {
                inner: input,
                total: 0,
                report: progress,
            };
            let (output, _) =
                crypto.decrypt_stream(reader, &key, Some(std::slice::from_ref(&signer)), stage)?;
            Ok(output)
        })
        .await
    }

    /// Encrypts the file `input` into the file `output` with [`EThree::auth_encrypt_stream`].
    /// `output` appears (or is replaced) only when the whole message is written.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// use std::path::Path;
    /// let bob = ethree.find_user("bob").await?;
    /// ethree
    ///     .auth_encrypt_file(Path::new("report.pdf"), Path::new("report.pdf.enc"), &[&bob], |n| {
    ///         eprint!("\r{n} bytes")
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn auth_encrypt_file<P>(
        &self,
        input: &Path,
        output: &Path,
        recipients: &[&Card],
        progress: P,
    ) -> Result<()>
    where
        P: FnMut(u64) + Send + 'static,
    {
        let (src, len) = {
            let input = input.to_owned();
            blocking(move || {
                let file = std::fs::File::open(&input)
                    .map_err(|e| Error::storage(format!("cannot read {}", input.display()), e))?;
                let len = file
                    .metadata()
                    .map_err(|e| Error::storage(format!("cannot read {}", input.display()), e))?
                    .len();
                Ok((file, len))
            })
            .await?
        };
        let dst = {
            let output = output.to_owned();
            blocking(move || FileStage::new(output)).await?
        };
        let dst = self
            .auth_encrypt_stream(io::BufReader::new(src), len, dst, recipients, progress)
            .await?;
        let output = output.to_owned();
        blocking(move || {
            dst.commit()
                .map_err(|e| Error::storage(format!("cannot write {}", output.display()), e))
        })
        .await?;
        Ok(())
    }

    /// Decrypts the file `input` into the file `output` with [`EThree::auth_decrypt_stream`]
    /// through a [`FileStage`]: `output` appears (or is replaced) only after verification, and a
    /// failed decryption leaves nothing behind.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, sent_at: std::time::SystemTime)
    /// #     -> sealkit::Result<()> {
    /// use std::path::Path;
    ///
    /// let alice = ethree.find_user("alice").await?;
    /// let (input, output) = (Path::new("report.pdf.enc"), Path::new("report.pdf"));
    /// match ethree.auth_decrypt_file(input, output, &alice, Some(sent_at), |_| ()).await {
    ///     Ok(()) => println!("report.pdf is from alice"),
    ///     // Altered, or not from Alice: report.pdf was neither created nor replaced.
    ///     Err(sealkit::Error::Crypto(e)) => eprintln!("rejected: {e}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn auth_decrypt_file<P>(
        &self,
        input: &Path,
        output: &Path,
        sender: &Card,
        encrypted_at: Option<SystemTime>,
        progress: P,
    ) -> Result<()>
    where
        P: FnMut(u64) + Send + 'static,
    {
        let (src, stage) = {
            let input = input.to_owned();
            let output = output.to_owned();
            blocking(move || {
                let file = std::fs::File::open(&input)
                    .map_err(|e| Error::storage(format!("cannot read {}", input.display()), e))?;
                Ok((file, FileStage::new(output)?))
            })
            .await?
        };
        self.auth_decrypt_stream(
            io::BufReader::new(src),
            stage,
            sender,
            encrypted_at,
            progress,
        )
        .await?;
        Ok(())
    }
}
