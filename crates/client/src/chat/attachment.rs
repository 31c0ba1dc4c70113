//! Encrypted attachments: a file is stream-encrypted on the device ([`EThree::auth_encrypt`]'s
//! format, signed by the sender and encrypted to the channel's members), uploaded as an opaque
//! blob while it is being encrypted, and then announced by an ordinary chat message whose
//! encrypted body names the blob, the file's name, size and SHA-256.
//!
//! Downloading streams the blob into the decryptor, which writes into a temporary file beside
//! the destination; the destination appears only after the tag, the sender's signature, the
//! size and the SHA-256 the message names all check out ([`Chat::download`]). Memory stays
//! constant whatever the file's size: a few pieces of [`PIPE_PIECE`] bytes are in flight
//! between the network and the cipher.
//!
//! The SHA-256 binds the file to its message: the signature alone proves that the sender made
//! the blob, not that it is the blob this message meant (a server could serve another file the
//! same sender sent to the same channel).
//!
//! [`EThree::auth_encrypt`]: crate::EThree::auth_encrypt

use super::{chat_error, check_id, millis_to_time, Chat, HistoryCursor, ReceivedMessage};
use crate::card::Card;
use crate::error::{Error, Result};
use crate::ethree::blocking;
use crate::stream::FileStage;
use bytes::Bytes;
use rand_core::OsRng;
use sealkit_crypto::{Signing, Stage};
use sealkit_proto::chat::{codes, validate_blob_id};
use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The start of a message body that carries an attachment. Typed text cannot start with NUL,
/// so no text message is mistaken for one.
const ATTACHMENT_TAG: &[u8] = b"\0sealkit-file/1\n";
/// Bytes per piece handed between the cipher (on a blocking thread) and the network.
pub(crate) const PIPE_PIECE: usize = 256 << 10;
/// Pieces queued between the two; memory in flight is at most this many pieces.
const PIPE_DEPTH: usize = 4;
/// Longest file name, in bytes (what common file systems allow).
const MAX_NAME: usize = 255;

/// A file sent in a chat message: what the message's encrypted body says about it.
///
/// ```
/// use sealkit::chat::Attachment;
///
/// // A text message is not an attachment:
/// assert_eq!(Attachment::from_body(b"hello"), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attachment {
    /// The blob holding the encrypted file on the server.
    pub blob: String,
    /// The file's name as the sender gave it (a name, never a path).
    pub name: String,
    /// The file's size in bytes (plaintext).
    pub size: u64,
    /// SHA-256 of the file's bytes.
    pub sha256: [u8; 32],
}

/// The JSON after [`ATTACHMENT_TAG`].
#[derive(serde::Serialize, serde::Deserialize)]
struct AttachmentBody {
    blob: String,
    name: String,
    size: u64,
    sha256: String,
}

impl Attachment {
    /// The attachment a verified message body describes, if it describes one (a body made by
    /// [`Chat::send_file`]); `None` for anything else, names with path separators or control
    /// characters included.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        let json = body.strip_prefix(ATTACHMENT_TAG)?;
        let wire: AttachmentBody = serde_json::from_slice(json).ok()?;
        validate_blob_id(&wire.blob).ok()?;
        check_name(&wire.name).ok()?;
        let sha256 = hex::decode(&wire.sha256).ok()?.try_into().ok()?;
        Some(Self {
            blob: wire.blob,
            name: wire.name,
            size: wire.size,
            sha256,
        })
    }

    /// The message body announcing it.
    pub(super) fn to_body(&self) -> Result<Vec<u8>> {
        let wire = AttachmentBody {
            blob: self.blob.clone(),
            name: self.name.clone(),
            size: self.size,
            sha256: hex::encode(self.sha256),
        };
        let json = serde_json::to_vec(&wire)
            .map_err(|e| Error::InvalidInput(format!("cannot encode the attachment: {e}")))?;
        Ok([ATTACHMENT_TAG, &json].concat())
    }
}

