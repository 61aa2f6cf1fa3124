//! Central stock in Redis. Each sale lives in five keys sharing the hash tag
//! `{event}` (one Redis Cluster slot); every change is one Lua script from
//! `lua/`, run with `EVALSHA` and reloaded on `NOSCRIPT`.

#![warn(missing_docs)]

mod central;
mod client;
mod confirm;
mod keys;
mod scripts;
mod stream;
mod target;
mod wire;

pub use client::{RedisCentral, RedisSettings};
pub use keys::EventKeys;
pub use scripts::{script_names, script_source};
pub use stream::ORDER_GROUP;
pub use target::{RedisTarget, TargetError, SENTINEL_SCHEME};
