//! Admission tokens: what a waiting room gives a buyer once their position
//! is admitted, and what `/buy/ticket` asks of a queued sale. A token is
//! `POSITION.EXPIRES_MS.MAC`, the MAC being HMAC-SHA256 over the event, the
//! buyer, the position and the expiry under the key every node of a sale
//! shares (the order-key ring): bound to one buyer and one event, valid
//! until its window ends, and made by any node for any node.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use spike_core::{EventId, UserId};

use crate::keys::{KeyRing, SecretKey};

type HmacSha256 = Hmac<Sha256>;

/// Longest admission token accepted, in bytes.
pub const MAX_ADMISSION_LEN: usize = 128;

/// Why an admission token was refused (the buyer is "not admitted yet").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// No token came with the purchase.
    #[error("this sale has a waiting room: join it (POST /queue/join) and buy with the admission token /queue/status gives you once admitted")]
    Missing,
    /// Not a token of this shape, or not made for this buyer and event.
    #[error("the admission token is not valid for this buyer and event")]
    Invalid,
    /// The admission window passed.
    #[error("the admission expired at {0} (Unix milliseconds)")]
    Expired(u64),
}

/// A verified admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The buyer's position in the waiting room.
    pub position: u64,
    /// When the admission ends (Unix milliseconds).
    pub expires_at_ms: u64,
}

fn mac(
    key: &SecretKey,
    event: &EventId,
    seal: u64,
    user: &UserId,
    admitted: Admitted,
) -> HmacSha256 {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac =
        HmacSha256::new_from_slice(key.expose()).unwrap_or_else(|_| unreachable!("HMAC key"));
    for part in [
        b"spike admission".as_slice(),
        event.as_str().as_bytes(),
        seal.to_string().as_bytes(),
        user.as_str().as_bytes(),
        admitted.position.to_string().as_bytes(),
        admitted.expires_at_ms.to_string().as_bytes(),
    ] {
        mac.update(part);
        mac.update(b"\0");
    }
    mac
}

/// Makes and checks admission tokens.
#[derive(Debug, Clone)]
pub struct AdmissionKeys {
    keys: KeyRing,
}

impl AdmissionKeys {
    /// Admission tokens under `keys`: the first makes them, every one
    /// checks them (so the secret can be rotated).
    pub fn new(keys: KeyRing) -> Self {
        Self { keys }
    }

    /// The token admitting `user` to buy in `event`, in the waiting room
    /// sealed with `seal` (its shuffle's seed): a room reset by a recovery
    /// is sealed anew, and its old tokens admit nobody.
    pub fn mint(&self, event: &EventId, seal: u64, user: &UserId, admitted: Admitted) -> String {
        let tag = mac(self.keys.signing(), event, seal, user, admitted).finalize();
        format!(
            "{}.{}.{}",
            admitted.position,
            admitted.expires_at_ms,
            URL_SAFE_NO_PAD.encode(tag.into_bytes())
        )
    }

    /// What `token` admits `user` to in `event` at `now_ms`, if anything
    /// (the MAC compared in constant time).
    pub fn verify(
        &self,
        event: &EventId,
        seal: u64,
        user: &UserId,
        token: Option<&str>,
        now_ms: u64,
    ) -> Result<Admitted, AdmissionError> {
        let token = token.ok_or(AdmissionError::Missing)?;
        if token.len() > MAX_ADMISSION_LEN {
            return Err(AdmissionError::Invalid);
        }
        let mut parts = token.splitn(3, '.');
        let (Some(position), Some(expires), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(AdmissionError::Invalid);
        };
        let (Ok(position), Ok(expires_at_ms), Ok(tag)) = (
            position.parse(),
            expires.parse(),
            URL_SAFE_NO_PAD.decode(tag),
        ) else {
            return Err(AdmissionError::Invalid);
        };
        let admitted = Admitted {
            position,
            expires_at_ms,
        };
        let genuine = (self.keys.all().iter()).any(|key| {
            mac(key, event, seal, user, admitted)
                .verify_slice(&tag)
                .is_ok()
        });
        if !genuine {
            return Err(AdmissionError::Invalid);
        }
        if now_ms >= expires_at_ms {
            return Err(AdmissionError::Expired(expires_at_ms));
        }
        Ok(admitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> AdmissionKeys {
        AdmissionKeys::new(KeyRing::new(
            SecretKey::new(secret.repeat(32)).unwrap(),
            vec![],
        ))
    }

    #[test]
    fn a_token_admits_its_buyer_in_its_event_until_it_expires() {
        let (event, other_event) = (EventId::parse("G1").unwrap(), EventId::parse("G2").unwrap());
        let (ann, bob) = (UserId::parse("ann").unwrap(), UserId::parse("bob").unwrap());
        let keys = keys("k");
        let admitted = Admitted {
            position: 41,
            expires_at_ms: 10_000,
        };
        let token = keys.mint(&event, 7, &ann, admitted);
        assert!(token.starts_with("41.10000."));
        assert_eq!(
            keys.verify(&event, 7, &ann, Some(&token), 9_999),
            Ok(admitted)
        );
        assert_eq!(
            keys.verify(&event, 8, &ann, Some(&token), 1),
            Err(AdmissionError::Invalid),
            "a room sealed anew (reset by a recovery) honours no old token"
        );
        let refused = |event, user, token: &str, now| keys.verify(event, 7, user, Some(token), now);
        assert_eq!(
            refused(&event, &ann, &token, 10_000),
            Err(AdmissionError::Expired(10_000))
        );
        assert_eq!(
            refused(&event, &bob, &token, 1),
            Err(AdmissionError::Invalid)
        );
        assert_eq!(
            refused(&other_event, &ann, &token, 1),
            Err(AdmissionError::Invalid)
        );
        let earlier = token.replacen("41.", "0.", 1);
        assert_eq!(
            refused(&event, &ann, &earlier, 1),
            Err(AdmissionError::Invalid),
            "a position cannot be edited"
        );
        let longer = token.replacen(".10000.", ".99999.", 1);
        assert_eq!(
            refused(&event, &ann, &longer, 1),
            Err(AdmissionError::Invalid),
            "nor the expiry"
        );
        let forged = self::keys("x").mint(&event, 7, &ann, admitted);
        assert_eq!(
            refused(&event, &ann, &forged, 1),
            Err(AdmissionError::Invalid)
        );
        for junk in ["", "1", "1.2", "a.b.c", "1.2.!!!"] {
            assert_eq!(refused(&event, &ann, junk, 1), Err(AdmissionError::Invalid));
        }
        assert_eq!(
            keys.verify(&event, 7, &ann, None, 1),
            Err(AdmissionError::Missing)
        );
    }
}
