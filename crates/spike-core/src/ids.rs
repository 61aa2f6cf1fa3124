//! Validated identifiers. Each type can only hold a value that is safe to put
//! in a Redis key, a log line and a JSON string without escaping.

use std::fmt;
use std::sync::Arc;

/// Longest accepted identifier, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The value is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which identifier.
        what: &'static str,
    },
    /// The value is longer than [`MAX_ID_LEN`] bytes.
    #[error("{what} is longer than {MAX_ID_LEN} bytes")]
    TooLong {
        /// Which identifier.
        what: &'static str,
    },
    /// The value is not in Unicode Normalization Form C: the same name could
    /// then be spelled in several ways (ids are compared byte by byte).
    #[error("{what} is not in Unicode NFC; normalise it (NFC) before sending it")]
    NotNfc {
        /// Which identifier.
        what: &'static str,
    },
    /// The value contains a character outside the allowed set.
    #[error("{what} contains a forbidden character (allowed: {allowed})")]
    BadChar {
        /// Which identifier.
        what: &'static str,
        /// Human description of the allowed characters.
        allowed: &'static str,
    },
}

fn check(
    value: &str,
    what: &'static str,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { what });
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { what });
    }
    if !value.chars().all(ok) {
        return Err(IdError::BadChar { what, allowed });
    }
    if !unicode_normalization::is_nfc(value) {
        return Err(IdError::NotNfc { what });
    }
    Ok(())
}

/// Unicode's format characters (general category Cf, Unicode 15): invisible
/// characters that change how text is shown without showing themselves —
/// bidi controls such as U+202E, zero-width spaces and joiners, soft hyphens.
/// Two ids differing only by them would look the same.
fn is_format_char(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $allowed:literal, $ok:expr) => {
        $(#[$doc])*
        /// Cheap to clone: the text is shared.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps `value`.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check(&value, $what, $allowed, $ok)?;
                Ok(Self(value.into()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A sale (a train, a concert, a drop): `[A-Za-z0-9_.-]{1,64}`.
    EventId, "event", "A-Z a-z 0-9 _ . -", is_token_char
);
id_type!(
    /// A client-chosen idempotency key for one purchase: `[A-Za-z0-9_.:-]{1,64}`.
    RequestId, "request_id", "A-Z a-z 0-9 _ . : -", |c| is_token_char(c) || c == ':'
);
id_type!(
    /// An order, as assigned by central stock (`<event>-<sequence>`).
    OrderId, "order_id", "A-Z a-z 0-9 _ . -", is_token_char
);
id_type!(
    /// A node's name, reported in the `X-Spike-Node` header and the stat log.
    NodeId, "node id", "A-Z a-z 0-9 _ . -", is_token_char
);
id_type!(
    /// A buyer: printable UTF-8 in NFC, without whitespace, format
    /// characters (bidi controls, zero-width), `,`, `"` or `\`; 1–64 bytes.
    UserId,
    "user_id",
    "printable UTF-8 except whitespace, format characters, , \" \\",
    |c: char| !c.is_control()
        && !c.is_whitespace()
        && !is_format_char(c)
        && !matches!(c, ',' | '"' | '\\')
);

id_type!(
    /// Who gave an operator's control, as the operator names themselves
    /// (the operator key proves the authority; this attributes it):
    /// `[A-Za-z0-9_.@-]{1,64}`.
    OperatorName, "operator", "A-Z a-z 0-9 _ . @ -", |c| is_token_char(c) || c == '@'
);

impl RequestId {
    /// The request id that buys the new ticket of a change of `order`:
    /// the same for every attempt (so a retried change replays, never buys
    /// twice), and short enough for any order id (FNV-1a of it, 64 bits).
    pub fn for_change_of(order: &OrderId) -> Self {
        let hash = (order.as_str().bytes()).fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(format!("change:{hash:016x}").into())
    }
}

impl OrderId {
    /// The order id central stock gives the `sequence`-th order of `event`.
    pub fn for_sequence(event: &EventId, sequence: u64) -> Self {
        Self(format!("{event}-{sequence}").into())
    }

    /// The event and sequence number this id was built from, if it has the
    /// `<event>-<sequence>` shape central stock gives.
    pub fn split(&self) -> Option<(EventId, u64)> {
        let (event, sequence) = self.0.rsplit_once('-')?;
        let sequence = sequence.parse().ok().filter(|&s: &u64| s > 0)?;
        Some((EventId::parse(event).ok()?, sequence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_accept_tokens_and_refuse_the_rest() {
        assert!(EventId::parse("G1234-2026.01_01").is_ok());
        assert_eq!(EventId::parse(""), Err(IdError::Empty { what: "event" }));
        assert!(matches!(
            EventId::parse("a b"),
            Err(IdError::BadChar { .. })
        ));
        assert!(matches!(
            EventId::parse("a{b}"),
            Err(IdError::BadChar { .. })
        ));
        assert!(matches!(
            EventId::parse("x".repeat(65)),
            Err(IdError::TooLong { .. })
        ));
        assert!(EventId::parse("x".repeat(64)).is_ok());
    }

    #[test]
    fn user_ids_allow_unicode_but_not_separators() {
        assert!(UserId::parse("张三@example.com").is_ok());
        for bad in ["a b", "a,b", "a\"b", "a\\b", "a\nb", "\u{7f}"] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} must be refused");
        }
        // 64 bytes of multi-byte characters is the limit, counted in bytes.
        assert!(UserId::parse("é".repeat(32)).is_ok());
        assert!(UserId::parse("é".repeat(33)).is_err());
    }

    #[test]
    fn user_ids_refuse_invisible_characters_and_other_spellings() {
        for hidden in [
            "alice\u{200B}",
            "ali\u{202E}ecila",
            "\u{FEFF}bob",
            "a\u{00AD}b",
            "x\u{2066}y",
        ] {
            assert!(
                matches!(UserId::parse(hidden), Err(IdError::BadChar { .. })),
                "{hidden:?}"
            );
        }
        // "é" as e + combining acute (NFD) is refused; the NFC spelling is taken.
        assert_eq!(
            UserId::parse("cafe\u{301}"),
            Err(IdError::NotNfc { what: "user_id" })
        );
        assert!(UserId::parse("caf\u{e9}").is_ok());
        assert!(UserId::parse("张三").is_ok());
    }

    #[test]
    fn order_ids_are_event_and_sequence() {
        let event = EventId::parse("G1").unwrap();
        assert_eq!(OrderId::for_sequence(&event, 42).as_str(), "G1-42");
        let dashed = EventId::parse("G-1").unwrap();
        assert_eq!(
            OrderId::for_sequence(&dashed, 7).split(),
            Some((dashed.clone(), 7))
        );
        assert_eq!(OrderId::parse("G1").unwrap().split(), None);
        assert_eq!(OrderId::parse("G1-0").unwrap().split(), None);
        assert_eq!(OrderId::parse("G1-x").unwrap().split(), None);
    }
}
