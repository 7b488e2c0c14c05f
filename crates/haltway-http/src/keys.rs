//! API keys: each maps to a tenant; only a SHA-256 hash is stored, compared in constant time.
//!
//! A key reads `hw_<id>_<secret>`: the id (12 hex digits) finds the record without scanning,
//! the secret (64 hex digits, 256 random bits) is what proves possession. The stored hash
//! covers the whole key. Random 256-bit secrets need no slow password hash: a fast hash of a
//! key that cannot be guessed cannot be reversed either.
//!
//! [`Keys::open`] keeps the records in a JSON file (mode 0600 on Unix), rewritten whole through
//! a temporary file, `fsync` and `rename`, so a crash leaves the old file or the new one. A key
//! id missing from memory makes the file be read again if it changed, so keys created by
//! another process sharing the file (`haltway keys create` on one node of several) work
//! without a restart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use haltway_core::TenantId;
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const FORMAT: u32 = 1;

/// An API key as stored: never the key itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The public id (the `<id>` part of the key).
    pub id: String,
    /// The tenant every request with this key acts as.
    pub tenant: TenantId,
    /// A label for people; also recorded as who requested a cancel.
    pub name: String,
    /// Admin keys may also manage keys and read `/metrics`.
    pub admin: bool,
    /// Creation time, milliseconds since the UNIX epoch.
    pub created_at: i64,
    /// Hex SHA-256 of the whole key.
    hash: String,
}

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a key file of this version.
    #[error("key file {path} is not readable as a haltway key file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A field of a new key is not acceptable.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct FileForm {
    format: u32,
    keys: Vec<KeyRecord>,
}

#[derive(Debug, Default)]
struct State {
    by_id: BTreeMap<String, KeyRecord>,
    modified: Option<SystemTime>,
}

/// The set of API keys of a server.
#[derive(Debug)]
pub struct Keys {
    file: Option<PathBuf>,
    state: Mutex<State>,
}

impl Keys {
    /// Keys held in memory only (for tests and embedders that bring their own storage).
    #[must_use]
    pub fn in_memory() -> Self {
        Keys {
            file: None,
            state: Mutex::new(State::default()),
        }
    }

