//! One handle on Redis, whatever its shape: a multiplexed connection to one
//! server (the primary, for Sentinel), or a Redis Cluster connection that
//! sends each command to the primary of its key's slot and follows the
//! cluster's redirections (`MOVED`, `ASK`) and failovers. Every script and
//! command of this crate runs on either, unchanged: each touches one
//! event's keys, which share the event's slot. A [`Link`] is such a
//! handle with its generation (which `WAIT` needs to know).

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// One connection to the current primary; a new one (after a failure or a
/// failover) has a higher generation.
#[derive(Clone)]
pub(crate) struct Link {
    /// Counts connections made: a `WAIT` only covers writes sent on its own
    /// connection.
    pub(crate) generation: u64,
    /// The multiplexed connection concurrent calls pipeline on.
    pub(crate) connection: RedisConnection,
}

/// A connection to one server or to a cluster.
#[derive(Clone)]
pub(crate) enum RedisConnection {
    /// One server (a direct URL, or the primary Sentinel names).
    Server(MultiplexedConnection),
    /// A Redis Cluster: commands are routed by their first key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}
