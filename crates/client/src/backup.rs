//! Private key backup in Keyknox, byte-compatible with e3kit (`backupPrivateKey`,
//! `restorePrivateKey`, `changePassword`, `resetPrivateKeyBackup`, `derivePasswords`).
//!
//! ## Format (what e3kit 2.5 writes; see `@virgilsecurity/keyknox` `CloudKeyStorage`)
//! * The password becomes a key pair through Pythia's brainkey (spec §6): blind the password's
//!   bytes, `POST /pythia/v1/brainkey`, deblind, `generateKeysFromKeyMaterial` (Ed25519). The
//!   same password gives the same brain key for the same app and identity.
//! * The stored plaintext is the UTF-8 JSON of a map `{entry name: entry}`, each entry
//!   `{"data": <base64 of the exported private key DER>, "meta"?: <any, omitted when null>,
//!   "creation_date": <Unix ms>, "name": <entry name>, "modification_date": <Unix ms>}` (fields in
//!   this order, as `JSON.stringify` writes them).
//! * It is encrypted with virgil-crypto's `signThenEncryptDetached`, signed by and encrypted for
//!   the brain key only, no padding: `meta` = the base64 message info, `value` = the base64
//!   ciphertext (spec §5 envelope split in two).
//! * Without a key name (Keyknox v1): one blob per user holding the map, where the backup is the
//!   entry named after the identity. A backup that exists already is
//!   [`Error::CloudEntryExists`].
//! * With a key name (Keyknox v2): the entry at root `e3kit`, path `backup`, key = the key name,
//!   shared with the identity only, holding a map with a single entry *named after the key name*
//!   (not the identity). As in e3kit, backing up again under the same name with the same
//!   password replaces it.

use crate::api::now_secs;
use crate::error::{Error, Result};
use crate::ethree::{blocking, EThree};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_core::OsRng;
use sealkit_crypto::{Crypto, PrivateKey, PublicKey, Signing};
use sealkit_proto::keyknox::{V1Push, V2Pull, V2Push, V2Reset};
use sealkit_proto::pythia::THROTTLED_CODE;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use std::collections::BTreeMap;
use std::time::Duration;
use zeroize::Zeroizing;

/// Keyknox v2 root of named backups.
const BACKUP_ROOT: &str = "e3kit";
/// Keyknox v2 path of named backups.
const BACKUP_PATH: &str = "backup";
/// e3kit waits this long before its single retry of a throttled brainkey request.
const BRAINKEY_RETRY_DELAY: Duration = Duration::from_secs(2);

/// One entry of the backup map (keyknox `CloudEntry` as serialized by `CloudKeyStorage`).
#[derive(Serialize, Deserialize)]
struct CloudEntry {
    data: Zeroizing<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta: Option<serde_json::Value>,
    creation_date: i64,
    name: String,
    modification_date: i64,
}

/// The decrypted backup map, in the order JavaScript keeps it (insertion order is not kept
/// here: a `BTreeMap` sorts the names, which JavaScript readers do not care about).
type CloudEntries = BTreeMap<String, CloudEntry>;

/// The two passwords [`EThree::derive_passwords`] derives from one user password.
///
/// ```no_run
/// # async fn log_in(user: &str, password: &[u8]) -> std::io::Result<String> { todo!() }
/// # async fn run(ethree: sealkit::EThree, typed: String)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// let passwords = sealkit::EThree::derive_passwords(&typed);
/// // The backend only ever sees the login half...
/// let session = log_in("alice", &passwords.login_password).await?;
/// // ...and the backup half never leaves the device (only blinded, through Pythia).
/// match ethree.backup_private_key(&passwords.backup_password[..], None).await {
///     Ok(()) | Err(sealkit::Error::CloudEntryExists { .. }) => {}
///     Err(e) => return Err(e.into()),
/// }
/// # Ok(()) }
/// ```
pub struct DerivedPasswords {
    /// The first 32 bytes: for logging in to the application's backend.
    pub login_password: Zeroizing<Vec<u8>>,
    /// The last 32 bytes: for [`EThree::backup_private_key`] (pass the bytes themselves, as
    /// e3kit-node users pass the `Buffer`).
    pub backup_password: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for DerivedPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedPasswords { .. }")
    }
}

