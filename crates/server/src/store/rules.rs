//! The decisions both backends share: pure functions over records and over what a backend read
//! inside its transaction. The backends differ in how they make those reads atomic (SQLite's
//! `BEGIN IMMEDIATE`, PostgreSQL's row locks); what they decide from them is written once here.

use sealkit_proto::Identity;
use std::collections::BTreeSet;

use super::{
    AppKeyRecord, AppRecord, ChannelRecord, ChatMessageRecord, Conflict, Forbidden, KeyknoxV1,
    NewChatMessage, PfsUpload, StoreError, KEYKNOX_EMPTY_HASH,
};

/// An application's first key must be one of its own.
pub(crate) fn check_first_key(app: &AppRecord, key: &AppKeyRecord) -> Result<(), Conflict> {
    if key.app_id == app.app_id {
        Ok(())
    } else {
        Err(Conflict::KeyOfAnotherApp)
    }
}

/// Keyknox v1 compare-and-swap: whether a write with `previous` may replace `stored`, and the
/// version it then gets (1 for the first write, else +1). A non-empty blob needs its hash; an
/// empty (reset) one accepts no hash or its current one; a missing one no hash or
/// [`KEYKNOX_EMPTY_HASH`].
pub(crate) fn keyknox_v1_next_version(
    stored: Option<&KeyknoxV1>,
    previous: Option<&str>,
) -> Result<i64, Conflict> {
    let matches = match stored {
        None => previous.is_none_or(|p| p == KEYKNOX_EMPTY_HASH),
        Some(s) if s.meta.is_empty() && s.value.is_empty() => previous.is_none_or(|p| p == s.hash),
        Some(s) => previous == Some(s.hash.as_str()),
    };
    if matches {
        Ok(stored.map_or(1, |s| s.version + 1))
    } else {
        Err(Conflict::KeyknoxHashMismatch)
    }
}

/// The v1 blob after a reset: emptied at `version` with `new_hash`, or, when there was no blob
/// (`version` is `None`), the never-written blob (version 1, the empty hash).
pub(crate) fn keyknox_v1_after_reset(version: Option<i64>, new_hash: &str) -> KeyknoxV1 {
    let (version, hash) = match version {
        Some(version) => (version, new_hash),
        None => (1, KEYKNOX_EMPTY_HASH),
    };
    KeyknoxV1 {
        meta: String::new(),
        value: String::new(),
        version,
        hash: hash.to_owned(),
    }
}

/// Keyknox v2 compare-and-swap: an existing entry needs its hash (a missing header is a
/// mismatch); a new one accepts no hash or [`KEYKNOX_EMPTY_HASH`].
pub(crate) fn keyknox_v2_check_previous(
    stored_hash: Option<&str>,
    previous: Option<&str>,
) -> Result<(), Conflict> {
    let matches = match stored_hash {
        Some(hash) => previous == Some(hash),
        None => previous.is_none_or(|p| p == KEYKNOX_EMPTY_HASH),
    };
    if matches {
        Ok(())
    } else {
        Err(Conflict::KeyknoxHashMismatch)
    }
}

/// The recipients of a v2 push, deduplicated and sorted (one upsert may not touch a row twice).
pub(crate) fn keyknox_v2_recipients(identities: &[String]) -> Vec<&str> {
    let unique: BTreeSet<&str> = identities.iter().map(String::as_str).collect();
    unique.into_iter().collect()
}

/// The per-owner Keyknox v2 quota: what the owner's entries hold after a push, against the
/// limit. Exactly the limit is allowed.
pub(crate) fn check_keyknox_quota(used: u64, quota: u64) -> Result<(), Conflict> {
    if used <= quota {
        Ok(())
    } else {
        Err(Conflict::KeyknoxQuotaExceeded { used, quota })
    }
}

/// A rate-limit token bucket as stored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bucket {
    /// Tokens left (fractions accumulate).
    pub(crate) tokens: f64,
    /// When `tokens` was computed, Unix milliseconds.
    pub(crate) updated_ms: i64,
}

