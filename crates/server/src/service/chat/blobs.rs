//! Chat attachments (`sealkit_proto::chat::paths::blobs`): encrypted files as opaque blobs.
//!
//! An upload is read as it arrives and written to the store in chunks of [`BLOB_CHUNK`] bytes,
//! so the server holds at most one chunk of it in memory; a download reads one chunk at a time.
//! The bytes go through the store (rows of chunks), not into files beside the database: every
//! replica of a PostgreSQL deployment must serve every blob, and one path for both backends
//! means one set of rules (limit, quota, deletion) checked by one conformance suite. The cost
//! on SQLite is that attachments grow the database file (and its WAL) instead of a directory.
//!
//! Who may do what: members of the channel upload; a blob no message names yet is readable by
//! its uploader only, one named by a message by every member (the ciphertext is encrypted to
//! the members anyway; the check keeps outsiders from even counting bytes). Outsiders get the
//! same 404 as for a channel that does not exist.

use super::rules::{hidden_from_outsider, invalid};
use super::{parse_channel_id, readable, store_error};
use crate::service::auth::Caller;
use crate::service::error::ServiceError;
use crate::store::{BlobLimits, BlobRecord, Conflict, NewBlob, Store, StoreError};
use futures_util::{Stream, StreamExt};
use rand_core::{OsRng, RngCore};
use sealkit_proto::chat::{validate_blob_id, BlobUploaded};
use std::sync::Arc;

/// Bytes per stored chunk: large enough that a 100 MiB upload is a hundred transactions, small
/// enough that the memory of concurrent uploads stays modest.
pub const BLOB_CHUNK: usize = 1 << 20;

/// A refusal of the store while writing a blob, in the service's words.
fn blob_store_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict(Conflict::BlobTooLarge { limit }) => {
            ServiceError::BlobTooLarge { limit }
        }
        StoreError::Conflict(Conflict::BlobQuotaExceeded { quota }) => {
            ServiceError::BlobQuotaExceeded { quota }
        }
        StoreError::NotFound | StoreError::Forbidden(_) => hidden_from_outsider(),
        other => store_error(other),
    }
}

/// Stores the body of an upload to `channel_id` for the caller (a member) and answers its id
/// and size. `declared_len` (the `Content-Length`, if any) lets an oversized upload be refused
/// before a byte is stored. A failure part way (limit, quota, a broken connection) deletes what
/// was stored; if the request is abandoned outright, garbage collection does.
pub async fn upload<S, B, E>(
    store: &dyn Store,
    caller: &Caller,
    channel_id: &str,
    declared_len: Option<u64>,
    body: S,
    limits: BlobLimits,
    now_ms: i64,
) -> Result<BlobUploaded, ServiceError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let channel_id = parse_channel_id(channel_id)?;
    if declared_len.is_some_and(|len| len > limits.max_blob_bytes) {
        return Err(ServiceError::BlobTooLarge {
            limit: limits.max_blob_bytes,
        });
    }
    let mut random = [0u8; 16];
    OsRng.fill_bytes(&mut random);
    let id = hex::encode(random);
    let app_id = caller.app_id.to_string();
    store
        .chat_blob_create(NewBlob {
            app_id: app_id.clone(),
            id: id.clone(),
            channel_id,
            uploader: caller.identity.clone(),
            created_at_ms: now_ms,
        })
        .await
        .map_err(blob_store_error)?;
    let filled = fill(store, (&app_id, &id), body, limits).await;
    let finished = match filled {
        Ok(()) => store
            .chat_blob_finish(&app_id, &id)
            .await
            .map_err(blob_store_error),
        Err(e) => Err(e),
    };
    match finished {
        Ok(record) => Ok(BlobUploaded {
            id,
            size: record.size.unsigned_abs(),
        }),
        Err(e) => {
            if let Err(cleanup) = store.chat_blob_delete(&app_id, &id).await {
                // Garbage collection removes it later.
                tracing::warn!(error = %cleanup, "deleting a failed upload");
            }
            Err(e)
        }
    }
}

