//! [`SecretUrl`]: a server URL (Redis, PostgreSQL) that may carry a
//! password. Its `Display` and `Debug` hide the credentials, so a URL can be
//! put in any log line or error message without leaking them; only
//! [`SecretUrl::expose`] gives the raw text, for the driver that connects.

use std::fmt;
use std::str::FromStr;

/// A URL whose user and password never reach a log, an error or an answer.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The raw URL, credentials included: for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The scheme (`redis`, `postgres`, `sqlite`), or the empty string.
    pub fn scheme(&self) -> &str {
        self.0.split_once(':').map_or("", |(scheme, _)| scheme)
    }
}

impl fmt::Display for SecretUrl {
    /// `redis://user:secret@host:6379/0` → `redis://***@host:6379/0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return f.write_str(&self.0);
        };
        // Everything before the last '@' may be credentials (a password may
        // even hold an unescaped '/'): hide all of it.
        match rest.rfind('@') {
            Some(at) => write!(f, "{scheme}://***{}", &rest[at..]),
            None => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({self})")
    }
}

impl FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(text))
    }
}

impl From<&str> for SecretUrl {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for SecretUrl {
    fn from(text: String) -> Self {
        Self(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_display_or_debug() {
        let url = SecretUrl::new("redis://:hunter2@10.0.0.1:6379/0");
        assert_eq!(url.to_string(), "redis://***@10.0.0.1:6379/0");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.expose(), "redis://:hunter2@10.0.0.1:6379/0");
        let postgres = SecretUrl::new("postgres://me:secret@db/spike");
        assert_eq!(postgres.to_string(), "postgres://***@db/spike");
        assert_eq!(postgres.scheme(), "postgres");
    }

    #[test]
    fn urls_without_credentials_are_shown_whole() {
        for plain in [
            "redis://127.0.0.1:6379",
            "sqlite::memory:",
            "sqlite://orders.db",
        ] {
            assert_eq!(SecretUrl::new(plain).to_string(), plain);
        }
        let odd = SecretUrl::new("redis://:pa/ss@host:1");
        assert_eq!(odd.to_string(), "redis://***@host:1");
    }
}