/// A file name fit to show and to suggest as a name: 1 to [`MAX_NAME`] bytes, no path
/// separator, no control character, not `.` or `..`.
fn check_name(name: &str) -> std::result::Result<(), String> {
    let bad_char = |c: char| c == '/' || c == '\\' || c.is_control();
    if name.is_empty() || name.len() > MAX_NAME || name == "." || name == ".." {
        return Err(format!("file name {name:?} must be 1 to {MAX_NAME} bytes"));
    }
    if name.chars().any(bad_char) {
        return Err(format!(
            "file name {name:?} must not hold path separators or control characters"
        ));
    }
    Ok(())
}

impl ReceivedMessage {
    /// The file a verified message announces ([`Chat::send_file`]), if it is such a message.
    ///
    /// ```
    /// use sealkit::chat::{Message, ReceivedMessage, Verification};
    ///
    /// let message = Message { seq: 7, channel: "team".into(), sender: "bob".into(),
    ///     client_id: "9f2c".into(), sent_at: 1_700_000_000_000, member_version: 1,
    ///     ciphertext: String::new(), kt_head: None, edited_at: None, deleted: None };
    /// let text = ReceivedMessage {
    ///     message,
    ///     body: Some(b"lunch at 1?".to_vec()),
    ///     status: Verification::Verified,
    /// };
    /// assert_eq!(text.attachment(), None);
    /// ```
    pub fn attachment(&self) -> Option<Attachment> {
        self.body.as_deref().and_then(Attachment::from_body)
    }
}

/// Plaintext read from the file, hashed and counted on the way to the cipher.
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
    len: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or_default();
        self.hash.update(read);
        self.len += n as u64;
        Ok(n)
    }
}

/// Ciphertext from the cipher (on a blocking thread) to the upload, in pieces of
/// [`PIPE_PIECE`] bytes; the send blocks while [`PIPE_DEPTH`] pieces wait.
struct PipeWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    piece: Vec<u8>,
}

impl PipeWriter {
    fn send_piece(&mut self) -> io::Result<()> {
        let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(PIPE_PIECE));
        self.tx
            .blocking_send(Ok(Bytes::from(piece)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Makes the upload fail instead of ending as if complete.
    fn fail(&self, why: &str) {
        let _ = self.tx.blocking_send(Err(io::Error::other(why.to_owned())));
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.piece.extend_from_slice(data);
        if self.piece.len() >= PIPE_PIECE {
            self.send_piece()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        self.send_piece()
    }
}

/// The upload's request body: the pieces [`PipeWriter`] sends, as they come (chunked transfer
/// encoding: the padded ciphertext's length is not known before the end).
struct PipeBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl http_body::Body for PipeBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|piece| piece.map(|piece| piece.map(http_body::Frame::data)))
    }
}

/// The download's body as a [`Read`] for the decryptor (on a blocking thread).
struct PipeReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(piece) => self.current = piece?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        let piece = self.current.split_to(n);
        if let Some(target) = buf.get_mut(..n) {
            target.copy_from_slice(&piece);
        }
        Ok(n)
    }
}

/// A [`FileStage`] that also hashes and counts what is written; its commit hands the stage
/// back uncommitted, with the digest and length, so the caller renames the file only once
/// they match what the message names.
struct CheckedStage {
    file: FileStage,
    hash: Sha256,
    len: u64,
}

impl Write for CheckedStage {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.file.write(data)?;
        self.hash.update(data.get(..n).unwrap_or_default());
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Stage for CheckedStage {
    type Output = (FileStage, [u8; 32], u64);

    fn commit(self) -> io::Result<Self::Output> {
        Ok((self.file, self.hash.finalize().into(), self.len))
    }
}

/// A file about to be sent: opened, measured and named.
pub(super) struct FileToSend {
    path: PathBuf,
    name: String,
    size: u64,
}

impl FileToSend {
    /// Checks that `path` is a readable file with a usable name.
    pub(super) async fn new(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::InvalidInput(format!("{} has no UTF-8 file name", path.display()))
            })?
            .to_owned();
        check_name(&name).map_err(Error::InvalidInput)?;
        let owned = path.to_owned();
        let size = blocking(move || {
            let meta = std::fs::metadata(&owned)
                .map_err(|e| Error::storage(format!("cannot read {}", owned.display()), e))?;
            if !meta.is_file() {
                return Err(Error::InvalidInput(format!(
                    "{} is not a file",
                    owned.display()
                )));
            }
            Ok(meta.len())
        })
        .await?;
        Ok(Self {
            path: path.to_owned(),
            name,
            size,
        })
    }
}

