//! HS256 JSON Web Tokens: [`TokenVerifier::verify`] accepts a token only if
//! its header says `HS256` (so `alg: none` and every other algorithm are
//! refused), its signature matches one key of the ring, it has an `exp` in
//! the future, its `nbf` (if any) has passed, its `aud` (if any) names the
//! event, and its `sub` is a valid user id. Every refusal says what a client
//! developer should change. [`mint`] makes tokens for operators and tests.
//!
//! Verified tokens are remembered (bounded), so that a buyer's retries in a
//! flash crowd cost one lookup instead of a MAC and two JSON parses; a
//! remembered token is still checked for expiry and audience every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use spike_core::{EventId, IdError, UserId};

use crate::keys::{KeyRing, SecretKey};

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Why a token was refused (answered 401, code -6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token came with the request.
    #[error("a token is required: send Authorization: Bearer <token> (or token= in the query)")]
    Missing,
    /// The token is not three base64url parts of JSON.
    #[error("the token is not a JWT (header.payload.signature, base64url, JSON)")]
    Malformed,
    /// The header names another algorithm than HS256 (including `none`).
    #[error("the token's algorithm {0:?} is not accepted; sign with HS256")]
    Algorithm(String),
    /// No key of the ring made this signature.
    #[error(
        "the token's signature does not match any key; it was forged or signed with another key"
    )]
    BadSignature,
    /// The token has no `exp` claim.
    #[error("the token has no exp claim; tokens must expire")]
    NoExpiry,
    /// The token expired.
    #[error("the token expired at {0} (Unix seconds); get a new one")]
    Expired(u64),
    /// The token is not valid yet.
    #[error("the token is not valid before {0} (Unix seconds)")]
    NotYetValid(u64),
    /// The token's audience does not name this event.
    #[error("the token's aud does not name event {0}")]
    WrongAudience(EventId),
    /// The token's `sub` is missing or not a valid user id.
    #[error("the token's sub is not a valid user id: {0}")]
    BadSubject(String),
    /// A `user_id` came with the token and differs from its `sub`.
    #[error("user_id does not match the token's sub; send the token alone")]
    UserMismatch,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The buyer.
    pub sub: UserId,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

/// Most verified tokens remembered; past it, the memory starts over.
pub const REMEMBERED_TOKENS: usize = 65_536;

/// Most bytes of tokens remembered (the tokens themselves, which are the
/// memory's keys); past it, the memory starts over. With tokens only ever
/// in their one canonical form, filling it takes this many bytes of
/// genuinely signed tokens.
pub const REMEMBERED_BYTES: usize = 16 << 20;

/// A verified token, as remembered.
#[derive(Debug, Clone)]
struct Verified {
    claims: Claims,
    /// Its `aud` claim: `None` when it has none.
    audience: Option<Vec<String>>,
}

/// Verifies tokens against a ring of keys. Its `Debug` shows how many
/// tokens it remembers, never the tokens (they are bearer credentials).
#[derive(Clone)]
pub struct TokenVerifier {
    keys: KeyRing,
    verified: Arc<Mutex<Remembered>>,
}

/// Verified tokens, with the bytes they take.
#[derive(Debug, Default)]
struct Remembered {
    tokens: HashMap<Box<str>, Verified>,
    bytes: usize,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remembered = (self.verified.lock()).map_or(0, |verified| verified.tokens.len());
        f.debug_struct("TokenVerifier")
            .field("keys", &self.keys)
            .field("remembered", &remembered)
            .finish()
    }
}

