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
//! With the `os-keyring` feature and [`crate::KeyStorage::OsKeyring`], the same JSON entry is
//! kept in the operating system's keyring instead (service name chosen by the app, account =
//! identity), so a key can be moved between the two by re-storing it.
//!
//! These functions do blocking I/O; the SDK calls them on the blocking thread pool.

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

/// Where the private keys of one [`crate::EThree`] live.
#[derive(Clone, Debug)]
pub(crate) struct KeyStore {
    dir: PathBuf,
    #[cfg(feature = "os-keyring")]
    keyring: Option<keyring_store::Keyring>,
}

impl KeyStore {
    /// Key files in `dir`.
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            #[cfg(feature = "os-keyring")]
            keyring: None,
        }
    }

    /// The key store `storage` selects, files in `dir` by default.
    pub(crate) fn for_storage(dir: PathBuf, storage: &crate::options::KeyStorage) -> Self {
        match storage {
            crate::options::KeyStorage::Files => Self::new(dir),
            #[cfg(feature = "os-keyring")]
            other => Self {
                dir,
                keyring: keyring_store::Keyring::from_storage(other),
            },
        }
    }

    /// Where `identity`'s key is, for messages.
    fn location(&self, identity: &str) -> String {
        #[cfg(feature = "os-keyring")]
        if let Some(keyring) = &self.keyring {
            return keyring.describe(identity);
        }
        self.path(identity).display().to_string()
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

    /// Loads `identity`'s key; `None` when there is none.
    pub(crate) fn load(&self, identity: &str) -> Result<Option<PrivateKey>> {
        #[cfg(feature = "os-keyring")]
        if let Some(keyring) = &self.keyring {
            return match keyring.get(identity)? {
                Some(bytes) => self.parse(identity, &bytes).map(Some),
                None => Ok(None),
            };
        }
        let path = self.path(identity);
        let bytes = match std::fs::read(&path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::storage(format!("cannot read {}", path.display()), e)),
        };
        self.parse(identity, &bytes).map(Some)
    }

    /// A key entry's JSON, checked to be `identity`'s usable key.
    fn parse(&self, identity: &str, bytes: &[u8]) -> Result<PrivateKey> {
        let path = self.location(identity);
        let entry: KeyEntry = serde_json::from_slice(bytes).map_err(|e| {
            Error::Storage(format!(
                "{path} is not a key entry (JSON with \"name\" and \"value\"): {e}; move it away \
                 (it may be corrupt) and restore the key from a backup"
            ))
        })?;
        if entry.name != identity {
            return Err(Error::Storage(format!(
                "{path} holds the key of {:?}, not of {identity:?}: it was copied or renamed; move \
                 it away",
                entry.name
            )));
        }
        let key = PrivateKey::import(entry.value.as_bytes()).map_err(|e| {
            Error::Storage(format!(
                "{path} does not hold a usable private key ({e}); move it away (it may be \
                 corrupt) and restore the key from a backup"
            ))
        })?;
        Ok(key)
    }

    /// Stores `identity`'s key; an existing file is an error ([`Error::PrivateKeyAlreadyExists`]).
    pub(crate) fn store(&self, identity: &str, key: &PrivateKey, now: i64) -> Result<()> {
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
        #[cfg(feature = "os-keyring")]
        if let Some(keyring) = &self.keyring {
            return keyring.add(identity, &json);
        }
        create_private_dir(&self.dir)?;
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
        #[cfg(feature = "os-keyring")]
        if let Some(keyring) = &self.keyring {
            return keyring.delete(identity);
        }
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

#[cfg(feature = "os-keyring")]
mod keyring_store {
    //! The key entries in the OS keyring (feature `os-keyring`).

    use crate::error::{Error, Result};
    use crate::options::KeyStorage;
    use zeroize::Zeroizing;

    /// A keyring and the service name the entries are filed under.
    #[derive(Clone, Debug)]
    pub(crate) struct Keyring {
        service: String,
        #[cfg(target_os = "linux")]
        kernel_only: bool,
    }

    impl Keyring {
        pub(crate) fn from_storage(storage: &KeyStorage) -> Option<Self> {
            match storage {
                KeyStorage::Files => None,
                KeyStorage::OsKeyring { service } => Some(Self {
                    service: service.clone(),
                    #[cfg(target_os = "linux")]
                    kernel_only: false,
                }),
                #[cfg(target_os = "linux")]
                KeyStorage::LinuxKernelKeyring { service } => Some(Self {
                    service: service.clone(),
                    kernel_only: true,
                }),
            }
        }

        pub(crate) fn describe(&self, identity: &str) -> String {
            format!(
                "the OS keyring entry (service {:?}, account {identity:?})",
                self.service
            )
        }

        fn entry(&self, identity: &str) -> Result<keyring::Entry> {
            #[cfg(target_os = "linux")]
            if self.kernel_only {
                let credential = keyring::keyutils::KeyutilsCredential::new_with_target(
                    None,
                    &self.service,
                    identity,
                )
                .map_err(|e| self.failed(identity, e))?;
                return Ok(keyring::Entry::new_with_credential(Box::new(credential)));
            }
            keyring::Entry::new(&self.service, identity).map_err(|e| self.failed(identity, e))
        }

        fn failed(&self, identity: &str, e: keyring::Error) -> Error {
            let hint = match e {
                keyring::Error::NoStorageAccess(_) | keyring::Error::PlatformFailure(_) => {
                    "; is the keyring service running and unlocked (on Linux: a Secret Service \
                     such as GNOME Keyring or KWallet on the session D-Bus)?"
                }
                _ => "",
            };
            Error::Storage(format!("{}: {e}{hint}", self.describe(identity)))
        }

        pub(crate) fn get(&self, identity: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
            match self.entry(identity)?.get_secret() {
                Ok(secret) => Ok(Some(Zeroizing::new(secret))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(self.failed(identity, e)),
            }
        }

        /// Adds the entry; an existing one is [`Error::PrivateKeyAlreadyExists`], as for files.
        pub(crate) fn add(&self, identity: &str, json: &[u8]) -> Result<()> {
            if self.get(identity)?.is_some() {
                return Err(Error::PrivateKeyAlreadyExists);
            }
            self.entry(identity)?
                .set_secret(json)
                .map_err(|e| self.failed(identity, e))
        }

        pub(crate) fn delete(&self, identity: &str) -> Result<bool> {
            match self.entry(identity)?.delete_credential() {
                Ok(()) => Ok(true),
                Err(keyring::Error::NoEntry) => Ok(false),
                Err(e) => Err(self.failed(identity, e)),
            }
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

    /// The kernel keyring is reachable wherever keyutils is (CI included): the same entry
    /// semantics as files, nothing written to the storage directory.
    #[cfg(all(feature = "os-keyring", target_os = "linux"))]
    #[test]
    fn kernel_keyring_store_load_delete() {
        use crate::options::KeyStorage;
        let dir = tempfile::tempdir().unwrap();
        let service = format!("sealkit-test-{}", std::process::id());
        let store = KeyStore::for_storage(
            dir.path().join("keys"),
            &KeyStorage::LinuxKernelKeyring {
                service: service.clone(),
            },
        );
        let identity = format!(
            "alice-{}",
            rand_core::RngCore::next_u64(&mut rand_core::OsRng)
        );
        assert!(store.load(&identity).unwrap().is_none());
        let key = PrivateKey::generate(KeyType::Ed25519, &mut rand_core::OsRng);
        store.store(&identity, &key, 1_795_801_646).unwrap();
        assert!(
            !dir.path().join("keys").exists(),
            "no key file may be written"
        );
        let loaded = store.load(&identity).unwrap().unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        assert!(matches!(
            store.store(&identity, &key, 0),
            Err(Error::PrivateKeyAlreadyExists)
        ));
        // Another service name is another keyring namespace.
        let other = KeyStore::for_storage(
            dir.path().join("keys"),
            &KeyStorage::LinuxKernelKeyring {
                service: format!("{service}-other"),
            },
        );
        assert!(other.load(&identity).unwrap().is_none());
        assert!(store.delete(&identity).unwrap());
        assert!(!store.delete(&identity).unwrap());
        assert!(store.load(&identity).unwrap().is_none());
    }

    /// Without a Secret Service on the session bus (as on this CI machine), the OS keyring
    /// gives a storage error that says what is missing, never a panic or a silent file.
    #[cfg(all(feature = "os-keyring", target_os = "linux"))]
    #[test]
    fn os_keyring_without_secret_service_is_a_clear_error() {
        use crate::options::KeyStorage;
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
            return; // a desktop session: the keyring may well work
        }
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::for_storage(
            dir.path().join("keys"),
            &KeyStorage::OsKeyring {
                service: "sealkit-test".to_owned(),
            },
        );
        let key = PrivateKey::generate(KeyType::Ed25519, &mut rand_core::OsRng);
        let err = store.store("alice", &key, 0).unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err}");
        assert!(err.to_string().contains("OS keyring"), "{err}");
        assert!(!dir.path().join("keys").exists());
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
