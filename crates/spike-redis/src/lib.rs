//! Central stock in Redis. Each sale lives in five keys sharing the hash tag
//! `{event}` (one Redis Cluster slot); every change is one Lua script from
//! `lua/`, run with `EVALSHA` and reloaded on `NOSCRIPT`.

#![warn(missing_docs)]

mod keys;
mod store;
mod stream;

pub use keys::EventKeys;
pub use store::{RedisCentral, RedisSettings};
pub use stream::ORDER_GROUP;
