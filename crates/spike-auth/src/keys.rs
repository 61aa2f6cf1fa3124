//! Secret keys and key files. A key file holds one key per line (several
//! lines: the keys being rotated; blank lines and `#` comments are
//! ignored). A key is its line's bytes, at least [`MIN_KEY_BYTES`] long, as
//! RFC 7518 asks of HS256 keys. A key never appears in `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};

/// Shortest accepted key: HS256 wants a key at least as long as its hash.
pub const MIN_KEY_BYTES: usize = 32;

/// One secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    /// A key from its bytes; refused when shorter than [`MIN_KEY_BYTES`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort { line: None });
        }
        Ok(Self(bytes))
    }

    /// The key's bytes, for the MAC only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({} bytes)", self.0.len())
    }
}

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no key.
    #[error("key file {0} holds no key (one key per line)")]
    Empty(PathBuf),
    /// A key is too short (its line, when read from a file).
    #[error("a key{} is shorter than {MIN_KEY_BYTES} bytes", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    TooShort {
        /// The line of the key file.
        line: Option<usize>,
    },
}

/// The keys a verifier accepts: the first signs, all verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    keys: Vec<SecretKey>,
}

impl KeyRing {
    /// A ring of `first` and then `others`.
    pub fn new(first: SecretKey, others: Vec<SecretKey>) -> Self {
        let mut keys = vec![first];
        keys.extend(others);
        Self { keys }
    }

    /// Reads a key file.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = SecretKey::new(line.as_bytes()).map_err(|_| KeyError::TooShort {
                line: Some(index + 1),
            })?;
            keys.push(key);
        }
        let mut keys = keys.into_iter();
        match keys.next() {
            Some(first) => Ok(Self::new(first, keys.collect())),
            None => Err(KeyError::Empty(path.to_owned())),
        }
    }

    /// The key that signs (the file's first).
    pub fn signing(&self) -> &SecretKey {
        &self.keys[0]
    }

    /// Every key, signing key first.
    pub fn all(&self) -> &[SecretKey] {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("spike-keys-{}-{}", std::process::id(), text.len()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_file_holds_keys_for_rotation() {
        let a = "a".repeat(32);
        let b = "b".repeat(40);
        let path = file(&format!("# current\n{a}\n\n{b}\n"));
        let ring = KeyRing::from_file(&path).unwrap();
        assert_eq!(ring.all().len(), 2);
        assert_eq!(ring.signing().expose(), a.as_bytes());
        assert!(!format!("{ring:?}").contains('a'));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn short_or_missing_keys_are_refused() {
        let path = file("short\n");
        let error = KeyRing::from_file(&path).unwrap_err();
        assert_eq!(error.to_string(), "a key (line 1) is shorter than 32 bytes");
        let _ = std::fs::remove_file(path);
        let empty = file("# nothing\n\n");
        assert!(matches!(
            KeyRing::from_file(&empty),
            Err(KeyError::Empty(_))
        ));
        let _ = std::fs::remove_file(empty);
    }
}
