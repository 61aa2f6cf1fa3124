//! Central stock in Redis: one server, a Sentinel-watched primary, or a
//! Redis Cluster. Each sale's keys share the hash tag `{event}` (one
//! Cluster slot, so sales spread over the shards by event); every change is
//! one Lua script from `lua/`, run with `EVALSHA` and reloaded on
//! `NOSCRIPT`.

#![warn(missing_docs)]

mod central;
mod client;
mod confirm;
mod connection;
mod controls;
mod keys;
mod queue;
mod scripts;
mod stream;
mod target;
mod waitlist;
mod wire;

pub use client::{RedisCentral, RedisSettings};
pub use keys::EventKeys;
pub use scripts::{script_names, script_source};
pub use stream::ORDER_GROUP;
pub use target::{RedisTarget, TargetError, CLUSTER_SCHEME, SENTINEL_SCHEME};