/// One attempt to take a token from `stored` (capacity `burst`, refilled at `per_second`) at
/// `now_ms`: the bucket to store and whether a token was taken. A new bucket starts full; time
/// never runs backwards for a bucket (replicas' clocks differ).
pub(crate) fn take_token(
    stored: Option<Bucket>,
    now_ms: i64,
    burst: u32,
    per_second: f64,
) -> (Bucket, bool) {
    let Bucket { tokens, updated_ms } = stored.unwrap_or(Bucket {
        tokens: f64::from(burst),
        updated_ms: now_ms,
    });
    let elapsed_ms = now_ms.saturating_sub(updated_ms).max(0) as f64;
    let rate = if per_second > 0.0 { per_second } else { 0.0 };
    let available = (tokens + elapsed_ms * rate / 1000.0).min(f64::from(burst));
    let taken = available >= 1.0;
    let bucket = Bucket {
        tokens: if taken { available - 1.0 } else { available },
        updated_ms: updated_ms.max(now_ms),
    };
    (bucket, taken)
}

/// The members of a new channel with their admin flag, deduplicated and sorted (admins are
/// members); `ChannelFull` beyond `sealkit_proto::chat::MAX_MEMBERS`.
pub(crate) fn initial_members(channel: &ChannelRecord) -> Result<Vec<(&str, bool)>, Conflict> {
    let admins: BTreeSet<&str> = channel.admins.iter().map(Identity::as_str).collect();
    let members: BTreeSet<&str> = channel
        .members
        .iter()
        .map(Identity::as_str)
        .chain(admins.iter().copied())
        .collect();
    if members.len() > sealkit_proto::chat::MAX_MEMBERS {
        return Err(Conflict::ChannelFull);
    }
    Ok(members
        .into_iter()
        .map(|member| (member, admins.contains(member)))
        .collect())
}

/// What adding a member changes, given its current membership (`Some(admin)`) and whether it
/// is added as admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemberChange {
    /// Already a member with at least these rights: nothing changes, the version stays.
    Unchanged,
    /// A member becomes admin.
    Promote,
    /// A new member (room permitting, see [`check_room`]).
    Insert,
}

/// See [`MemberChange`].
pub(crate) fn member_change(current: Option<bool>, admin: bool) -> MemberChange {
    match current {
        Some(was_admin) if was_admin || !admin => MemberChange::Unchanged,
        Some(_) => MemberChange::Promote,
        None => MemberChange::Insert,
    }
}

/// A channel of `members` members has room for one more.
pub(crate) fn check_room(members: i64) -> Result<(), Conflict> {
    if members >= sealkit_proto::chat::MAX_MEMBERS as i64 {
        Err(Conflict::ChannelFull)
    } else {
        Ok(())
    }
}

/// An admin may leave unless it is the only admin of a group channel and other members remain.
/// Either member of a direct channel may leave it: nobody is held in a conversation.
pub(crate) fn check_admin_may_leave(
    direct: bool,
    admins: i64,
    members: i64,
) -> Result<(), Conflict> {
    if !direct && admins == 1 && members > 1 {
        Err(Conflict::LastAdmin)
    } else {
        Ok(())
    }
}

/// A creator of `created` channels may create one more.
pub(crate) fn check_channels_per_creator(created: i64, limit: u32) -> Result<(), Conflict> {
    if created < i64::from(limit) {
        Ok(())
    } else {
        Err(Conflict::TooManyChannels { limit })
    }
}

/// A new post must be encrypted for the channel's current membership.
pub(crate) fn check_member_version(current: i64, sent: i64) -> Result<(), Conflict> {
    if current == sent {
        Ok(())
    } else {
        Err(Conflict::StaleMemberVersion { current })
    }
}

/// The stored form of a new message that got `seq`.
pub(crate) fn stored_message(message: NewChatMessage, seq: i64) -> ChatMessageRecord {
    ChatMessageRecord {
        channel_id: message.channel_id,
        seq,
        sender: message.sender,
        client_id: message.client_id,
        ciphertext: message.ciphertext,
        member_version: message.member_version,
        sent_at_ms: message.sent_at_ms,
        kt_head: message.kt_head,
        edited_at_ms: None,
        deleted_at_ms: None,
        deleted_by: None,
    }
}

