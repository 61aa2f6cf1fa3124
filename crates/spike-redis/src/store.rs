//! [`RedisCentral`]: the [`CentralStock`] contract over one multiplexed,
//! self-reconnecting Redis connection. Concurrent calls are pipelined on it.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, Script};
use spike_core::sale::{from_unix_millis, SaleConfig, SaleSnapshot};
use spike_core::{
    BuyerPolicy, CentralError, CentralReply, CentralStock, CreateSaleError, EventId, OrderId,
    Purchase, Release, RequestId, Restoration, UserId, Verdict,
};

use crate::keys::{EventKeys, EVENTS_KEY};

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// Longest wait for a (re)connection.
    pub connect_timeout: Duration,
    /// Longest wait for one answer; past it the outcome is unknown.
    pub response_timeout: Duration,
}

impl RedisSettings {
    /// Settings for `url` with timeouts that answer a client within a second.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connect_timeout: Duration::from_millis(300),
            response_timeout: Duration::from_millis(500),
        }
    }
}

pub(crate) struct Scripts {
    pub(crate) ack: Script,
    buy: Script,
    create: Script,
    snapshot: Script,
    release: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            ack: Script::new(include_str!("../lua/ack.lua")),
            buy: Script::new(include_str!("../lua/buy.lua")),
            create: Script::new(include_str!("../lua/create.lua")),
            snapshot: Script::new(include_str!("../lua/snapshot.lua")),
            release: Script::new(include_str!("../lua/release.lua")),
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
    /// the connection re-establishes itself after Redis restarts.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, CentralError> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| CentralError::Unavailable(format!("bad Redis URL: {e}")))?;
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
        .map_err(|_| CentralError::Unavailable(format!("no answer from {}", settings.url)))?
        .map_err(|e| CentralError::Unavailable(format!("{}: {e}", settings.url)))?;
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

fn parse_order(event: &EventId, raw: String) -> Result<OrderId, CentralError> {
    OrderId::parse(raw)
        .map_err(|e| CentralError::Protocol(format!("bad order id for {event}: {e}")))
}

impl CentralStock for RedisCentral {
    async fn create_sale(
        &self,
        event: &EventId,
        config: &SaleConfig,
        force: bool,
    ) -> Result<(), CreateSaleError> {
        let keys = EventKeys::new(event);
        let limit = config.policy().per_user_limit().map_or(0, NonZeroU32::get);
        let window_ms = u64::try_from(config.payment_window().as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.scripts.create.prepare_invoke();
        invocation
            .key(keys.all().as_slice())
            .arg(if force { "1" } else { "0" })
            .arg(config.total())
            .arg(limit)
            .arg(config.opens_at_millis())
            .arg(window_ms)
            .arg(event.as_str());
        let mut connection = self.connection.clone();
        let created: i64 = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        if created != 1 {
            return Err(CreateSaleError::AlreadyExists(event.clone()));
        }
        let _: i64 = self
            .with_deadline(connection.sadd(EVENTS_KEY, event.as_str()))
            .await?;
        Ok(())
    }

    async fn buy(&self, purchase: &Purchase) -> Result<CentralReply, CentralError> {
        let keys = EventKeys::new(&purchase.event);
        let mut invocation = self.scripts.buy.prepare_invoke();
        invocation
            .key(keys.all().as_slice())
            .arg(purchase.user.as_ref().map_or("", |u| u.as_str()))
            .arg(purchase.request.as_str())
            .arg(purchase.node.as_str());
        let mut connection = self.connection.clone();
        let (code, order, remaining): (i64, String, u64) = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        let event = &purchase.event;
        let verdict = match code {
            1 => Verdict::Sold {
                order: parse_order(event, order)?,
                replayed: false,
            },
            2 => Verdict::Sold {
                order: parse_order(event, order)?,
                replayed: true,
            },
            -1 => Verdict::SoldOut,
            -2 => Verdict::AlreadyPurchased {
                order: parse_order(event, order)?,
            },
            -3 => Verdict::NotOpen,
            -4 => Verdict::UserRequired,
            -6 => Verdict::NoSuchSale,
            -7 => Verdict::RequestIdTaken,
            other => {
                return Err(CentralError::Protocol(format!(
                    "buy.lua answered unknown code {other}"
                )))
            }
        };
        Ok(CentralReply { verdict, remaining })
    }

    async fn snapshot(&self, event: &EventId) -> Result<Option<SaleSnapshot>, CentralError> {
        let keys = EventKeys::new(event);
        let mut invocation = self.scripts.snapshot.prepare_invoke();
        invocation.key(keys.all().as_slice());
        let mut connection = self.connection.clone();
        let fields: Vec<u64> = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        let [total, sold, limit, opens_at_ms, window_ms, buyers, stream] = fields[..] else {
            if fields.is_empty() {
                return Ok(None);
            }
            return Err(CentralError::Protocol(format!(
                "snapshot.lua answered {} fields",
                fields.len()
            )));
        };
        let bad = |e: &dyn std::fmt::Display| CentralError::Protocol(format!("sale {event}: {e}"));
        let policy = match u32::try_from(limit).ok().and_then(NonZeroU32::new) {
            Some(per_user_limit) => BuyerPolicy::Identified { per_user_limit },
            None => BuyerPolicy::Anonymous,
        };
        let config = SaleConfig::new(total)
            .map_err(|e| bad(&e))?
            .with_policy(policy)
            .opening_at((opens_at_ms > 0).then(|| from_unix_millis(opens_at_ms)))
            .with_payment_window(Duration::from_millis(window_ms))
            .map_err(|e| bad(&e))?;
        Ok(Some(SaleSnapshot {
            config,
            sold,
            buyers,
            orders_in_stream: stream,
        }))
    }

    async fn order_for_request(
        &self,
        event: &EventId,
        request: &RequestId,
    ) -> Result<Option<OrderId>, CentralError> {
        let keys = EventKeys::new(event);
        let mut connection = self.connection.clone();
        let entry: Option<String> = self
            .with_deadline(connection.hget(&keys.requests, request.as_str()))
            .await?;
        // The entry is "order_id user_id".
        entry
            .map(|e| parse_order(event, e.split(' ').next().unwrap_or_default().to_string()))
            .transpose()
    }

    async fn release(
        &self,
        event: &EventId,
        order: &OrderId,
        user: Option<&UserId>,
        request: &RequestId,
    ) -> Result<Release, CentralError> {
        let keys = EventKeys::new(event);
        let mut invocation = self.scripts.release.prepare_invoke();
        invocation
            .key(keys.all().as_slice())
            .arg(order.as_str())
            .arg(user.map_or("", |u| u.as_str()))
            .arg(request.as_str());
        let mut connection = self.connection.clone();
        let (code, remaining): (i64, u64) = self
            .with_deadline(invocation.invoke_async(&mut connection))
            .await?;
        match code {
            1 => Ok(Release::Released { remaining }),
            0 => Ok(Release::AlreadyReleased),
            -1 => Ok(Release::NotSold),
            -6 => Ok(Release::NoSuchSale),
            other => Err(CentralError::Protocol(format!(
                "release.lua answered unknown code {other}"
            ))),
        }
    }

    async fn restore(
        &self,
        event: &EventId,
        restoration: &Restoration,
    ) -> Result<(), CentralError> {
        const CHUNK: usize = 1_000;
        let keys = EventKeys::new(event);
        let config = &restoration.config;
        let limit = config.policy().per_user_limit().map_or(0, NonZeroU32::get);
        let window_ms = u64::try_from(config.payment_window().as_millis()).unwrap_or(u64::MAX);
        let mut connection = self.connection.clone();
        // First the sale disappears, so every node refuses it while the
        // indexes are rebuilt; the stream is left alone.
        let wipe = [&keys.sale, &keys.buyers, &keys.requests, &keys.released];
        let _: i64 = self.with_deadline(connection.del(&wipe[..])).await?;
        let buyers = crate::stream::buyer_index(
            (restoration.holding.iter())
                .filter(|_| limit > 0)
                .filter_map(|h| Some((h.user.as_ref()?, &h.order))),
        );
        let buyers: Vec<(&str, String)> = buyers.into_iter().collect();
        for chunk in buyers.chunks(CHUNK) {
            let _: () = self
                .with_deadline(connection.hset_multiple(&keys.buyers, chunk))
                .await?;
        }
        let requests: Vec<(&str, String)> = (restoration.holding.iter())
            .map(|h| {
                let user = h.user.as_ref().map_or("", |u| u.as_str());
                (h.request.as_str(), format!("{} {user}", h.order))
            })
            .collect();
        for chunk in requests.chunks(CHUNK) {
            let _: () = self
                .with_deadline(connection.hset_multiple(&keys.requests, chunk))
                .await?;
        }
        let released: Vec<&str> = restoration.released.iter().map(OrderId::as_str).collect();
        for chunk in released.chunks(CHUNK) {
            let _: i64 = self
                .with_deadline(connection.sadd(&keys.released, chunk))
                .await?;
        }
        let sale: [(&str, String); 7] = [
            ("total", config.total().to_string()),
            ("sold", restoration.holding.len().to_string()),
            ("order_seq", restoration.last_sequence.to_string()),
            ("per_user_limit", limit.to_string()),
            ("opens_at_ms", config.opens_at_millis().to_string()),
            ("payment_window_ms", window_ms.to_string()),
            ("event", event.to_string()),
        ];
        let _: () = self
            .with_deadline(connection.hset_multiple(&keys.sale, &sale))
            .await?;
        let _: i64 = self
            .with_deadline(connection.sadd(EVENTS_KEY, event.as_str()))
            .await?;
        Ok(())
    }

    async fn events(&self) -> Result<Vec<EventId>, CentralError> {
        let mut connection = self.connection.clone();
        let names: Vec<String> = self.with_deadline(connection.smembers(EVENTS_KEY)).await?;
        let mut events: Vec<_> = names
            .into_iter()
            .filter_map(|n| EventId::parse(n).ok())
            .collect();
        events.sort();
        Ok(events)
    }
}
