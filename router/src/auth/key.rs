//! One API key as stored: [`KeyRecord`] (the SHA-256 of the secret, never the secret), and
//! making new secrets (`nfai-` + 43 base62 characters: 256 random bits).

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The prefix of every secret nfai makes.
pub const SECRET_PREFIX: &str = "nfai-";
/// Base62 characters after the prefix: 43 × log2(62) ≈ 256 bits.
const SECRET_CHARS: usize = 43;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A key as it is stored and listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public id, `key-…`: what the admin API, the logs and the owner of files name.
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub sha256: String,
    /// Model names (ids, aliases or route names) the key may use; `None`: every model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Requests per minute; `None`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens (prompt + completion) per minute; `None`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Unix seconds after which the key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Unix seconds.
    pub created_at: u64,
}

impl KeyRecord {
    /// Whether the key is past its expiry at `now` (Unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }
}

/// What a new key may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub rpm: Option<u64>,
    #[serde(default)]
    pub tpm: Option<u64>,
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// A rule a new key breaks, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NewKeyError {
    pub field: &'static str,
    pub message: String,
}

impl NewKey {
    /// Checks the fields: a name of 1..=128 characters, limits of at least 1, a non-empty
    /// model list, an expiry in the future.
    pub fn check(&self, now: u64) -> Result<(), NewKeyError> {
        let bad = |field, message: &str| {
            Err(NewKeyError {
                field,
                message: message.to_string(),
            })
        };
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return bad(
                "name",
                "'name' must be 1 to 128 characters without control characters.",
            );
        }
        if let Some(models) = &self.models
            && (models.is_empty() || models.iter().any(|m| m.trim().is_empty()))
        {
            return bad(
                "models",
                "'models' must list at least one model name, or be left out for every model.",
            );
        }
        if self.rpm == Some(0) {
            return bad("rpm", "'rpm' must be at least 1, or be left out.");
        }
        if self.tpm == Some(0) {
            return bad("tpm", "'tpm' must be at least 1, or be left out.");
        }
        if self.expires_at.is_some_and(|t| t <= now) {
            return bad("expires_at", "'expires_at' must be a future Unix time.");
        }
        Ok(())
    }

    /// The record of this key with a fresh id, and its secret.
    pub fn issue(self, now: u64) -> (KeyRecord, String) {
        let secret = new_secret();
        let record = KeyRecord {
            id: new_id(),
            name: self.name.trim().to_string(),
            sha256: hash_secret(&secret),
            models: self
                .models
                .map(|m| m.into_iter().map(|s| s.trim().to_string()).collect()),
            rpm: self.rpm,
            tpm: self.tpm,
            expires_at: self.expires_at,
            created_at: now,
        };
        (record, secret)
    }
}

fn base62(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
        .collect()
}

/// A new secret: `nfai-` and 43 base62 characters from the OS-seeded CSPRNG.
pub fn new_secret() -> String {
    format!("{SECRET_PREFIX}{}", base62(SECRET_CHARS))
}

/// A new public key id: `key-` and 16 base62 characters.
pub fn new_id() -> String {
    format!("key-{}", base62(16))
}

/// Hex SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_only_their_hash_is_kept() {
        let (r, s) = NewKey {
            name: " crm ".into(),
            ..Default::default()
        }
        .issue(10);
        assert!(s.starts_with("nfai-") && s.len() == 48, "{s}");
        assert!(s[5..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, new_secret());
        assert_eq!(r.sha256, hash_secret(&s));
        assert_eq!(r.sha256.len(), 64);
        assert_eq!(r.name, "crm");
        assert!(!serde_json::to_string(&r).unwrap().contains(&s));
    }

    #[test]
    fn new_keys_are_checked_field_by_field() {
        let ok = NewKey {
            name: "a".into(),
            ..Default::default()
        };
        assert!(ok.check(100).is_ok());
        for (k, field) in [
            (
                NewKey {
                    name: " ".into(),
                    ..ok.clone()
                },
                "name",
            ),
            (
                NewKey {
                    models: Some(vec![]),
                    ..ok.clone()
                },
                "models",
            ),
            (
                NewKey {
                    rpm: Some(0),
                    ..ok.clone()
                },
                "rpm",
            ),
            (
                NewKey {
                    tpm: Some(0),
                    ..ok.clone()
                },
                "tpm",
            ),
            (
                NewKey {
                    expires_at: Some(100),
                    ..ok.clone()
                },
                "expires_at",
            ),
        ] {
            assert_eq!(k.check(100).unwrap_err().field, field);
        }
    }
}