impl Chat {
    /// Encrypts the file for `recipients` (and the user) while uploading it to the channel;
    /// the attachment to announce. The file must keep its size meanwhile.
    pub(super) async fn upload_file(
        &self,
        channel: &str,
        file: &FileToSend,
        recipients: &[&Card],
    ) -> Result<Attachment> {
        let (key, keys) = self.ethree.sealing_keys(recipients).await?;
        let crypto = self.ethree.inner.crypto;
        let (path, size) = (file.path.clone(), file.size);
        let (tx, rx) = mpsc::channel(PIPE_DEPTH);
        let encrypt = blocking(move || {
            let source = std::fs::File::open(&path)
                .map_err(|e| Error::storage(format!("cannot read {}", path.display()), e))?;
            let mut reader = HashingReader {
                inner: source,
                hash: Sha256::new(),
                len: 0,
            };
            let mut writer = PipeWriter {
                tx,
                piece: Vec::with_capacity(PIPE_PIECE),
            };
            let signing = Signing::SignAndEncrypt {
                signer: &key,
                plaintext_len: size,
            };
            match crypto.encrypt_stream(&mut OsRng, &mut reader, &mut writer, &keys, signing, true)
            {
                Ok(()) => {
                    let digest: [u8; 32] = reader.hash.finalize().into();
                    Ok((digest, reader.len))
                }
                Err(e) => {
                    writer.fail("encryption failed");
                    Err(Error::from(e))
                }
            }
        });
        let body = reqwest::Body::wrap(PipeBody { rx });
        let upload = self.api().chat_blob_upload(channel, body, size);
        let (encrypted, uploaded) = tokio::join!(encrypt, upload);
        // The server's refusal says more than the broken pipe it caused; an encryption failure
        // more than the aborted upload it caused.
        let uploaded = match (encrypted, uploaded) {
            (_, Err(e @ Error::Api { .. })) => return Err(chat_error(e, channel)),
            (Err(e), _) => return Err(e),
            (Ok(_), Err(e)) => return Err(e),
            (Ok((sha256, len)), Ok(uploaded)) => {
                if len != size {
                    return Err(Error::InvalidInput(format!(
                        "{} changed while it was being sent",
                        file.path.display()
                    )));
                }
                (uploaded, sha256)
            }
        };
        let (uploaded, sha256) = uploaded;
        validate_blob_id(&uploaded.id)
            .map_err(|e| Error::InvalidResponse(format!("blob upload: {e}")))?;
        Ok(Attachment {
            blob: uploaded.id,
            name: file.name.clone(),
            size,
            sha256,
        })
    }

    /// Sends the file at `path` to the channel: encrypts it on the device for the members
    /// (constant memory, while uploading it), then posts a message naming it, whose encrypted
    /// body carries the file's name, size and SHA-256. Returns the message and the
    /// attachment. Members see it as a message whose [`ReceivedMessage::attachment`] is set,
    /// and fetch the file with [`Chat::download`].
    ///
    /// As with [`Chat::send`], the file is encrypted (and uploaded) again when the members
    /// change meanwhile; an upload no message names is deleted by the server later.
    ///
    /// Errors: those of [`Chat::send`], [`Error::AttachmentTooLarge`],
    /// [`Error::AttachmentQuotaExceeded`], [`Error::InvalidInput`] (not a file, no usable
    /// name, changed while sent), [`Error::Storage`] (unreadable).
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// let (message, file) = chat.send_file("team", std::path::Path::new("report.pdf")).await?;
    /// println!("sent {} ({} bytes) as #{}", file.name, file.size, message.seq);
    /// # Ok(()) }
    /// ```
    pub async fn send_file(
        &self,
        channel: &str,
        path: &Path,
    ) -> Result<(super::Message, Attachment)> {
        check_id(channel)?;
        let file = FileToSend::new(path).await?;
        let (message, attachment) = self
            .send_payload(channel, super::Payload::File(&file))
            .await?;
        match attachment {
            Some(attachment) => Ok((message, attachment)),
            None => Err(Error::InvalidResponse(
                "the file was sent without its attachment".into(),
            )),
        }
    }

