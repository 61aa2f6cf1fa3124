//! Central stock in Redis. Each sale lives in four keys sharing the hash tag
//! `{event}` (one Redis Cluster slot); every change is one Lua script from
//! `lua/`, run with `EVALSHA` and reloaded on `NOSCRIPT`.

#![warn(missing_docs)]

mod keys;
mod store;

pub use keys::EventKeys;
pub use store::{RedisCentral, RedisSettings};
