//! What the Redis adapter's integration tests share: connecting to a test
//! server or cluster, and a purchase named after its buyer.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests: a panic is a failure

use spike_core::{EventId, NodeId, Purchase, RequestId, UserId};
use spike_redis::{RedisCentral, RedisSettings};

/// Central stock at `url` (`redis://…` or `redis+cluster://…`).
pub async fn connect(url: &str) -> RedisCentral {
    RedisCentral::connect(&RedisSettings::new(url))
        .await
        .expect("connect to Redis")
}

/// `user`'s purchase of one seat of `event`, with request id `req-USER`.
pub fn purchase(event: &EventId, user: &str) -> Purchase {
    Purchase {
        event: event.clone(),
        user: Some(UserId::parse(user).unwrap()),
        request: RequestId::parse(format!("req-{user}")).unwrap(),
        node: NodeId::parse("test").unwrap(),
        admission: None,
    }
}
