//! Where central stock's Redis is: one server (`redis://…`), the primary
//! of a replicated set that Redis Sentinel watches
//! (`redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE`), found by asking the
//! sentinels and asked again after a failover, or a Redis Cluster
//! (`redis+cluster://HOST:PORT[,HOST:PORT…]`), any of whose nodes tells
//! the client where every slot lives.

use std::time::Duration;

use spike_core::{CentralError, SecretUrl};

/// The scheme of a Sentinel URL.
pub const SENTINEL_SCHEME: &str = "redis+sentinel://";

/// The scheme of a Redis Cluster URL.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server, at this URL.
    Direct(SecretUrl),
    /// The primary of `service`, as the sentinels report it.
    Sentinel {
        /// The sentinels, `host:port` each, asked in order.
        sentinels: Vec<String>,
        /// The name the sentinels monitor the primary under.
        service: String,
        /// `redis://user:password@`, the primary's URL up to its address,
        /// when it needs credentials (kept secret).
        credentials: Option<SecretUrl>,
    },
    /// A Redis Cluster, discovered from any of `nodes`.
    Cluster {
        /// Some of the cluster's nodes, `host:port` each.
        nodes: Vec<String>,
        /// `redis://user:password@`, the nodes' URL up to their address,
        /// when they need credentials (kept secret).
        credentials: Option<SecretUrl>,
    },
}

