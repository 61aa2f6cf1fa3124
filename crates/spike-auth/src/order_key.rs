//! Order keys, request keys and the operator key. An order key is an
//! unguessable secret per order (HMAC-SHA256 of the order id under a key
//! every node shares), given only to its buyer in the success answer of an
//! open or anonymous sale; holding it is what lets a buyer see or cancel
//! that order. A request key is the same kind of secret for a request id a
//! node made: given only with that id, in the "try again" answer of the
//! purchase it was made for, it proves on a retry that the caller is that
//! purchase's sender. The operator key authenticates the payment service,
//! the only caller that may mark an order paid.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use spike_core::{EventId, OrderId, RequestId};

use crate::keys::{KeyRing, SecretKey};

type HmacSha256 = Hmac<Sha256>;

/// The MAC of `parts` under `key`, for one `purpose` (so that an order key
/// never doubles as a request key).
fn mac(key: &SecretKey, purpose: &[u8], parts: &[&str]) -> HmacSha256 {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac =
        HmacSha256::new_from_slice(key.expose()).unwrap_or_else(|_| unreachable!("HMAC key"));
    mac.update(purpose);
    for part in parts {
        // Ids never hold NUL: it separates the parts unambiguously.
        mac.update(part.as_bytes());
        mac.update(b"\0");
    }
    mac
}

const ORDER_KEY: &[u8] = b"spike order key\0";
const REQUEST_KEY: &[u8] = b"spike request key\0";

/// Makes and checks order keys.
#[derive(Debug, Clone)]
pub struct OrderKeys {
    keys: KeyRing,
}

impl OrderKeys {
    /// Order keys under `keys`: the first makes them, every one checks them
    /// (so the secret can be rotated like token keys).
    pub fn new(keys: KeyRing) -> Self {
        Self { keys }
    }

    /// The key of `order` (43 base64url characters).
    pub fn key_for(&self, order: &OrderId) -> String {
        self.make(ORDER_KEY, &[order.as_str()])
    }

    /// Whether `given` is `order`'s key (compared in constant time).
    pub fn verify(&self, order: &OrderId, given: &str) -> bool {
        self.check(ORDER_KEY, &[order.as_str()], given)
    }

    /// The request key of `request` on `event` (43 base64url characters):
    /// given with a request id a node made, it proves on a retry that the
    /// caller sent that purchase.
    pub fn request_key(&self, event: &EventId, request: &RequestId) -> String {
        self.make(REQUEST_KEY, &[event.as_str(), request.as_str()])
    }

    /// Whether `given` is the request key of `request` on `event`.
    pub fn verify_request(&self, event: &EventId, request: &RequestId, given: &str) -> bool {
        self.check(REQUEST_KEY, &[event.as_str(), request.as_str()], given)
    }

    fn make(&self, purpose: &[u8], parts: &[&str]) -> String {
        URL_SAFE_NO_PAD.encode(
            mac(self.keys.signing(), purpose, parts)
                .finalize()
                .into_bytes(),
        )
    }

    fn check(&self, purpose: &[u8], parts: &[&str], given: &str) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(given) else {
            return false;
        };
        self.keys
            .all()
            .iter()
            .any(|key| mac(key, purpose, parts).verify_slice(&bytes).is_ok())
    }
}

/// The payment service's credential.
#[derive(Debug, Clone)]
pub struct OperatorKey {
    keys: KeyRing,
}

impl OperatorKey {
    /// Accepts any key of `keys` as the operator's bearer token.
    pub fn new(keys: KeyRing) -> Self {
        Self { keys }
    }

    /// Whether `bearer` is an operator key (compared in constant time, by
    /// comparing MACs of both under a fixed key).
    pub fn accepts(&self, bearer: &str) -> bool {
        let digest = |bytes: &[u8]| {
            let mut mac = HmacSha256::new_from_slice(b"spike operator key comparison")
                .unwrap_or_else(|_| unreachable!("HMAC key"));
            mac.update(bytes);
            mac
        };
        self.keys.all().iter().any(|key| {
            let expected = digest(key.expose()).finalize().into_bytes();
            digest(bearer.as_bytes()).verify_slice(&expected).is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(fill: char) -> KeyRing {
        KeyRing::new(SecretKey::new(fill.to_string().repeat(32)).unwrap(), vec![])
    }

    #[test]
    fn an_order_key_opens_its_order_only() {
        let keys = OrderKeys::new(ring('k'));
        let one = OrderId::parse("G1-1").unwrap();
        let two = OrderId::parse("G1-2").unwrap();
        let key = keys.key_for(&one);
        assert_eq!(key.len(), 43);
        assert!(keys.verify(&one, &key));
        assert!(!keys.verify(&two, &key), "a key opens one order");
        assert!(!keys.verify(&one, "not-a-key"));
        assert!(
            !OrderKeys::new(ring('x')).verify(&one, &key),
            "another secret"
        );
    }

    #[test]
    fn a_request_key_proves_one_request_of_one_event_and_opens_no_order() {
        let keys = OrderKeys::new(ring('k'));
        let g1 = EventId::parse("G1").unwrap();
        let g2 = EventId::parse("G2").unwrap();
        let request = RequestId::parse("n1:0123").unwrap();
        let other = RequestId::parse("n1:0124").unwrap();
        let key = keys.request_key(&g1, &request);
        assert!(keys.verify_request(&g1, &request, &key));
        assert!(!keys.verify_request(&g1, &other, &key), "another request");
        assert!(!keys.verify_request(&g2, &request, &key), "another event");
        let order = OrderId::parse("G1-1").unwrap();
        assert!(!keys.verify(&order, &key), "a request key is no order key");
    }

    #[test]
    fn the_operator_key_is_the_key_itself() {
        let operator = OperatorKey::new(ring('o'));
        assert!(operator.accepts(&"o".repeat(32)));
        assert!(!operator.accepts(&"o".repeat(31)));
        assert!(!operator.accepts(""));
    }
}