    /// Keys kept in `path`; a missing file is an empty set, created on the first new key.
    ///
    /// # Errors
    /// [`KeyError`] when the file cannot be read or is not a key file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let keys = Keys {
            file: Some(path.as_ref().to_owned()),
            state: Mutex::new(State::default()),
        };
        {
            let mut state = keys.state.lock();
            keys.reload(&mut state)?;
        }
        Ok(keys)
    }

    /// The file, if the keys are kept in one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// `true` when no key exists.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.state.lock().by_id.is_empty()
    }

    /// Creates a key; returns its record and the key itself, which is not kept and cannot be
    /// shown again.
    ///
    /// # Errors
    /// [`KeyError::Invalid`] for an empty or over-long tenant or name; [`KeyError::Io`] when
    /// the file cannot be written (the key is then not created).
    pub fn create(
        &self,
        tenant: &TenantId,
        name: &str,
        admin: bool,
        now_ms: i64,
    ) -> Result<(KeyRecord, String), KeyError> {
        check_label("tenant", tenant.as_str())?;
        check_label("name", name)?;
        let mut state = self.state.lock();
        self.reload(&mut state)?;
        let mut rng = rand::rng();
        let id = loop {
            let id = hex(&rng.next_u64().to_be_bytes()[2..]);
            if !state.by_id.contains_key(&id) {
                break id;
            }
        };
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let key = format!("hw_{id}_{}", hex(&secret));
        let record = KeyRecord {
            id: id.clone(),
            tenant: tenant.clone(),
            name: name.to_owned(),
            admin,
            created_at: now_ms,
            hash: hex(&Sha256::digest(key.as_bytes())),
        };
        let mut next = state.by_id.clone();
        next.insert(id, record.clone());
        self.persist(&mut state, next)?;
        Ok((record, key))
    }

    /// The keys of `tenant`, or of every tenant, ordered by id.
    #[must_use]
    pub fn list(&self, tenant: Option<&TenantId>) -> Vec<KeyRecord> {
        let mut state = self.state.lock();
        if let Err(e) = self.reload(&mut state) {
            tracing::warn!(error = %e, "key file not re-read; listing the keys in memory");
        }
        state
            .by_id
            .values()
            .filter(|k| tenant.is_none_or(|t| &k.tenant == t))
            .cloned()
            .collect()
    }

    /// Deletes a key; `false` when no key has that id.
    ///
    /// # Errors
    /// [`KeyError::Io`] when the file cannot be written (the key then stays).
    pub fn revoke(&self, id: &str) -> Result<bool, KeyError> {
        let mut state = self.state.lock();
        self.reload(&mut state)?;
        if !state.by_id.contains_key(id) {
            return Ok(false);
        }
        let mut next = state.by_id.clone();
        next.remove(id);
        self.persist(&mut state, next)?;
        Ok(true)
    }

    /// The record of a presented key, if it is a valid key.
    #[must_use]
    pub fn verify(&self, presented: &str) -> Option<KeyRecord> {
        let id = presented.strip_prefix("hw_")?.split('_').next()?;
        if id.len() != 12 {
            return None;
        }
        let digest = hex(&Sha256::digest(presented.as_bytes()));
        let mut state = self.state.lock();
        if !state.by_id.contains_key(id) {
            // Maybe created by another process since the last read.
            if let Err(e) = self.reload(&mut state) {
                tracing::warn!(error = %e, "key file not re-read");
            }
        }
        let record = state.by_id.get(id)?;
        constant_time_eq(record.hash.as_bytes(), digest.as_bytes()).then(|| record.clone())
    }

    /// Reads the file again if it changed since the last read.
    fn reload(&self, state: &mut State) -> Result<(), KeyError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        let modified = match std::fs::metadata(path) {
            Ok(m) => m.modified().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                state.by_id.clear();
                state.modified = None;
                return Ok(());
            }
            Err(e) => return Err(io(e)),
        };
        if modified.is_some() && modified == state.modified {
            return Ok(());
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let form: FileForm = serde_json::from_str(&text).map_err(|e| KeyError::Format {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if form.format != FORMAT {
            return Err(KeyError::Format {
                path: path.clone(),
                reason: format!("format {} (this version reads {FORMAT})", form.format),
            });
        }
        state.by_id = form.keys.into_iter().map(|k| (k.id.clone(), k)).collect();
        state.modified = modified;
        Ok(())
    }

    /// Writes `next` durably (temporary file, fsync, rename, fsync of the folder), then
    /// installs it in memory.
    fn persist(
        &self,
        state: &mut State,
        next: BTreeMap<String, KeyRecord>,
    ) -> Result<(), KeyError> {
        if let Some(path) = &self.file {
            let io = |source| KeyError::Io {
                path: path.clone(),
                source,
            };
            let form = FileForm {
                format: FORMAT,
                keys: next.values().cloned().collect(),
            };
            let text = serde_json::to_string_pretty(&form).map_err(|e| KeyError::Format {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let tmp = path.with_extension("tmp");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options.open(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            drop(f);
            std::fs::rename(&tmp, path).map_err(io)?;
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if let Ok(d) = std::fs::File::open(dir) {
                d.sync_all().map_err(io)?;
            }
            state.modified = std::fs::metadata(path).ok().and_then(|m| m.modified().ok());
        }
        state.by_id = next;
        Ok(())
    }
}

/// The key a request presents: `Authorization: Bearer <key>`, or else `X-API-Key: <key>`. An
/// `Authorization` header of another scheme presents no key.
pub fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

pub(crate) fn check_label(field: &'static str, value: &str) -> Result<(), KeyError> {
    if value.is_empty() || value.chars().count() > 128 || value.chars().any(char::is_control) {
        return Err(KeyError::Invalid {
            field,
            reason: "must be 1 to 128 characters, none of them control characters".into(),
        });
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Compares without an early exit, so the time taken does not tell how many bytes matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_verifies_and_a_changed_one_does_not() {
        let keys = Keys::in_memory();
        let (record, key) = keys.create(&"acme".into(), "ci", false, 1).expect("create");
        assert_eq!(keys.verify(&key).expect("valid").id, record.id);
        let mut wrong = key.clone().into_bytes();
        let last = wrong.len() - 1;
        wrong[last] = if wrong[last] == b'0' { b'1' } else { b'0' };
        assert!(
            keys.verify(&String::from_utf8(wrong).expect("ascii"))
                .is_none()
        );
        assert!(keys.verify("hw_short_x").is_none());
        assert!(keys.verify("").is_none());
        assert!(keys.revoke(&record.id).expect("revoke"));
        assert!(keys.verify(&key).is_none(), "revoked key refused");
    }

    #[test]
    fn file_keeps_hashes_only_and_is_shared_between_handles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.json");
        let a = Keys::open(&path).expect("open");
        let b = Keys::open(&path).expect("open again");
        let (_, key) = a.create(&"acme".into(), "ops", true, 1).expect("create");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains(&key), "the key itself is never written");
        assert_eq!(
            b.verify(&key)
                .expect("seen by the other handle")
                .tenant
                .as_str(),
            "acme"
        );
        std::fs::write(&path, "not json").expect("write");
        assert!(matches!(Keys::open(&path), Err(KeyError::Format { .. })));
    }

    #[test]
    fn constant_time_eq_compares_all_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
