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
use spike_core::{EventId, OrderId, RequestId, SaleLife};

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

    /// The key of `order` in the sale's `life` (43 base64url characters):
    /// bound to the life, so that after `sale create --force` (a new life,
    /// whose order ids start over) an old key opens nothing.
    pub fn key_for(&self, life: SaleLife, order: &OrderId) -> String {
        self.make(ORDER_KEY, &[&life.get().to_string(), order.as_str()])
    }

    /// Whether `given` is `order`'s key in `life` (compared in constant time).
    pub fn verify(&self, life: SaleLife, order: &OrderId, given: &str) -> bool {
        self.check(ORDER_KEY, &[&life.get().to_string(), order.as_str()], given)
    }

    /// The request key of `request` on `event` in `life` (43 base64url
    /// characters): given with a request id a node made, it proves on a
    /// retry that the caller sent that purchase.
    pub fn request_key(&self, life: SaleLife, event: &EventId, request: &RequestId) -> String {
        let life = life.get().to_string();
        self.make(REQUEST_KEY, &[&life, event.as_str(), request.as_str()])
    }

    /// Whether `given` is the request key of `request` on `event` in `life`.
    pub fn verify_request(
        &self,
        life: SaleLife,
        event: &EventId,
        request: &RequestId,
        given: &str,
    ) -> bool {
        let life = life.get().to_string();
        self.check(
            REQUEST_KEY,
            &[&life, event.as_str(), request.as_str()],
            given,
        )
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
        let life = SaleLife::from_random(7 << 11);
        let one = OrderId::parse("G1-1").unwrap();
        let two = OrderId::parse("G1-2").unwrap();
        let key = keys.key_for(life, &one);
        assert_eq!(key.len(), 43);
        assert!(keys.verify(life, &one, &key));
        assert!(!keys.verify(life, &two, &key), "a key opens one order");
        assert!(!keys.verify(life, &one, "not-a-key"));
        let next_life = SaleLife::from_random(8 << 11);
        assert!(
            !keys.verify(next_life, &one, &key),
            "the same order id in the sale's next life"
        );
        assert!(
            !OrderKeys::new(ring('x')).verify(life, &one, &key),
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
        let life = SaleLife::default();
        let key = keys.request_key(life, &g1, &request);
        assert!(keys.verify_request(life, &g1, &request, &key));
        assert!(
            !keys.verify_request(life, &g1, &other, &key),
            "another request"
        );
        assert!(
            !keys.verify_request(life, &g2, &request, &key),
            "another event"
        );
        let order = OrderId::parse("G1-1").unwrap();
        assert!(
            !keys.verify(life, &order, &key),
            "a request key is no order key"
        );
    }

    #[test]
    fn the_operator_key_is_the_key_itself() {
        let operator = OperatorKey::new(ring('o'));
        assert!(operator.accepts(&"o".repeat(32)));
        assert!(!operator.accepts(&"o".repeat(31)));
        assert!(!operator.accepts(""));
    }
}