/// `signThenEncryptDetached` (keyknox `KeyknoxCrypto.encrypt`): signed by `signer`, encrypted
/// for `recipients`, no padding; returns (message info, ciphertext), both base64.
pub(crate) fn seal(
    crypto: Crypto,
    plaintext: &[u8],
    signer: &PrivateKey,
    recipients: &[PublicKey],
) -> Result<(String, String)> {
    let signature = sealkit_crypto::sign(plaintext, signer, &mut OsRng)?;
    let mut enc = crypto.encryptor(
        &mut OsRng,
        recipients,
        Signing::SignThenEncrypt {
            signer,
            signature: &signature,
        },
        false,
    )?;
    let meta = STANDARD.encode(enc.header());
    let mut body = Vec::with_capacity(plaintext.len() + 64);
    enc.update(plaintext, &mut body)?;
    enc.finish(&mut OsRng, &mut body)?;
    Ok((meta, STANDARD.encode(body)))
}

/// `decryptThenVerifyDetached` (keyknox `KeyknoxCrypto.decrypt`); `Ok(None)` for an empty
/// (never written) entry, `Err(Ok(e))` for a crypto failure, `Err(Err(e))` for anything else.
pub(crate) fn open_with(
    meta: &str,
    value: &str,
    key: &PrivateKey,
    signers: &[PublicKey],
) -> Result<Option<Zeroizing<Vec<u8>>>, Result<sealkit_crypto::Error, Error>> {
    match (meta.is_empty(), value.is_empty()) {
        (true, true) => return Ok(None),
        (false, false) => {}
        _ => {
            return Err(Err(Error::InvalidResponse(
                "keyknox: one of meta and value is empty".to_owned(),
            )))
        }
    }
    let decode = |s: &str| {
        STANDARD.decode(s).map_err(|e| {
            Err(Error::InvalidResponse(format!(
                "keyknox: the entry is not base64 ({e})"
            )))
        })
    };
    let mut message = decode(meta)?;
    message.extend_from_slice(&decode(value)?);
    Crypto::new()
        .decrypt_then_verify(&message, key, signers)
        .map(|p| Some(Zeroizing::new(p)))
        .map_err(Ok)
}

/// [`open_with`] with the brain key; a crypto failure is [`Error::WrongKeyknoxPassword`].
fn open(meta: &str, value: &str, key: &PrivateKey) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let signer: [PublicKey; 1] = [key.public_key().clone()];
    open_with(meta, value, key, &signer).map_err(|e| match e {
        Ok(_) => Error::WrongKeyknoxPassword,
        Err(e) => e,
    })
}

fn parse_entries(plaintext: Option<&[u8]>) -> Result<CloudEntries> {
    match plaintext {
        None | Some([]) => Ok(CloudEntries::new()),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
            Error::InvalidResponse(format!(
                "the decrypted backup is not e3kit's entry map (JSON of name → entry): {e}"
            ))
        }),
    }
}

fn entries_json(entries: &CloudEntries) -> Result<Zeroizing<Vec<u8>>> {
    serde_json::to_vec(entries)
        .map(Zeroizing::new)
        .map_err(|e| Error::InvalidInput(format!("cannot encode the backup: {e}")))
}

fn now_millis() -> i64 {
    now_secs().saturating_mul(1000)
}

fn new_entry(name: &str, key: &PrivateKey) -> CloudEntry {
    let now = now_millis();
    CloudEntry {
        data: key.to_base64(),
        meta: None,
        creation_date: now,
        name: name.to_owned(),
        modification_date: now,
    }
}