/// A Sentinel or Cluster URL that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad Redis URL (want {SENTINEL_SCHEME}HOST:PORT[,HOST:PORT…]/SERVICE or \
     {CLUSTER_SCHEME}HOST:PORT[,HOST:PORT…]): {0}"
)]
pub struct TargetError(&'static str);

/// `redis://user:password@` and the rest, when `rest` starts with
/// credentials.
fn split_credentials(rest: &str) -> (Option<SecretUrl>, &str) {
    match rest.rsplit_once('@') {
        Some((credentials, rest)) => (
            Some(SecretUrl::new(format!("redis://{credentials}@"))),
            rest,
        ),
        None => (None, rest),
    }
}

/// `HOST:PORT,HOST:PORT…` as a list, if every item is well formed.
fn host_list(hosts: &str, what: &'static str) -> Result<Vec<String>, TargetError> {
    let list: Vec<String> = hosts.split(',').map(str::to_string).collect();
    let well_formed = |host: &String| {
        host.rsplit_once(':')
            .is_some_and(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok())
    };
    if list.iter().all(well_formed) {
        Ok(list)
    } else {
        Err(TargetError(what))
    }
}

impl RedisTarget {
    /// Reads `url`: a Sentinel or Cluster URL, or any other Redis URL as
    /// one server.
    pub fn parse(url: &SecretUrl) -> Result<Self, TargetError> {
        if let Some(rest) = url.expose().strip_prefix(CLUSTER_SCHEME) {
            let (credentials, hosts) = split_credentials(rest);
            let nodes = host_list(hosts.trim_end_matches('/'), "every node must be HOST:PORT")?;
            return Ok(Self::Cluster { nodes, credentials });
        }
        let Some(rest) = url.expose().strip_prefix(SENTINEL_SCHEME) else {
            return Ok(Self::Direct(url.clone()));
        };
        let (credentials, rest) = split_credentials(rest);
        let (hosts, service) = rest.split_once('/').ok_or(TargetError("no /SERVICE"))?;
        let service = service.trim_end_matches('/');
        if service.is_empty() || service.contains('/') {
            return Err(TargetError("SERVICE must be one non-empty name"));
        }
        let sentinels = host_list(hosts, "every sentinel must be HOST:PORT")?;
        Ok(Self::Sentinel {
            sentinels,
            service: service.to_string(),
            credentials,
        })
    }

    /// The URLs of a cluster's nodes as given (credentials included), or
    /// `None` for a target that is no cluster.
    pub(crate) fn cluster_nodes(&self) -> Option<Vec<SecretUrl>> {
        let Self::Cluster { nodes, credentials } = self else {
            return None;
        };
        let start = credentials.as_ref().map_or("redis://", SecretUrl::expose);
        Some(
            (nodes.iter())
                .map(|node| SecretUrl::new(format!("{start}{node}")))
                .collect(),
        )
    }

    /// The URL of the server to connect to now: the direct URL, or the
    /// primary the first answering sentinel names.
    pub(crate) async fn resolve(&self, timeout: Duration) -> Result<SecretUrl, CentralError> {
        let (sentinels, service, credentials) = match self {
            Self::Direct(url) => return Ok(url.clone()),
            Self::Cluster { .. } => {
                return Err(CentralError::Unavailable(
                    "a cluster has no one server to resolve".into(),
                ))
            }
            Self::Sentinel {
                sentinels,
                service,
                credentials,
            } => (sentinels, service, credentials),
        };
        let mut last_error = String::from("no sentinel given");
        for sentinel in sentinels {
            match tokio::time::timeout(timeout, ask_sentinel(sentinel, service)).await {
                Ok(Ok((host, port))) => {
                    let start = credentials.as_ref().map_or("redis://", SecretUrl::expose);
                    return Ok(SecretUrl::new(format!("{start}{host}:{port}")));
                }
                Ok(Err(error)) => last_error = format!("sentinel {sentinel}: {error}"),
                Err(_) => last_error = format!("sentinel {sentinel}: no answer in {timeout:?}"),
            }
        }
        Err(CentralError::Unavailable(format!(
            "no primary for {service}: {last_error}"
        )))
    }
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME service` on one sentinel.
async fn ask_sentinel(sentinel: &str, service: &str) -> Result<(String, u16), String> {
    let client = redis::Client::open(format!("redis://{sentinel}")).map_err(|e| e.to_string())?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let address: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(service)
        .query_async(&mut connection)
        .await
        .map_err(|e| e.to_string())?;
    address.ok_or_else(|| format!("does not know {service}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<RedisTarget, TargetError> {
        RedisTarget::parse(&SecretUrl::new(url))
    }

    #[test]
    fn plain_urls_are_one_server() {
        let url = "redis://:pw@127.0.0.1:6379/2";
        assert_eq!(parse(url), Ok(RedisTarget::Direct(SecretUrl::new(url))));
    }

    #[test]
    fn sentinel_urls_list_sentinels_and_the_service() {
        let target = parse("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/tickets").unwrap();
        assert_eq!(
            target,
            RedisTarget::Sentinel {
                sentinels: vec!["10.0.0.1:26379".into(), "10.0.0.2:26380".into()],
                service: "tickets".into(),
                credentials: None,
            }
        );
    }

    #[test]
    fn sentinel_credentials_are_kept_secret() {
        let target = parse("redis+sentinel://:hunter2@h:1/s").unwrap();
        assert!(!format!("{target:?}").contains("hunter2"), "{target:?}");
        let RedisTarget::Sentinel { credentials, .. } = target else {
            panic!("a sentinel target");
        };
        assert_eq!(credentials.unwrap().expose(), "redis://:hunter2@");
    }

    #[test]
    fn cluster_urls_list_nodes_and_keep_credentials_secret() {
        let target = parse("redis+cluster://:hunter2@10.0.0.1:7000,10.0.0.2:7001/").unwrap();
        assert!(!format!("{target:?}").contains("hunter2"), "{target:?}");
        let nodes: Vec<String> = (target.cluster_nodes().unwrap().iter())
            .map(|url| url.expose().to_string())
            .collect();
        assert_eq!(
            nodes,
            [
                "redis://:hunter2@10.0.0.1:7000",
                "redis://:hunter2@10.0.0.2:7001"
            ]
        );
        assert_eq!(parse("redis://h:1").unwrap().cluster_nodes(), None);
        for url in [
            "redis+cluster://",
            "redis+cluster://h",
            "redis+cluster://h:1,:2",
        ] {
            assert!(parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn malformed_sentinel_urls_are_refused() {
        for url in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h/s",
            "redis+sentinel://h:x/s",
            "redis+sentinel://:1/s",
            "redis+sentinel://h:1/a/b",
        ] {
            assert!(parse(url).is_err(), "{url}");
        }
    }
}
