//! The key that seals signing secrets before a store keeps them, so that a dump of the
//! database alone does not reveal them, and from which each tenant's secret for per-job
//! webhooks is derived.
//!
//! A sealed secret is `v1.<base64 of nonce ‖ ChaCha20-Poly1305 ciphertext>`, its subscription id
//! as associated data (a sealed secret copied onto another subscription does not open).

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::Secret;

const PREFIX: &str = "hwkey_";

/// The sealing key: 32 random bytes, written `hwkey_<base64>`. Its `Debug` form hides it.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

/// Why a key or a sealed secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Not `hwkey_` followed by the base64 of 32 bytes.
    #[error("a webhook key is `hwkey_` followed by the base64 of 32 bytes")]
    BadKey,
    /// The sealed text is malformed, or was sealed with another key or for another id.
    #[error("a sealed webhook secret does not open with this key (was the key changed?)")]
    Open,
    /// Reading or writing the key file failed.
    #[error("webhook key file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(…)")
    }
}

impl SealKey {
    /// A new random key.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = [0; 32];
        rand::rng().fill_bytes(&mut bytes);
        SealKey(bytes)
    }

    /// Reads a key's text form.
    ///
    /// # Errors
    /// [`SealError::BadKey`].
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let bytes = text
            .trim()
            .strip_prefix(PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .ok_or(SealError::BadKey)?;
        Ok(SealKey(bytes.try_into().map_err(|_| SealError::BadKey)?))
    }

    /// The text form, for a key file or an environment variable.
    #[must_use]
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", B64.encode(self.0))
    }

    /// Reads the key in `path`, or creates the file with a new key (readable by its owner
    /// only) when it does not exist.
    ///
    /// # Errors
    /// [`SealError::File`] when the file cannot be read or written, [`SealError::BadKey`] when
    /// it holds something else.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let file_err = |e: std::io::Error| SealError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt as _;
                    options.mode(0o600);
                }
                let mut file = options.open(path).map_err(file_err)?;
                std::io::Write::write_all(&mut file, format!("{}\n", key.expose()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(file_err)?;
                Ok(key)
            }
            Err(e) => Err(file_err(e)),
        }
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new((&self.0).into())
    }

    /// Seals `secret` for subscription `id`.
    #[must_use]
    pub fn seal(&self, id: &str, secret: &Secret) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let plain = secret.expose();
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: id.as_bytes(),
        };
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_else(|_| unreachable!("encrypting a short message cannot fail"));
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("v1.{}", B64.encode(out))
    }

    /// Opens a secret sealed for subscription `id`.
    ///
    /// # Errors
    /// [`SealError::Open`] for text this key did not seal for that id.
    pub fn open(&self, id: &str, sealed: &str) -> Result<Secret, SealError> {
        let bytes = sealed
            .strip_prefix("v1.")
            .and_then(|b| B64.decode(b).ok())
            .filter(|b| b.len() > 12)
            .ok_or(SealError::Open)?;
        let (nonce, ct) = bytes.split_at(12);
        let plain = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)?;
        let text = String::from_utf8(plain).map_err(|_| SealError::Open)?;
        Secret::parse(&text).map_err(|_| SealError::Open)
    }

    /// The secret that signs the per-job webhooks of `tenant`: derived from this key (HMAC-SHA256
    /// of the tenant's name), so it is stored nowhere and the same on every node.
    #[must_use]
    pub fn job_secret(&self, tenant: &str) -> Secret {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("any key length"));
        m.update(b"haltway job webhooks\0");
        m.update(tenant.as_bytes());
        Secret::from_bytes(m.finalize().into_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_id() {
        let key = SealKey::generate();
        let secret = Secret::generate();
        let sealed = key.seal("wh_1", &secret);
        assert!(!sealed.contains(&secret.expose()), "not in clear");
        assert_eq!(key.open("wh_1", &sealed), Ok(secret));
        assert_eq!(key.open("wh_2", &sealed), Err(SealError::Open));
        assert_eq!(
            SealKey::generate().open("wh_1", &sealed),
            Err(SealError::Open)
        );
        assert_eq!(key.open("wh_1", "v1.AAAA"), Err(SealError::Open));
        assert_eq!(SealKey::parse(&key.expose()).map(|k| k.0), Ok(key.0));
        assert_eq!(SealKey::parse("hwkey_AAAA").err(), Some(SealError::BadKey));
        assert_eq!(key.job_secret("acme"), key.job_secret("acme"));
        assert_ne!(key.job_secret("acme"), key.job_secret("other"));
    }

    #[test]
    fn a_key_file_is_created_once_then_read() {
        let dir = std::env::temp_dir().join(format!("hwkey-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let made = SealKey::load_or_create(&dir).expect("create");
        let read = SealKey::load_or_create(&dir).expect("read");
        assert_eq!(made.0, read.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&dir).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "owner only");
        }
        let _ = std::fs::remove_file(&dir);
    }
}