/// Whether `editor` may replace the ciphertext of `message` (see
/// [`ChatStore::chat_edit_message`](crate::store::ChatStore::chat_edit_message)): its sender
/// only, and not once it is a tombstone.
pub(crate) fn check_edit(message: &ChatMessageRecord, editor: &str) -> Result<(), StoreError> {
    if message.sender.as_str() != editor {
        return Err(StoreError::Forbidden(Forbidden::NotTheSender));
    }
    if message.deleted_at_ms.is_some() {
        return Err(StoreError::Conflict(Conflict::MessageDeleted));
    }
    Ok(())
}

/// Whether `deleter` (a member; `admin` when an admin of the channel) may delete `message`:
/// its sender, or any admin.
pub(crate) fn check_delete(
    message: &ChatMessageRecord,
    deleter: &str,
    admin: bool,
) -> Result<(), StoreError> {
    if admin || message.sender.as_str() == deleter {
        Ok(())
    } else {
        Err(StoreError::Forbidden(Forbidden::NotTheSenderOrAdmin))
    }
}

/// The size a blob of `size` bytes reaches with a chunk of `len` bytes, or
/// `Conflict(BlobTooLarge)` past `limit`.
pub(crate) fn blob_size_after(size: i64, len: usize, limit: u64) -> Result<i64, Conflict> {
    let after = u64::try_from(size)
        .unwrap_or(u64::MAX)
        .saturating_add(len as u64);
    match i64::try_from(after) {
        Ok(after) if after as u64 <= limit => Ok(after),
        _ => Err(Conflict::BlobTooLarge { limit }),
    }
}

/// Adds members (identity, admin) to a channel, keeping members and admins sorted by Rust's
/// string order (the same in both backends, whatever the database's collation).
pub(crate) fn add_members(
    channel: &mut ChannelRecord,
    rows: impl IntoIterator<Item = (Identity, bool)>,
) {
    for (identity, admin) in rows {
        if admin {
            channel.admins.push(identity.clone());
        }
        channel.members.push(identity);
    }
    channel.admins.sort_unstable();
    channel.members.sort_unstable();
}

/// An identity's ratchet key row as an upload reads it under the lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PfsStoredIdentity {
    /// The recorded card id, if any.
    pub(crate) card_id: Option<String>,
    /// Whether a long-term key is stored.
    pub(crate) has_long_term_key: bool,
}

/// What a ratchet key upload does to the stored row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PfsUploadPlan {
    /// The card id to record (the given one, else the stored one).
    pub(crate) card_id: Option<String>,
    /// The card id changes: the stored long-term and one-time keys go first.
    pub(crate) clear_keys: bool,
}

/// The order rules of a ratchet key upload (card id, then long-term key, then one-time keys):
/// a long-term key needs a card id, given or recorded, and must have been checked against
/// that card; one-time keys need a long-term key, given or kept. A new card id clears the
/// stored keys, which were made for the old card.
pub(crate) fn pfs_plan_upload(
    stored: &PfsStoredIdentity,
    upload: &PfsUpload,
) -> Result<PfsUploadPlan, Conflict> {
    let clear_keys = matches!(
        (&upload.card_id, &stored.card_id),
        (Some(new), Some(old)) if new != old
    );
    let card_id = upload.card_id.clone().or_else(|| stored.card_id.clone());
    if let Some(long_term) = &upload.long_term_key {
        let Some(card_id) = &card_id else {
            return Err(Conflict::PfsNoCard);
        };
        if &long_term.verified_with_card != card_id {
            return Err(Conflict::PfsCardChanged);
        }
    }
    let long_term_after =
        upload.long_term_key.is_some() || (stored.has_long_term_key && !clear_keys);
    if !upload.one_time_keys.is_empty() && !long_term_after {
        return Err(Conflict::PfsNoLongTermKey);
    }
    Ok(PfsUploadPlan {
        card_id,
        clear_keys,
    })
}