/// Whether an `aud` claim names `event`.
fn names(audience: &Option<Vec<String>>, event: &EventId) -> bool {
    audience
        .as_ref()
        .is_none_or(|names| names.iter().any(|name| name == event.as_str()))
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A numeric date claim (RFC 7519 allows fractions; they are dropped).
fn numeric_date(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Decodes one part of a token: base64url without padding, in its one
/// canonical form (RFC 7515, section 2): `=` padding, or unused bits set in
/// the last character, make it malformed. So every token has one spelling,
/// and a genuine token cannot be varied into many that all verify.
fn decode_part(part: &str) -> Result<Vec<u8>, TokenError> {
    // base64's URL_SAFE_NO_PAD refuses padding and non-zero trailing bits.
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)
}

fn decode_json(part: &str) -> Result<Value, TokenError> {
    serde_json::from_slice(&decode_part(part)?).map_err(|_| TokenError::Malformed)
}

fn mac(key: &SecretKey) -> HmacSha256 {
    // HMAC takes a key of any length; this cannot fail.
    HmacSha256::new_from_slice(key.expose()).unwrap_or_else(|_| unreachable!("HMAC key"))
}

impl TokenVerifier {
    /// A verifier accepting any key of `keys`.
    pub fn new(keys: KeyRing) -> Self {
        Self {
            keys,
            verified: Arc::default(),
        }
    }

    /// Verifies `token` for a purchase of `event` at `now`.
    pub fn verify(
        &self,
        token: &str,
        event: &EventId,
        now: SystemTime,
    ) -> Result<Claims, TokenError> {
        self.check(token, Some(event), now)
    }

    /// Verifies `token` as proof of who the buyer is, for any sale (its
    /// `aud`, if any, is not checked): listing one's own orders.
    pub fn verify_identity(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        self.check(token, None, now)
    }

    fn check(
        &self,
        token: &str,
        event: Option<&EventId>,
        now: SystemTime,
    ) -> Result<Claims, TokenError> {
        let remembered = {
            let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            verified.tokens.get(token).cloned()
        };
        let verified = match remembered {
            Some(verified) => verified,
            None => {
                let verified = self.verify_signed(token, now)?;
                let mut memory = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                if memory.tokens.len() >= REMEMBERED_TOKENS
                    || memory.bytes + token.len() > REMEMBERED_BYTES
                {
                    memory.tokens.clear();
                    memory.bytes = 0;
                }
                if memory
                    .tokens
                    .insert(token.into(), verified.clone())
                    .is_none()
                {
                    memory.bytes += token.len();
                }
                verified
            }
        };
        if unix_seconds(now) >= verified.claims.exp {
            return Err(TokenError::Expired(verified.claims.exp));
        }
        if let Some(event) = event {
            if !names(&verified.audience, event) {
                return Err(TokenError::WrongAudience(event.clone()));
            }
        }
        Ok(verified.claims)
    }

    /// Everything about a token that does not change with time or sale:
    /// its form, algorithm, signature, subject; and that it expires. Its
    /// `nbf` is checked here against the clock, so a token not valid yet is
    /// never remembered.
    fn verify_signed(&self, token: &str, now: SystemTime) -> Result<Verified, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_json = decode_json(header)?;
        match header_json.get("alg").and_then(Value::as_str) {
            Some("HS256") => {}
            Some(other) => return Err(TokenError::Algorithm(other.to_owned())),
            None => return Err(TokenError::Algorithm(String::new())),
        }
        let signature = decode_part(signature)?;
        let signed = &token[..header.len() + 1 + payload.len()];
        let genuine = self.keys.all().iter().any(|key| {
            let mut check = mac(key);
            check.update(signed.as_bytes());
            check.verify_slice(&signature).is_ok()
        });
        if !genuine {
            return Err(TokenError::BadSignature);
        }
        let claims = decode_json(payload)?;
        let exp = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or(TokenError::NoExpiry)?;
        if let Some(nbf) = claims.get("nbf").and_then(numeric_date) {
            if unix_seconds(now) < nbf {
                return Err(TokenError::NotYetValid(nbf));
            }
        }
        let audience = claims.get("aud").map(|aud| match aud {
            Value::Array(list) => list
                .iter()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect(),
            single => single.as_str().map(str::to_owned).into_iter().collect(),
        });
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| TokenError::BadSubject("sub is missing".into()))?;
        let sub = UserId::parse(sub).map_err(|e: IdError| TokenError::BadSubject(e.to_string()))?;
        Ok(Verified {
            claims: Claims { sub, exp },
            audience,
        })
    }
}

