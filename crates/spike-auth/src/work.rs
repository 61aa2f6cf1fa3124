//! Proof of work on joining a waiting room (`spike node --join-work BITS`):
//! a join must carry work that costs its sender about `2^BITS` SHA-256
//! hashes, so that a bot joining with many accounts pays for each one,
//! while a node checks it with one hash and one MAC.
//!
//! A node hands a buyer a *challenge*, `ISSUED_MS.MAC`: the MAC
//! (HMAC-SHA256 under the key every node of a sale shares, the order-key
//! ring, cut to 16 bytes, base64url) binds it to the event, the buyer, the
//! difficulty and the moment it was issued, so it is any node's, for one
//! buyer of one event, for [`WORK_TTL`]. The buyer finds a `NONCE` (a
//! decimal number) such that SHA-256 of the text `ISSUED_MS.MAC.NONCE` starts
//! with `BITS` zero bits, and joins with that text as `work`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use spike_core::{EventId, UserId};

use crate::keys::{KeyRing, SecretKey};

type HmacSha256 = Hmac<Sha256>;

/// How long a challenge may be solved and used.
pub const WORK_TTL: Duration = Duration::from_secs(5 * 60);

/// The most zero bits a node may ask for (2^32 hashes is hours in a page).
pub const MAX_WORK_BITS: u8 = 32;

/// Longest work text accepted, in bytes.
pub const MAX_WORK_LEN: usize = 96;

/// The MAC's length in a challenge, in bytes (before base64url).
const MAC_BYTES: usize = 16;

/// Why a join's work was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    /// The join carried no work.
    #[error("this waiting room asks for proof of work: solve data.challenge and join again with work=CHALLENGE.NONCE")]
    Missing,
    /// Not work of this shape, or on a challenge not made for this buyer
    /// and event.
    #[error(
        "the work is not on a challenge given to this buyer for this event: solve data.challenge"
    )]
    Invalid,
    /// The challenge is older than [`WORK_TTL`].
    #[error("the challenge expired: solve data.challenge")]
    Expired,
    /// The hash does not start with enough zero bits.
    #[error("the work does not have {0} leading zero bits: keep solving")]
    TooLittle(u8),
    /// A difficulty of 0 or above [`MAX_WORK_BITS`].
    #[error("join work must be 1-{MAX_WORK_BITS} bits")]
    BadBits,
}

/// A challenge as a buyer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `ISSUED_MS.MAC`: what the work extends.
    pub text: String,
    /// Leading zero bits the work's hash needs.
    pub bits: u8,
    /// When it can no longer be used (Unix milliseconds).
    pub expires_at_ms: u64,
}

/// Makes challenges and checks work, for one difficulty.
#[derive(Debug, Clone)]
pub struct JoinWork {
    keys: KeyRing,
    bits: u8,
}

impl JoinWork {
    /// Work of `bits` zero bits, with challenges under `keys` (the first
    /// makes them, every one checks them).
    pub fn new(keys: KeyRing, bits: u8) -> Result<Self, WorkError> {
        if bits == 0 || bits > MAX_WORK_BITS {
            return Err(WorkError::BadBits);
        }
        Ok(Self { keys, bits })
    }

    /// The zero bits asked for.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// A challenge for `user` of `event`, issued at `now_ms`.
    pub fn challenge(&self, event: &EventId, user: &UserId, now_ms: u64) -> Challenge {
        let tag = self.tag(self.keys.signing(), event, user, now_ms);
        Challenge {
            text: format!("{now_ms}.{}", URL_SAFE_NO_PAD.encode(tag)),
            bits: self.bits,
            expires_at_ms: now_ms.saturating_add(ttl_ms()),
        }
    }

    /// Checks `work` of `user` for `event` at `now_ms`: one MAC and one
    /// hash.
    pub fn verify(
        &self,
        event: &EventId,
        user: &UserId,
        work: Option<&str>,
        now_ms: u64,
    ) -> Result<(), WorkError> {
        let work = work.ok_or(WorkError::Missing)?;
        if work.len() > MAX_WORK_LEN {
            return Err(WorkError::Invalid);
        }
        let mut parts = work.splitn(3, '.');
        let (Some(issued), Some(tag), Some(nonce)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(WorkError::Invalid);
        };
        let issued_ms: u64 = issued.parse().map_err(|_| WorkError::Invalid)?;
        if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_digit()) {
            return Err(WorkError::Invalid);
        }
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| WorkError::Invalid)?;
        let ours = (self.keys.all().iter())
            .any(|key| constant_time_eq(&self.tag(key, event, user, issued_ms), &tag));
        if !ours {
            return Err(WorkError::Invalid);
        }
        if now_ms > issued_ms.saturating_add(ttl_ms()) {
            return Err(WorkError::Expired);
        }
        if leading_zero_bits(&Sha256::digest(work.as_bytes())) < u32::from(self.bits) {
            return Err(WorkError::TooLittle(self.bits));
        }
        Ok(())
    }

    fn tag(&self, key: &SecretKey, event: &EventId, user: &UserId, issued_ms: u64) -> Vec<u8> {
        // HMAC takes a key of any length; this cannot fail.
        let mut mac =
            HmacSha256::new_from_slice(key.expose()).unwrap_or_else(|_| unreachable!("HMAC key"));
        for part in [
            b"spike join work".as_slice(),
            event.as_str().as_bytes(),
            user.as_str().as_bytes(),
            &[self.bits],
            issued_ms.to_string().as_bytes(),
        ] {
            mac.update(part);
            mac.update(b"\0");
        }
        let mut tag = mac.finalize().into_bytes().to_vec();
        tag.truncate(MAC_BYTES);
        tag
    }
}