    /// Downloads the file of message `seq` of `channel` into `out`: the message is read and
    /// verified first, then the blob is streamed through the decryptor into a temporary file
    /// beside `out`, which becomes `out` only when the blob authenticated, carries the
    /// sender's signature and is exactly the file the message names (size and SHA-256).
    /// Otherwise `out` is neither created nor replaced and nothing is left behind.
    ///
    /// Errors: [`Error::AttachmentNotFound`] (no such message, no file in it, or the file was
    /// deleted), [`Error::AttachmentUnverified`], [`Error::Crypto`] (the blob was altered or is
    /// not the sender's), [`Error::AttachmentAltered`], [`Error::ChannelNotFound`],
    /// [`Error::Storage`], [`Error::Network`].
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// let file = chat.download("team", 42, std::path::Path::new("report.pdf")).await?;
    /// println!("{} ({} bytes) verified", file.name, file.size);
    /// # Ok(()) }
    /// ```
    pub async fn download(&self, channel: &str, seq: i64, out: &Path) -> Result<Attachment> {
        check_id(channel)?;
        let not_found = || Error::AttachmentNotFound {
            channel: channel.to_owned(),
            seq,
        };
        if seq < 1 {
            return Err(not_found());
        }
        let page = self
            .history(channel, HistoryCursor::After(seq - 1), 1)
            .await?;
        let received = page
            .messages
            .into_iter()
            .find(|m| m.message.seq == seq)
            .ok_or_else(not_found)?;
        self.download_attachment(&received, out).await
    }

