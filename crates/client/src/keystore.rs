//! The local private key: one file per identity, in e3kit-node's key entry format.
//!
//! ```text
//! <storage_dir>/keys/<lowercase hex SHA-256 of the identity's UTF-8>      (mode 0600, dir 0700)
//! {"name":"<identity>","value":"<base64 of the private key DER>","creationDate":"<ISO 8601>",
//!  "modificationDate":"<ISO 8601>"}
//! ```
//!
//! This is what virgil-sdk's `KeyEntryStorage` with its `FileSystemStorageAdapter` writes (the
//! file name is the SHA-256 of the entry name, the value is virgil-crypto's `exportPrivateKey` in
//! base64), so a key directory of e3kit-node (`storageName`) can be read and the reverse. Unlike
//! e3kit-node, files are created with mode 0600 and written atomically.
//!
//! These functions do blocking file I/O; the SDK calls them on the blocking thread pool.

use crate::error::{Error, Result};
use sealkit_crypto::PrivateKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// A key entry file (virgil-sdk `IKeyEntry`, serialized by `JSON.stringify`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyEntry {
    name: String,
    value: Zeroizing<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    creation_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modification_date: Option<String>,
}

/// The key directory of one storage dir.
#[derive(Clone, Debug)]
pub(crate) struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The file that holds `identity`'s key.
    pub(crate) fn path(&self, identity: &str) -> PathBuf {
        let digest = Sha256::digest(identity.as_bytes());
        let mut name = String::with_capacity(64);
        for byte in digest {
            name.push_str(&format!("{byte:02x}"));
        }
        self.dir.join(name)
    }

    /// Loads `identity`'s key; `None` when there is no file.
    pub(crate) fn load(&self, identity: &str) -> Result<Option<PrivateKey>> {
        let path = self.path(identity);
        let bytes = match std::fs::read(&path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::storage(format!("cannot read {}", path.display()), e)),
        };
        let entry: KeyEntry = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Storage(format!(
                "{} is not a key entry (JSON with \"name\" and \"value\"): {e}; move it away \
                 (it may be corrupt) and restore the key from a backup",
                path.display()
            ))
        })?;
        if entry.name != identity {
            return Err(Error::Storage(format!(
                "{} holds the key of {:?}, not of {identity:?}: it was copied or renamed; move it \
                 away",
                path.display(),
                entry.name
            )));
        }
        let key = PrivateKey::import(entry.value.as_bytes()).map_err(|e| {
            Error::Storage(format!(
                "{} does not hold a usable private key ({e}); move it away (it may be corrupt) \
                 and restore the key from a backup",
                path.display()
            ))
        })?;
        Ok(Some(key))
    }

    /// Stores `identity`'s key; an existing file is an error ([`Error::PrivateKeyAlreadyExists`]).
    pub(crate) fn store(&self, identity: &str, key: &PrivateKey, now: i64) -> Result<()> {
        create_private_dir(&self.dir)?;
        let date = iso8601(now);
        let entry = KeyEntry {
            name: identity.to_owned(),
            value: key.to_base64(),
            meta: None,
            creation_date: Some(date.clone()),
            modification_date: Some(date),
        };
        let json = Zeroizing::new(
            serde_json::to_vec(&entry).map_err(|e| Error::storage("cannot encode the key", e))?,
        );
        let path = self.path(identity);
        let cannot = |e: &dyn std::fmt::Display| {
            Error::storage(format!("cannot write {}", path.display()), e)
        };
        // A temporary file is created with mode 0600, filled and synced, then linked into place
        // without replacing anything: the key file is complete or absent.
        let mut tmp = tempfile::Builder::new()
            .prefix(".key-")
            .tempfile_in(&self.dir)
            .map_err(|e| cannot(&e))?;
        tmp.write_all(&json).map_err(|e| cannot(&e))?;
        tmp.as_file().sync_all().map_err(|e| cannot(&e))?;
        match tmp.persist_noclobber(&path) {
            Ok(_) => Ok(()),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::PrivateKeyAlreadyExists)
            }
            Err(e) => Err(cannot(&e.error)),
        }
    }

    /// Deletes `identity`'s key file; `false` when there was none.
    pub(crate) fn delete(&self, identity: &str) -> Result<bool> {
        let path = self.path(identity);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::storage(
                format!("cannot delete {}", path.display()),
                e,
            )),
        }
    }
}

/// Creates `dir` (and its parents) if needed, with mode 0700 for the directories created.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::storage(format!("cannot create {}", dir.display()), e))
}

/// `2026-03-21T10:11:12.000Z` for Unix seconds `secs` (JavaScript's `Date.toJSON`).
fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sealkit_crypto::KeyType;

    #[test]
    fn dates_are_javascript_iso_strings() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_801_646), "2026-11-27T17:47:26.000Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.000Z");
    }

    #[test]
    fn store_load_delete_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().join("keys"));
        assert!(store.load("alice").unwrap().is_none());
        let key = PrivateKey::generate(KeyType::Ed25519, &mut rand_core::OsRng);
        store.store("alice", &key, 1_795_801_646).unwrap();
        let path = store.path("alice");
        // virgil-sdk's FileSystemStorageAdapter name: hex SHA-256 of "alice".
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(dir.path().join("keys"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(r#"{"name":"alice","value":"MC4CAQAwBQYDK2VwBCIEI"#));
        assert!(text.ends_with(r#""creationDate":"2026-11-27T17:47:26.000Z","modificationDate":"2026-11-27T17:47:26.000Z"}"#));
        let loaded = store.load("alice").unwrap().unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        assert!(matches!(
            store.store("alice", &key, 0),
            Err(Error::PrivateKeyAlreadyExists)
        ));
        assert!(store.delete("alice").unwrap());
        assert!(!store.delete("alice").unwrap());
        assert!(store.load("alice").unwrap().is_none());
    }

    #[test]
    fn corrupt_and_foreign_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().to_owned());
        let key = PrivateKey::generate(KeyType::Ed25519, &mut rand_core::OsRng);
        store.store("bob", &key, 0).unwrap();
        std::fs::copy(store.path("bob"), store.path("alice")).unwrap();
        let err = store.load("alice").unwrap_err().to_string();
        assert!(err.contains("holds the key of \"bob\""), "{err}");
        std::fs::write(store.path("carol"), b"\x00garbage").unwrap();
        let err = store.load("carol").unwrap_err().to_string();
        assert!(err.contains("is not a key entry"), "{err}");
        std::fs::write(store.path("dave"), br#"{"name":"dave","value":"AAAA"}"#).unwrap();
        let err = store.load("dave").unwrap_err().to_string();
        assert!(err.contains("does not hold a usable private key"), "{err}");
        // An entry written by e3kit-node (no dates, pretty much anything else ignored).
        let js = format!(
            r#"{{"name":"erin","value":"{}","meta":{{"x":1}}}}"#,
            key.to_base64().as_str()
        );
        std::fs::write(store.path("erin"), js).unwrap();
        assert!(store.load("erin").unwrap().is_some());
    }
}