fn ttl_ms() -> u64 {
    u64::try_from(WORK_TTL.as_millis()).unwrap_or(u64::MAX)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// How many zero bits `digest` starts with.
pub fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut zeros = 0;
    for byte in digest {
        if *byte != 0 {
            return zeros + byte.leading_zeros();
        }
        zeros += 8;
    }
    zeros
}

/// Solves `challenge`: the work text (`challenge.NONCE`) whose hash starts
/// with `bits` zero bits, and how many hashes it took. What the waiting
/// room's page does in JavaScript; here for tests, tools and benchmarks.
pub fn solve(challenge: &str, bits: u8) -> (String, u64) {
    let mut nonce: u64 = 0;
    loop {
        let work = format!("{challenge}.{nonce}");
        if leading_zero_bits(&Sha256::digest(work.as_bytes())) >= u32::from(bits) {
            return (work, nonce + 1);
        }
        nonce += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(bits: u8) -> JoinWork {
        let ring = KeyRing::new(SecretKey::new(vec![7; 32]).unwrap(), Vec::new());
        JoinWork::new(ring, bits).unwrap()
    }

    fn ids() -> (EventId, UserId) {
        (EventId::parse("G1").unwrap(), UserId::parse("ann").unwrap())
    }

    #[test]
    fn solved_work_is_accepted_for_its_buyer_and_event_only() {
        let (event, ann) = ids();
        let work_of = work(8);
        let challenge = work_of.challenge(&event, &ann, 1_000);
        assert_eq!(challenge.expires_at_ms, 1_000 + 300_000);
        let (solved, _) = solve(&challenge.text, 8);
        assert_eq!(work_of.verify(&event, &ann, Some(&solved), 2_000), Ok(()));
        let bob = UserId::parse("bob").unwrap();
        assert_eq!(
            work_of.verify(&event, &bob, Some(&solved), 2_000),
            Err(WorkError::Invalid)
        );
        let g2 = EventId::parse("G2").unwrap();
        assert_eq!(
            work_of.verify(&g2, &ann, Some(&solved), 2_000),
            Err(WorkError::Invalid)
        );
        assert_eq!(
            work_of.verify(&event, &ann, Some(&solved), 1_000 + 300_001),
            Err(WorkError::Expired)
        );
        assert_eq!(
            work(9).verify(&event, &ann, Some(&solved), 2_000),
            Err(WorkError::Invalid),
            "a challenge is bound to its difficulty"
        );
    }

    #[test]
    fn unsolved_missing_and_malformed_work_is_refused() {
        let (event, ann) = ids();
        let work_of = work(16);
        let challenge = work_of.challenge(&event, &ann, 0);
        let unsolved = (0..)
            .map(|nonce| format!("{}.{nonce}", challenge.text))
            .find(|w| leading_zero_bits(&Sha256::digest(w.as_bytes())) < 16)
            .unwrap();
        assert_eq!(
            work_of.verify(&event, &ann, Some(&unsolved), 1),
            Err(WorkError::TooLittle(16))
        );
        assert_eq!(
            work_of.verify(&event, &ann, None, 1),
            Err(WorkError::Missing)
        );
        for bad in [
            "",
            "1.2",
            "x.y.1",
            "0.AAAA.1",
            &format!("{}.-1", challenge.text),
            &"9".repeat(200),
        ] {
            assert_eq!(
                work_of.verify(&event, &ann, Some(bad), 1),
                Err(WorkError::Invalid),
                "{bad:?}"
            );
        }
        assert_eq!(
            JoinWork::new(work_of.keys.clone(), 0).err(),
            Some(WorkError::BadBits)
        );
        assert_eq!(
            JoinWork::new(work_of.keys, 33).err(),
            Some(WorkError::BadBits)
        );
    }

    #[test]
    fn zero_bits_are_counted_across_bytes() {
        assert_eq!(leading_zero_bits(&[0, 0, 0b0001_0000]), 19);
        assert_eq!(leading_zero_bits(&[0xff]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }
}