fn import_entry(entry: &CloudEntry) -> Result<PrivateKey> {
    let der =
        Zeroizing::new(STANDARD.decode(entry.data.as_bytes()).map_err(|e| {
            Error::InvalidResponse(format!("the backup's key is not base64 ({e})"))
        })?);
    PrivateKey::import(&der).map_err(|e| {
        Error::InvalidResponse(format!(
            "the backup does not hold a usable private key ({e})"
        ))
    })
}

impl EThree {
    /// e3kit's `EThree.derivePasswords`: `SHA-512(SHA-256(password))`, split into a login
    /// password (first 32 bytes) and a backup password (last 32 bytes), so one password typed by
    /// the user can both log in to the app's backend and protect the key backup, without the
    /// backend learning the backup password.
    ///
    /// **Weakness**: this is an unsalted, fast hash. Whoever sees the login password (the app's
    /// backend, or an attacker who steals its database when it stores it as is) can test
    /// billions of candidate passwords per second offline, and recovers the backup password
    /// together with the user's password; identical passwords give identical results for all
    /// users. It exists for compatibility with e3kit apps; new apps should hash the login password
    /// with a slow salted KDF (Argon2id) on the backend and use an independent backup password.
    /// The brainkey itself is not affected (Pythia makes offline guessing impossible without the
    /// server).
    ///
    /// ```
    /// let p = sealkit::EThree::derive_passwords("correct horse");
    /// assert_eq!((p.login_password.len(), p.backup_password.len()), (32, 32));
    /// ```
    pub fn derive_passwords(password: impl AsRef<[u8]>) -> DerivedPasswords {
        let first = Zeroizing::new(Sha256::digest(password.as_ref()).to_vec());
        let second = Zeroizing::new(Sha512::digest(&first[..]).to_vec());
        DerivedPasswords {
            login_password: Zeroizing::new(second[..32].to_vec()),
            backup_password: Zeroizing::new(second[32..].to_vec()),
        }
    }

    /// The brain key of `password` (e3kit `generateBrainPair`): blind, transform on the server,
    /// deblind, derive. A throttled request (code 60007) is retried once after 2 s, like e3kit.
    async fn brain_key(&self, password: &[u8]) -> Result<PrivateKey> {
        match self.brain_key_once(password).await {
            Err(Error::Api {
                code: THROTTLED_CODE,
                ..
            }) => {
                tokio::time::sleep(BRAINKEY_RETRY_DELAY).await;
                self.brain_key_once(password).await
            }
            other => other,
        }
    }

    async fn brain_key_once(&self, password: &[u8]) -> Result<PrivateKey> {
        match self.inner.brainkey_version {
            crate::BrainkeyVersion::V3 => self.brain_key_v3(password).await,
            _ => self.brain_key_v2(password).await,
        }
    }

    /// Brainkey v3, as e3kit-kotlin 3.x's `BrainkeyHttpClient.deriveKeyPair`: blind on P-256,
    /// `POST /brainkey/v3/harden`, verify the server's DLEQ proof (a failure is reported as a
    /// wrong password, like e3kit), deblind to a 32-byte seed with the key name `"e3kit-backup"`,
    /// and the Ed25519 key virgil-crypto generates from that seed as key material.
    async fn brain_key_v3(&self, password: &[u8]) -> Result<PrivateKey> {
        use sealkit_pythia::v3;
        let password = Zeroizing::new(password.to_vec());
        let for_blind = password.clone();
        let (factor, blinded) = blocking(move || {
            v3::blind(&for_blind, &mut OsRng)
                .map_err(|e| Error::InvalidInput(format!("unusable backup password: {e}")))
        })
        .await?;
        let answer = self.inner.api.brainkey_v3_harden(&blinded).await?;
        blocking(move || {
            v3::verify(
                &blinded,
                &answer.hardened_point,
                &answer.server_public_key,
                &answer.proof_value_c,
                &answer.proof_value_s,
            )
            .map_err(|e| match e {
                sealkit_pythia::Error::ProofInvalid => Error::WrongKeyknoxPassword,
                other => Error::InvalidResponse(format!("brainkey v3: {other}")),
            })?;
            let seed = v3::deblind(
                &password,
                &answer.hardened_point,
                &factor,
                v3::E3KIT_BACKUP_KEY_NAME,
            )
            .map_err(|e| Error::InvalidResponse(format!("brainkey v3: {e}")))?;
            sealkit_pythia::private_key_from_key_material(&seed[..])
                .map_err(|e| Error::InvalidResponse(format!("brainkey v3: {e}")))
        })
        .await
    }

