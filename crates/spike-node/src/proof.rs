//! What a caller proves: the one credential a request carries (RFC 6750:
//! a header or `token=`, never both), and what proves that a replayed
//! order is the caller's. A request id proves nothing (it travels in URLs
//! and logs, and on an anonymous sale every buyer is the same nobody); on a
//! token sale the token does, and on an open or anonymous sale the order's
//! key, or the request key a node gave with a request id it made.

use crate::answer::Answer;
use spike_auth::OrderKeys;
use spike_core::{BuyerPolicy, EventId, OrderId, RequestId, SaleLife};

/// What a purchase's (or a result's) caller showed that could prove a
/// replayed order is theirs.
#[derive(Debug, Default)]
pub(crate) struct Proof {
    /// `order_key`, if given.
    pub(crate) order_key: Option<String>,
    /// `request_key`, if given.
    pub(crate) request_key: Option<String>,
    /// Whether the node made this purchase's request id (none was given):
    /// its "try again" answer may then carry the request key.
    pub(crate) request_made_here: bool,
}

/// The sale a replayed order belongs to, as far as proving goes.
pub(crate) struct Replayed<'a> {
    /// Who may buy it (a token sale proved its buyer already).
    pub(crate) policy: BuyerPolicy,
    /// Its life: keys of another life prove nothing.
    pub(crate) life: SaleLife,
    /// The event.
    pub(crate) event: &'a EventId,
    /// The request that bought it.
    pub(crate) request: &'a RequestId,
    /// The order.
    pub(crate) order: &'a OrderId,
}

impl Proof {
    /// Whether this proves that `replayed` is the caller's: on a token sale
    /// always (central stock replays a request only to the buyer who made
    /// it, and the token proved who that is); otherwise, with `keys`, a
    /// valid order key or request key.
    pub(crate) fn proves(&self, replayed: &Replayed<'_>, keys: Option<&OrderKeys>) -> bool {
        if replayed.policy.needs_token() {
            return true;
        }
        let Some(keys) = keys else {
            return false;
        };
        let Replayed {
            life,
            event,
            request,
            order,
            ..
        } = *replayed;
        (self.order_key.as_deref()).is_some_and(|key| keys.verify(life, order, key))
            || (self.request_key.as_deref())
                .is_some_and(|key| keys.verify_request(life, event, request, key))
    }
}

/// The one token a request carries: from the `Authorization` header or from
/// `token=`. Both at once is a 400 (RFC 6750, section 2: a client uses one
/// method per request), even when they are equal.
pub(crate) fn one_credential(
    bearer: Option<&str>,
    query: Option<String>,
) -> Result<Option<String>, Answer> {
    match (bearer, query) {
        (Some(_), Some(_)) => Err(Answer::bad_request(
            "two credentials: send the token either as Authorization: Bearer or as token=, not both",
        )),
        (Some(header), None) => Ok(Some(header.to_owned())),
        (None, query) => Ok(query),
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use spike_auth::{KeyRing, SecretKey};
    use spike_core::sale::BuyerAuth;

    use super::*;

    fn keys() -> OrderKeys {
        OrderKeys::new(KeyRing::new(SecretKey::new(vec![9; 32]).unwrap(), vec![]))
    }

    #[test]
    fn only_a_key_of_the_order_or_request_proves_a_replay_on_an_open_sale() {
        let (event, request) = (
            EventId::parse("G1").unwrap(),
            RequestId::parse("r1").unwrap(),
        );
        let order = OrderId::parse("G1-1").unwrap();
        let replayed = |policy| Replayed {
            policy,
            life: SaleLife::default(),
            event: &event,
            request: &request,
            order: &order,
        };
        let open = replayed(BuyerPolicy::ONE_PER_USER);
        let keys = keys();
        assert!(
            !Proof::default().proves(&open, Some(&keys)),
            "a request id alone"
        );
        let order_key = Proof {
            order_key: Some(keys.key_for(SaleLife::default(), &order)),
            ..Proof::default()
        };
        assert!(order_key.proves(&open, Some(&keys)));
        assert!(!order_key.proves(&open, None), "no keys: nothing proves");
        let request_key = Proof {
            request_key: Some(keys.request_key(SaleLife::default(), &event, &request)),
            ..Proof::default()
        };
        assert!(request_key.proves(&open, Some(&keys)));
        let anonymous = replayed(BuyerPolicy::Anonymous);
        assert!(!Proof::default().proves(&anonymous, Some(&keys)));
        let token_sale = replayed(BuyerPolicy::Identified {
            per_user_limit: NonZeroU32::MIN,
            auth: BuyerAuth::Token,
        });
        assert!(Proof::default().proves(&token_sale, None), "the token did");
    }

    #[test]
    fn a_request_carries_one_credential() {
        assert!(one_credential(Some("a"), Some("a".into())).is_err());
        assert_eq!(one_credential(Some("a"), None).ok(), Some(Some("a".into())));
        assert_eq!(
            one_credential(None, Some("q".into())).ok(),
            Some(Some("q".into()))
        );
        assert_eq!(one_credential(None, None).ok(), Some(None));
    }
}
