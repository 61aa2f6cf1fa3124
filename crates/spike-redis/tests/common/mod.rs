//! What the Redis adapter's integration tests share: connecting to a test
//! server or cluster, and a purchase named after its buyer.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests: a panic is a failure

use spike_core::{EventId, NodeId, Purchase, RequestId, UserId};
use spike_redis::{RedisCentral, RedisSettings};

/// Central stock at `url` (`redis://…` or `redis+cluster://…`).
pub async fn connect(url: &str) -> RedisCentral {
    // The suite runs beside everything else on two cores: a call of 10,000
    // entries (the conformance suite's big batch) may outlast the
    // production deadline of 500 ms there. Deadlines themselves are tested
    // elsewhere, against a paused Redis.
    let settings = RedisSettings {
        response_timeout: std::time::Duration::from_secs(5),
        ..RedisSettings::new(url)
    };
    RedisCentral::connect(&settings)
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