    async fn brain_key_v2(&self, password: &[u8]) -> Result<PrivateKey> {
        let password = Zeroizing::new(password.to_vec());
        let (blinded, secret) = blocking(move || {
            sealkit_pythia::blind(&password, &mut OsRng)
                .map_err(|e| Error::InvalidInput(format!("unusable backup password: {e}")))
        })
        .await?;
        let seed = self.inner.api.pythia_brainkey(&blinded).await?;
        blocking(move || {
            let deblinded = sealkit_pythia::deblind(&seed, &secret).map_err(|e| {
                Error::InvalidResponse(format!("pythia brainkey: unusable seed ({e})"))
            })?;
            Ok(sealkit_pythia::brainkey_from_deblinded(&deblinded))
        })
        .await
    }

    fn backup_address(&self, key_name: &str) -> V2Pull {
        V2Pull {
            root: BACKUP_ROOT.to_owned(),
            path: BACKUP_PATH.to_owned(),
            key: key_name.to_owned(),
            identity: Some(self.inner.identity.clone()),
        }
    }

    /// Uploads the local private key to the server, encrypted with a key derived from
    /// `password` (e3kit `backupPrivateKey`). Without `key_name`, the backup is the identity's
    /// entry of the Keyknox v1 storage ([`Error::CloudEntryExists`] if there is one); with it,
    /// a separate Keyknox v2 entry under that name (replaced if it exists with the same
    /// password, [`Error::WrongKeyknoxPassword`] if with another). [`Error::MissingPrivateKey`]
    /// without a local key.
    ///
    /// The password is typically typed by the user (or [`DerivedPasswords::backup_password`]);
    /// it never leaves the device, only a blinded form of it does (Pythia), and the server
    /// rate-limits guesses. 1 to 128 bytes.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// ethree.backup_private_key("a long passphrase", None).await?;
    /// // On another device of the same identity:
    /// ethree.restore_private_key("a long passphrase", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn backup_private_key(
        &self,
        password: impl AsRef<[u8]>,
        key_name: Option<&str>,
    ) -> Result<()> {
        let key = self.private_key().await?;
        let brain = self.brain_key(password.as_ref()).await?;
        let crypto = self.inner.crypto;
        let api = &self.inner.api;
        match key_name {
            None => {
                let pulled = api.keyknox_v1_pull().await?;
                let plaintext = open(&pulled.value.meta, &pulled.value.value, &brain)?;
                let mut entries = parse_entries(plaintext.as_deref().map(|p| &p[..]))?;
                let name = self.inner.identity.clone();
                if entries.contains_key(&name) {
                    return Err(Error::CloudEntryExists { name });
                }
                entries.insert(name.clone(), new_entry(&name, &key));
                let (meta, value) = seal(
                    crypto,
                    &entries_json(&entries)?,
                    &brain,
                    &[brain.public_key().clone()],
                )?;
                api.keyknox_v1_push(&V1Push { meta, value }, pulled.hash.as_deref())
                    .await?;
            }
            Some(name) => {
                let address = self.backup_address(name);
                let pulled = api.keyknox_v2_pull(&address).await?;
                open(&pulled.value.meta, &pulled.value.value, &brain)?;
                let mut entries = CloudEntries::new();
                entries.insert(name.to_owned(), new_entry(name, &key));
                let (meta, value) = seal(
                    crypto,
                    &entries_json(&entries)?,
                    &brain,
                    &[brain.public_key().clone()],
                )?;
                let push = V2Push {
                    root: address.root,
                    path: address.path,
                    key: address.key,
                    identities: vec![self.inner.identity.clone()],
                    meta,
                    value,
                };
                api.keyknox_v2_push(&push, pulled.hash.as_deref()).await?;
            }
        }
        Ok(())
    }

    /// Downloads the private key backed up with [`EThree::backup_private_key`] (by this SDK or
    /// by e3kit) and stores it on this device (e3kit `restorePrivateKey`).
    /// [`Error::PrivateKeyAlreadyExists`] if a key is stored locally, [`Error::PrivateKeyNoBackup`]
    /// if there is no backup (under `key_name`), [`Error::WrongKeyknoxPassword`] for a wrong
    /// password.
    ///
    /// ```no_run
    /// # fn ask_password() -> String { todo!() }
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// use sealkit::Error;
    ///
    /// // A new device of an existing user:
    /// if !ethree.has_local_private_key().await? {
    ///     loop {
    ///         match ethree.restore_private_key(ask_password(), None).await {
    ///             Ok(()) => break,
    ///             Err(Error::WrongKeyknoxPassword) => eprintln!("wrong password, try again"),
    ///             // Never backed up: the old key is lost, replace it.
    ///             Err(Error::PrivateKeyNoBackup) => {
    ///                 ethree.rotate_private_key().await?;
    ///                 break;
    ///             }
    ///             Err(e) => return Err(e),
    ///         }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn restore_private_key(
        &self,
        password: impl AsRef<[u8]>,
        key_name: Option<&str>,
    ) -> Result<()> {
        let _op = self.inner.ops.lock().await;
        if self.load_private_key().await?.is_some() {
            return Err(Error::PrivateKeyAlreadyExists);
        }
        let brain = self.brain_key(password.as_ref()).await?;
        let api = &self.inner.api;
        let (meta, value, name) = match key_name {
            None => {
                let pulled = api.keyknox_v1_pull().await?.value;
                (pulled.meta, pulled.value, self.inner.identity.clone())
            }
            Some(name) => {
                let pulled = api.keyknox_v2_pull(&self.backup_address(name)).await?.value;
                (pulled.meta, pulled.value, name.to_owned())
            }
        };
        let plaintext = open(&meta, &value, &brain)?.ok_or(Error::PrivateKeyNoBackup)?;
        let entries = parse_entries(Some(&plaintext))?;
        // v2 entries hold one entry, which e3kit takes whatever its name.
        let entry = match key_name {
            None => entries.get(&name),
            Some(_) => entries.get(&name).or_else(|| entries.values().next()),
        }
        .ok_or(Error::PrivateKeyNoBackup)?;
        let key = import_entry(entry)?;
        self.save_private_key(key).await
    }

    /// Re-encrypts the backup with a key derived from `new_password` (e3kit `changePassword`).
    /// [`Error::WrongKeyknoxPassword`] when `old_password` is wrong, [`Error::PrivateKeyNoBackup`]
    /// when there is no backup (e3kit silently does nothing for an empty v1 storage). Without
    /// `key_name` the whole v1 storage is re-encrypted, as in e3kit.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// match ethree.change_password("old passphrase", "new passphrase", None).await {
    ///     Ok(()) => println!("backup re-encrypted"),
    ///     Err(sealkit::Error::WrongKeyknoxPassword) => println!("the old password is wrong"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn change_password(
        &self,
        old_password: impl AsRef<[u8]>,
        new_password: impl AsRef<[u8]>,
        key_name: Option<&str>,
    ) -> Result<()> {
        let old = self.brain_key(old_password.as_ref()).await?;
        let crypto = self.inner.crypto;
        let api = &self.inner.api;
        match key_name {
            None => {
                let pulled = api.keyknox_v1_pull().await?;
                let plaintext = open(&pulled.value.meta, &pulled.value.value, &old)?
                    .ok_or(Error::PrivateKeyNoBackup)?;
                let new = self.brain_key(new_password.as_ref()).await?;
                let (meta, value) = seal(crypto, &plaintext, &new, &[new.public_key().clone()])?;
                api.keyknox_v1_push(&V1Push { meta, value }, pulled.hash.as_deref())
                    .await?;
            }
            Some(name) => {
                let address = self.backup_address(name);
                let pulled = api.keyknox_v2_pull(&address).await?;
                let plaintext = open(&pulled.value.meta, &pulled.value.value, &old)?
                    .ok_or(Error::PrivateKeyNoBackup)?;
                let new = self.brain_key(new_password.as_ref()).await?;
                let (meta, value) = seal(crypto, &plaintext, &new, &[new.public_key().clone()])?;
                let push = V2Push {
                    root: address.root,
                    path: address.path,
                    key: address.key,
                    identities: vec![self.inner.identity.clone()],
                    meta,
                    value,
                };
                api.keyknox_v2_push(&push, pulled.hash.as_deref()).await?;
            }
        }
        Ok(())
    }

    /// Deletes the Keyknox v1 storage, and with it the backup made without a key name (e3kit
    /// `resetPrivateKeyBackup()`). Needs no password; succeeds when there is no backup.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// // The backup password is forgotten, but this device still has the key: back it up anew.
    /// ethree.reset_private_key_backup().await?;
    /// ethree.backup_private_key("new passphrase", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn reset_private_key_backup(&self) -> Result<()> {
        self.inner.api.keyknox_v1_reset().await
    }

    /// Deletes the backup made under `key_name` (e3kit `resetPrivateKeyBackupWithKeyName`).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// ethree.backup_private_key("work passphrase", Some("work-laptop")).await?;
    /// // Later, when that backup is no longer wanted (the unnamed backup is left alone):
    /// ethree.reset_private_key_backup_with_key_name("work-laptop").await?;
    /// # Ok(()) }
    /// ```
    pub async fn reset_private_key_backup_with_key_name(&self, key_name: &str) -> Result<()> {
        let reset = V2Reset {
            root: Some(BACKUP_ROOT.to_owned()),
            path: Some(BACKUP_PATH.to_owned()),
            key: Some(key_name.to_owned()),
            identity: Some(self.inner.identity.clone()),
        };
        self.inner.api.keyknox_v2_reset(&reset).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn derive_passwords_is_e3kits() {
        let p = EThree::derive_passwords("password");
        let full = Sha512::digest(Sha256::digest(b"password"));
        assert_eq!(&p.login_password[..], &full[..32]);
        assert_eq!(&p.backup_password[..], &full[32..]);
    }

    #[test]
    fn entries_serialize_like_javascript_and_seal_roundtrips() {
        let key = PrivateKey::ed25519_from_seed(&[7; 32]);
        let mut entries = CloudEntries::new();
        let mut entry = new_entry("alice", &key);
        entry.creation_date = 1_700_000_000_123;
        entry.modification_date = 1_700_000_000_456;
        entries.insert("alice".to_owned(), entry);
        let json = entries_json(&entries).unwrap();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(
            text.starts_with(r#"{"alice":{"data":"MC4CAQAwBQYDK2Vw"#),
            "{text}"
        );
        assert!(text.ends_with(r#"","creation_date":1700000000123,"name":"alice","modification_date":1700000000456}}"#), "{text}");
        let brain = PrivateKey::ed25519_from_seed(&[8; 32]);
        let (meta, value) =
            seal(Crypto::new(), &json, &brain, &[brain.public_key().clone()]).unwrap();
        let back = open(&meta, &value, &brain).unwrap().unwrap();
        assert_eq!(&back[..], &json[..]);
        let other = PrivateKey::ed25519_from_seed(&[9; 32]);
        assert!(matches!(
            open(&meta, &value, &other),
            Err(Error::WrongKeyknoxPassword)
        ));
        assert!(open("", "", &brain).unwrap().is_none());
        let parsed = parse_entries(Some(&back)).unwrap();
        assert_eq!(
            import_entry(&parsed["alice"]).unwrap().public_key(),
            key.public_key()
        );
    }
}