/// Signs a token for `sub`, valid for `ttl` from `now`, for `audience` if given.
pub fn mint(
    key: &SecretKey,
    sub: &UserId,
    now: SystemTime,
    ttl: Duration,
    audience: Option<&EventId>,
) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let issued = unix_seconds(now);
    let mut claims = json!({
        "sub": sub.as_str(),
        "iat": issued,
        "exp": issued.saturating_add(ttl.as_secs()),
    });
    if let Some(event) = audience {
        claims["aud"] = Value::from(event.as_str());
    }
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let mut signer = mac(key);
    signer.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(signer.finalize().into_bytes());
    format!("{signed}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fill: char) -> SecretKey {
        SecretKey::new(fill.to_string().repeat(32)).unwrap()
    }

    fn event() -> EventId {
        EventId::parse("G1").unwrap()
    }

    fn alice() -> UserId {
        UserId::parse("alice").unwrap()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(KeyRing::new(key('a'), vec![key('b')]))
    }

    fn forge(header: &str, claims: &str, key: &SecretKey) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut signer = mac(key);
        signer.update(signed.as_bytes());
        format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(signer.finalize().into_bytes())
        )
    }

    #[test]
    fn a_minted_token_verifies_under_every_key_of_the_ring() {
        let now = SystemTime::now();
        for signer in [key('a'), key('b')] {
            let token = mint(&signer, &alice(), now, HOUR, None);
            let claims = verifier().verify(&token, &event(), now).unwrap();
            assert_eq!(claims.sub, alice());
        }
        let scoped = mint(&key('a'), &alice(), now, HOUR, Some(&event()));
        assert!(verifier().verify(&scoped, &event(), now).is_ok());
        let other = EventId::parse("G2").unwrap();
        assert_eq!(
            verifier().verify(&scoped, &other, now),
            Err(TokenError::WrongAudience(other))
        );
        assert!(verifier().verify_identity(&scoped, now).is_ok());
    }

    #[test]
    fn only_the_canonical_spelling_of_a_token_verifies_and_none_other_is_remembered() {
        let now = SystemTime::now();
        let verifier = verifier();
        let token = mint(&key('a'), &alice(), now, HOUR, None);
        verifier
            .verify(&token, &event(), now)
            .expect("the token itself");
        // Padding on any part, or a last character with unused bits set:
        // the same bytes, spelled otherwise.
        let (head, signature) = token.rsplit_once('.').expect("three parts");
        let last = signature.chars().last().expect("signature");
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.find(last).expect("base64url");
        // 32 bytes are 43 characters: the last one carries 4 bits, 2 unused.
        let twin = alphabet.chars().nth(index | 1).expect("in the alphabet");
        let mut variants = vec![
            format!("{token}="),
            format!("{token}=="),
            format!("{token}==="),
            format!("{head}.{}", signature.replace(last, &twin.to_string())),
        ];
        let (header, rest) = token.split_once('.').expect("three parts");
        variants.push(format!("{header}=.{rest}"));
        for variant in variants {
            if variant == token {
                continue;
            }
            assert_eq!(
                verifier.verify(&variant, &event(), now),
                Err(TokenError::Malformed),
                "{variant}"
            );
        }
        let remembered = verifier.verified.lock().expect("memory");
        assert_eq!(remembered.tokens.len(), 1, "only the genuine spelling");
        assert_eq!(remembered.bytes, token.len());
    }

    #[test]
    fn the_memory_of_verified_tokens_is_bounded_in_bytes() {
        let now = SystemTime::now();
        let verifier = verifier();
        let exp = unix_seconds(now) + 3600;
        let filler = "f".repeat(2_900);
        let mut minted = 0;
        for i in 0..6_000 {
            let claims = format!(r#"{{"sub":"u{i}","exp":{exp},"note":"{filler}"}}"#);
            let token = forge(r#"{"alg":"HS256"}"#, &claims, &key('a'));
            minted += token.len();
            verifier.verify(&token, &event(), now).expect("verifies");
            let remembered = verifier.verified.lock().expect("memory");
            assert!(remembered.bytes <= REMEMBERED_BYTES);
            assert_eq!(
                remembered.bytes,
                remembered.tokens.keys().map(|t| t.len()).sum::<usize>()
            );
        }
        assert!(minted > REMEMBERED_BYTES, "the test goes past the bound");
    }

    #[test]
    fn forged_expired_and_early_tokens_are_refused() {
        let now = SystemTime::now();
        let stranger = mint(&key('z'), &alice(), now, HOUR, None);
        assert_eq!(
            verifier().verify(&stranger, &event(), now),
            Err(TokenError::BadSignature)
        );
        let old = mint(&key('a'), &alice(), now - 2 * HOUR, HOUR, None);
        assert!(matches!(
            verifier().verify(&old, &event(), now),
            Err(TokenError::Expired(_))
        ));
        let exp = unix_seconds(now) + 3600;
        let early = forge(
            r#"{"alg":"HS256"}"#,
            &format!(r#"{{"sub":"alice","exp":{exp},"nbf":{exp}}}"#),
            &key('a'),
        );
        assert!(matches!(
            verifier().verify(&early, &event(), now),
            Err(TokenError::NotYetValid(_))
        ));
        let forever = forge(r#"{"alg":"HS256"}"#, r#"{"sub":"alice"}"#, &key('a'));
        assert_eq!(
            verifier().verify(&forever, &event(), now),
            Err(TokenError::NoExpiry)
        );
    }

    #[test]
    fn a_remembered_token_still_expires_and_keeps_its_audience() {
        let verifier = verifier();
        let now = SystemTime::now();
        let token = mint(&key('a'), &alice(), now, HOUR, Some(&event()));
        assert!(verifier.verify(&token, &event(), now).is_ok());
        assert!(verifier.verify(&token, &event(), now).is_ok(), "remembered");
        let shown = format!("{verifier:?}");
        assert!(shown.contains("remembered: 1"), "{shown}");
        assert!(
            !shown.contains(&token),
            "a remembered token is never printed"
        );
        let other = EventId::parse("G2").unwrap();
        assert_eq!(
            verifier.verify(&token, &other, now),
            Err(TokenError::WrongAudience(other))
        );
        assert!(matches!(
            verifier.verify(&token, &event(), now + 2 * HOUR),
            Err(TokenError::Expired(_))
        ));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let now = SystemTime::now();
        let exp = unix_seconds(now) + 3600;
        let claims = format!(r#"{{"sub":"alice","exp":{exp}}}"#);
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(&claims)
        );
        assert_eq!(
            verifier().verify(&none, &event(), now),
            Err(TokenError::Algorithm("none".into()))
        );
        let hs512 = forge(r#"{"alg":"HS512"}"#, &claims, &key('a'));
        assert_eq!(
            verifier().verify(&hs512, &event(), now),
            Err(TokenError::Algorithm("HS512".into()))
        );
    }

    #[test]
    fn garbage_and_bad_subjects_are_refused_with_a_reason() {
        let now = SystemTime::now();
        for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"x".repeat(5000)] {
            assert_eq!(
                verifier().verify(garbage, &event(), now),
                Err(TokenError::Malformed),
                "{garbage:.20}"
            );
        }
        let exp = unix_seconds(now) + 3600;
        let bidi = forge(
            r#"{"alg":"HS256"}"#,
            &format!(r#"{{"sub":"al ice","exp":{exp}}}"#),
            &key('a'),
        );
        assert!(matches!(
            verifier().verify(&bidi, &event(), now),
            Err(TokenError::BadSubject(_))
        ));
    }
}