    /// [`Chat::download`] for a message already received (from [`Chat::history`] or the
    /// stream).
    pub async fn download_attachment(
        &self,
        received: &ReceivedMessage,
        out: &Path,
    ) -> Result<Attachment> {
        let channel = received.message.channel.as_str();
        let seq = received.message.seq;
        if !received.is_verified() {
            return Err(Error::AttachmentUnverified {
                channel: channel.to_owned(),
                seq,
                status: received.status,
            });
        }
        let attachment = received
            .attachment()
            .ok_or_else(|| Error::AttachmentNotFound {
                channel: channel.to_owned(),
                seq,
            })?;
        let sender = self.sender_card(&received.message.sender, false).await?;
        let response = match self
            .api()
            .chat_blob_download(channel, &attachment.blob, attachment.size)
            .await
        {
            Ok(response) => response,
            Err(Error::Api {
                code: codes::BLOB_NOT_FOUND,
                ..
            }) => {
                return Err(Error::AttachmentNotFound {
                    channel: channel.to_owned(),
                    seq,
                })
            }
            Err(e) => return Err(chat_error(e, channel)),
        };
        let stage = {
            let out = out.to_owned();
            blocking(move || FileStage::new(out)).await?
        };
        let stage = CheckedStage {
            file: stage,
            hash: Sha256::new(),
            len: 0,
        };
        let (tx, rx) = mpsc::channel(PIPE_DEPTH);
        // The network's pieces are small (a few KiB); handing each to the decrypting thread
        // would cost a thread switch per piece, so they are gathered into PIPE_PIECE first.
        let feed = async move {
            let mut response = response;
            let mut gathered = Vec::with_capacity(PIPE_PIECE);
            loop {
                let piece = match response.chunk().await {
                    Ok(Some(piece)) => {
                        gathered.extend_from_slice(&piece);
                        if gathered.len() < PIPE_PIECE {
                            continue;
                        }
                        Ok(Bytes::from(std::mem::replace(
                            &mut gathered,
                            Vec::with_capacity(PIPE_PIECE),
                        )))
                    }
                    Ok(None) => {
                        if !gathered.is_empty() {
                            let _ = tx.send(Ok(Bytes::from(gathered))).await;
                        }
                        return;
                    }
                    Err(e) => Err(io::Error::other(e.to_string())),
                };
                let failed = piece.is_err();
                if tx.send(piece).await.is_err() || failed {
                    return;
                }
            }
        };
        let reader = PipeReader {
            rx,
            current: Bytes::new(),
        };
        let sent_at = millis_to_time(received.message.sent_at);
        let decrypt =
            self.ethree
                .auth_decrypt_stream(reader, stage, &sender, Some(sent_at), |_| ());
        let ((), decrypted) = tokio::join!(feed, decrypt);
        let (file, sha256, len) = decrypted?;
        if len != attachment.size || sha256 != attachment.sha256 {
            // Dropping the stage deletes the temporary file.
            drop(file);
            return Err(Error::AttachmentAltered {
                channel: channel.to_owned(),
                seq,
            });
        }
        let out = out.to_owned();
        blocking(move || {
            file.commit()
                .map_err(|e| Error::storage(format!("cannot write {}", out.display()), e))
        })
        .await?;
        Ok(attachment)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sample() -> Attachment {
        Attachment {
            blob: "0123456789abcdef0123456789abcdef".into(),
            name: "report é.pdf".into(),
            size: 1234,
            sha256: [7; 32],
        }
    }

    #[test]
    fn body_round_trip() {
        let attachment = sample();
        let body = attachment.to_body().unwrap();
        assert!(body.starts_with(ATTACHMENT_TAG));
        assert_eq!(Attachment::from_body(&body), Some(attachment));
    }

    #[test]
    fn bodies_that_are_not_attachments() {
        assert_eq!(Attachment::from_body(b""), None);
        assert_eq!(Attachment::from_body(b"{\"blob\":\"x\"}"), None);
        let body = sample().to_body().unwrap();
        // Without the tag, as text someone typed: not an attachment.
        assert_eq!(Attachment::from_body(&body[1..]), None);
        for name in [
            "../../etc/passwd",
            "a/b",
            "a\\b",
            "",
            "..",
            "a\nb",
            &"x".repeat(256),
        ] {
            let evil = Attachment {
                name: name.to_owned(),
                ..sample()
            };
            assert_eq!(
                Attachment::from_body(&evil.to_body().unwrap()),
                None,
                "{name:?}"
            );
        }
        let bad_blob = Attachment {
            blob: "../x".into(),
            ..sample()
        };
        assert_eq!(Attachment::from_body(&bad_blob.to_body().unwrap()), None);
        let mut short_hash = sample().to_body().unwrap();
        let text = String::from_utf8(short_hash.split_off(ATTACHMENT_TAG.len())).unwrap();
        let text = text.replace(&"07".repeat(32), &"07".repeat(31));
        assert_eq!(
            Attachment::from_body(&[ATTACHMENT_TAG, text.as_bytes()].concat()),
            None
        );
    }

    #[test]
    fn pipe_reader_reassembles_pieces() {
        let (tx, rx) = mpsc::channel(8);
        for piece in [&b"hel"[..], b"", b"lo world"] {
            tx.try_send(Ok(Bytes::copy_from_slice(piece))).unwrap();
        }
        drop(tx);
        let mut reader = PipeReader {
            rx,
            current: Bytes::new(),
        };
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello world");
    }

    #[test]
    fn pipe_reader_passes_errors_on() {
        let (tx, rx) = mpsc::channel(8);
        tx.try_send(Ok(Bytes::from_static(b"part"))).unwrap();
        tx.try_send(Err(io::Error::other("connection reset")))
            .unwrap();
        let mut reader = PipeReader {
            rx,
            current: Bytes::new(),
        };
        let mut out = Vec::new();
        assert!(reader.read_to_end(&mut out).is_err());
    }
}