/// Copies the body into the blob, [`BLOB_CHUNK`] bytes per store call. Receiving and storing
/// overlap: while the store writes one chunk, the next is read from the connection (at most
/// [`CHUNKS_IN_FLIGHT`] chunks wait for the store), so neither the network nor the database
/// idles while the other works.
async fn fill<S, B, E>(
    store: &dyn Store,
    (app_id, blob_id): (&str, &str),
    body: S,
    limits: BlobLimits,
) -> Result<(), ServiceError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let (chunks, mut to_store) = tokio::sync::mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let receive = gather_chunks(body, chunks);
    let write = async {
        while let Some(chunk) = to_store.recv().await {
            store
                .chat_blob_append(app_id, blob_id, &chunk, limits)
                .await
                .map_err(blob_store_error)?;
        }
        Ok::<(), ServiceError>(())
    };
    let (received, written) = tokio::join!(receive, write);
    // A refusal of the store (limit, quota) says more than the stop of the receiving it caused.
    written?;
    received
}

/// Chunks waiting for the store during an upload, besides the one being written.
const CHUNKS_IN_FLIGHT: usize = 1;

/// Reads the body into chunks of [`BLOB_CHUNK`] bytes (the last one shorter) and hands them
/// on; stops early, without error, when the receiver is gone (the store refused a chunk).
async fn gather_chunks<S, B, E>(
    mut body: S,
    chunks: tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<(), ServiceError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let mut chunk = Vec::with_capacity(BLOB_CHUNK);
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| invalid(format!("the upload broke off: {e}")))?;
        let mut rest = piece.as_ref();
        while !rest.is_empty() {
            let room = BLOB_CHUNK.saturating_sub(chunk.len()).min(rest.len());
            let (now, later) = rest.split_at_checked(room).unwrap_or((rest, &[]));
            chunk.extend_from_slice(now);
            rest = later;
            if chunk.len() >= BLOB_CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(BLOB_CHUNK));
                if chunks.send(full).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    if !chunk.is_empty() {
        // A closed receiver means the store refused an earlier chunk: its error is the answer.
        let _ = chunks.send(chunk).await;
    }
    Ok(())
}

/// The blob `blob_id` of `channel_id` if the caller may read it: a member, and the blob is
/// complete and either named by a message or the caller's own upload. Anything else is 404
/// (the channel's for outsiders, the blob's for members).
pub async fn readable_blob(
    store: &dyn Store,
    caller: &Caller,
    channel_id: &str,
    blob_id: &str,
) -> Result<BlobRecord, ServiceError> {
    let channel_id = parse_channel_id(channel_id)?;
    validate_blob_id(blob_id).map_err(invalid)?;
    readable(store, &caller.app_id, &caller.identity, &channel_id).await?;
    let record = store
        .chat_blob(&caller.app_id, blob_id)
        .await
        .map_err(store_error)?
        .ok_or(ServiceError::BlobNotFound)?;
    let visible = record.channel_id == channel_id
        && record.complete
        && (record.message_seq.is_some() || record.uploader == caller.identity);
    if !visible {
        return Err(ServiceError::BlobNotFound);
    }
    Ok(record)
}

/// The blob's chunks in order. The next chunk is read from the store while the current one is
/// on the wire, so at most two chunks of a download are in memory. A chunk that vanished (the
/// blob was deleted during the download) ends the stream with an error, so the client sees a
/// truncated transfer, never a silently shorter file.
pub fn chunks(
    store: Arc<dyn Store>,
    app_id: String,
    record: BlobRecord,
) -> impl Stream<Item = Result<Vec<u8>, ServiceError>> + Send + 'static {
    let blob_id = record.id;
    futures_util::stream::iter(0..record.chunks)
        .map(move |index| {
            let (store, app_id, blob_id) = (store.clone(), app_id.clone(), blob_id.clone());
            async move {
                match store.chat_blob_chunk(&app_id, &blob_id, index).await {
                    Ok(Some(data)) => Ok(data),
                    Ok(None) => Err(ServiceError::internal(format!(
                        "chunk {index} of blob {blob_id} vanished during a download"
                    ))),
                    Err(e) => Err(ServiceError::internal(e)),
                }
            }
        })
        .buffered(2)
        // After an error the rest is not read: the transfer is cut there.
        .scan(false, |failed, chunk| {
            let stop = *failed;
            *failed = chunk.is_err();
            std::future::ready((!stop).then_some(chunk))
        })
}

/// Deletes, in every application, the blobs no message named within `grace_ms` of their
/// upload's start; how many.
pub async fn collect_garbage(
    store: &dyn Store,
    now_ms: i64,
    grace_ms: i64,
) -> Result<u64, ServiceError> {
    store
        .chat_blob_gc(now_ms.saturating_sub(grace_ms))
        .await
        .map_err(ServiceError::internal)
}
