//! What each subcommand does, once its arguments are parsed.

pub mod audit;
pub mod bench;
pub mod control;
pub mod dashboard;
pub mod demo;
pub mod demo_waitlist;
pub mod front;
pub mod http_client;
pub mod node;
pub mod orders;
pub mod probe;
pub mod sale;
pub mod scripts;
pub mod token;

pub use audit::run_audit;
pub use bench::run_bench;
pub use control::{run_queue, sale_log, sale_pause, sale_resume};
pub use dashboard::run_dashboard;
pub use demo::run_demo;
pub use front::{print_nginx_conf, run_front};
pub use node::{run_baseline, run_node};
pub use orders::run_orders;
pub use probe::run_probe;
pub use sale::{sale_create, sale_recover, sale_show, train_create};
pub use scripts::print_scripts;
pub use token::print_token;

use anyhow::Context;
use spike_core::SecretUrl;
use spike_redis::{RedisCentral, RedisSettings};

/// Connects to Redis, saying which URL failed (without its password).
async fn redis(url: &SecretUrl) -> anyhow::Result<RedisCentral> {
    connect_redis(RedisSettings::new(url.clone()), None).await
}

/// Connects to Redis with `settings`, saying which URL failed (without its
/// password); with `io`, the connection reads its replies on that runtime.
async fn connect_redis(
    settings: RedisSettings,
    io: Option<tokio::runtime::Handle>,
) -> anyhow::Result<RedisCentral> {
    let connected = match io {
        Some(io) => RedisCentral::connect_on(&settings, io).await,
        None => RedisCentral::connect(&settings).await,
    };
    connected.with_context(|| format!("cannot reach Redis at {}", settings.url))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
