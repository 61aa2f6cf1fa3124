//! An upstream node and its weight, as written on the command line:
//! `HOST:PORT=WEIGHT` (weight 1 when omitted).

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

/// One node behind the front door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `host:port`.
    pub address: String,
    /// Share of requests, relative to the other upstreams.
    pub weight: NonZeroU32,
}

/// Why an upstream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Not `HOST:PORT`.
    #[error("{0:?} is not HOST:PORT[=WEIGHT]")]
    BadAddress(String),
    /// The weight is not a positive integer.
    #[error("weight in {0:?} must be a whole number from 1")]
    BadWeight(String),
}

impl FromStr for Upstream {
    type Err = UpstreamError;

    fn from_str(text: &str) -> Result<Self, UpstreamError> {
        let (address, weight) = match text.split_once('=') {
            Some((address, weight)) => (
                address,
                weight
                    .parse::<NonZeroU32>()
                    .map_err(|_| UpstreamError::BadWeight(text.to_string()))?,
            ),
            None => (text, NonZeroU32::MIN),
        };
        let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
        });
        if !valid {
            return Err(UpstreamError::BadAddress(text.to_string()));
        }
        Ok(Self {
            address: address.to_string(),
            weight,
        })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.address, self.weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_address_and_weight() {
        let up: Upstream = "127.0.0.1:3001=4".parse().unwrap();
        assert_eq!(
            (up.address.as_str(), up.weight.get()),
            ("127.0.0.1:3001", 4)
        );
        let up: Upstream = "node-a:3002".parse().unwrap();
        assert_eq!(up.weight.get(), 1);
        assert_eq!(up.to_string(), "node-a:3002=1");
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "3001", "host:0", "host:x", ":80", "h:80=0", "h:80=-1", "h:80=a", "h;rm:80",
        ] {
            assert!(bad.parse::<Upstream>().is_err(), "{bad}");
        }
    }
}
