//! [`RedisCentral`]'s connection: one multiplexed, self-reconnecting Redis
//! connection that concurrent calls pipeline on, the response deadline that
//! turns silence into "outcome unknown", and the mapping of Redis failures
//! onto [`CentralError`]. The contracts themselves are implemented in
//! `central.rs` (sales) and `stream.rs` (the order stream).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;
use spike_core::{CentralError, SecretUrl};

use crate::scripts::Scripts;

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`; shown without its password.
    pub url: SecretUrl,
    /// Longest wait for a (re)connection.
    pub connect_timeout: Duration,
    /// Longest wait for one answer; past it the outcome is unknown.
    pub response_timeout: Duration,
}

impl RedisSettings {
    /// Settings for `url` with timeouts that answer a client within a second.
    pub fn new(url: impl Into<SecretUrl>) -> Self {
        Self {
            url: url.into(),
            connect_timeout: Duration::from_millis(300),
            response_timeout: Duration::from_millis(500),
        }
    }
}

/// Central stock in Redis.
#[derive(Clone)]
pub struct RedisCentral {
    connection: ConnectionManager,
    scripts: Arc<Scripts>,
    response_timeout: Duration,
}

impl std::fmt::Debug for RedisCentral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCentral").finish_non_exhaustive()
    }
}

/// Maps a Redis failure onto what it means for a purchase in flight.
pub(crate) fn classify(error: RedisError) -> CentralError {
    if error.is_connection_refusal() {
        CentralError::Unavailable(error.to_string())
    } else if error.is_timeout() || error.is_io_error() || error.is_connection_dropped() {
        CentralError::OutcomeUnknown(error.to_string())
    } else {
        CentralError::Protocol(error.to_string())
    }
}

impl RedisCentral {
    /// Connects to Redis; fails if it cannot be reached now. Once connected,
    /// the connection re-establishes itself after Redis restarts. Errors name
    /// the URL without its password.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, CentralError> {
        let url = &settings.url;
        let client = redis::Client::open(url.expose())
            .map_err(|e| CentralError::Unavailable(format!("bad Redis URL {url}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = tokio::time::timeout(
            settings.connect_timeout * 3,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| CentralError::Unavailable(format!("no answer from {url}")))?
        .map_err(|e| CentralError::Unavailable(format!("{url}: {e}")))?;
        Ok(Self {
            connection,
            scripts: Arc::new(Scripts::load()),
            response_timeout: settings.response_timeout,
        })
    }

    /// A handle on the shared, multiplexed connection.
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// The loaded scripts.
    pub(crate) fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// Runs `call` with the response deadline, handing back Redis's own
    /// error for the caller to inspect.
    pub(crate) async fn deadline_raw<T, F>(
        &self,
        call: F,
    ) -> Result<Result<T, RedisError>, CentralError>
    where
        F: std::future::Future<Output = Result<T, RedisError>>,
    {
        tokio::time::timeout(self.response_timeout, call)
            .await
            .map_err(|_| {
                CentralError::OutcomeUnknown(format!(
                    "no answer within {:?}",
                    self.response_timeout
                ))
            })
    }

    /// Runs `call` on the shared connection with the response deadline.
    pub(crate) async fn with_deadline<T, F>(&self, call: F) -> Result<T, CentralError>
    where
        F: std::future::Future<Output = Result<T, RedisError>>,
    {
        self.deadline_raw(call).await?.map_err(classify)
    }
}
