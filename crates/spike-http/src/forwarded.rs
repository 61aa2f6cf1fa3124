//! Who is calling: the client's address, which is the TCP peer unless the
//! peer is a proxy the operator trusts, in which case it is read from the
//! `X-Forwarded-For` header that proxy wrote. A header from anyone else is
//! ignored, so a client cannot choose the address it is limited under.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

/// The header proxies name the client in (a comma-separated list, each
/// proxy appending the address it was connected from).
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpAddr>);

impl TrustedProxies {
    /// Trusts exactly these addresses (none: every peer is the client).
    pub fn new(proxies: Vec<IpAddr>) -> Self {
        Self(proxies)
    }

    /// Whether `address` is a trusted proxy.
    pub fn trusts(&self, address: IpAddr) -> bool {
        self.0.contains(&address)
    }

    /// The client behind `peer`: `peer` itself, unless it is trusted; then
    /// the `X-Forwarded-For` hops are read from the nearest (rightmost)
    /// back, and the first one that is not a trusted proxy is the client.
    /// A hop that is not an address ends the walk at the last trusted one.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.ip();
        if !self.trusts(client) {
            return client;
        }
        let hops = (headers.get_all(X_FORWARDED_FOR).iter().rev())
            .flat_map(|value| value.to_str().unwrap_or("?").rsplit(','));
        for hop in hops {
            match hop.trim().parse::<IpAddr>() {
                Ok(address) if self.trusts(address) => client = address,
                Ok(address) => return address,
                Err(_) => return client,
            }
        }
        client
    }
}

/// The `X-Forwarded-For` an edge proxy sends on: the address it was
/// connected from, replacing whatever the client wrote.
pub fn forwarded_for(peer: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.ip().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn peer(text: &str) -> SocketAddr {
        SocketAddr::new(ip(text), 40_000)
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_stranger_is_the_client_whatever_it_writes() {
        let proxies = TrustedProxies::new(vec![ip("10.0.0.1")]);
        let told = forwarded(&["203.0.113.9"]);
        assert_eq!(
            proxies.client(peer("198.51.100.7"), &told),
            ip("198.51.100.7")
        );
        let nobody = TrustedProxies::default();
        assert_eq!(nobody.client(peer("10.0.0.1"), &told), ip("10.0.0.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::new(vec![ip("10.0.0.1"), ip("10.0.0.2")]);
        // The client forged the first hop; the proxies appended the rest.
        let told = forwarded(&["1.1.1.1, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(proxies.client(peer("10.0.0.1"), &told), ip("203.0.113.9"));
        assert_eq!(
            proxies.client(peer("10.0.0.1"), &forwarded(&["2001:db8::7"])),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn a_trusted_proxy_without_a_usable_header_is_the_client() {
        let proxies = TrustedProxies::new(vec![ip("10.0.0.1")]);
        assert_eq!(
            proxies.client(peer("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        let garbage = forwarded(&["203.0.113.9, not-an-address"]);
        assert_eq!(proxies.client(peer("10.0.0.1"), &garbage), ip("10.0.0.1"));
    }

    #[test]
    fn an_edge_names_the_address_it_was_connected_from() {
        assert_eq!(forwarded_for(peer("203.0.113.9")), "203.0.113.9");
    }
}