/// The one-time key limit: `unused` keys after an upload against `limit`; exactly the limit
/// is allowed.
pub(crate) fn pfs_check_one_time_count(unused: usize, limit: usize) -> Result<(), Conflict> {
    if unused <= limit {
        Ok(())
    } else {
        Err(Conflict::PfsTooManyOneTimeKeys { limit })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keyknox_quota_allows_exactly_the_limit() {
        assert_eq!(check_keyknox_quota(0, 0), Ok(()));
        assert_eq!(check_keyknox_quota(100, 100), Ok(()));
        assert_eq!(
            check_keyknox_quota(101, 100),
            Err(Conflict::KeyknoxQuotaExceeded {
                used: 101,
                quota: 100
            })
        );
    }

    #[test]
    fn blob_limit_allows_exactly_the_limit() {
        assert_eq!(blob_size_after(0, 0, 0), Ok(0));
        assert_eq!(blob_size_after(60, 40, 100), Ok(100));
        assert_eq!(
            blob_size_after(60, 41, 100),
            Err(Conflict::BlobTooLarge { limit: 100 })
        );
        // Beyond what the database column holds, whatever the limit says.
        assert_eq!(
            blob_size_after(i64::MAX, 1, u64::MAX),
            Err(Conflict::BlobTooLarge { limit: u64::MAX })
        );
    }

    fn blob(meta: &str, value: &str, version: i64, hash: &str) -> KeyknoxV1 {
        KeyknoxV1 {
            meta: meta.to_owned(),
            value: value.to_owned(),
            version,
            hash: hash.to_owned(),
        }
    }

    #[test]
    fn first_key_belongs_to_the_app() {
        let app = AppRecord {
            app_id: "a".into(),
            name: "A".into(),
            created_at: 0,
        };
        let mut key = AppKeyRecord {
            key_id: "k".into(),
            app_id: "a".into(),
            public_key: Vec::new(),
            created_at: 0,
            revoked_at: None,
        };
        assert_eq!(check_first_key(&app, &key), Ok(()));
        key.app_id = "b".into();
        assert_eq!(check_first_key(&app, &key), Err(Conflict::KeyOfAnotherApp));
    }

    #[test]
    fn keyknox_v1_compare_and_swap() {
        let mismatch = Err(Conflict::KeyknoxHashMismatch);
        // Never written: no hash or the empty hash.
        assert_eq!(keyknox_v1_next_version(None, None), Ok(1));
        assert_eq!(
            keyknox_v1_next_version(None, Some(KEYKNOX_EMPTY_HASH)),
            Ok(1)
        );
        assert_eq!(keyknox_v1_next_version(None, Some("h")), mismatch);
        // Written: exactly its hash.
        let full = blob("m", "v", 3, "h");
        assert_eq!(keyknox_v1_next_version(Some(&full), Some("h")), Ok(4));
        assert_eq!(keyknox_v1_next_version(Some(&full), None), mismatch);
        assert_eq!(keyknox_v1_next_version(Some(&full), Some("x")), mismatch);
        // Reset: no hash or its current one, not the empty hash.
        let reset = blob("", "", 4, "r");
        assert_eq!(keyknox_v1_next_version(Some(&reset), None), Ok(5));
        assert_eq!(keyknox_v1_next_version(Some(&reset), Some("r")), Ok(5));
        assert_eq!(
            keyknox_v1_next_version(Some(&reset), Some(KEYKNOX_EMPTY_HASH)),
            mismatch
        );
        // Only meta or only value empty is not a reset blob.
        let half = blob("", "v", 2, "h");
        assert_eq!(keyknox_v1_next_version(Some(&half), None), mismatch);
    }

    #[test]
    fn keyknox_v1_reset_of_nothing_is_the_unwritten_blob() {
        assert_eq!(keyknox_v1_after_reset(Some(5), "n"), blob("", "", 5, "n"));
        assert_eq!(
            keyknox_v1_after_reset(None, "n"),
            blob("", "", 1, KEYKNOX_EMPTY_HASH)
        );
    }

    #[test]
    fn keyknox_v2_compare_and_swap() {
        let mismatch = Err(Conflict::KeyknoxHashMismatch);
        assert_eq!(keyknox_v2_check_previous(None, None), Ok(()));
        assert_eq!(
            keyknox_v2_check_previous(None, Some(KEYKNOX_EMPTY_HASH)),
            Ok(())
        );
        assert_eq!(keyknox_v2_check_previous(None, Some("h")), mismatch);
        assert_eq!(keyknox_v2_check_previous(Some("h"), Some("h")), Ok(()));
        assert_eq!(keyknox_v2_check_previous(Some("h"), None), mismatch);
        assert_eq!(
            keyknox_v2_check_previous(Some("h"), Some(KEYKNOX_EMPTY_HASH)),
            mismatch
        );
    }

    #[test]
    fn keyknox_v2_recipients_are_unique_and_sorted() {
        let identities = ["bob", "alice", "bob"].map(String::from);
        assert_eq!(keyknox_v2_recipients(&identities), vec!["alice", "bob"]);
    }

    #[test]
    fn token_bucket() {
        let t0 = 1_800_000_000_000;
        // A new bucket starts full.
        let (bucket, taken) = take_token(None, t0, 2, 0.5);
        assert!(taken);
        assert_eq!(
            bucket,
            Bucket {
                tokens: 1.0,
                updated_ms: t0
            }
        );
        let (bucket, taken) = take_token(Some(bucket), t0, 2, 0.5);
        assert!(taken);
        let (bucket, taken) = take_token(Some(bucket), t0, 2, 0.5);
        assert!(!taken);
        assert_eq!(bucket.tokens, 0.0);
        // 0.5 per second: one token after two seconds, never more than the burst.
        let (bucket, taken) = take_token(Some(bucket), t0 + 1_000, 2, 0.5);
        assert!(!taken);
        assert_eq!(bucket.tokens, 0.5);
        let (_, taken) = take_token(Some(bucket), t0 + 2_000, 2, 0.5);
        assert!(taken);
        let (full, _) = take_token(Some(bucket), t0 + 1_000_000, 2, 0.5);
        assert_eq!(full.tokens, 1.0);
        // A clock running backwards adds nothing and does not move the bucket back.
        let (back, taken) = take_token(Some(bucket), t0 - 5_000, 2, 0.5);
        assert!(!taken);
        assert_eq!(back, bucket);
        // A negative rate refills nothing.
        let (none, _) = take_token(Some(bucket), t0 + 10_000, 2, -1.0);
        assert_eq!(none.tokens, 0.5);
    }

    fn channel(admins: &[&str], members: &[&str]) -> ChannelRecord {
        ChannelRecord {
            app_id: "a".into(),
            id: "c".parse().unwrap(),
            kind: "group".into(),
            open: false,
            created_by: "alice".parse().unwrap(),
            created_at_ms: 0,
            admins: admins.iter().map(|s| s.parse().unwrap()).collect(),
            members: members.iter().map(|s| s.parse().unwrap()).collect(),
            member_version: 1,
            last_seq: 0,
            read: Vec::new(),
        }
    }

    #[test]
    fn initial_members_include_admins_once() {
        let record = channel(&["carol", "alice"], &["bob", "alice", "bob"]);
        assert_eq!(
            initial_members(&record),
            Ok(vec![("alice", true), ("bob", false), ("carol", true)])
        );
        let max = sealkit_proto::chat::MAX_MEMBERS;
        let many: Vec<Identity> = (0..max).map(|i| format!("m{i}").parse().unwrap()).collect();
        let mut record = channel(&[], &[]);
        record.members = many;
        assert_eq!(initial_members(&record).map(|m| m.len()), Ok(max));
        record.admins = vec!["one more".parse().unwrap()];
        assert_eq!(initial_members(&record), Err(Conflict::ChannelFull));
    }

    #[test]
    fn membership_rules() {
        assert_eq!(member_change(None, false), MemberChange::Insert);
        assert_eq!(member_change(None, true), MemberChange::Insert);
        assert_eq!(member_change(Some(false), false), MemberChange::Unchanged);
        assert_eq!(member_change(Some(true), false), MemberChange::Unchanged);
        assert_eq!(member_change(Some(true), true), MemberChange::Unchanged);
        assert_eq!(member_change(Some(false), true), MemberChange::Promote);

        let max = sealkit_proto::chat::MAX_MEMBERS as i64;
        assert_eq!(check_room(max - 1), Ok(()));
        assert_eq!(check_room(max), Err(Conflict::ChannelFull));

        assert_eq!(check_admin_may_leave(false, 1, 1), Ok(()));
        assert_eq!(check_admin_may_leave(false, 2, 3), Ok(()));
        assert_eq!(check_admin_may_leave(false, 1, 2), Err(Conflict::LastAdmin));
        assert_eq!(check_admin_may_leave(true, 1, 2), Ok(()));
        assert_eq!(check_channels_per_creator(0, 1), Ok(()));
        assert_eq!(check_channels_per_creator(9, 10), Ok(()));
        assert_eq!(
            check_channels_per_creator(10, 10),
            Err(Conflict::TooManyChannels { limit: 10 })
        );

        assert_eq!(check_member_version(3, 3), Ok(()));
        assert_eq!(
            check_member_version(3, 2),
            Err(Conflict::StaleMemberVersion { current: 3 })
        );
    }

    #[test]
    fn members_are_sorted_by_rust_order() {
        let mut record = channel(&[], &[]);
        add_members(
            &mut record,
            [
                ("bob".parse::<Identity>().unwrap(), false),
                ("Zoe".parse::<Identity>().unwrap(), true),
                ("alice".parse::<Identity>().unwrap(), true),
            ],
        );
        assert_eq!(record.members, ["Zoe", "alice", "bob"]);
        assert_eq!(record.admins, ["Zoe", "alice"]);
    }

    fn upload(card: Option<&str>, long_term_card: Option<&str>, one_time: usize) -> PfsUpload {
        use crate::store::{PfsKey, PfsLongTermKey};
        let key = |n: u8| PfsKey {
            key_id: [n; 8],
            public_key: vec![n; 32],
        };
        PfsUpload {
            app_id: "app".into(),
            identity: "alice".into(),
            card_id: card.map(str::to_owned),
            long_term_key: long_term_card.map(|c| PfsLongTermKey {
                key: key(0),
                signature: vec![1],
                verified_with_card: c.to_owned(),
            }),
            one_time_keys: (1..=one_time).map(|n| key(n as u8)).collect(),
            max_one_time_keys: 150,
            now: 0,
        }
    }

    #[test]
    fn pfs_upload_order() {
        let empty = PfsStoredIdentity::default();
        let with_card = PfsStoredIdentity {
            card_id: Some("c1".into()),
            has_long_term_key: false,
        };
        let with_keys = PfsStoredIdentity {
            card_id: Some("c1".into()),
            has_long_term_key: true,
        };
        // Everything in one upload, in order.
        assert_eq!(
            pfs_plan_upload(&empty, &upload(Some("c1"), Some("c1"), 2)),
            Ok(PfsUploadPlan {
                card_id: Some("c1".into()),
                clear_keys: false
            })
        );
        // A long-term key needs a card id; one-time keys need a long-term key.
        assert_eq!(
            pfs_plan_upload(&empty, &upload(None, Some("c1"), 0)),
            Err(Conflict::PfsNoCard)
        );
        assert_eq!(
            pfs_plan_upload(&with_card, &upload(None, None, 1)),
            Err(Conflict::PfsNoLongTermKey)
        );
        assert!(pfs_plan_upload(&with_card, &upload(None, Some("c1"), 1)).is_ok());
        assert!(pfs_plan_upload(&with_keys, &upload(None, None, 1)).is_ok());
        assert!(pfs_plan_upload(&with_keys, &upload(Some("c1"), None, 1)).is_ok());
        // Checked against another card than the recorded one.
        assert_eq!(
            pfs_plan_upload(&with_card, &upload(None, Some("c2"), 0)),
            Err(Conflict::PfsCardChanged)
        );
        // A new card clears the keys: one-time keys then need a new long-term key.
        assert_eq!(
            pfs_plan_upload(&with_keys, &upload(Some("c2"), None, 1)),
            Err(Conflict::PfsNoLongTermKey)
        );
        assert_eq!(
            pfs_plan_upload(&with_keys, &upload(Some("c2"), Some("c2"), 1)),
            Ok(PfsUploadPlan {
                card_id: Some("c2".into()),
                clear_keys: true
            })
        );
    }

    #[test]
    fn pfs_one_time_limit_allows_exactly_the_limit() {
        assert_eq!(pfs_check_one_time_count(150, 150), Ok(()));
        assert_eq!(
            pfs_check_one_time_count(151, 150),
            Err(Conflict::PfsTooManyOneTimeKeys { limit: 150 })
        );
    }
}
